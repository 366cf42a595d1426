#!/usr/bin/env bash
# A relay's own scoreboard, across restarts and a change of primary.
#
# Chain a -> b -> c (a the primary, b relays to c), on 127.0.0.1:
#   1. With c stopped, writes at a reach b, which logs them for c.  Then a
#      stops and b is killed (SIGKILL).  b restarts while a is still down:
#      from the origin recorded in its scoreboard it resumes forwarding,
#      and when c is back it resyncs c from its own bitmap, with no
#      primary anywhere.  c must then equal b (and a), and be consistent.
#   2. The same nodes with c as primary (nbdkit on c): b's downstream is
#      now a.  b retires its old peer, full-syncs a, and relays c's writes
#      to it; after fio every copy is identical.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
need nbdkit qemu-io fio
need_ackwriter                        # for $PY (status JSON)

CFG=$T/chain.yaml
write_local_config "$CFG" a b c <<EOF
  - {between: [a, b], mode: sync}
  - {between: [b, c], mode: async}
EOF

# group_field CFG NODE FIELD: FIELD of the first group in NODE's status.
group_field() {
  "$BLOCKRELAY" status --config "$1" --node "$2" --json |
    "$PY" -c 'import json, sys
g = json.load(sys.stdin)["groups"][0][sys.argv[1]]
print(",".join(g) if isinstance(g, list) else g)' "$3"
}
consistent() {
  "$BLOCKRELAY" status --config "$1" --node "$2" --json |
    "$PY" -c 'import json, sys
print(all(v["consistent"] for v in json.load(sys.stdin)["volumes"]))'
}

# ---- 1. b resumes relaying without its upstream ----
start_replica "$CFG" c
start_replica "$CFG" b
start_primary "$CFG" a
wait_in_sync "$CFG" b
[ "$(group_field "$CFG" b downstream)" = c ] ||
  fail "b does not relay to c: $(group_field "$CFG" b downstream)"
qemu-io -f raw -c 'write -P 0x11 0 8M' "$NBD_URI/vol0" >/dev/null
wait_in_sync "$CFG" a
wait_in_sync "$CFG" b

stop_node c
qemu-io -f raw -c 'write -P 0x22 4M 8M' -c 'write -z 20M 1M' \
  -c 'write -P 0x33 40M 3M' "$NBD_URI/vol0" >/dev/null
wait_in_sync "$CFG" a                 # b has it all (a's sync peer)
dirty=$(peer_field "$CFG" b dirty_bytes)
[ "${dirty:-0}" -gt 0 ] || fail "b logged nothing for c while c was down"
log "c away: b logged $dirty bytes for it"
stop_node a
kill9 b
start_replica "$CFG" b
[ "$(group_field "$CFG" b origin)" = a ] ||
  fail "restarted b does not know its origin: $(group_field "$CFG" b origin)"
[ "$(group_field "$CFG" b connected)" = False ] ||
  fail "b claims a connected upstream while a is down"
start_replica "$CFG" c
wait_in_sync "$CFG" b 60
[ "$(consistent "$CFG" c)" = True ] || fail "c is not consistent after its resync"
stop_node b
stop_node c
same_images "$T/a/vol0.img" "$T/b/vol0.img"
same_images "$T/b/vol0.img" "$T/c/vol0.img"
log "part 1: b resynced c from its own scoreboard with the primary down"

# ---- 2. c becomes primary: b's downstream changes from c to a ----
start_replica "$CFG" a
start_replica "$CFG" b
start_primary "$CFG" c
wait_in_sync "$CFG" b 60
[ "$(group_field "$CFG" b origin)" = c ] || fail "b's origin is not c"
[ "$(group_field "$CFG" b downstream)" = a ] ||
  fail "b does not relay to a: $(group_field "$CFG" b downstream)"
grep -q "the writes now come from c (was a)" "$T/b.log" ||
  fail "b did not log the change of origin"
fio --name=swap --ioengine=nbd --uri="$NBD_URI/vol0" --rw=randwrite \
  --bs=16k --iodepth=8 --size=64M --io_size=16M --verify=crc32c \
  --do_verify=1 --verify_state_save=0 --output="$T/fio.out" ||
  { cat "$T/fio.out" >&2; fail "fio at c failed"; }
wait_in_sync "$CFG" c
wait_in_sync "$CFG" b
stop_node c
stop_node b
stop_node a
same_images "$T/c/vol0.img" "$T/b/vol0.img"
same_images "$T/b/vol0.img" "$T/a/vol0.img"
log "part 2: with c as primary, b relayed to a; all copies identical"
