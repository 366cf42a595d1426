#!/usr/bin/env bash
# R4 in src/replica.c: a HELLO that names the group's real upstream does
# not disturb the live session until the new connection has proved it
# knows the shared secret.  A pair replicates with a secret; br-frametool
# connects to the replica as node a (the real upstream, with the copy's
# own generation, so the handshake gets as far as AUTH) and sends an AUTH
# that does not know the secret.  The replica must refuse it, and the live
# session from the real a must go on untouched: no reconnect, no
# "replaced", writes still acknowledged, copies identical.
. "$(dirname "$0")/lib.sh"
need nbdkit qemu-io python3
CFG=$T/p.yaml
printf 'correct horse battery staple 42\n' > "$T/secret"
chmod 600 "$T/secret"
write_pair_config "$CFG" sync 32M "" "secret-file: $T/secret"
start_replica "$CFG" b
start_primary "$CFG" a
qemu-io -f raw -c 'write -P 0x11 0 1M' "$NBD_URI/vol0" >/dev/null || fail "write"

gen=$("$BLOCKRELAY" status --config "$CFG" --node b --json |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["volumes"][0]["generation"])')
sessions() { grep -c "replicating from a" "$T/b.log" || true; }
before=$(sessions)
"$BUILDDIR/br-frametool" 127.0.0.1 "$PORT_B" auth-bad-mac --from a --to b \
  --group vol0 --volume vol0 --size 32M --gen "$gen" >&2 ||
  fail "the replica did not refuse the AUTH that does not know the secret"
grep -q "authentication failed" "$T/b.log" || fail "b did not log the bad AUTH"
grep -q "replaced by a new connection" "$T/b.log" &&
  fail "an unauthenticated HELLO replaced the live session"
[ "$(sessions)" = "$before" ] || fail "the live session was restarted"
grep -q "logging writes until it is back" "$T/a.log" &&
  fail "the primary lost its link to b"
qemu-io -f raw -c 'write -P 0x22 1M 1M' "$NBD_URI/vol0" >/dev/null ||
  fail "write after the attempt"
wait_in_sync "$CFG" a
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
log "an AUTH without the secret was refused; the live session went on"
