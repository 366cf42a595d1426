#!/usr/bin/env bash
# Simulated power cuts of the primary, CYCLES times (default 50, 20 under ASan;
# tests/soak/powercut-soak.sh runs more).
#
# a (nbdkit with the plugin, primary) -> b (blockrelayd), sync, 64M, both
# with BLOCKRELAY_CRASHSIM=1.  Each cycle: ackwriter.py writes to a (8 in
# flight, FUA now and then, a flush every 8..64 writes); at a random point
# (after K acknowledged writes plus a random delay) a gets SIGKILL, or in
# one cycle of four SIGTERM and then SIGKILL a random moment later (a
# power cut during a clean shutdown, or just after it).  Then:
#   1. br-powercut cut a's data directory: every write a had not made
#      durable is lost (odd cycles) or torn per 512-byte sector (even
#      cycles, random seed);
#   2. b is stopped cleanly (SIGTERM), so its image is at rest;
#   3. cover: every 64K region where a's and b's images differ has its bit
#      for b set in a's scoreboard as the cut left it (I1: a crash at any
#      instant loses no knowledge of what to resync), BEFORE any resync;
#   4. ackwriter check --durable on a's image: every write acknowledged
#      with FUA, or before a flush that succeeded was sent, survived;
#   5. both restart, a resyncs b, and the images are byte-identical.
# The checks start from a baseline of the copies as the previous cycle
# verified them (ackwriter.py baseline).
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
  load_writer "$c"
  kill -0 "$WRITER_PID" || fail "cycle $c: the writer stopped before the kill"
  kill_node a
  rc=0
  wait_exit "$WRITER_PID" 30 "the writer" || rc=$?
  [ $rc -eq 3 ] || [ $rc -eq 0 ] || fail "cycle $c: writer exited $rc"
  cat "$T/w.acks" >> "$ALL"
  log "cycle $c: $PC_HOW after $(acks "$T/w.acks") acknowledged writes"

  power_cut a "$(cut_mode "$c")"
  stop_node b
  cover_check "$T/a/vol0.img" "$T/a/vol0.meta" b "$T/b/vol0.img" "cycle $c"
  durable_check "$ALL" "$T/a/vol0.img" "cycle $c"

  start_replica "$CFG" b
  start_primary_nowait "$CFG" a
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
[ -e "$T/a/vol0.img.crashsim" ] && fail "a's journal survived a clean stop"
[ "$PC_FAILURES" -eq 0 ] || fail "$PC_FAILURES failed checks (see above)"
log "$CYCLES cycles in $((SECONDS - t0))s"
