#!/usr/bin/env bash
# The kafka-tls service of docker-compose.yml (a one-shot init, run as root in the brokers'
# image, whose JRE has keytool): makes, once, a local certificate authority and the
# brokers' TLS stores, the same as scripts/kafka/secure.sh does for
# `scripts/kafka-local.sh start --brokers 3 --secure`, with the brokers' Compose host names
# in the certificate. Each thing goes to the volume of those who need it, and no further:
#   /var/lib/dispatch-ca (volume kafka-ca, this service only)
#       ca.p12, ca.password     the CA's key and certificate
#   /etc/kafka/secrets (volume kafka-broker-tls, read-only in the brokers)
#       broker.p12              the brokers' key and certificate (CN=dispatch-broker, a super
#                               user; SAN: every name of BROKER_HOSTS, localhost, 127.0.0.1),
#                               signed by the CA; also their client certificate on the
#                               controller listener, where client certificates are required
#       truststore.p12          the CA, for the brokers
#       store.password          the password of both stores (random)
#   /etc/dispatch/kafka-ca (volume kafka-client-ca, read-only in the engine's services)
#       ca.pem                  what clients check the brokers against (DISPATCH_KAFKA_SSL_CAFILE)
# Run again, it keeps what it made (delete the volumes to start over: `docker compose down -v`).
set -euo pipefail

ca_dir=/var/lib/dispatch-ca
broker_dir=/etc/kafka/secrets
client_dir=/etc/dispatch/kafka-ca
hosts=${BROKER_HOSTS:?BROKER_HOSTS: the brokers host names, comma-separated}

if [[ -f $broker_dir/complete && -f $client_dir/ca.pem && -f $ca_dir/ca.p12 ]]; then
  echo "kafka-tls: the CA and the brokers' stores exist; nothing to do"
  exit 0
fi

random() { head -c 18 /dev/urandom | base64 | tr '+/' 'xy'; }  # 24 characters

umask 077
mkdir -p "$ca_dir" "$broker_dir" "$client_dir"
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

if [[ ! -f $ca_dir/ca.p12 ]]; then
  random >"$ca_dir/ca.password"
  keytool -genkeypair -alias ca -dname CN=dispatch-compose-ca -ext bc:c -keyalg RSA \
    -keysize 2048 -validity 3650 -storetype PKCS12 -keystore "$ca_dir/ca.p12" \
    -storepass:file "$ca_dir/ca.password"
fi
keytool -exportcert -rfc -alias ca -keystore "$ca_dir/ca.p12" \
  -storepass:file "$ca_dir/ca.password" -file "$work/ca.pem"

san=IP:127.0.0.1,DNS:localhost
IFS=, read -r -a names <<<"$hosts"
for name in "${names[@]}"; do
  san+=",DNS:$name"
done

random >"$work/store.password"
store=(-storetype PKCS12 -storepass:file "$work/store.password")
keytool -genkeypair -alias broker -dname CN=dispatch-broker -keyalg RSA -keysize 2048 \
  -validity 3650 -ext "SAN=$san" -keystore "$work/broker.p12" "${store[@]}"
keytool -certreq -alias broker -keystore "$work/broker.p12" "${store[@]}" -file "$work/broker.csr"
keytool -gencert -alias ca -keystore "$ca_dir/ca.p12" -storepass:file "$ca_dir/ca.password" \
  -rfc -infile "$work/broker.csr" -outfile "$work/broker.pem" -validity 3650 -ext "SAN=$san" \
  -ext KU=digitalSignature,keyEncipherment -ext EKU=serverAuth,clientAuth
keytool -importcert -noprompt -alias ca -file "$work/ca.pem" -keystore "$work/broker.p12" \
  "${store[@]}"
keytool -importcert -alias broker -file "$work/broker.pem" -keystore "$work/broker.p12" \
  "${store[@]}"
keytool -importcert -noprompt -alias ca -file "$work/ca.pem" -keystore "$work/truststore.p12" \
  "${store[@]}"

# The brokers run as the image's own user; the engine's services read the CA as root.
uid=$(id -u appuser) gid=$(id -g appuser)
chown "$uid:$gid" "$broker_dir" && chmod 700 "$broker_dir"
for file in broker.p12 truststore.p12 store.password; do
  install -m 400 -o "$uid" -g "$gid" "$work/$file" "$broker_dir/$file"
done
chmod 755 "$client_dir"
install -m 444 "$work/ca.pem" "$client_dir/ca.pem"
touch "$broker_dir/complete"
echo "kafka-tls: made the CA and the brokers' stores (SAN $san)"
