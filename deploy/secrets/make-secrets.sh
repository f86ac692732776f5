#!/usr/bin/env bash
# The passwords of docker-compose.yml and MongoDB's replica-set key file, random, in a
# git-ignored directory (never in the image, never in git):
#
#   deploy/secrets/make-secrets.sh [--rotate NAME] [OUT_DIR]   (default: deploy/secrets/generated)
#
# compose.env holds one variable per password, for `docker compose --env-file`:
#   KAFKA_BROKER_PASSWORD   the brokers among themselves (SCRAM user "broker")
#   KAFKA_ADMIN_PASSWORD    kafka-init: topics, service users, ACLs (SCRAM user "admin")
#   <SERVICE>_KAFKA_PASSWORD    each service's SCRAM user (its own name)
#   MONGODB_ROOT_PASSWORD   mongodb-init: replica set, service users (user "root")
#   <SERVICE>_MONGODB_PASSWORD  each service's database user (its own name)
# mongodb-keyfile authenticates replica-set members to each other.
#
# Existing values are kept; --rotate NAME draws a new value for that one variable
# (docs/security.md says what to restart). Values are hex: safe inside a URI and a JAAS line.
set -euo pipefail

rotate=""
if [ "${1:-}" = "--rotate" ]; then
  rotate="${2:?--rotate needs a variable name}"
  shift 2
fi
out="${1:-$(cd "$(dirname "$0")" && pwd)/generated}"
services=(registration seminar feedback metrics)
names=(KAFKA_BROKER_PASSWORD KAFKA_ADMIN_PASSWORD MONGODB_ROOT_PASSWORD)
for service in "${services[@]}"; do
  upper="$(printf '%s' "$service" | tr '[:lower:]' '[:upper:]')"
  names+=("${upper}_KAFKA_PASSWORD" "${upper}_MONGODB_PASSWORD")
done
if [ -n "$rotate" ] && ! printf '%s\n' "${names[@]}" | grep -qx "$rotate"; then
  echo "make-secrets: unknown variable $rotate (one of: ${names[*]})" >&2
  exit 1
fi

command -v openssl >/dev/null || { echo "make-secrets: openssl is needed" >&2; exit 1; }
umask 077
mkdir -p "$out"
env_file="$out/compose.env"
touch "$env_file"

current() { sed -n "s/^$1=//p" "$env_file" | tail -n 1; }

next="$(mktemp "$out/compose.env.XXXXXX")"
for name in "${names[@]}"; do
  value="$(current "$name")"
  if [ -z "$value" ] || [ "$name" = "$rotate" ]; then
    value="$(openssl rand -hex 32)"
    echo "make-secrets: new $name"
  fi
  printf '%s=%s\n' "$name" "$value" >>"$next"
done
# Keep whatever else the operator put there (AUTH_TOKENS, ...), after ours.
grep -v -E "^($(IFS='|'; echo "${names[*]}"))=" "$env_file" >>"$next" || true
mv -f "$next" "$env_file"
chmod 0600 "$env_file"

if [ ! -s "$out/mongodb-keyfile" ]; then
  # 756 random bytes in base64: the size MongoDB's documentation uses (max 1024 chars).
  openssl rand -base64 756 >"$out/mongodb-keyfile"
  chmod 0600 "$out/mongodb-keyfile"
  echo "make-secrets: new $out/mongodb-keyfile"
fi
