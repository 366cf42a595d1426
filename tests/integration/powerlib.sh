# Helpers for the simulated power-cut tests (test-powercut-*.sh); sourced
# after lib.sh and faultlib.sh.
#
# Every process these tests start runs with BLOCKRELAY_CRASHSIM=1, so its
# disks journal what a power cut would lose and its scoreboards keep their
# msynced image (src/crashsim.c).  A power cut of a node is a SIGKILL
# followed by `br-powercut cut` of its data directory, with everything not
# durable lost or (torn) each sector at a random version since it was.
#
# The checks after a cut (what DESIGN.md §7 asks for), each failing with
# the cycle's details:
#   cover_check  I1: every region where two copies differ has its bit set
#                in the scoreboard of the node that must resync it, BEFORE
#                any resync ran;
#   durable_check  every durable acknowledged write survived the cut
#                (ackwriter.py check --durable);
#   same_images  after the resync, the copies are identical (lib.sh).
#
# POWERCUT_KEEP_GOING=1 (diagnosis runs, e.g. the soak): a failed check is
# counted and logged instead of ending the test; the cycle then re-seeds
# the copies so the next cycle starts consistent (see the tests).

POWERCUT=$BUILDDIR/br-powercut
export BLOCKRELAY_CRASHSIM=1
PC_FAILURES=0
PC_FAILED_CYCLE=false

need_powercut() {
  [ -x "$POWERCUT" ] || skip "$POWERCUT is not built"
}

# POWERCUT_SAVE=DIR: the first failed check copies the test's directory
# (images, scoreboards, logs) to DIR for a post-mortem.
# pfail MSG: a failed check (see POWERCUT_KEEP_GOING above).
pfail() {
  if [ -n "${POWERCUT_SAVE:-}" ] && [ ! -e "$POWERCUT_SAVE" ]; then
    cp -a --sparse=always "$T" "$POWERCUT_SAVE"
    log "saved $T in $POWERCUT_SAVE"
  fi
  if [ "${POWERCUT_KEEP_GOING:-}" = 1 ]; then
    log "FAIL (continuing): $*"
    PC_FAILURES=$((PC_FAILURES + 1))
    PC_FAILED_CYCLE=true
    return 0
  fi
  fail "$*"
}

# power_cut NODE MODE: replay a power cut of the (dead) NODE's data
# directory; MODE "all" loses every volatile write, "torn" tears them per
# sector with a random seed.  Logs br-powercut's summary; PC_DESC gets the
# mode (and seed) for the cycle's messages.
power_cut() {
  local node=$1 mode=$2 seed out
  if [ "$mode" = torn ]; then
    seed=$((RANDOM * 32768 + RANDOM))
    PC_DESC="torn cut of $node (seed $seed)"
    out=$("$POWERCUT" cut --torn "$seed" "$T/$node") ||
      fail "br-powercut cut --torn $seed $T/$node failed: $out"
  else
    PC_DESC="cut of $node (all volatile writes lost)"
    out=$("$POWERCUT" cut "$T/$node") ||
      fail "br-powercut cut $T/$node failed: $out"
  fi
  echo "$out" >> "$T/powercut.log"
  log "$PC_DESC: $(echo "$out" | sed "s|$T/||g" | tr '\n' ';')"
}

# cover_check IMAGE_A META_A PEER IMAGE_B [META_B PEER_B] WHAT: the I1
# check (with META_B: every difference is in one of the two bitmaps).
cover_check() {
  local out rc=0 what=${!#}
  out=$("$POWERCUT" cover "${@:1:$(($# - 1))}" 2>&1) || rc=$?
  echo "$out" >> "$T/powercut.log"
  [ $rc -le 1 ] || fail "br-powercut cover failed: $out"
  if [ $rc -eq 1 ]; then
    # Diagnostics only (|| true: a pipe that head closes early must not
    # end the test under set -e -o pipefail before its message).
    echo "$out" | sed "s|$T/||g" | head -n 12 >&2 || true
    "$POWERCUT" bits "$2" "$3" 2>&1 | sed "s|$T/||g" | head -n 8 >&2 || true
    pfail "$what: I1 violated after the $PC_DESC: $(echo "$out" | tail -n 1 | sed "s|$T/||g")"
  fi
}

# durable_check LOG TARGET WHAT [UNTIL]: every durable write is there
# (LOG: the writer runs since the last rebase).
durable_check() {
  local base=
  [ -s "$T/base.map" ] && base=$T/base.map
  if ! "$PY" "$ACKWRITER" check --durable ${4:+--until "$4"} \
       ${base:+--base "$base"} "$1" "$2" 2>>"$T/check.log"; then
    tail -n 22 "$T/check.log" | sed "s|$T/||g" >&2 || true
    pfail "$3: durable writes missing from $2 after the $PC_DESC"
  fi
}

# images_same A B WHAT: byte-for-byte (cmp), as a power-cut check.
images_same() {
  local out
  if ! out=$(cmp "$1" "$2" 2>&1); then
    "$PY" "$ACKWRITER" same "$1" "$2" 2>&1 | sed "s|$T/||g" | head -n 8 >&2 ||
      true
    pfail "$3: $1 and $2 differ after the resync ($out)"
  fi
}

# peer_losses NODE: how many times NODE lost a peer (its log says so), to
# tell whether a sync peer stayed connected through a stretch of a cycle:
# replies to flushes only prove durability on a peer that was connected.
peer_losses() {
  local n
  n=$(grep -c "logging writes until it is back" "$T/$1.log" 2>/dev/null) ||
    true
  echo "${n:-0}"
}

# rebase IMAGE LOG: once every copy was verified identical, IMAGE's
# content is the baseline the next checks start from, and LOG (the writer
# runs so far) starts again empty, so checks cost the same every cycle.
rebase() {
  "$PY" "$ACKWRITER" baseline "$1" "$T/base.map" 2>>"$T/check.log" ||
    fail "cannot take a baseline of $1"
  : > "$2"
}

# lines FILE: the number of complete lines in FILE now.
lines() { wc -l < "$1"; }

# cut_mode CYCLE: "all" in odd cycles, "torn" in even ones.
cut_mode() { [ $(($1 % 2)) -eq 1 ] && echo all || echo torn; }

# load_writer CYCLE: the cycle's writer (ackwriter.py) on $NBD_URI/vol0,
# with a random seed and flush spacing, and returns once 1..300 of its
# writes were acknowledged and a random moment more passed.
load_writer() {
  start_writer "$NBD_URI/vol0" "$T/w.acks" $(($1 * 10000000)) \
    --seed "$RANDOM" --flush-every "$(rand 8 64)"
  wait_acks "$T/w.acks" "$(rand 1 300)" 30
  rsleep 0 300
}

# acked_until LOSSES: the number of acknowledgements logged so far (in
# $ALL and the writer's log) if the primary lost its peer no more than
# LOSSES times (peer_losses a), else nothing: replies to flushes prove
# durability on a peer only while it was connected.
acked_until() {
  [ "$(peer_losses a)" -eq "$1" ] || return 0
  echo $(($(lines "$ALL") + $(lines "$T/w.acks")))
}

# kill_node NODE: SIGKILL of NODE, or in one call of four SIGTERM and then
# SIGKILL a random moment later (a power cut during a clean shutdown, or
# just after it).  PC_HOW says which; PID_<NODE> is emptied.
kill_node() {
  local pid
  eval "pid=\$PID_$1"
  PC_HOW="SIGKILL under load"
  if [ $((RANDOM % 4)) -eq 0 ]; then
    PC_HOW="SIGTERM, then SIGKILL"
    kill -TERM "$pid"
    rsleep 0 20
  fi
  kill -9 "$pid" 2>/dev/null || PC_HOW="$PC_HOW (it had exited)"
  wait "$pid" 2>/dev/null || true
  eval "PID_$1="
}

# serve_alone N CYCLE: the primary takes 1..100 more acknowledged writes
# past N with its peer down, then the writer stops and its log joins $ALL.
serve_alone() {
  wait_acks "$T/w.acks" $(($1 + $(rand 1 100))) 30
  stop_writer || fail "cycle $2: a write failed with b down"
  cat "$T/w.acks" >> "$ALL"
}
