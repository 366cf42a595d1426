#!/usr/bin/env bash
# A flood at a replica's listener (R2b in src/replica.c).  While qemu-io
# writes to the primary a, netpoke.py keeps 40 connections open to b's
# listener (max-connections is 16 here) for 8 s and sends them random
# bytes and garbage frames (right magic, nonsense fields, huge announced
# lengths, HELLOs of noise).  b must not crash; it must refuse the
# connections beyond its limit with the rate-limited log line; its RSS after
# the flood must stay within 32 MiB of before; the live session from a is
# not disturbed (no reconnect) and the images are identical at the end.
. "$(dirname "$0")/lib.sh"
need nbdkit qemu-io python3
POKE=$SRCDIR/tests/integration/netpoke.py
CFG=$T/p.yaml
write_pair_config "$CFG" sync 64M "" "max-connections: 16, handshake-timeout: 2s"
# ASan holds freed memory in a quarantine (256 MiB by default), which an
# RSS bound would measure instead of the daemon: keep it small.
if [ "${BR_SANITIZE:-}" = address ]; then
  export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1
fi
start_replica "$CFG" b
start_primary "$CFG" a
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$PID_b/status"; }
qemu-io -f raw -c 'write -P 0x11 0 4M' "$NBD_URI/vol0" >/dev/null || fail "write"
before=$(rss)
sessions() { grep -c "replicating from a" "$T/b.log" || true; }
s0=$(sessions)

python3 "$POKE" flood "$PORT_B" 8 40 > "$T/flood.out" 2>&1 &
FLOOD=$!
BR_PIDS+=("$FLOOD")
i=0
while kill -0 "$FLOOD" 2>/dev/null; do
  i=$((i + 1))
  qemu-io -f raw -c "write -P $((i % 250 + 1)) $(((i % 60) * 1048576)) 1M" \
    "$NBD_URI/vol0" >/dev/null || fail "write $i during the flood"
done
wait "$FLOOD" || fail "the flood client failed"
cat "$T/flood.out" >&2
kill -0 "$PID_b" || fail "b died during the flood"
after=$(rss)
log "b's RSS: $before KiB before, $after KiB after the flood ($i writes made)"
[ $((after - before)) -lt $((32 * 1024)) ] ||
  fail "b's RSS grew by $(( (after - before) / 1024 )) MiB during the flood"
n=$(grep -c "too many connections: refused one from 127.0.0.1" "$T/b.log" || true)
[ "$n" -ge 1 ] || fail "b never refused a connection beyond max-connections"
[ "$n" -le 12 ] || fail "the refusal line is not rate limited ($n lines in 8 s)"
grep -q "closed during handshake: bad frame" "$T/b.log" ||
  fail "b did not log the garbage frames"
[ "$(sessions)" = "$s0" ] || fail "the live session from a was restarted"
grep -q "logging writes until it is back" "$T/a.log" &&
  fail "the primary lost its link to b"
qemu-io -f raw -c 'write -P 0x77 63M 1M' "$NBD_URI/vol0" >/dev/null || fail "write after"
wait_in_sync "$CFG" a
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
log "$n rate-limited refusal lines; b survived the flood; replication unaffected"
