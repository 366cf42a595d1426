#!/usr/bin/env bash
# A power cut of the primary after a bit was cleared past the activity
# window, its region never made durable on the primary itself.
#
# The cycle tests (test-powercut-*.sh) restart their processes every
# second or so, well inside the activity window that holds a
# recently written region's bit set (bits.c, C4); this one sets the
# window to 2s (settings: activity-window) and waits it out.
# a -> b, sync, 64M, BLOCKRELAY_CRASHSIM=1 on both:
#   1. one 64K write to region 10 of a, without FUA and without a flush
#      (legal: such a write may be lost by a power cut of a);
#   2. wait until a has cleared region 10's bit for b (b acknowledged it
#      durable; the window passed) -- read from a's scoreboard file, the
#      readiness signal;
#   3. one write to region 20: its mark msyncs the scoreboard;
#   4. SIGKILL a, cut its power (every volatile write lost), stop b;
#   5. cover: every region where a and b differ has its bit for b set in
#      a's scoreboard.  If region 10's clear reached durable storage while
#      a's own write to it had not, a and b differ there with no bit: the
#      resync never repairs it (I1; the copies stay different);
#   6. both restart, a resyncs b, and the images must be identical.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
. "$(dirname "$0")/powerlib.sh"
need nbdkit
need_ackwriter
need_powercut

CFG=$T/p.yaml
write_pair_config "$CFG" sync 64M "" "activity-window: 2s"
start_replica "$CFG" b
start_primary_nowait "$CFG" a
wait_in_sync "$CFG" a

# write_region N BYTE: one 64K write of BYTE to region N, nothing else.
write_region() {
  "$PY" - "$NBD_URI/vol0" "$1" "$2" <<'EOF'
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(bytes([int(sys.argv[3])]) * 65536, int(sys.argv[2]) * 65536)
h.shutdown()
EOF
}

# bit_set N: region N's bit for b is set in a's scoreboard (as a holds it).
bit_set() {
  "$POWERCUT" bits "$T/a/vol0.meta" b | "$PY" -c '
import sys
n = int(sys.argv[1])
for line in sys.stdin.readlines()[1:]:
    lo, _, hi = line.strip().partition("-")
    if int(lo) <= n <= int(hi or lo):
        sys.exit(0)
sys.exit(1)' "$1"
}

write_region 10 90
bit_set 10 || fail "region 10 is not marked after its write"
t0=$SECONDS
while bit_set 10; do          # polling a's scoreboard for the clear
  [ $((SECONDS - t0)) -lt 90 ] || fail "region 10's bit never cleared"
  sleep 0.5
done
log "region 10's bit cleared after $((SECONDS - t0))s"
write_region 20 165
kill9 a
power_cut a all
stop_node b
cover_check "$T/a/vol0.img" "$T/a/vol0.meta" b "$T/b/vol0.img" \
  "after the activity window"
start_replica "$CFG" b
start_primary_nowait "$CFG" a
wait_in_sync "$CFG" a
images_same "$T/a/vol0.img" "$T/b/vol0.img" "after the activity window"
stop_node a
stop_node b
