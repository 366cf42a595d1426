#!/usr/bin/env bash
# SIGKILL of the primary at random points under write load, CYCLES times
# (default 20, 10 under ASan; tests/soak/kill-primary-soak.sh runs more).
#
# Each cycle: a writer (ackwriter.py) keeps 8 random writes in flight and
# logs each write before it is sent and each reply; after a random number of
# acknowledged writes and a random delay nbdkit gets SIGKILL.  The primary
# is restarted: its scoreboard was not closed cleanly, so every region that
# may differ is resynced.  Then every acknowledged write (of every cycle so
# far) that was not overwritten later must be on the primary (read over
# NBD), and, once the peer is in sync, on the replica's disk, which then
# equals the primary's export block for block; writes in
# flight at the kill may or may not be there, but whole.  In one cycle of
# four the replica is killed first, so the primary crashes in logging mode
# (everything it wrote since is known only from its scoreboard), and both
# are restarted.  In one cycle of three the next cycle starts while the
# resync after the restart may still be running.  At the end both copies
# are stopped and compared byte for byte.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
need nbdkit
need_ackwriter

CYCLES=${1:-$(cycles 20 10)}
CFG=$T/p.yaml
ALL=$T/all.acks                       # every writer run's log, in order
write_pair_config "$CFG" sync 64M

start_replica "$CFG" b
start_primary_nowait "$CFG" a
wait_in_sync "$CFG" a
: > "$ALL"
t0=$SECONDS
for ((c = 1; c <= CYCLES; c++)); do
  replica_down=false
  if [ $((RANDOM % 4)) -eq 0 ]; then
    replica_down=true
    kill9 b
    wait_peer_state "$CFG" a 10 logging connecting >/dev/null ||
      fail "cycle $c: the primary did not notice the replica's death"
  fi
  start_writer "$NBD_URI/vol0" "$T/w.acks" $((c * 10000000)) --seed "$RANDOM"
  # A random kill point: after K acknowledged writes, plus a random delay.
  wait_acks "$T/w.acks" "$(rand 1 1200)" 30
  rsleep 0 600
  kill -0 "$WRITER_PID" || fail "cycle $c: the writer stopped before the kill"
  kill9 a
  rc=0
  wait_exit "$WRITER_PID" 30 "the writer" || rc=$?
  [ $rc -eq 3 ] || fail "cycle $c: writer exited $rc, expected 3 (server gone)"
  cat "$T/w.acks" >> "$ALL"
  log "cycle $c: killed the primary after $(acks "$T/w.acks") acknowledged writes$($replica_down && echo ", replica down")"

  # Restart; the primary serves at once, the resync runs in the background.
  $replica_down && start_replica "$CFG" b
  start_primary_nowait "$CFG" a
  check_acks "$ALL" "$NBD_URI/vol0"
  if [ $((RANDOM % 3)) -eq 0 ] && [ "$c" -lt "$CYCLES" ]; then
    log "cycle $c: next cycle starts without waiting for the resync (peer $(peer_field "$CFG" a state))"
    continue
  fi
  wait_in_sync "$CFG" a
  check_acks "$ALL" "$T/b/vol0.img"
  check_same "$NBD_URI/vol0" "$T/b/vol0.img"
done
wait_in_sync "$CFG" a
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
check_acks "$ALL" "$T/a/vol0.img"
n=$(grep -c "not shut down cleanly" "$T/a.log") || true
[ "${n:-0}" -ge "$CYCLES" ] ||
  fail "only ${n:-0} of $CYCLES restarts noticed the crash"
log "$CYCLES cycles, $(acks "$ALL") acknowledged writes, $((SECONDS - t0))s"
