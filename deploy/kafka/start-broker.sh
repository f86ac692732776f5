#!/usr/bin/env bash
# Starts one Kafka node of docker-compose.yml (apache/kafka, KRaft) with SASL_SSL.
#
# Not the image's own start scripts: those want JKS key stores with password files and a
# JAAS file in KAFKA_OPTS. Here every KAFKA_* variable becomes a server property
# (KAFKA_LOG_DIRS -> log.dirs; "__" -> "_", "___" -> "-"), the SCRAM login lines are
# added from BROKER_SCRAM_USERNAME/BROKER_SCRAM_PASSWORD, and the storage is formatted
# once with the SCRAM users the cluster needs before any can be created over the network:
# the brokers' own (inter-broker listener) and kafka-init's admin. Every other user is
# created by kafka-init (kafka-configs), so a password can be rotated without a format.
#
# Environment: CLUSTER_ID, BROKER_SCRAM_USERNAME, BROKER_SCRAM_PASSWORD,
# ADMIN_SCRAM_USERNAME, ADMIN_SCRAM_PASSWORD, KAFKA_* (server properties); CONFIG_DIR
# (where the rendered files go: a tmpfs), KAFKA_HOME.
set -euo pipefail

: "${CLUSTER_ID:?CLUSTER_ID is not set}"
: "${BROKER_SCRAM_USERNAME:?BROKER_SCRAM_USERNAME is not set}"
: "${BROKER_SCRAM_PASSWORD:?BROKER_SCRAM_PASSWORD is not set}"
: "${ADMIN_SCRAM_USERNAME:?ADMIN_SCRAM_USERNAME is not set}"
: "${ADMIN_SCRAM_PASSWORD:?ADMIN_SCRAM_PASSWORD is not set}"
: "${KAFKA_LISTENER_SECURITY_PROTOCOL_MAP:?KAFKA_LISTENER_SECURITY_PROTOCOL_MAP is not set}"
: "${KAFKA_INTER_BROKER_LISTENER_NAME:?KAFKA_INTER_BROKER_LISTENER_NAME is not set}"
KAFKA_HOME="${KAFKA_HOME:-/opt/kafka}"
CONFIG_DIR="${CONFIG_DIR:-/run/seminar-ops-kafka}"
MECHANISM="SCRAM-SHA-512"

# The passwords go into a JAAS line and a --add-scram argument unquoted: no quotes,
# commas, brackets or spaces (deploy/secrets/make-secrets.sh draws hex).
for secret in BROKER_SCRAM_USERNAME BROKER_SCRAM_PASSWORD ADMIN_SCRAM_USERNAME ADMIN_SCRAM_PASSWORD; do
  if [[ ! "${!secret}" =~ ^[A-Za-z0-9._~-]+$ ]]; then
    echo "start-broker: $secret may only hold letters, digits and . _ ~ -" >&2
    exit 1
  fi
done

umask 077
mkdir -p "$CONFIG_DIR"
server="$CONFIG_DIR/server.properties"
client="$CONFIG_DIR/client.properties"

property_name() {
  printf '%s' "${1#KAFKA_}" | tr '[:upper:]' '[:lower:]' |
    sed -e 's/___/-/g' -e 's/__/\x01/g' -e 's/_/./g' -e 's/\x01/_/g'
}

login() {
  printf 'org.apache.kafka.common.security.scram.ScramLoginModule required%s;' "$1"
}

{
  echo "# Rendered by start-broker.sh at $(date -u +%Y-%m-%dT%H:%M:%SZ); not edited by hand."
  for name in $(compgen -e | sort); do
    case "$name" in
      # The JVM's and the launcher's variables, not server properties.
      KAFKA_HEAP_OPTS | KAFKA_OPTS | KAFKA_JVM_PERFORMANCE_OPTS | KAFKA_LOG4J_OPTS | \
        KAFKA_GC_LOG_OPTS | KAFKA_JMX_OPTS | KAFKA_DEBUG | KAFKA_HOME) continue ;;
      KAFKA_*) printf '%s=%s\n' "$(property_name "$name")" "${!name}" ;;
    esac
  done
  # SCRAM on every SASL_SSL listener: the inter-broker one logs in as the brokers' user,
  # the others only check the clients' credentials (kept in the cluster metadata).
  IFS=',' read -r -a listeners <<<"$KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"
  for entry in "${listeners[@]}"; do
    listener="${entry%%:*}"
    protocol="${entry#*:}"
    case "$protocol" in SASL_SSL | SASL_PLAINTEXT) ;; *) continue ;; esac
    prefix="listener.name.$(printf '%s' "$listener" | tr '[:upper:]' '[:lower:]').scram-sha-512"
    if [ "$listener" = "$KAFKA_INTER_BROKER_LISTENER_NAME" ]; then
      printf '%s.sasl.jaas.config=%s\n' "$prefix" \
        "$(login " username=\"$BROKER_SCRAM_USERNAME\" password=\"$BROKER_SCRAM_PASSWORD\"")"
    else
      printf '%s.sasl.jaas.config=%s\n' "$prefix" "$(login "")"
    fi
  done
} >"$server"

# The health check's client: the brokers' user over the inter-broker listener.
cat >"$client" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=$MECHANISM
sasl.jaas.config=$(login " username=\"$BROKER_SCRAM_USERNAME\" password=\"$BROKER_SCRAM_PASSWORD\"")
ssl.truststore.type=PEM
ssl.truststore.location=${KAFKA_SSL_TRUSTSTORE_LOCATION:?KAFKA_SSL_TRUSTSTORE_LOCATION is not set}
PROPERTIES

# Formats an empty log directory only (--ignore-formatted): the SCRAM users are part of
# the bootstrap metadata, so they exist before the first listener opens.
"$KAFKA_HOME/bin/kafka-storage.sh" format --ignore-formatted \
  --cluster-id "$CLUSTER_ID" --config "$server" \
  --add-scram "$MECHANISM=[name=$BROKER_SCRAM_USERNAME,password=$BROKER_SCRAM_PASSWORD]" \
  --add-scram "$MECHANISM=[name=$ADMIN_SCRAM_USERNAME,password=$ADMIN_SCRAM_PASSWORD]"

exec "$KAFKA_HOME/bin/kafka-server-start.sh" "$server"
