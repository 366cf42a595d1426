#!/usr/bin/env bash
# Consistency group order under link cuts and replica crashes
# (config/group.yaml: vol0 and wal0 in group db, a -> b async).
#
# a (nbdkit with the plugin) and b (blockrelayd) run in network namespaces
# of their own joined by one veth pair (netlib.sh).  The link is async,
# capped at 4 MiB/s, with a 2 MiB queue.  In a's namespace groupwriter.py
# issues dependent writes in a loop: record i to vol0 and, once a
# acknowledged it, commit marker i (naming the record's nonce and
# checksum) to wal0; slowly (20 pairs/s), except in bursts as fast as a
# answers, which outrun the link: b falls behind by up to a queue's worth.
#
# Each cycle, once a is replicating and both of b's volumes read
# consistent, a burst starts and at a random point in it the link is cut
# or b gets SIGKILL (alternately).  While b is cut off (its upstream
# session gone, so nothing is being applied) or dead:
#   * both of b's volumes must read consistent=true (b's status while cut,
#     its scoreboard files while dead): it was replicating, not resyncing;
#   * b's image files must hold exactly one prefix of the group's writes
#     (groupwriter.py check): no commit marker without its record, nothing
#     lost in between;
#   * a keeps acknowledging writes.
# Every third cycle b is cut or killed a second time while a resyncs it:
# then b's volumes may well not be one prefix of the writes, but if so,
# neither of them may claim to be consistent (a group is inconsistent until
# all of its volumes are in sync).  After each outage b's consistent flags
# are sampled while the group resyncs, until a is replicating again and
# both of b's volumes are consistent.  At least one fault must have caught
# b behind the writer (its newest marker older than the writer's progress
# just before the fault), or the test proved nothing.  At the end the
# writer stops (every write succeeded), a gets in sync, both nodes stop,
# the copies are identical, and b holds the whole stream up to the
# writer's last pair.
#
#   test-group-order.sh [CYCLES]        (default 6)
#   GROUP_ORDER_KEEP=DIR: copy the work directory there at exit.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
. "$(dirname "$0")/netlib.sh"
need nbdkit
need_ackwriter                        # $PY with the nbd module

CYCLES=${1:-6}
# GROUP_ORDER_KEEP=DIR: copy the work directory (images, logs) there at exit.
[ -z "${GROUP_ORDER_KEEP:-}" ] ||
  on_exit "mkdir -p '$GROUP_ORDER_KEEP' && cp -a '$T/.' '$GROUP_ORDER_KEEP/'"
GW=$SRCDIR/tests/integration/groupwriter.py
CFG=$T/group.yaml
topo_up "$SRCDIR/config/group.yaml" "$CFG" \
  "heartbeat: 200ms" "heartbeat-timeout: 1s" "reconnect-min: 50ms" \
  "reconnect-max: 500ms"
topo_set_link "$CFG" a b rate 4M
topo_set_link "$CFG" a b queue-size 2M

ns_start_replica "$CFG" b
ns_start_primary "$CFG" a
t0=$SECONDS
topo_wait_in_sync "$CFG" a
log "initial sync: $((SECONDS - t0))s"

# ---- helpers ----

# b_status EXPR: evaluate EXPR on b's status JSON (st); nothing when b does
# not answer.
b_status() {
  "$BLOCKRELAY" status --config "$CFG" --node b --json 2>/dev/null |
    "$PY" -c 'import json, sys
try:
    st = json.load(sys.stdin)
except Exception:
    sys.exit(0)
print(eval(sys.argv[1]))' "$1"
}
# b's consistent flags from its status ("vol0=1 wal0=1"), or from its
# scoreboard files when it is not running.
b_flags() {
  b_status '" ".join("%s=%d" % (v["name"], v["consistent"]) for v in st["volumes"])'
}
b_meta_flags() {
  "$PY" "$GW" sbflags "$T/b/vol0.meta" "$T/b/wal0.meta" |
    sed 's/ consistent=\([01]\).*/=\1/' | tr '\n' ' ' | sed 's/ $//'
}
CONSISTENT="vol0=1 wal0=1"

# wait_b_detached TIMEOUT: until b has no upstream session (its apply
# thread has stopped: the images no longer change).
wait_b_detached() {
  local i n
  for ((i = 0; i < $1 * 20; i++)); do
    n=$(b_status 'len(st["upstream"])')
    [ "$n" = 0 ] && return 0
    sleep 0.05          # polling b's control socket
  done
  fail "b still has an upstream session $1 s after the cut"
}

# a_state: the states of a's peer (one per volume of the group), distinct.
a_state() { peer_field "$CFG" a state | sort -u | tr '\n' ' ' | sed 's/ $//'; }

# writer progress: the last pair whose marker a acknowledged (lower bound).
progress() { cat "$T/progress"; }

# check_b LABEL [--expect-highest N]: b's images hold one prefix of the
# stream; sets HIGHEST.
check_b() {
  local label=$1 out
  shift
  out=$("$PY" "$GW" check "$T/b/vol0.img" "$T/b/wal0.img" "$@" \
    2>"$T/check.out") || {
    cat "$T/check.out" >&2
    fail "$label: b's volumes are not one prefix of the group's writes"
  }
  HIGHEST=$(sed -n 's/^highest=\([0-9]*\) .*/\1/p' <<<"$out")
  CHECK_LINE=$out
}

# watch_resync LABEL: after b came back (link up or restarted), sample b's
# consistent flags until a's peer is replicating and both of b's volumes
# are consistent.  Counts samples with both volumes inconsistent and with
# the two flags differing.
watch_resync() {
  local label=$1 i f s both_false=0 mixed=0 mf= states=" " t
  t=$(date +%s%N)
  for ((i = 0; i < 60 * 20; i++)); do
    f=$(b_flags)
    s=$(a_state)
    case "$states" in *" $s "*) ;; *) states="$states$s " ;; esac
    case "$f" in
      "vol0=0 wal0=0") both_false=$((both_false + 1)) ;;
      "vol0=0 wal0=1"|"vol0=1 wal0=0") mixed=$((mixed + 1)); mf=$f ;;
    esac
    if [ "$s" = replicating ] && [ "$f" = "$CONSISTENT" ]; then
      log "$label: resynced in $((($(date +%s%N) - t) / 1000000)) ms;" \
        "a went through" \
        "[$states], b's volumes inconsistent in $both_false samples" \
        "(flags differing in $mixed)"
      [ $both_false -gt 0 ] && RESYNC_INCONSISTENT=$((RESYNC_INCONSISTENT + 1))
      [ $mixed -eq 0 ] || MIXED_SEEN="$MIXED_SEEN${MIXED_SEEN:+;} $label: '$mf' in $mixed samples"
      return 0
    fi
    sleep 0.05          # sampling the flags during the resync
  done
  fail "$label: not back in sync within 60 s (a: $s, b: $f)"
}

# ---- the writer ----
WRITER_OUT=$T/writer.out
ip netns exec "$NS_a" "$PY" "$GW" write "$NBD_URI_NS/vol0" "$NBD_URI_NS/wal0" \
  --max-seconds 600 --slots 1024 --progress "$T/progress" \
  --rate 20 --burst-rate 0 --burst-ms 1000 \
  >"$WRITER_OUT" 2>>"$T/writer.log" &
WPID=$!
BR_PIDS+=("$WPID")
wait_for_file "$T/progress" "$WPID"

# wait_writes N TIMEOUT: until the writer has N more pairs acknowledged.
wait_writes() {
  local want=$(($(progress) + $1)) i
  for ((i = 0; i < $2 * 20; i++)); do
    [ "$(progress)" -ge "$want" ] && return 0
    kill -0 "$WPID" 2>/dev/null || fail "the writer exited; see writer.log"
    sleep 0.05          # polling the writer's progress file
  done
  fail "writes stalled at pair $(progress) (waited ${2}s for $want)"
}

# ---- the cycles ----
BEHIND=0                # checks that caught b behind the writer
CHECKS=0
RESYNC_INCONSISTENT=0
MIXED_SEEN=
first=$((RANDOM % 2))
t0=$SECONDS
for ((c = 1; c <= CYCLES; c++)); do
  if [ $(((c + first) % 2)) -eq 0 ]; then kind=cut; else kind=kill; fi
  # Ready: a replicating, b's group consistent.
  wait_peer_state "$CFG" a 60 replicating >/dev/null ||
    fail "cycle $c: a's peer is not replicating"
  for ((i = 0; i < 200; i++)); do
    [ "$(b_flags)" = "$CONSISTENT" ] && break
    sleep 0.05          # SYNCED may still be on its way to b
  done
  [ "$(b_flags)" = "$CONSISTENT" ] ||
    fail "cycle $c: a is replicating but b reads '$(b_flags)'"
  wait_writes 5 10
  rsleep 0 800
  # A burst: the writer outruns the link (as fast as a answers, until the
  # 2 MiB queue is full) and b falls behind, until the fault at a random
  # point.
  kill -USR1 "$WPID"
  rsleep 50 600
  st=$(a_state)
  before=$(progress)
  if [ $kind = cut ]; then
    link_cut a b
  else
    kill9 b
  fi
  kill -USR2 "$WPID"
  [ "$st" = replicating ] ||
    fail "cycle $c: a's peer was '$st' just before the $kind"
  wait_peer_state "$CFG" a 5 logging connecting handshake >/dev/null ||
    fail "cycle $c: a did not notice the $kind"
  if [ $kind = cut ]; then
    wait_b_detached 5
    flags=$(b_flags)
  else
    flags=$(b_meta_flags)
  fi
  [ "$flags" = "$CONSISTENT" ] ||
    fail "cycle $c: $kind during replication, but b reads '$flags'"
  check_b "cycle $c ($kind)"
  CHECKS=$((CHECKS + 1))
  [ "$HIGHEST" -lt "$before" ] && BEHIND=$((BEHIND + 1))
  # a keeps serving writes while b is away.
  wait_writes 5 10
  log "cycle $c: $kind at +$((SECONDS - t0))s, writer at pair >= $before;" \
    "b holds the prefix up to $HIGHEST ($((before - HIGHEST)) behind):" \
    "$CHECK_LINE"
  rsleep 0 500
  if [ $kind = cut ]; then link_restore a b; else ns_start_replica "$CFG" b; fi

  # Every third cycle: the same fault again while a resyncs b.
  if [ $((c % 3)) -eq 0 ]; then
    s=$(wait_peer_state "$CFG" a 10 syncing replicating) ||
      fail "cycle $c: a did not reconnect to b"
    s=${s%% *}                        # one state per volume: the group's
    if [ "$s" = syncing ]; then
      rsleep 0 300
      s=$(a_state)
      if [ $kind = cut ]; then link_cut a b; else kill9 b; fi
      wait_peer_state "$CFG" a 5 logging connecting handshake >/dev/null ||
        fail "cycle $c: a did not notice the second $kind"
      if [ $kind = cut ]; then
        wait_b_detached 5
        flags=$(b_flags)
      else
        flags=$(b_meta_flags)
      fi
      # A copy that is not one prefix of the group's writes (a resync
      # was under way) must not claim that any of its volumes is
      # consistent: the group is inconsistent until all are in sync.
      r=prefix
      "$PY" "$GW" check "$T/b/vol0.img" "$T/b/wal0.img" \
        >"$T/check.line" 2>"$T/check.out" || r="not a prefix"
      log "cycle $c: second $kind (a was $s): b reads '$flags', $r:" \
        "$(cat "$T/check.line")"
      if [ "$r" != prefix ] && [ "$flags" != "vol0=0 wal0=0" ]; then
        head -n 45 "$T/check.out" >&2
        fail "cycle $c: b's volumes are not one prefix of the group's" \
          "writes (mid-resync), yet b reads '$flags'"
      fi
      [ "$r" = prefix ] && CHECKS=$((CHECKS + 1))
      rsleep 0 300
      if [ $kind = cut ]; then link_restore a b; else ns_start_replica "$CFG" b; fi
    else
      log "cycle $c: the resync was over before a second $kind"
    fi
  fi
  watch_resync "cycle $c"
done

# ---- the end ----
kill -TERM "$WPID"
rc=0
wait_exit "$WPID" 30 "the writer" || rc=$?
[ $rc -eq 0 ] || fail "the writer failed (exit $rc); see writer.log"
last=$(sed -n 's/^last=//p' "$WRITER_OUT")
[ -n "$last" ] || fail "the writer did not report its last pair"
wait_in_sync "$CFG" a 60
[ "$(b_flags)" = "$CONSISTENT" ] || fail "in sync at the end, but b reads '$(b_flags)'"
topo_stop a b
topo_same vol0 a b
topo_same wal0 a b
check_b "the end" --expect-highest "$last"
log "end: $CHECK_LINE"
log "$CYCLES cycles in $((SECONDS - t0))s: $CHECKS prefix checks passed," \
  "$BEHIND of them with b behind the writer; $last pairs written;" \
  "$RESYNC_INCONSISTENT resyncs seen marking both volumes inconsistent"
[ -z "$MIXED_SEEN" ] ||
  log "note: b's two volumes read different consistent flags during a resync:$MIXED_SEEN"
[ $BEHIND -ge 1 ] ||
  fail "no cut or crash caught b behind the writer: the test proved nothing"
