#!/usr/bin/env bash
# SIGKILL of the replica at random points under write load, CYCLES times
# (default 20, 10 under ASan; tests/soak/kill-replica-soak.sh runs more).
#
# A writer (ackwriter.py) keeps 8 random writes in flight against the
# primary (sync link) and logs each write before it is sent and each reply.
# Each cycle: after a random number of acknowledged writes and a random
# delay blockrelayd gets SIGKILL.  The primary must notice (the peer leaves
# replicating) and keep serving: writes go on succeeding while the replica
# is down.  The replica is restarted; in one cycle of three it is killed
# again as soon as the primary is handshaking or resyncing with it, and
# restarted again.  Once the peer is replicating and a few more writes went
# through, the writer stops; it must report that every write succeeded.
# When the peer is in sync, every acknowledged write (of every cycle so
# far) that was not overwritten later must be on the replica's disk, and the
# replica must equal the primary's export block for block.  At the end both
# are stopped and compared byte for byte.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
need nbdkit
need_ackwriter

CYCLES=${1:-$(cycles 20 10)}
CFG=$T/p.yaml
ALL=$T/all.acks                       # every writer run's log, in order
write_pair_config "$CFG" sync 64M      # fast reconnection (50ms..500ms)

start_replica "$CFG" b
start_primary_nowait "$CFG" a
wait_in_sync "$CFG" a
: > "$ALL"
t0=$SECONDS
for ((c = 1; c <= CYCLES; c++)); do
  start_writer "$NBD_URI/vol0" "$T/w.acks" $((c * 10000000)) --seed "$RANDOM"
  wait_acks "$T/w.acks" "$(rand 1 1000)" 30
  rsleep 0 500
  kills=0
  while :; do
    kill9 b
    kills=$((kills + 1))
    wait_peer_state "$CFG" a 10 logging connecting >/dev/null ||
      fail "cycle $c: the primary did not notice the replica's death"
    # The primary keeps serving while its peer is down.
    wait_acks "$T/w.acks" $(($(acks "$T/w.acks") + $(rand 20 400))) 20
    start_replica "$CFG" b
    s=$(wait_peer_state "$CFG" a 20 handshake syncing replicating) ||
      fail "cycle $c: the primary did not reconnect"
    if [ "$s" != replicating ] && [ $kills -lt 2 ] && [ $((RANDOM % 3)) -eq 0 ]; then
      log "cycle $c: killing the replica again while $s"
      continue
    fi
    break
  done
  wait_peer_state "$CFG" a 60 replicating >/dev/null ||
    fail "cycle $c: the peer did not return to replicating under load"
  wait_acks "$T/w.acks" $(($(acks "$T/w.acks") + $(rand 20 300))) 20
  rc=0
  stop_writer || rc=$?
  cat "$T/w.acks" >> "$ALL"
  [ $rc -eq 0 ] || fail "cycle $c: a write failed (writer exit $rc); see writer.log"
  log "cycle $c: $kills kill(s), $(acks "$T/w.acks") writes acknowledged"
  wait_in_sync "$CFG" a
  check_acks "$ALL" "$T/b/vol0.img"
  check_same "$NBD_URI/vol0" "$T/b/vol0.img"
done
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
check_acks "$ALL" "$T/a/vol0.img"
log "$CYCLES cycles, $(acks "$ALL") acknowledged writes, $((SECONDS - t0))s"
