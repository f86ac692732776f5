#!/usr/bin/env bash
# The TLS material of docker-compose.yml: a local certificate authority, one certificate
# per Kafka node (kafka-1..3) and one for MongoDB, all signed by that CA.
#
#   deploy/tls/make-certs.sh [--renew] [OUT_DIR]      (default: deploy/tls/generated)
#
# Nothing it writes is committed (the directory is git-ignored); the compose job tls-init
# copies what each container needs into that container's own volume, owned by the user
# the server runs as. Existing files are kept, so a second run changes nothing;
# --renew issues new node certificates from the same CA (certificate rotation, see
# docs/security.md); deleting ca.pem and ca-key.pem starts a new CA.
#
# Each node certificate names the host the clients connect to (kafka-N, mongodb inside
# the compose network) and localhost/127.0.0.1 (the ports published on the host, and the
# servers' own health checks). Both serverAuth and clientAuth: a Kafka node presents its
# certificate to the controllers (mutual TLS on the controller listener).
set -euo pipefail

renew=false
if [ "${1:-}" = "--renew" ]; then
  renew=true
  shift
fi
out="${1:-$(cd "$(dirname "$0")" && pwd)/generated}"
days="${TLS_CERT_DAYS:-397}"
ca_days="${TLS_CA_DAYS:-3650}"
nodes=(kafka-1 kafka-2 kafka-3 mongodb)

command -v openssl >/dev/null || { echo "make-certs: openssl is needed" >&2; exit 1; }
mkdir -p "$out"
# Readable directory, private keys for the owner only (tls-init, running as root, reads
# them; the servers get their copy with their own owner).
chmod 0755 "$out"
umask 077

if [ ! -s "$out/ca.pem" ] || [ ! -s "$out/ca-key.pem" ]; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc \
    -keyout "$out/ca-key.pem" -out "$out/ca.pem" -days "$ca_days" -sha256 \
    -subj "/O=seminar-ops/CN=seminar-ops local CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" 2>/dev/null
  chmod 0644 "$out/ca.pem"
  renew=true  # a new CA invalidates every node certificate
  echo "make-certs: new CA $out/ca.pem"
fi

issue() {
  local name="$1" extensions
  extensions="$(mktemp)"
  cat >"$extensions" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:$name,DNS:localhost,IP:127.0.0.1
authorityKeyIdentifier=keyid
subjectKeyIdentifier=hash
EXT
  # PKCS#8 keys: what Kafka's PEM key store reads (and MongoDB as well).
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc \
    -keyout "$out/$name-key.pem" -out "$out/$name.csr" -subj "/O=seminar-ops/CN=$name" 2>/dev/null
  openssl x509 -req -in "$out/$name.csr" -CA "$out/ca.pem" -CAkey "$out/ca-key.pem" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
    -extfile "$extensions" -out "$out/$name.pem" 2>/dev/null
  rm -f "$out/$name.csr" "$extensions"
  chmod 0644 "$out/$name.pem"
  # Kafka (ssl.keystore.type=PEM) and mongod (--tlsCertificateKeyFile) both take the
  # key and the certificate in one file.
  cat "$out/$name-key.pem" "$out/$name.pem" >"$out/$name-bundle.pem"
  echo "make-certs: issued $out/$name.pem (valid $days days)"
}

for name in "${nodes[@]}"; do
  if $renew || [ ! -s "$out/$name.pem" ] || [ ! -s "$out/$name-bundle.pem" ]; then
    issue "$name"
  fi
done
