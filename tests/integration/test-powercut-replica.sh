#!/usr/bin/env bash
# Simulated power cuts of the replica while the primary keeps serving,
# CYCLES times (default 50, 20 under ASan; tests/soak/powercut-soak.sh runs more).
#
# a (nbdkit with the plugin, primary) -> b (blockrelayd), sync, 64M, both
# with BLOCKRELAY_CRASHSIM=1.  Each cycle, with the pair in sync:
# ackwriter.py writes to a; at a random point b gets SIGKILL (or, one
# cycle in four, SIGTERM and then SIGKILL a random moment later: a power
# cut during b's clean shutdown); the writer's log is marked there; a goes
# on serving (logging mode) for a few more
# writes, then the writer stops.  Then:
#   1. br-powercut cut b's data directory (all volatile writes lost in odd
#      cycles, torn per sector in even ones);
#   2. cover: every region where a's and b's images differ has its bit for
#      b set in a's scoreboard (a is alive: the bits it holds now), before
#      any resync;
#   3. ackwriter check --durable on b's image, counting only replies that
#      came before b died (--until the mark): a write acknowledged with FUA,
#      or before a flush that succeeded was sent, was durable on b (a sync
#      peer: I4), so it survived b's power cut;
#   4. b restarts, a resyncs it, and the images are byte-identical.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
. "$(dirname "$0")/powerlib.sh"
need nbdkit
need_ackwriter
need_powercut

CYCLES=${1:-$(cycles 50 20)}
CFG=$T/p.yaml
ALL=$T/all.acks
write_pair_config "$CFG" sync 64M

start_replica "$CFG" b
start_primary_nowait "$CFG" a
wait_in_sync "$CFG" a
: > "$ALL"
t0=$SECONDS
for ((c = 1; c <= CYCLES; c++)); do
  tc=$SECONDS
  PC_FAILED_CYCLE=false
  losses=$(peer_losses a)
  load_writer "$c"
  # Every reply logged before this line came while b was alive and in
  # sync (the pair was in sync when the writer started).
  until_line=$(acked_until "$losses")                   # see below
  n=$(acks "$T/w.acks")
  kill_node b
  serve_alone "$n" "$c"
  log "cycle $c: b: $PC_HOW after $n acknowledged writes; $(acks "$T/w.acks") in all"

  power_cut b "$(cut_mode "$c")"
  cover_check "$T/a/vol0.img" "$T/a/vol0.meta" b "$T/b/vol0.img" "cycle $c"
  # Only if a never lost b before the kill (a heartbeat timeout under
  # load would let flushes succeed without b: nothing to check then).
  if [ -n "$until_line" ]; then
    durable_check "$ALL" "$T/b/vol0.img" "cycle $c" "$until_line"
  else
    log "cycle $c: a lost b before the kill: no durable check on b"
    PC_UNCHECKED=$((PC_UNCHECKED + 1))
  fi

  start_replica "$CFG" b
  wait_in_sync "$CFG" a
  images_same "$T/a/vol0.img" "$T/b/vol0.img" "cycle $c"
  if $PC_FAILED_CYCLE; then           # POWERCUT_KEEP_GOING: re-seed b
    stop_node a
    stop_node b
    cp --sparse=always "$T/a/vol0.img" "$T/b/vol0.img"
    start_replica "$CFG" b
    start_primary_nowait "$CFG" a
    wait_in_sync "$CFG" a
  fi
  rebase "$T/a/vol0.img" "$ALL"
  log "cycle $c: ok in $((SECONDS - tc))s"
done
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
[ "$PC_FAILURES" -eq 0 ] || fail "$PC_FAILURES failed checks (see above)"
log "$CYCLES cycles, $((SECONDS - t0))s, ${PC_UNCHECKED:-0} without a durable check"
