module purereducer.dev/clients/go

go 1.19

// The versions Debian 12 packages (golang-google-grpc-dev, golang-google-protobuf-dev), which
// build this module offline; see README.md. Newer versions work as well.
require (
	google.golang.org/grpc v1.33.3
	google.golang.org/protobuf v1.28.1
)
