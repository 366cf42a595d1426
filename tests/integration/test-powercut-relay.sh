#!/usr/bin/env bash
# Simulated power cuts of a relay, CYCLES times (default 50, 20 under ASan;
# tests/soak/powercut-soak.sh runs more).
#
# Chain a -> b -> c: a is the primary (nbdkit with the plugin), b relays
# to c (both blockrelayd); a-b is sync, b-c is RELAY_MODE (default async;
# sync as well in the soak); 64M; every node with BLOCKRELAY_CRASHSIM=1.
# Each cycle, with the chain in sync: ackwriter.py writes to a; at a random
# point b gets SIGKILL (or, one cycle in four, SIGTERM and then SIGKILL a
# random moment later: a power cut during b's clean shutdown); the
# writer's log is marked there; a serves alone for a few more writes, then
# the writer stops and c is stopped cleanly (its image at rest).  Then:
#   1. br-powercut cut b's data directory (all volatile writes lost in odd
#      cycles, torn per sector in even ones);
#   2. cover, before any resync: a's bits for b cover every region where a
#      and b differ; b's bits for c, in b's scoreboard as the cut left it,
#      cover every region where b and c differ (b must resync c from them);
#   3. ackwriter check --durable on b's image for the replies that came
#      before b died (a-b is sync: a flushed or FUA write acknowledged by a
#      was durable on b); with a sync b-c link, on c's image as well;
#   4. c, then b restart, a resyncs b and b resyncs c, and the three images
#      are byte-identical.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
. "$(dirname "$0")/powerlib.sh"
need nbdkit
need_ackwriter
need_powercut

CYCLES=${1:-$(cycles 50 20)}
RELAY_MODE=${RELAY_MODE:-async}
CFG=$T/chain.yaml
ALL=$T/all.acks
write_local_config "$CFG" a b c <<EOF
  - {between: [a, b], mode: sync}
  - {between: [b, c], mode: $RELAY_MODE}
EOF

start_chain() {
  start_replica "$CFG" c
  start_replica "$CFG" b
  [ -n "${PID_a:-}" ] || start_primary_nowait "$CFG" a
  wait_in_sync "$CFG" a
  wait_in_sync "$CFG" b
}

start_chain
: > "$ALL"
t0=$SECONDS
for ((c = 1; c <= CYCLES; c++)); do
  tc=$SECONDS
  PC_FAILED_CYCLE=false
  losses=$(peer_losses a)
  b_losses=$(peer_losses b)
  load_writer "$c"
  until_line=$(acked_until "$losses")                   # see below
  c_ok=true
  [ "$(peer_losses b)" -eq "$b_losses" ] || c_ok=false
  n=$(acks "$T/w.acks")
  kill_node b
  serve_alone "$n" "$c"
  stop_node c
  log "cycle $c: b: $PC_HOW after $n acknowledged writes; $(acks "$T/w.acks") in all"

  power_cut b "$(cut_mode "$c")"
  cover_check "$T/a/vol0.img" "$T/a/vol0.meta" b "$T/b/vol0.img" \
    "cycle $c (a's bits for b)"
  cover_check "$T/b/vol0.img" "$T/b/vol0.meta" c "$T/c/vol0.img" \
    "cycle $c (b's bits for c)"
  # Only if a never lost b (nor b c) before the kill: a heartbeat timeout
  # under load would let flushes succeed without them.
  if [ -n "$until_line" ]; then
    durable_check "$ALL" "$T/b/vol0.img" "cycle $c (b)" "$until_line"
    [ "$RELAY_MODE" = sync ] && $c_ok &&
      durable_check "$ALL" "$T/c/vol0.img" "cycle $c (c)" "$until_line"
  else
    log "cycle $c: a lost b before the kill: no durable check"
    PC_UNCHECKED=$((PC_UNCHECKED + 1))
  fi

  start_chain
  images_same "$T/a/vol0.img" "$T/b/vol0.img" "cycle $c"
  images_same "$T/b/vol0.img" "$T/c/vol0.img" "cycle $c"
  if $PC_FAILED_CYCLE; then           # POWERCUT_KEEP_GOING: re-seed b, c
    stop_node a
    stop_node b
    stop_node c
    cp --sparse=always "$T/a/vol0.img" "$T/b/vol0.img"
    cp --sparse=always "$T/a/vol0.img" "$T/c/vol0.img"
    start_chain
  fi
  rebase "$T/a/vol0.img" "$ALL"
  log "cycle $c: ok in $((SECONDS - tc))s"
done
stop_node a
stop_node b
stop_node c
same_images "$T/a/vol0.img" "$T/b/vol0.img"
same_images "$T/b/vol0.img" "$T/c/vol0.img"
[ "$PC_FAILURES" -eq 0 ] || fail "$PC_FAILURES failed checks (see above)"
log "$CYCLES cycles ($RELAY_MODE b-c), $((SECONDS - t0))s, ${PC_UNCHECKED:-0} without a durable check"
