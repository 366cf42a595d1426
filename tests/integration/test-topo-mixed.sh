#!/usr/bin/env bash
# A star with a cascade behind one arm (config/mixed.yaml): a replicates
# to b (sync) and c (async); b relays to d (async, rate-capped).  Every
# node in its own network namespace (netlib.sh).
#
# The flow must be as the file says: a's peers b and c; b's upstream a and
# its one peer d; c and d leaf replicas (d's upstream b).  fio writes with
# crc32c verification at a; meanwhile SIGKILL takes d down: b logs for d
# (d leaves replicating at b) while a's peers b and c stay replicating and
# a keeps completing writes; d is restarted and b resyncs it, without a
# ever seeing d.  Afterwards everything gets in sync hop by hop, every
# node stops, and the four copies are identical.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
. "$(dirname "$0")/netlib.sh"
need nbdkit fio
need_ackwriter                        # $PY (status JSON), kill9

CFG=$T/mixed.yaml
TOPO_VOLUME_SIZE=64M topo_up "$SRCDIR/config/mixed.yaml" "$CFG" \
  "heartbeat: 200ms" "heartbeat-timeout: 1s" "reconnect-max: 300ms"
topo_set_link "$CFG" b d rate 40M

t0=$SECONDS
for n in d c b; do
  ns_start_replica "$CFG" "$n"
done
ns_start_primary "$CFG" a
topo_wait_in_sync "$CFG" a b
topo_check_flow "$CFG" a primary "b:sync c:async" "" "b c"
topo_check_flow "$CFG" b replica "d:async" a "d"
topo_check_flow "$CFG" c replica "" a ""
topo_check_flow "$CFG" d replica "" b ""
log "flow: a -> b (sync), c (async); b -> d (async, 40M)"

ns_fio_start a mixed --rate=,12m

# state NODE PEER: the state of NODE's peer PEER.
state() {
  "$BLOCKRELAY" status --config "$CFG" --node "$1" --json 2>/dev/null |
    "$PY" -c 'import json, sys
for p in json.load(sys.stdin)["volumes"][0]["peers"]:
    if p["node"] == sys.argv[1]:
        print(p["state"])' "$2"
}
acked() {
  "$BLOCKRELAY" status --config "$CFG" --node a --json |
    "$PY" -c 'import json, sys
print(sum(p["acked_seq"] for p in json.load(sys.stdin)["volumes"][0]["peers"]))'
}

rsleep 300 1200
kill9 d
wait_peer_state "$CFG" b 5 logging connecting handshake >/dev/null ||
  fail "b did not notice that d died"
before=$(acked)
for ((i = 0; i < 100; i++)); do
  [ "$(acked)" -gt $((before + 100)) ] && break
  sleep 0.05                          # polling the control socket
done
[ $i -lt 100 ] || fail "a stopped completing writes while d was down"
[ "$(state a b) $(state a c)" = "replicating replicating" ] ||
  fail "d's loss disturbed a's peers: b $(state a b), c $(state a c)"
log "d down: b logs for it; a's peers b and c replicating, writes flowing"
ns_start_replica "$CFG" d
wait_peer_state "$CFG" b 30 syncing replicating >/dev/null ||
  fail "b did not reconnect to d"
grep -q "peer d" "$T/a.log" && fail "a dealt with d, which is b's peer"

ns_fio_wait mixed
topo_wait_in_sync "$CFG" a b
topo_stop a b c d
topo_same vol0 a b c d
log "done in $((SECONDS - t0))s"
