#!/usr/bin/env bash
# Makes a throwaway PKI for TLS tests in DIR (created if missing), with the openssl CLI:
#
#   ca.pem                     CA that signs the two certificates below
#   server.pem, server.key     server certificate for localhost and 127.0.0.1
#   client.pem, client.key     client certificate (CN clients-test) for mutual TLS
#   stranger-ca.pem            another CA, which signed none of the above
#   outsider.pem, outsider.key client certificate signed by the other CA
#
# Keys are P-256, PKCS#8 PEM; certificates are valid for two days.
#
#   clients/tests/make-certs.sh DIR
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
mkdir -p "$1"
cd "$1"

newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
# openssl reports progress on stderr: show it only when a step fails.
quiet() {
  local out
  out=$("$@" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
}

ca() { # ca NAME CN
  quiet openssl req -x509 "${newkey[@]}" -keyout "$1.key" -out "$1.pem" -days 2 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}

leaf() { # leaf NAME CA CN EXTENSIONS
  quiet openssl req -new "${newkey[@]}" -keyout "$1.key" -out "$1.csr" -subj "/CN=$3"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n%s\n' "$4" >"$1.ext"
  quiet openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" \
    -set_serial "0x$(openssl rand -hex 8)" -days 2 -extfile "$1.ext" -out "$1.pem"
  rm -f "$1.csr" "$1.ext"
}

ca ca "Pure Reducer test CA"
ca stranger-ca "Some other CA"
leaf server ca localhost $'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth'
leaf client ca clients-test $'subjectAltName=DNS:clients-test\nextendedKeyUsage=clientAuth'
leaf outsider stranger-ca outsider $'subjectAltName=DNS:outsider\nextendedKeyUsage=clientAuth'
rm -f ca.key stranger-ca.key
