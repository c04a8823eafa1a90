# shellcheck shell=bash
# The secured local cluster (scripts/kafka-local.sh start --brokers 3 --secure): sourced by
# kafka-local.sh, not run on its own.
#
# What it makes, once, in <cluster dir>/secrets (mode 700, files 600):
#   ca.p12, ca.pem          a local certificate authority (RSA 2048, ten years); ca.pem is
#                           what clients check the brokers against (DISPATCH_KAFKA_SSL_CAFILE)
#   ca.password             the password of ca.p12 (and of the CA's key), its own: no node's
#                           server.properties holds it
#   broker.p12              the brokers' key and certificate (CN=dispatch-broker, SAN
#                           IP:127.0.0.1 and DNS:localhost), signed by the CA, shared by the
#                           three nodes; also their client certificate on the controller
#                           listener, where TLS client authentication is required
#   truststore.p12          the CA, for the brokers
#   store.password          the password of broker.p12 and truststore.p12
#   <user>.password         one SCRAM-SHA-512 credential per principal: admin (the brokers'
#                           super user, for inter-broker traffic and for creating topics and
#                           ACLs) and dispatch-api, dispatch-worker, dispatch-simulator,
#                           dispatch-operator (the roles of dispatch/adapters/kafka/acls.py)
#   <user>.env              DISPATCH_KAFKA_* settings that connect as that user
#   admin.properties        Java client settings for admin (the readiness check, the
#                           console consumer)
# keytool reads the stores' passwords from these files (-storepass:file, -keypass:file), so
# they are never on its command line. Each node's server.properties (mode 600) holds the
# admin's password and the brokers' stores' (not the CA's).
# The credentials go into each node's metadata when it is formatted (--add-scram; for the
# format's second or so they are on its command line, visible to `ps` on this machine), so they
# exist before the first start; the brokers run StandardAuthorizer with no ACL meaning no
# access, so a principal can do only what `dispatch topics acls --apply` grants it.

SECURE_USERS=(admin dispatch-api dispatch-worker dispatch-simulator dispatch-operator)
SECURE_MECHANISM=SCRAM-SHA-512

secure_dir() { printf '%s/secrets' "$CLUSTER_DIR"; }

secure_random() {  # 24 characters of [A-Za-z0-9]
  local out=''
  while (( ${#out} < 24 )); do
    out+=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  done
  printf '%s' "${out:0:24}"
}

secure_keytool() {
  local keytool
  keytool=$(dirname -- "$JAVA")/keytool
  [[ -x $keytool ]] || keytool=$(command -v keytool) || die "keytool not found next to $JAVA or on PATH"
  "$keytool" "$@"
}

# Makes the CA, the brokers' stores and the credentials, unless they exist. keytool reads
# every password from its file (-storepass:file, -keypass:file), never from its arguments.
secure_init() {
  local dir tmp name
  dir=$(secure_dir)
  [[ -f $dir/complete ]] && return 0
  tmp=$dir.tmp.$$
  rm -rf -- "$dir".tmp.*  # what a run that died part way left (mode 700, keys inside)
  (umask 077 && mkdir -p -- "$tmp")
  for name in ca store "${SECURE_USERS[@]}"; do
    (umask 077 && secure_random >"$tmp/$name.password" && printf '\n' >>"$tmp/$name.password")
  done
  local -a ca=(-storetype PKCS12 -storepass:file "$tmp/ca.password")
  local -a store=(-storetype PKCS12 -storepass:file "$tmp/store.password")
  local san=SAN=IP:127.0.0.1,DNS:localhost
  secure_keytool -genkeypair -alias ca -dname CN=dispatch-local-ca -ext bc:c -keyalg RSA \
    -keysize 2048 -validity 3650 -keystore "$tmp/ca.p12" "${ca[@]}" \
    -keypass:file "$tmp/ca.password" >/dev/null 2>&1 ||
    die "keytool could not make the local CA"
  secure_keytool -exportcert -rfc -alias ca -keystore "$tmp/ca.p12" "${ca[@]}" \
    >"$tmp/ca.pem" 2>/dev/null || die "keytool could not export the CA certificate"
  secure_keytool -genkeypair -alias broker -dname CN=dispatch-broker -keyalg RSA -keysize 2048 \
    -validity 3650 -ext "$san" -keystore "$tmp/broker.p12" "${store[@]}" \
    -keypass:file "$tmp/store.password" >/dev/null 2>&1 ||
    die "keytool could not make the brokers' key"
  secure_keytool -certreq -alias broker -keystore "$tmp/broker.p12" "${store[@]}" \
    -file "$tmp/broker.csr" >/dev/null 2>&1 || die "keytool could not make the brokers' request"
  secure_keytool -gencert -alias ca -keystore "$tmp/ca.p12" "${ca[@]}" -rfc \
    -infile "$tmp/broker.csr" -outfile "$tmp/broker.pem" -validity 3650 -ext "$san" \
    -ext KU=digitalSignature,keyEncipherment -ext EKU=serverAuth,clientAuth >/dev/null 2>&1 ||
    die "keytool could not sign the brokers' certificate"
  { secure_keytool -importcert -noprompt -alias ca -file "$tmp/ca.pem" \
      -keystore "$tmp/broker.p12" "${store[@]}" >/dev/null 2>&1 &&
    secure_keytool -importcert -alias broker -file "$tmp/broker.pem" \
      -keystore "$tmp/broker.p12" "${store[@]}" >/dev/null 2>&1; } ||
    die "keytool could not put the signed certificate in the brokers' store"
  secure_keytool -importcert -noprompt -alias ca -file "$tmp/ca.pem" \
    -keystore "$tmp/truststore.p12" "${store[@]}" >/dev/null 2>&1 ||
    die "keytool could not make the truststore"
  rm -f -- "$tmp/broker.csr" "$tmp/broker.pem"
  chmod 600 -- "$tmp"/*
  touch -- "$tmp/complete"
  mv -- "$tmp" "$dir"
  say "made a local CA and SCRAM credentials for ${SECURE_USERS[*]} in $dir"
}

secure_password() { head -n 1 -- "$(secure_dir)/$1.password"; }

# The StorageTool arguments that put every user's SCRAM credential in a node's metadata.
secure_scram_args() {
  local user
  for user in "${SECURE_USERS[@]}"; do
    printf '%s\n' --add-scram "$SECURE_MECHANISM=[name=$user,password=$(secure_password "$user")]"
  done
}

# Properties appended to each node's server.properties (the later key wins): the client
# listener becomes SASL_SSL (SCRAM, inter-broker traffic as admin), the controller
# listener TLS with client certificates required, and every request is authorized.
secure_properties() {
  local dir pass
  dir=$(secure_dir)
  pass=$(secure_password store)
  cat <<EOF

# --- secured cluster (scripts/kafka/secure.sh)
listeners=SASL_SSL://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=SASL_SSL://$HOST:$PORT
listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=$SECURE_MECHANISM
sasl.mechanism.inter.broker.protocol=$SECURE_MECHANISM
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(secure_password admin)";
listener.name.controller.ssl.client.auth=required
ssl.keystore.type=PKCS12
ssl.keystore.location=$dir/broker.p12
ssl.keystore.password=$pass
ssl.key.password=$pass
ssl.truststore.type=PKCS12
ssl.truststore.location=$dir/truststore.p12
ssl.truststore.password=$pass
ssl.endpoint.identification.algorithm=https
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:CN=dispatch-broker
allow.everyone.if.no.acl.found=false
EOF
}

# Client files for every user: <user>.env (the engine's settings) and, for admin,
# admin.properties (Java clients: the readiness check, the console consumer).
secure_client_files() {
  local dir user
  dir=$(secure_dir)
  for user in "${SECURE_USERS[@]}"; do
    (umask 077 && cat >"$dir/$user.env" <<EOF
DISPATCH_KAFKA_BOOTSTRAP=$(bootstrap_list)
DISPATCH_KAFKA_SECURITY_PROTOCOL=SASL_SSL
DISPATCH_KAFKA_SASL_MECHANISM=$SECURE_MECHANISM
DISPATCH_KAFKA_USERNAME=$user
DISPATCH_KAFKA_PASSWORD_FILE=$dir/$user.password
DISPATCH_KAFKA_SSL_CAFILE=$dir/ca.pem
EOF
    )
  done
  (umask 077 && cat >"$dir/admin.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=$SECURE_MECHANISM
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(secure_password admin)";
ssl.truststore.type=PKCS12
ssl.truststore.location=$dir/truststore.p12
ssl.truststore.password=$(secure_password store)
EOF
  )
}
