#!/usr/bin/env bash
# Encrypted links (tls: psk and tls: cert, src/tls.c):
#   1. tls: off, psk, cert: a pair replicates a file of a known text; a
#      capture of the link's packets (AF_PACKET on lo, wiretap.py) holds
#      the text with tls: off (so the capture can see it) and not with
#      TLS; status names the session; the copies are identical.
#   2. refused, each with its message, and never replicating: a server
#      certificate from another CA, a certificate for another node name,
#      a client certificate from another CA, a psk from another secret,
#      and TLS where the link says plain (and plain where it says TLS).
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/tests/integration/faultlib.sh"
need nbdkit nbdcopy openssl
PY=/usr/bin/python3
TAP=$SRCDIR/tests/integration/wiretap.py

# ---- keys and certificates ----
cd "$T"
mkca() {   # mkca NAME
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1.key" -out "$1.crt" -days 2 -subj "/CN=$1" 2>/dev/null ||
    fail "openssl cannot make CA $1"
}
mkcert() { # mkcert CA NODE [FILE]
  local f=${3:-$2}
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$f.key" -out "$f.csr" -subj "/CN=$2" 2>/dev/null &&
  printf 'subjectAltName=DNS:%s\n' "$2" > "$f.ext" &&
  openssl x509 -req -in "$f.csr" -CA "$1.crt" -CAkey "$1.key" \
    -CAcreateserial -out "$f.crt" -days 2 -extfile "$f.ext" 2>/dev/null ||
    fail "openssl cannot make a certificate for $2"
  chmod 600 "$f.key"
}
mkca ca
mkca rogue
mkcert ca a
mkcert ca b
mkcert rogue b b-rogue
mkcert rogue a a-rogue
mkcert ca c b-as-c
head -c 32 /dev/urandom > secret
head -c 32 /dev/urandom > other-secret
chmod 600 secret other-secret
cd - >/dev/null

# A text no random data holds: 16 MiB of it.
MARK="blockrelay-wiretap-plaintext-marker"
$PY -c "import sys; sys.stdout.write(('$MARK-' * 500000)[:16 << 20])" \
  > "$T/src.bin"

# conf FILE TLS [A_CERT B_CERT SECRET]: the pair, both ends' certificates.
conf() {
  local file=$1 tls=$2 ac=${3:-a} bc=${4:-b} sec=${5:-secret}
  cat > "$file" <<EOF
settings: {secret-file: $T/$sec, tls: $tls, tls-ca: $T/ca.crt,
           reconnect-min: 50ms, reconnect-max: 500ms}
volumes:
  - {name: vol0, size: 32M}
nodes:
  - {name: a, address: 127.0.0.1:$PORT_A, data-dir: $T/a,
     tls-cert: $T/$ac.crt, tls-key: $T/$ac.key}
  - {name: b, address: 127.0.0.1:$PORT_B, data-dir: $T/b,
     tls-cert: $T/$bc.crt, tls-key: $T/$bc.key}
links:
  - {between: [a, b], mode: sync}
EOF
  "$BLOCKRELAY" check-config "$file" >/dev/null ||
    fail "check-config refused $file: $("$BLOCKRELAY" check-config "$file" 2>&1)"
}
PORT_A=$(free_port)
PORT_B=$(free_port)
while [ "$PORT_B" = "$PORT_A" ]; do PORT_B=$(free_port); done

tap_start() {
  rm -f "$T/tap.ready" "$T/tap.bin"
  $PY "$TAP" lo "$PORT_B" "$T/tap.bin" "$T/tap.ready" &
  TAP_PID=$!
  BR_PIDS+=("$TAP_PID")
  wait_for_file "$T/tap.ready" "$TAP_PID"
}
tap_stop() {
  kill "$TAP_PID"
  wait "$TAP_PID" 2>/dev/null || true
}

# ---- 1. replication, and what the wire shows ----
for tls in off psk cert; do
  conf "$T/$tls.yaml" "$tls"
  rm -rf "$T/a" "$T/b"
  tap_start
  start_replica "$T/$tls.yaml" b
  start_primary "$T/$tls.yaml" a
  wait_in_sync "$T/$tls.yaml" a       # the initial sync sends zeroes
  nbdcopy --flush "$T/src.bin" "$NBD_URI/vol0"
  wait_in_sync "$T/$tls.yaml" a
  session=$(peer_field "$T/$tls.yaml" a tls_session)
  tap_stop
  stop_node a
  stop_node b
  same_images "$T/a/vol0.img" "$T/b/vol0.img"
  cmp -n $((16 << 20)) "$T/src.bin" "$T/b/vol0.img" ||
    fail "$tls: the replica lacks the data"
  bytes=$(stat -c %s "$T/tap.bin")
  [ "$bytes" -gt $((16 << 20)) ] ||
    fail "$tls: the capture holds $bytes bytes, less than was replicated"
  if [ "$tls" = off ]; then
    grep -qa "$MARK" "$T/tap.bin" ||
      fail "off: the capture does not show the plaintext (the tap is blind)"
    [ -z "$session" ] || fail "off: status shows a TLS session '$session'"
  else
    grep -qa "$MARK" "$T/tap.bin" && fail "$tls: plaintext on the wire"
    grep -qa "vol0" "$T/tap.bin" && fail "$tls: the HELLO's names on the wire"
    [[ "$session" == "TLSv1.3 TLS_AES_128_GCM_SHA256 $tls" ]] ||
      fail "$tls: status tls_session is '$session'"
  fi
  log "$tls: replicated; $bytes bytes captured, $( [ "$tls" = off ] &&
      echo "the text in them" || echo "no text in them")"
done

# ---- 2. refusals ----
# wait_log FILE TEXT: until FILE (a node's log) has TEXT, at most 20 s.
wait_log() {
  local i
  for ((i = 0; i < 400; i++)); do
    grep -qF "$2" "$1" && return 0
    sleep 0.05          # polling a log for a line
  done
  fail "no '$2' in $1: $(tail -n 5 "$1")"
}
# wait_peer_error CFG TEXT: until the primary's peer shows TEXT in its
# last_error (the plugin logs its peer changes only with nbdkit -v).
wait_peer_error() {
  local i
  for ((i = 0; i < 400; i++)); do
    [[ "$(peer_field "$1" a last_error)" == *"$2"* ]] && return 0
    sleep 0.05          # polling status for a reason
  done
  fail "peer's last_error is '$(peer_field "$1" a last_error)', not '$2'"
}
# refused NAME CONF_A CONF_B TEXT_A TEXT_B: a on CONF_A, b on CONF_B;
# a's peer shows TEXT_A, b logs TEXT_B, the peer never gets past the
# handshake, and nothing of the client's write reaches b.
refused() {
  local name=$1 ca=$2 cb=$3 ta=$4 tb=$5 state
  rm -rf "$T/a" "$T/b" "$T/a.log" "$T/b.log"
  start_replica "$cb" b
  start_primary_nowait "$ca" a
  printf 'x%.0s' $(seq 4096) | nbdcopy - "$NBD_URI/vol0"
  wait_peer_error "$ca" "$ta"
  wait_log "$T/b.log" "$tb"
  state=$(peer_field "$ca" a state)
  case "$state" in
    replicating|syncing) fail "$name: the peer is $state" ;;
  esac
  stop_node a
  stop_node b
  [ -e "$T/b/vol0.img" ] && cmp -s "$T/a/vol0.img" "$T/b/vol0.img" &&
    fail "$name: the replica has the primary's data"
  log "$name: refused ($state, $SECONDS s)"
}
conf "$T/rogue-b.yaml" cert a b-rogue
refused "server certificate from another CA" "$T/cert.yaml" "$T/rogue-b.yaml" \
  "TLS handshake failed: certificate: unable to get local issuer certificate" \
  "connection from 127.0.0.1 closed during handshake: TLS handshake failed"
conf "$T/as-c.yaml" cert a b-as-c
refused "server certificate for another node" "$T/cert.yaml" "$T/as-c.yaml" \
  "TLS handshake failed: certificate: hostname mismatch" \
  "connection from 127.0.0.1 closed during handshake: TLS handshake failed"
conf "$T/rogue-a.yaml" cert a-rogue b
refused "client certificate from another CA" "$T/rogue-a.yaml" "$T/cert.yaml" \
  "TLS read failed: tlsv1 alert unknown ca" \
  "TLS handshake failed: certificate: unable to get local issuer certificate"
conf "$T/other-psk.yaml" psk a b other-secret
refused "psk from another secret" "$T/other-psk.yaml" "$T/psk.yaml" \
  "TLS handshake failed" \
  "closed during handshake: TLS handshake failed"
refused "TLS to a plain link" "$T/psk.yaml" "$T/off.yaml" \
  "TLS handshake failed: connection closed by peer" \
  "a TLS connection, but no link of node b uses tls"
refused "plain to a TLS link" "$T/off.yaml" "$T/psk.yaml" \
  "the link to a is TLS (tls: psk), but this connection does not use TLS" \
  "the link to a is TLS (tls: psk), but this connection does not use TLS"

log "ok"
