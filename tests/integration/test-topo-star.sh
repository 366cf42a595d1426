#!/usr/bin/env bash
# One to three (config/star.yaml): a replicates to b (sync), c and d
# (async), each node in its own network namespace with one veth per link
# (netlib.sh).  The primary's status must list exactly b, c and d as its
# peers with the file's modes, and each replica must have a as its
# upstream and no peers of its own (nobody relays in a star).  fio writes
# random blocks of mixed sizes to the primary's export and reads them back
# with crc32c verification (about 5 s of writes).  While it writes, the
# a - c link is cut: a must notice (c leaves replicating) while b and d
# stay replicating and keep receiving; the link comes back and c catches
# up (replicating again) before fio is done.  Then every peer of a
# gets in sync, the nodes are stopped and the four copies must be
# identical byte for byte.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
. "$(dirname "$0")/netlib.sh"
need nbdkit fio
need_ackwriter                        # for $PY (status JSON parsing)

CFG=$T/star.yaml
TOPO_VOLUME_SIZE=64M topo_up "$SRCDIR/config/star.yaml" "$CFG" \
  "heartbeat: 200ms" "heartbeat-timeout: 1s" "reconnect-max: 500ms"

t0=$SECONDS
for n in b c d; do
  ns_start_replica "$CFG" "$n"
done
ns_start_primary "$CFG" a
topo_wait_in_sync "$CFG" a

# The flow: a sends to b, c, d directly; b, c, d receive from a only and
# relay nothing.
topo_check_flow "$CFG" a primary "b:sync c:async d:async" "" "b c d"
for n in b c d; do
  topo_check_flow "$CFG" "$n" replica "" a ""
done
log "flow: a -> b (sync), c, d (async); b, c, d have a as upstream, no peers"

# fio: 64 MiB of random writes of 4K..64K over the whole volume (at most
# 12 MiB/s: about 5 s), then a read-back pass that checks every
# block's crc32c.
ns_fio_start a star --rate=,12m

# While fio writes, the a - c link is cut and restored: only c leaves
# replicating; b and d keep receiving (their acked sequence moves on).
# peer NODE PEER FIELD: FIELD of NODE's peer PEER.
peer() {
  "$BLOCKRELAY" status --config "$CFG" --node "$1" --json 2>/dev/null |
    "$PY" -c 'import json, sys
for v in json.load(sys.stdin)["volumes"]:
    for p in v["peers"]:
        if p["node"] == sys.argv[1]:
            print(p[sys.argv[2]])' "$2" "$3"
}
wait_acked_seq() {                    # NODE PEER: acked_seq grows by 100
  local start i
  start=$(peer a "$1" acked_seq)
  for ((i = 0; i < 100; i++)); do
    [ "$(peer a "$1" acked_seq)" -gt $((start + 100)) ] && return 0
    sleep 0.05                        # polling the control socket
  done
  fail "a's peer $1 made no progress in 5 s (acked_seq $start)"
}
wait_acked_seq b                      # the writes are flowing
rsleep 200 1000
link_cut a c
for ((i = 0; i < 100; i++)); do
  case $(peer a c state) in logging|connecting|handshake) break ;; esac
  sleep 0.05                          # polling the control socket
done
[ $i -lt 100 ] || fail "a did not notice the cut of a - c within 5 s"
wait_acked_seq b
wait_acked_seq d
[ "$(peer a b state) $(peer a d state)" = "replicating replicating" ] ||
  fail "cutting a - c disturbed b or d: $(peer a b state) $(peer a d state)"
log "a - c cut: c $(peer a c state), b and d replicating and receiving"
link_restore a c
for ((i = 0; i < 600; i++)); do
  [ "$(peer a c state)" = replicating ] && break
  sleep 0.05                          # polling the control socket
done
[ $i -lt 600 ] || fail "c did not return to replicating within 30 s"
kill -0 "$FIO_PID" 2>/dev/null && w="while fio still runs" || w="(fio done)"
log "a - c restored: c replicating again $w"

ns_fio_wait star
log "fio: written and verified at a in $((SECONDS - t0))s"

topo_wait_in_sync "$CFG" a
log "b, c and d in sync after $((SECONDS - t0))s"
topo_stop a b c d
topo_same vol0 a b c d
log "done in $((SECONDS - t0))s"
