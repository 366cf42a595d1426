#!/usr/bin/env bash
# A cascade of four (config/chain.yaml): a ==sync== b --async-- c --async-- d,
# each node in its own network namespace with one veth per link
# (netlib.sh), so a can only reach b, b only a and c, and so on.  Two
# volumes: vol0 (fio, back to back, crc32c-verified) and vol1 (its own
# group, so its own connections: ackwriter.py logs every acknowledged
# write).  The link rates of the file are raised (80M, 40M) to keep the
# test short; they stay different per hop.
#
# 1. The flow: a's only peer is b; b relays to c, c to d, d is the last
#    hop (peers, upstream and each group's downstream in every status).
# 2. Under load (fio + ackwriter at a):
#    - SIGKILL of the middle hop b at a random point: a keeps acknowledging
#      writes during the outage (b is its sync peer, on-peer-loss: log);
#      b restarts, a resyncs it, and b resumes relaying to c;
#    - SIGKILL of c: a is not disturbed, b logs c's regions; c restarts,
#      b resyncs it and c goes on to d;
#    - the b - c link is cut: a keeps acknowledging writes (it never waits
#      on an async hop, let alone one two hops away), b's peer c leaves
#      replicating while a's peer b stays replicating; the link is restored
#      and b brings c back in sync on its own.
# 3. Every run of fio passed its verification; every hop in sync (in hop
#    order); all stopped; the four copies of each volume identical; every
#    acknowledged write is on the last hop d.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
. "$(dirname "$0")/netlib.sh"
need nbdkit fio
need_ackwriter

CFG=$T/chain.yaml
TOPO_VOLUME_SIZE=64M topo_up "$SRCDIR/config/chain.yaml" "$CFG" \
  "heartbeat: 200ms" "heartbeat-timeout: 1s" "reconnect-max: 500ms"
topo_set_link "$CFG" b c rate 80M
topo_set_link "$CFG" c d rate 40M
topo_edit "$CFG" 'doc["volumes"].append({"name": "vol1", "size": "32M"})'

# hop_states NODE: the states of NODE's peers (all volumes), on one line.
hop_states() { echo $(peer_field "$CFG" "$1" state); }

t0=$SECONDS
for n in d c b; do
  ns_start_replica "$CFG" "$n"
done
ns_start_primary "$CFG" a
topo_wait_in_sync "$CFG" a b c
topo_check_flow "$CFG" a primary "b:sync" "" "b"
topo_check_flow "$CFG" b replica "c:async" "a" "c"
topo_check_flow "$CFG" c replica "d:async" "b" "d"
topo_check_flow "$CFG" d replica "" "c" ""
log "flow: a -> b -> c -> d, in sync after $((SECONDS - t0))s"

# fio back to back on vol0 until the faults are over (as test-linkcut.sh):
# 4096 random 4K writes at most 500/s, then a verifying read pass.
fio_loop_start "$NS_a" "$NBD_URI_NS/vol0"
WRITER_NETNS=$NS_a start_writer "$NBD_URI_NS/vol1" "$T/w.acks" 0 \
  --rate 200 --depth 4 --max-seconds 600

more_acks() { wait_acks "$T/w.acks" $(($(acks "$T/w.acks") + $1)) "$2"; }

more_acks 100 10

# ---- SIGKILL of the middle hop b, then of c
for victim in b c; do
  up=$([ "$victim" = b ] && echo a || echo b)
  rsleep 200 1500                     # a random point under load
  fio_ok
  kill9 "$victim"
  tk=$(date +%s%N)
  s=$(wait_peer_state "$CFG" "$up" 5 logging connecting handshake) ||
    fail "$up did not notice that $victim was killed"
  log "$victim killed: $up's peers $s"
  more_acks 40 5                      # a keeps acknowledging writes
  [ "$victim" = c ] && { [ "$(hop_states a)" = "replicating replicating" ] ||
    fail "a's peer b left replicating when c was killed: $(hop_states a)"; }
  rsleep 0 800                        # down a random while longer
  ns_start_replica "$CFG" "$victim"
  wait_peer_state "$CFG" "$up" 60 replicating >/dev/null ||
    fail "$up's peers did not return to replicating after $victim restarted"
  wait_peer_state "$CFG" "$victim" 60 replicating >/dev/null ||
    fail "$victim did not resume relaying after its restart"
  log "$victim back: $up -> $victim -> next hop replicating after" \
    "$((($(date +%s%N) - tk) / 1000000)) ms"
  more_acks 40 5
done

# ---- the b - c link cut under load
rsleep 200 1500
fio_ok
link_cut b c
tc=$(date +%s%N)
s=$(wait_peer_state "$CFG" b 5 logging connecting handshake) ||
  fail "b did not notice the cut of b - c within 5s (heartbeat-timeout 1s)"
log "b - c cut: b's peers $s after $((($(date +%s%N) - tc) / 1000000)) ms"
more_acks 60 5                        # the primary never blocks on it
[ "$(hop_states a)" = "replicating replicating" ] ||
  fail "a's peer b left replicating during the b - c cut: $(hop_states a)"
rsleep 0 800
link_restore b c
tr=$(date +%s%N)
wait_peer_state "$CFG" b 60 replicating >/dev/null ||
  fail "b's peer c did not return to replicating after the link came back"
log "b - c restored: replicating again after" \
  "$((($(date +%s%N) - tr) / 1000000)) ms"
more_acks 40 5

fio_loop_stop
rc=0
stop_writer || rc=$?
[ $rc -eq 0 ] || fail "a write to vol1 failed (writer exit $rc); see writer.log"
log "faults done at +$((SECONDS - t0))s: $FIO_RUNS fio runs" \
  "verified, $(acks "$T/w.acks") acknowledged writes"

topo_wait_in_sync "$CFG" a b c
log "all hops in sync after $((SECONDS - t0))s"
topo_stop a b c d
topo_same vol0 a b c d
topo_same vol1 a b c d
check_acks "$T/w.acks" "$T/d/vol1.img"
log "every acknowledged write is on d; done in $((SECONDS - t0))s"
