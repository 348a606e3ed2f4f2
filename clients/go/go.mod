module purereducer.dev/clients/go

go 1.19

// The versions Debian 12 packages (golang-google-grpc-dev, golang-google-protobuf-dev), which
// build this module offline (build-debian.sh); see README.md. Newer versions work as well.
require (
	google.golang.org/grpc v1.33.3
	google.golang.org/protobuf v1.28.1
)

// What minimal version selection picks for those two: the modules that provide the packages
// they import, as `go mod tidy` lists them for go >= 1.17.
require (
	github.com/golang/protobuf v1.5.0 // indirect
	golang.org/x/net v0.0.0-20190311183353-d8887717615a // indirect
	golang.org/x/sys v0.0.0-20190215142949-d0b11bdaac8a // indirect
	golang.org/x/text v0.3.0 // indirect
	google.golang.org/genproto v0.0.0-20200526211855-cb27e3aa2013 // indirect
)
