#!/usr/bin/env bash
# Entrypoint of the kafka-N services of docker-compose.yml, run in the apache/kafka image
# before the image's own start (/etc/kafka/docker/run), for what that start does not do:
#   - SCRAM credentials at format time. The image formats a node's storage with the cluster
#     id alone; this formats it first, once, with every user's SCRAM-SHA-512 credential
#     (kafka-storage.sh format --add-scram, as scripts/kafka/secure.sh does), so that they
#     exist before the first start. The image's own format then finds the node formatted,
#     which it accepts.
#   - Secrets from files, never from the Compose file: the users' passwords from the Compose
#     secrets (/run/secrets/kafka-<user>-password), the TLS stores' password from the
#     kafka-tls service (/etc/kafka/secrets/store.password).
#   - The brokers' own SASL login (admin, the super user, for traffic between brokers) in a
#     JAAS file named by KAFKA_OPTS, which the image requires of a SASL listener.
#   - admin-client.properties, for the health check and for an operator's Kafka tools
#     (docker compose exec kafka-1 /opt/kafka/bin/kafka-topics.sh --bootstrap-server
#     localhost:9092 --command-config /opt/kafka/config/admin-client.properties --list).
# Broker settings come from the KAFKA_* variables, named the image's way: a property's dots
# become _, its _ become __ and its - become ___ (KAFKA_BROKER_SESSION_TIMEOUT_MS is
# broker.session.timeout.ms).
set -euo pipefail

users=(admin dispatch-api dispatch-worker dispatch-simulator dispatch-operator)
mechanism=SCRAM-SHA-512
secrets=/run/secrets
stores=/etc/kafka/secrets
config=/opt/kafka/config

die() { echo "kafka entrypoint: $*" >&2; exit 1; }

password_of() {  # a user's password: its secret file's first line
  local file=$secrets/kafka-$1-password password=''
  [[ -r $file ]] || die "no secret $file: set the SCRAM passwords (deploy/compose/example.env)"
  IFS= read -r password <"$file" || true
  # Letters, digits and . _ ~ - only: the password goes into the SCRAM and JAAS syntaxes.
  [[ $password =~ ^[A-Za-z0-9._~-]{16,}$ ]] ||
    die "the password of $1 must be 16+ characters of letters, digits and . _ ~ -"
  [[ $password != *change-me* ]] || die "the password of $1 is still the example's placeholder"
  printf '%s' "$password"
}

[[ -r $stores/store.password ]] || die "no $stores/store.password: the kafka-tls service makes it"
store_password=$(<"$stores/store.password")
admin_password=$(password_of admin)

umask 077
export KAFKA_SSL_KEYSTORE_PASSWORD=$store_password KAFKA_SSL_KEY_PASSWORD=$store_password
export KAFKA_SSL_TRUSTSTORE_PASSWORD=$store_password

cat >"$config/broker-jaas.conf" <<JAAS
KafkaServer {
  org.apache.kafka.common.security.scram.ScramLoginModule required
  username="admin"
  password="$admin_password";
};
JAAS
export KAFKA_OPTS="${KAFKA_OPTS:+$KAFKA_OPTS }-Djava.security.auth.login.config=$config/broker-jaas.conf"

cat >"$config/admin-client.properties" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=$mechanism
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin_password";
ssl.truststore.type=PKCS12
ssl.truststore.location=$stores/truststore.p12
ssl.truststore.password=$store_password
PROPERTIES

# The server properties of the KAFKA_* variables, as the image derives them (the same
# variables left out: they set the JVM and logging, not the broker).
render_properties() {
  local name key
  for name in $(compgen -e); do
    [[ $name == KAFKA_* ]] || continue
    case $name in
      KAFKA_VERSION | KAFKA_HEAP_OPTS | KAFKA_LOG4J_OPTS | KAFKA_OPTS | KAFKA_JMX_OPTS | \
        KAFKA_JVM_PERFORMANCE_OPTS | KAFKA_GC_LOG_OPTS | KAFKA_JMX_HOSTNAME | \
        KAFKA_LOG4J_ROOT_LOGLEVEL | KAFKA_LOG4J_LOGGERS | KAFKA_TOOLS_LOG4J_LOGLEVEL) continue ;;
    esac
    key=${name#KAFKA_}
    key=${key,,}
    key=${key//_/.}
    key=${key//.../-}
    key=${key//../_}
    printf '%s=%s\n' "$key" "${!name}"
  done
}

data_dir=${KAFKA_LOG_DIRS:?KAFKA_LOG_DIRS: the node s data directory}
if [[ ! -f $data_dir/meta.properties ]]; then
  : "${CLUSTER_ID:?CLUSTER_ID: the same base64 UUID on every node}"
  scram=()
  for user in "${users[@]}"; do
    password=$(password_of "$user")
    scram+=(--add-scram "$mechanism=[name=$user,password=$password]")
  done
  render_properties >"$config/format.properties"
  echo "===> Formatting $data_dir with SCRAM credentials for ${users[*]}"
  status=0
  /opt/kafka/bin/kafka-storage.sh format --cluster-id "$CLUSTER_ID" \
    -c "$config/format.properties" "${scram[@]}" || status=$?
  rm -f -- "$config/format.properties"
  ((status == 0)) || die "kafka-storage.sh format failed ($status)"
fi

exec /etc/kafka/docker/run "$@"
