#!/usr/bin/env bash
# I7 — bad input is refused, not trusted.  Start only the replica (node b)
# of a pair, then play every malformed-input scenario of br-frametool
# against it.  After each one: the daemon is still alive, its log names the
# reason, and a valid session (HELLO, AUTH, WRITE of a known pattern at
# offset 0, FLUSH, ACK durable) still works.  At the end the daemon stops
# cleanly and its image holds the pattern at offset 0 and zeros everywhere
# else: no refused frame was applied.
. "$(dirname "$0")/lib.sh"

FRAMETOOL=$BUILDDIR/br-frametool
[ -x "$FRAMETOOL" ] || fail "$FRAMETOOL is not built (make br-frametool)"

SIZE=64M
SIZE_BYTES=$((64 << 20))
BLOCK=4096

write_pair_config "$T/c.yaml" sync "$SIZE"
start_replica "$T/c.yaml" b
DLOG=$T/b.log

ft() {
  timeout 60 "$FRAMETOOL" 127.0.0.1 "$PORT_B" "$@" --size "$SIZE"
}

alive() {
  local state
  kill -0 "$PID_b" 2>/dev/null || return 1
  state=$(awk '{print $3}' "/proc/$PID_b/stat" 2>/dev/null) || return 1
  [ "$state" != Z ]
}

# wait_log FROM PHRASE: PHRASE (fixed string) appears in the daemon's log
# after line FROM, within 10 s (the daemon logs as it closes, which may be
# a moment after the client saw the close).
wait_log() {
  local from=$1 phrase=$2 i
  for ((i = 0; i < 200; i++)); do
    tail -n +"$((from + 1))" "$DLOG" | grep -qF -- "$phrase" && return 0
    sleep 0.05
  done
  return 1
}

valid() {
  local out
  out=$(ft valid --pattern "$T/pattern" 2>&1) || {
    printf '%s\n' "$out" >&2
    fail "valid session failed $1"
  }
}

# check SCENARIO PHRASE: play SCENARIO; assert it behaved, the daemon
# lives, the log names PHRASE, and a valid session still works.
check() {
  local scenario=$1 phrase=$2 before out rc=0
  before=$(wc -l < "$DLOG")
  out=$(ft "$scenario" 2>&1) || rc=$?
  printf '%s\n' "$out" >&2
  alive || fail "blockrelayd died after $scenario"
  [ $rc -eq 0 ] || fail "$scenario: server did not behave (exit $rc)"
  wait_log "$before" "$phrase" ||
    fail "$scenario: no '$phrase' in $DLOG"
  if [ "$scenario" = hello-wrong-size ]; then
    grep -q "$SIZE_BYTES" <<<"$out" ||
      fail "hello-wrong-size: refusal does not name $SIZE_BYTES"
    grep -q "$((SIZE_BYTES + (1 << 20)))" <<<"$out" ||
      fail "hello-wrong-size: refusal does not name $((SIZE_BYTES + (1 << 20)))"
  fi
  valid "after $scenario"
  log "ok: $scenario ($phrase)"
}

valid "before any bad frame"

check garbage                 "bad frame: bad magic"
check bad-magic               "bad frame: bad magic"
check bad-version             "bad frame: unsupported version"
check bad-header-sum          "bad frame: header checksum mismatch"
check unknown-type            "bad frame: unknown frame type"
check oversized               "bad frame: payload too large for type"
check truncated               "closed by peer"
check bad-payload-sum         "bad frame: payload checksum mismatch"
check write-before-hello      "expected HELLO, got frame type 4"
check write-before-auth       "expected AUTH, got frame type 4"
check hello-wrong-node        "this is node b, not not-b"
check hello-unknown-from      "node stranger is not a node of"
check hello-unknown-group     "no group named no-such-group on node b"
check hello-wrong-size \
  "volume vol0 is $SIZE_BYTES bytes here, $((SIZE_BYTES + (1 << 20))) bytes on a"
check hello-wrong-granularity "volume vol0 has granularity 65536 here, 131072 on a"
check out-of-range            "range past end of volume"
check zero-out-of-range       "range past end of volume"
check bad-volume              "frame names volume 1 of 1"
check seq-backwards           "sequence went from 10 to 5"
check seq-zero                "sequence"
check synced-gen-zero       "bad frame: SYNCED with generation 0"

stop_node b
! grep -E "AddressSanitizer|runtime error|ThreadSanitizer" "$DLOG" ||
  fail "sanitizer report in $DLOG"

img=$T/b/vol0.img
[ "$(stat -c %s "$img")" -eq "$SIZE_BYTES" ] ||
  fail "$img is $(stat -c %s "$img") bytes, not $SIZE_BYTES"
cmp -n "$BLOCK" "$img" "$T/pattern" ||
  fail "$img does not hold the valid pattern at offset 0"
cmp -i "$BLOCK:0" -n "$((SIZE_BYTES - BLOCK))" "$img" /dev/zero ||
  fail "$img: a refused frame was applied (non-zero data after the pattern)"
log "image holds the pattern at 0 and zeros elsewhere"
