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
#
# Benchmark only (scripts/bench_kafka_security.py, which measures TLS and SASL apart):
# `start --brokers 3 --secure --bench-listeners "PLAINTEXT:p1,p2,p3 SSL:p4,p5,p6
# SASL_PLAINTEXT:p7,p8,p9"` (any of the three, ports of nodes 1,2,3) adds client listeners
# of those protocols on those ports, next to SASL_SSL on the usual ones: SSL is TLS without
# client certificates, and a client on PLAINTEXT or SSL is the principal ANONYMOUS, which
# then becomes a super user, as admin is (so every mode takes the authorizer's same path).
# Such a cluster is open to anyone on this machine: it is for measuring, never for running
# the engine. The option is taken by the start that makes the cluster and recorded in its
# cluster.env; every later start must repeat it with the same listeners (a start without it,
# or with others, is refused, as is the option on a cluster made without it), while
# restart, kill, pause, resume and status take the recorded ones; start, restart and status
# warn about them. Without it the cluster is exactly as above.

SECURE_USERS=(admin dispatch-api dispatch-worker dispatch-simulator dispatch-operator)
SECURE_MECHANISM=SCRAM-SHA-512
# Benchmark listeners (--bench-listeners, see above): the protocols allowed, the
# cluster's (canonical, '' for none), its ports by "PROTOCOL,node", and the selected node's;
# SECURE_BENCH_ASKED is the start's --bench-listeners (canonical, '' for none).
SECURE_BENCH_PROTOCOLS=(PLAINTEXT SSL SASL_PLAINTEXT)
SECURE_BENCH=
SECURE_BENCH_ASKED=
declare -A SECURE_BENCH_PORTS=()
SECURE_BENCH_NODE_PORTS=()

secure_dir() { printf '%s/secrets' "$CLUSTER_DIR"; }

# secure_bench_canonical NAME SPEC: prints SPEC's entries in the order of
# SECURE_BENCH_PROTOCOLS, or exits 2 with what is wrong with it (NAME: where SPEC came from).
secure_bench_canonical() {
  local what=$1 spec=$2 entry name ports out='' proto
  local -A given=()
  local -a entries
  read -r -a entries <<<"$spec"
  (( ${#entries[@]} > 0 )) || usage_error "$what lists no listener"
  for entry in "${entries[@]}"; do
    name=${entry%%:*}
    ports=${entry#*:}
    [[ $entry == *:* && " ${SECURE_BENCH_PROTOCOLS[*]} " == *" $name "* ]] ||
      usage_error "$what: '$entry' is not PROTOCOL:port1,port2,port3 with a PROTOCOL of ${SECURE_BENCH_PROTOCOLS[*]}"
    [[ -z ${given[$name]:-} ]] || usage_error "$what lists $name twice"
    parse_port_list "$what ($name)" "$ports" >/dev/null
    given[$name]=$ports
  done
  for proto in "${SECURE_BENCH_PROTOCOLS[@]}"; do
    if [[ -n ${given[$proto]:-} ]]; then out+="${out:+ }$proto:${given[$proto]}"; fi
  done
  printf '%s\n' "$out"
}

# secure_bench_ask SPEC: the start's --bench-listeners SPEC, checked (exit 2 if bad).
secure_bench_ask() {
  SECURE_BENCH_ASKED=$(secure_bench_canonical --bench-listeners "$1") || exit 2
}

# secure_bench_init RECORDED FOR_START: sets the cluster's benchmark listeners: those
# recorded in its cluster.env (RECORDED, checked as --bench-listeners is), or, for the start
# that makes the cluster, the start's --bench-listeners. A later start must ask for exactly
# the recorded ones (none if none): anything else is refused (exit 2).
secure_bench_init() {
  local recorded=$1 for_start=$2 entry proto n
  local -a entries ports
  if [[ -n $recorded ]]; then
    recorded=$(secure_bench_canonical "damaged BENCH_LISTENERS in $CLUSTER_ENV (mend that line: every command on this cluster, stop too, reads it)" "$recorded") || exit 2
    [[ $SECURE == 1 ]] || usage_error "damaged $CLUSTER_ENV: BENCH_LISTENERS on a cluster that is not secured (mend the file: every command on this cluster, stop too, reads it)"
  fi
  SECURE_BENCH=$recorded
  if [[ $for_start == 1 ]]; then
    if [[ -n $SECURE_BENCH_ASKED && $SECURE != 1 ]]; then
      usage_error "--bench-listeners is for benchmarking the secured cluster only (start --brokers 3 --secure --bench-listeners SPEC)"
    fi
    if cluster_exists && [[ $SECURE_BENCH_ASKED != "$recorded" ]]; then
      if [[ -z $SECURE_BENCH_ASKED ]]; then
        usage_error "the cluster in $CLUSTER_DIR was made with benchmark listeners '$recorded' (ANONYMOUS may be a super user: for benchmarks only); start it with --secure --bench-listeners '$recorded' again, or stop --brokers 3 --wipe it"
      elif [[ -z $recorded ]]; then
        usage_error "the cluster in $CLUSTER_DIR was made without benchmark listeners; --bench-listeners is taken only by the start that makes a cluster: stop --brokers 3 --wipe it or use another KAFKA_LOCAL_CLUSTER_DIR"
      fi
      usage_error "the cluster in $CLUSTER_DIR was made with benchmark listeners '$recorded', not '$SECURE_BENCH_ASKED'; stop --brokers 3 --wipe it or use another KAFKA_LOCAL_CLUSTER_DIR"
    fi
    cluster_exists || SECURE_BENCH=$SECURE_BENCH_ASKED
  fi
  SECURE_BENCH_PORTS=()
  read -r -a entries <<<"$SECURE_BENCH"
  for entry in "${entries[@]}"; do
    proto=${entry%%:*}
    IFS=, read -r -a ports <<<"${entry#*:}"
    for n in $(seq 1 "$CLUSTER_SIZE"); do
      SECURE_BENCH_PORTS[$proto,$n]=${ports[n-1]}
    done
  done
}

# Warns (stderr) that the cluster has benchmark listeners, if it has: on every start,
# restart and status of such a cluster.
secure_bench_warn() {
  [[ -n $SECURE_BENCH ]] || return 0
  local who="SASL_PLAINTEXT sends SCRAM without TLS"
  if [[ -n ${SECURE_BENCH_PORTS[PLAINTEXT,1]:-}${SECURE_BENCH_PORTS[SSL,1]:-} ]]; then
    who="ANONYMOUS is a super user: anyone on this machine can read and write every topic"
  fi
  warn "WARNING: benchmark listeners $SECURE_BENCH (ports of nodes 1,2,3) besides SASL_SSL: $who; for benchmarks only, never to run the engine"
}

# Sets SECURE_BENCH_NODE_PORTS to the benchmark ports of the selected node (none without).
secure_bench_node_ports() {
  local proto
  SECURE_BENCH_NODE_PORTS=()
  for proto in "${SECURE_BENCH_PROTOCOLS[@]}"; do
    if [[ -n ${SECURE_BENCH_PORTS[$proto,$NODE_ID]:-} ]]; then
      SECURE_BENCH_NODE_PORTS+=("${SECURE_BENCH_PORTS[$proto,$NODE_ID]}")
    fi
  done
}

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
# listener TLS with client certificates required, and every request is authorized; with
# benchmark listeners (--bench-listeners) those too, and ANONYMOUS a super user
# when one of them is PLAINTEXT or SSL.
secure_properties() {
  local dir pass proto bench_port anonymous=0
  dir=$(secure_dir)
  pass=$(secure_password store)
  local listeners="SASL_SSL://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT"
  local advertised="SASL_SSL://$HOST:$PORT" map=CONTROLLER:SSL,SASL_SSL:SASL_SSL
  local supers="User:admin;User:CN=dispatch-broker"
  for proto in "${SECURE_BENCH_PROTOCOLS[@]}"; do  # benchmark only (see above)
    bench_port=${SECURE_BENCH_PORTS[$proto,$NODE_ID]:-}
    [[ -n $bench_port ]] || continue
    listeners+=",BENCH_$proto://$HOST:$bench_port"
    advertised+=",BENCH_$proto://$HOST:$bench_port"
    map+=",BENCH_$proto:$proto"
    [[ $proto == SASL_PLAINTEXT ]] || anonymous=1
  done
  if (( anonymous )); then supers+=";User:ANONYMOUS"; fi
  cat <<EOF

# --- secured cluster (scripts/kafka/secure.sh)
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=$map
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
super.users=$supers
allow.everyone.if.no.acl.found=false
EOF
  if [[ -n ${SECURE_BENCH_PORTS[SASL_PLAINTEXT,$NODE_ID]:-} ]]; then
    cat <<EOF
# benchmark only (--bench-listeners): $SECURE_BENCH
listener.name.bench_sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(secure_password admin)";
EOF
  elif [[ -n $SECURE_BENCH ]]; then
    printf '# benchmark only (--bench-listeners): %s\n' "$SECURE_BENCH"
  fi
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
