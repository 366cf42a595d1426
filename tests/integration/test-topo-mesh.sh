#!/usr/bin/env bash
# A mesh (config/mesh.yaml: a, b, c, every pair linked), each node in its
# own network namespace (netlib.sh), and the same generated file used with
# two different primaries.
#
# 1. a is the primary: its status lists b (sync) and c (async) as direct
#    peers, and its group's downstream is b and c; b and c are replicas
#    with a as their upstream and no peers of their own (in a mesh every
#    node is one hop from the primary: nobody relays).  fio writes with
#    crc32c verification at a; then a's peers get in sync, every node is
#    stopped cleanly and the three copies must be identical.
# 2. The primary moves to b, with the same file: b now serves with
#    nbdkit, a and c run blockrelayd.  Every copy keeps its data as it was
#    left (a clean switch-over).  a, the old primary, knows b was in sync
#    with it at a's generation, and b continues that history, so a must
#    rejoin as b's replica without a split-brain refusal and without a
#    full sync.  c holds a's generation too, but b never synced c: nothing
#    tells whether c received writes from a that b lacks, so c refuses b
#    (split brain: c's data is not overwritten, b stops trying) until the
#    operator re-seeds it (removes its data directory) and restarts b;
#    then b gives it a full sync.  b's peers must be a (sync) and c (async), directly; a and c
#    none.  fio with verification at b; in sync; stop; three identical
#    copies.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
. "$(dirname "$0")/netlib.sh"
need nbdkit fio
need_ackwriter                        # for $PY (status JSON parsing)

CFG=$T/mesh.yaml
TOPO_VOLUME_SIZE=64M topo_up "$SRCDIR/config/mesh.yaml" "$CFG" \
  "heartbeat: 200ms" "heartbeat-timeout: 2s" "reconnect-max: 500ms"

t0=$SECONDS
# ---- 1. a is the primary
ns_start_replica "$CFG" b
ns_start_replica "$CFG" c
ns_start_primary "$CFG" a
topo_wait_in_sync "$CFG" a b c
topo_check_flow "$CFG" a primary "b:sync c:async" "" "b c"
topo_check_flow "$CFG" b replica "" "a" ""
topo_check_flow "$CFG" c replica "" "a" ""
log "primary a: peers b (sync), c (async); b and c: upstream a, no peers"
ns_fio_start a a --io_size=96M
ns_fio_wait a
topo_wait_in_sync "$CFG" a b c
topo_stop a b c
topo_same vol0 a b c
log "primary a: fio verified, copies identical after $((SECONDS - t0))s"

# ---- 2. the same file, b is the primary; every copy as it was
t1=$SECONDS
sha_c=$(sha256sum < "$T/c/vol0.img")
ns_start_replica "$CFG" a
ns_start_replica "$CFG" c
ns_start_primary "$CFG" b
for ((i = 0; i < 200; i++)); do
  grep -q "refusing b .*split brain on vol0 by rule 14" "$T/c.log" && break
  sleep 0.05                          # polling c's log for its refusal
done
[ $i -lt 200 ] || fail "c, never synced by b, did not refuse b"
topo_stop b c
[ "$(sha256sum < "$T/c/vol0.img")" = "$sha_c" ] ||
  fail "c's image changed although it refused b"
log "c refused b (it cannot tell whether it holds writes b lacks)"
rm -rf "${T:?}/c"                     # the operator re-seeds c
ns_start_replica "$CFG" c
ns_start_primary "$CFG" b
TOPO_SYNC_TIMEOUT=30 topo_wait_in_sync "$CFG" b
topo_check_flow "$CFG" b primary "a:sync c:async" "" "a c"
topo_check_flow "$CFG" a replica "" "b" ""
topo_check_flow "$CFG" c replica "" "b" ""
log "primary b: peers a (sync), c (async); a and c: upstream b, no peers"
grep -iE "split.brain|diverg" "$T/a.log" &&
  fail "a, the old primary in sync with b, refused b as a split brain"
# What b sent each peer to bring it in sync (before any new write): a,
# identical, next to nothing; c, re-seeded, a full sync (all that fio
# left: most of the volume).
"$PY" - "$T/b.json" <<'EOF' || fail "the resyncs after the switch were not what they should be"
import json, sys
st = json.load(open(sys.argv[1]))
sent = {p["node"]: p["sent_bytes"] for v in st["volumes"] for p in v["peers"]}
print("sent by b to bring its peers in sync: %r" % sent, file=sys.stderr)
assert sent["a"] < 1 << 20, "a (identical to b) got %d bytes" % sent["a"]
assert sent["c"] > 24 << 20, "c (full sync) got only %d bytes" % sent["c"]
EOF
log "a rejoined as b's replica without a full sync; c (re-seeded) fully synced"
ns_fio_start b b --io_size=96M
ns_fio_wait b
topo_wait_in_sync "$CFG" b a c
topo_stop b a c
topo_same vol0 b a c
log "primary b: fio verified, copies identical after $((SECONDS - t1))s"
log "done in $((SECONDS - t0))s"
