#!/usr/bin/env bash
# Simulated power cuts of the primary followed by a failover, CYCLES times
# (default 4), the two nodes trading roles every cycle.
#
# a and b both run the plugin with BLOCKRELAY_CRASHSIM=1, one as the
# primary, the other with role=replica; a sync link, 64M.  Each cycle:
#   1. ackwriter.py writes to the primary P (8 in flight, FUA now and then,
#      flushes); at a random point P gets SIGKILL and its power is cut
#      (every write it had not made durable lost, or torn per sector in
#      even cycles);
#   2. the replica R is promoted and takes a second writer run;
#   3. R is stopped cleanly (its image at rest, its bitmap for P holding
#      what it wrote without P), and BEFORE any resync: cover -- every
#      64K region where the two images differ is set in P's bitmap for R
#      (as the cut left it) or in R's bitmap for P: the union a failback
#      resyncs (verdict rule 3) covers every difference;
#   4. every write either node acknowledged is on R (a sync link: what P
#      acknowledged R had applied);
#   5. R restarts as the primary and P as a replica: R resyncs P by rule
#      3 (or 11 when P's bitmap was empty), and the images are identical.
# The next cycle starts with the roles swapped.  SIGKILL only: a SIGTERM
# that stops the peers while writes are in flight makes those writes a
# history written apart (a new generation), which the verdict must call
# a split brain, not a failback.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
. "$(dirname "$0")/powerlib.sh"
need nbdkit
need_ackwriter
need_powercut

CYCLES=${1:-4}
CFG=$T/p.yaml
ALL=$T/all.acks
write_pair_config "$CFG" sync 64M

P=a R=b
start_primary_nowait "$CFG" $R "$T/$R.log" role=replica
start_primary_nowait "$CFG" $P "$T/$P.log" assume-clean=true
wait_in_sync "$CFG" $P
: > "$ALL"              # every writer run of every cycle, in order
t0=$SECONDS
for ((c = 1; c <= CYCLES; c++)); do
  tc=$SECONDS
  PC_FAILED_CYCLE=false
  eval "NBD_URI=nbd://127.0.0.1:\$NBD_PORT_$P"
  load_writer "$c"
  kill -0 "$WRITER_PID" || fail "cycle $c: the writer stopped before the kill"
  kill9 $P
  rc=0
  wait_exit "$WRITER_PID" 30 "the writer" || rc=$?
  [ $rc -eq 3 ] || [ $rc -eq 0 ] || fail "cycle $c: writer exited $rc"
  cat "$T/w.acks" >> "$ALL"
  power_cut $P "$(cut_mode "$c")"
  log "cycle $c: $P killed after $(acks "$T/w.acks") acknowledged writes"

  "$BLOCKRELAY" promote --config "$CFG" --node $R --timeout 10 ||
    fail "cycle $c: promote $R"
  eval "NBD_URI=nbd://127.0.0.1:\$NBD_PORT_$R"
  start_writer "$NBD_URI/vol0" "$T/w.acks" $((c * 10000000 + 5000000)) \
    --seed "$RANDOM"
  wait_acks "$T/w.acks" "$(rand 1 200)" 30
  stop_writer || fail "cycle $c: a write through the promoted $R failed"
  cat "$T/w.acks" >> "$ALL"
  stop_node $R

  cover_check "$T/$P/vol0.img" "$T/$P/vol0.meta" $R "$T/$R/vol0.img" \
    "$T/$R/vol0.meta" $P "cycle $c"
  check_acks "$ALL" "$T/$R/vol0.img"

  start_primary_nowait "$CFG" $R "$T/$R.log"
  start_primary_nowait "$CFG" $P "$T/$P.log" role=replica
  wait_in_sync "$CFG" $R 60
  verdict=$(peer_field "$CFG" $R verdict)
  [[ $verdict =~ ^vol0:\ resync\ by\ rule\ (3|11)$ ]] ||
    pfail "cycle $c: $R resynced $P by '$verdict', not by the failback rules"
  taken=$(peer_field "$CFG" $R taken_regions)
  stop_node $R
  images_same "$T/$P/vol0.img" "$T/$R/vol0.img" "cycle $c"
  log "cycle $c: ok in $((SECONDS - tc))s ($verdict, $taken regions taken)"
  # Roles swap: R (stopped) comes back as the primary, P is the replica.
  start_primary_nowait "$CFG" $R "$T/$R.log"
  wait_in_sync "$CFG" $R 60
  tmp=$P P=$R R=$tmp
done
stop_node $P
stop_node $R
same_images "$T/a/vol0.img" "$T/b/vol0.img"
[ "$PC_FAILURES" -eq 0 ] || fail "$PC_FAILURES failed checks (see above)"
log "$CYCLES failovers after power cuts in $((SECONDS - t0))s"
