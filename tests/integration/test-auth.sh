#!/usr/bin/env bash
# Authentication and admission (docs/security.md).  A pair a -> b
# replicates with a shared secret while each attack below is made; after
# each one a write reaches b, and at the end the images are identical.
#
#   1. blockrelayd and nbdkit refuse a secret file that is missing, mode
#      0644, or owned by another user (src/engine.c read_secret);
#   2. an AUTH that does not know the secret is refused by b (server side
#      of the HMAC exchange; br-frametool auth-bad-mac);
#   3. a node not in the topology (mallory) and a node of the topology that
#      is not b's neighbour (c) are refused in HELLO: b logs "refusing",
#      the connecting nbdkit logs the reason it got in WELCOME;
#   4. a connection that trickles a partial HELLO is closed after
#      handshake-timeout (2s here; heartbeat-timeout is 5s, and the trickle
#      keeps it from ever being silent) with "handshake timeout";
#   5. a second pair x -> y, x reaching y through a python relay that
#      records what x sent: the recorded HELLO+AUTH replayed to y is
#      refused ("authentication failed": y's nonce differs), and x, when y
#      has a different secret, refuses y (client side of the exchange:
#      "y does not know the shared secret"), y logging that x closed before
#      AUTH.
. "$(dirname "$0")/lib.sh"
need nbdkit qemu-io python3
POKE=$SRCDIR/tests/integration/netpoke.py
CFG=$T/p.yaml
printf 'correct horse battery staple 42\n' > "$T/secret"
chmod 600 "$T/secret"
write_pair_config "$CFG" sync 32M "" \
  "secret-file: $T/secret, handshake-timeout: 2s"
# Node c is in the topology with no link: a node b must refuse (case 3).
PORT_C=$(free_port)
while [ "$PORT_C" = "$PORT_A" ] || [ "$PORT_C" = "$PORT_B" ]; do PORT_C=$(free_port); done
sed -i "s|^links:|  - {name: c, address: 127.0.0.1:$PORT_C, data-dir: $T/c}\nlinks:|" "$CFG"
"$BLOCKRELAY" check-config "$CFG" >/dev/null || fail "$CFG with node c"
start_replica "$CFG" b
start_primary "$CFG" a
URI=$NBD_URI
OFF=0
# write_more: one more 64K pattern, which must reach b (checked by cmp).
write_more() {
  OFF=$((OFF + 1))
  qemu-io -f raw -c "write -P $((OFF % 250 + 1)) $((OFF * 65536)) 64K" \
    "$URI/vol0" >/dev/null || fail "write $OFF during the attacks"
}
# wait_log FILE PHRASE: PHRASE (fixed string) appears in FILE within 15 s.
wait_log() {
  local i
  for ((i = 0; i < 300; i++)); do
    grep -qF -- "$2" "$1" && return 0
    sleep 0.05              # polling a log file
  done
  fail "no '$2' in $1"
}
write_more

# ---- 1. the secret file itself ----
# badstart NAME PHRASE: blockrelayd with settings.secret-file NAME must
# exit 1 at once, saying PHRASE.
badstart() {
  local rc=0
  sed "s|secret-file: $T/secret|secret-file: $1|" "$CFG" > "$T/bad.yaml"
  timeout 20 "$BLOCKRELAYD" --config "$T/bad.yaml" --node b \
    --control "$T/bad.sock" > "$T/bad.out" 2>&1 || rc=$?
  [ $rc -eq 1 ] || fail "blockrelayd with secret-file $1: exit $rc, not 1"
  grep -qF -- "$2" "$T/bad.out" || { cat "$T/bad.out" >&2;
    fail "blockrelayd with secret-file $1: no '$2'"; }
  log "ok: refused: $(cat "$T/bad.out")"
}
badstart "$T/no-such-secret" \
  "$T/no-such-secret: cannot open the secret file (settings secret-file): No such file or directory"
cp "$T/secret" "$T/secret644"
chmod 644 "$T/secret644"
badstart "$T/secret644" \
  "$T/secret644: the secret file has mode 0644: it must not be readable or writable by group or others (chmod 600 $T/secret644)"
cp "$T/secret" "$T/secret640"
chmod 640 "$T/secret640"
badstart "$T/secret640" "the secret file has mode 0640"
cp "$T/secret" "$T/secret-nobody"
chmod 600 "$T/secret-nobody"
chown nobody "$T/secret-nobody" 2>/dev/null &&
  badstart "$T/secret-nobody" \
    "the secret file is owned by uid $(id -u nobody), not by this user (uid $(id -u)) or root"
# The plugin shares the check: nbdkit must not start either.
sed "s|secret-file: $T/secret|secret-file: $T/secret644|" "$CFG" > "$T/bad.yaml"
rc=0
timeout 30 env $(asan_env) nbdkit -f -p "$(free_port)" -i 127.0.0.1 "$PLUGIN" \
  config="$T/bad.yaml" node=a > "$T/bad-nbdkit.out" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "nbdkit started with a 0644 secret (rc $rc)"
grep -qF "the secret file has mode 0644" "$T/bad-nbdkit.out" ||
  { cat "$T/bad-nbdkit.out" >&2; fail "nbdkit: no mode message"; }
write_more

# ---- 2. AUTH without the secret (server side) ----
gen=$("$BLOCKRELAY" status --config "$CFG" --node b --json |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["volumes"][0]["generation"])')
"$BUILDDIR/br-frametool" 127.0.0.1 "$PORT_B" auth-bad-mac --from a --to b \
  --group vol0 --volume vol0 --size 32M --gen "$gen" >&2 ||
  fail "b did not refuse an AUTH that does not know the secret"
wait_log "$T/b.log" "closed during handshake: authentication failed: a does not know the shared secret"
write_more

# ---- 3. nodes that may not send to b ----
# mallory is in no topology of b's; c is in b's, with no link to b.  Each
# has a topology of its own in which it links to b.
cat > "$T/m.yaml" <<EOF
settings: {secret-file: $T/secret, reconnect-min: 50ms, reconnect-max: 500ms}
volumes:
  - {name: vol0, size: 32M}
nodes:
  - {name: mallory, address: 127.0.0.1:$PORT_C, data-dir: $T/m}
  - {name: b, address: 127.0.0.1:$PORT_B, data-dir: $T/b}
links:
  - {between: [mallory, b], mode: async}
EOF
sed "s|^  - {between: \[a, b\], mode: sync}|&\n  - {between: [c, b], mode: async}|" \
  "$CFG" > "$T/c.yaml"
grep -q "between: \[c, b\]" "$T/c.yaml" || fail "c.yaml has no c-b link"

start_primary_nowait "$T/m.yaml" mallory
wait_log "$T/b.log" "refusing mallory (127.0.0.1): node mallory is not a node of $CFG"
wait_log "$T/mallory.log" "peer b refused group vol0: node mallory is not a node of $CFG"
stop_node mallory
write_more
start_primary_nowait "$T/c.yaml" c
wait_log "$T/b.log" "refusing c (127.0.0.1): node c has no link to b in $CFG"
wait_log "$T/c.log" "peer b refused group vol0: node c has no link to b in $CFG"
stop_node c
write_more

# ---- 4. a handshake that never completes ----
out=$(python3 "$POKE" stall "$PORT_B" 12) || fail "stalled connection: $out"
log "$out"
secs=$(sed -n 's/.*after \([0-9.]*\) s/\1/p' <<<"$out")
python3 -c "import sys; sys.exit(0 if 1.9 <= $secs <= 4.5 else 1)" ||
  fail "the stalled connection was closed after $secs s, not about 2 s"
wait_log "$T/b.log" "closed during handshake: handshake timeout: no complete HELLO within 2000 ms (settings handshake-timeout)"
write_more

# ---- 5. replay, and a replica with another secret (pair x -> y) ----
used=" $PORT_A $PORT_B $PORT_C "
for v in PX PY PR; do
  p=$(free_port)
  while [[ $used == *" $p "* ]]; do p=$(free_port); done
  used+="$p "
  eval "$v=$p"
done
xy_config() {   # FILE Y_PORT SECRET
  cat > "$1" <<EOF
settings: {secret-file: $3, reconnect-min: 50ms, reconnect-max: 500ms}
volumes:
  - {name: vol1, size: 16M}
nodes:
  - {name: x, address: 127.0.0.1:$PX, data-dir: $T/x}
  - {name: y, address: 127.0.0.1:$2, data-dir: $T/y}
links:
  - {between: [x, y], mode: sync}
EOF
}
printf 'another secret, not the same one\n' > "$T/secret2"
chmod 600 "$T/secret2"
xy_config "$T/y.yaml" "$PY" "$T/secret"       # y's own view
xy_config "$T/xr.yaml" "$PR" "$T/secret"      # x reaches y through the relay
xy_config "$T/yw.yaml" "$PY" "$T/secret2"     # y with another secret
python3 "$POKE" relay "$PR" "$PY" "$T/capture" "$T/relay.ready" \
  > "$T/relay.log" 2>&1 &
BR_PIDS+=("$!")
RELAY_PID=$!
wait_for_file "$T/relay.ready" "$RELAY_PID"
start_replica "$T/y.yaml" y
start_primary "$T/xr.yaml" x
qemu-io -f raw -c 'write -P 0x5a 0 64K' "$NBD_URI/vol1" >/dev/null || fail "x write"
wait_in_sync "$T/xr.yaml" x
stop_node x
log "captured $(stat -c %s "$T/capture") bytes of x's first connection"
out=$(python3 "$POKE" replay "$PY" "$T/capture") || fail "replay: $out"
log "$out"
grep -q "types \[2\]" <<<"$out" || fail "replay: y answered more than a WELCOME: $out"
wait_log "$T/y.log" "closed during handshake: authentication failed: x does not know the shared secret"
write_more

stop_node y
start_replica "$T/yw.yaml" y
start_primary_nowait "$T/xr.yaml" x
wait_log "$T/x.log" "authentication failed: y does not know the shared secret"
wait_log "$T/y.log" "closed by x before AUTH: it did not accept this node's WELCOME (a different shared secret?)"
stop_node x
stop_node y
write_more

# ---- the legitimate pair went on throughout ----
wait_in_sync "$CFG" a
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
grep -hE "refus|authentication failed|handshake timeout|before AUTH" \
  "$T"/b.log "$T"/y.log "$T"/x.log "$T"/c.log "$T"/mallory.log | sort -u | head -n 20 >&2
log "every attack was refused with its message; replication went on"
