#!/usr/bin/env bash
# Resync by checksum: each dirty region is first sent as a hash, and only
# the regions whose hash differs on the replica are sent as data.
#  1. An unchanged volume: a pair with a 1G volume (16384 regions of 64K),
#     64M of random data written at scattered offsets and in sync.
#     `blockrelay resync --peer b --checksum` hashes every region: the
#     primary's peer sent_bytes grows by less than 1% of the volume, no
#     region differs, and exactly 16384 regions were hashed.  A full
#     `blockrelay resync --peer b` afterwards, the control, sends at least
#     the 64M written (so the counter measures what is sent).
#  2. After a primary crash, on a link with `resync: checksum`: an async
#     link with a rate cap, so the replica lags, under a random-write load;
#     the primary gets SIGKILL mid-load and the replica is stopped cleanly.
#     The set D of regions whose contents differ between the two images is
#     computed from the files (not empty, or the test proves nothing).  On
#     restart the primary resyncs by checksum: exactly |D| regions differ,
#     at most |D| regions of data are sent, at least |D| regions are
#     hashed, and once in sync the images are identical.
. "$(dirname "$0")/lib.sh"
need nbdkit fio python3
fio --enghelp=nbd >/dev/null 2>&1 || skip "fio has no nbd engine"

G=65536

# jpeer CFG FIELD: FIELD of the primary a's only peer (status --json).
jpeer() {
  "$BLOCKRELAY" status --config "$1" --node a --json |
    python3 -c 'import json, sys
p = json.load(sys.stdin)["volumes"][0]["peers"]
assert len(p) == 1, p
print(p[0][sys.argv[1]])' "$2" || fail "no field $2 in a's status"
}

# wait_resynced CFG FIELD TARGET: until the peer is replicating with
# nothing dirty or queued and FIELD has reached TARGET (a resync started by
# the operator may be marked a moment after the command returns), at most
# 60 s.
wait_resynced() {
  local cfg=$1 field=$2 target=$3 i v
  for ((i = 0; i < 1200; i++)); do
    v=$(jpeer "$cfg" "$field")
    if [ "$v" -ge "$target" ] &&
       "$BLOCKRELAY" status --config "$cfg" --node a --wait replicating \
         --timeout 0.1 >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.05          # polling the control socket
  done
  "$BLOCKRELAY" status --config "$cfg" --node a >&2 || true
  fail "$field is $v after 60 s, waited for $target (and in sync)"
}


# ================= 1. an unchanged volume =================
CFG=$T/p1.yaml
GIB=$((1 << 30))
REGIONS=$((GIB / G))
write_pair_config "$CFG" sync 1G "" "activity-window: 0"
C=(--config "$CFG" --node a)
start_replica "$CFG" b
start_primary "$CFG" a "" assume-clean=true
# 64 distinct 1M blocks at random offsets (fio's random map: no repeats).
fio --name=scatter --ioengine=nbd --uri="$NBD_URI/vol0" --rw=randwrite \
  --bs=1M --iodepth=8 --size=1G --io_size=64M --randseed=$RANDOM \
  --output="$T/fio1.out" || { cat "$T/fio1.out" >&2; fail "fio failed"; }
wait_in_sync "$CFG" a

expect_err 1 "c is not a peer of node a" resync "${C[@]}" --peer c --checksum
expect_err 1 "node a has no group named 'nope'" resync "${C[@]}" --peer b --group nope
expect_err 2 "give --peer NODE" resync "${C[@]}" --checksum
expect_err 1 "cannot reach $T/none.sock" resync --socket "$T/none.sock" --peer b
[ "$(jpeer "$CFG" state)" = replicating ] || fail "a refused resync changed the peer"

s0=$(jpeer "$CFG" sent_bytes)
h0=$(jpeer "$CFG" resync_hashed_regions)
d0=$(jpeer "$CFG" resync_differ_regions)
out=$("$BLOCKRELAY" resync "${C[@]}" --peer b --checksum) || fail "resync --checksum failed"
[ "$out" = "peer b of group vol0: resync started (checksum)" ] || fail "resync --checksum said '$out'"
wait_resynced "$CFG" resync_hashed_regions $((h0 + REGIONS))
s1=$(jpeer "$CFG" sent_bytes)
h1=$(jpeer "$CFG" resync_hashed_regions)
d1=$(jpeer "$CFG" resync_differ_regions)
log "checksum resync of an unchanged 1G volume: $((s1 - s0)) bytes sent, $((h1 - h0)) regions hashed, $((d1 - d0)) differ"
[ $((h1 - h0)) -eq $REGIONS ] || fail "$((h1 - h0)) regions hashed, not the volume's $REGIONS"
[ $((d1 - d0)) -eq 0 ] || fail "$((d1 - d0)) regions of an unchanged volume differ"
[ $((s1 - s0)) -lt $((GIB / 100)) ] ||
  fail "the checksum resync sent $((s1 - s0)) bytes, not less than 1% of 1 GiB"
[ "$(jpeer "$CFG" resync_sent_bytes)" -eq 0 ] ||
  fail "the checksum resync sent $(jpeer "$CFG" resync_sent_bytes) bytes of data"

# The control: a full resync sends the data.
out=$("$BLOCKRELAY" resync "${C[@]}" --peer b) || fail "resync failed"
[ "$out" = "peer b of group vol0: resync started (full)" ] || fail "resync said '$out'"
wait_resynced "$CFG" resync_sent_bytes $((64 << 20))
s2=$(jpeer "$CFG" sent_bytes)
h2=$(jpeer "$CFG" resync_hashed_regions)
log "full resync of the same volume: $((s2 - s1)) bytes sent, $(jpeer "$CFG" resync_sent_bytes) of data"
[ $((s2 - s1)) -ge $((64 << 20)) ] || fail "the full resync sent only $((s2 - s1)) bytes"
[ $((h2 - h1)) -eq 0 ] || fail "the full resync hashed $((h2 - h1)) regions"
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
rm -rf "$T/a" "$T/b"

# ================= 2. after a primary crash, resync: checksum =================
CFG=$T/p2.yaml
SIZE=$((128 << 20))
write_pair_config "$CFG" async 128M "resync: checksum, rate: 10M, queue-size: 8M"
C=(--config "$CFG" --node a)
start_replica "$CFG" b
start_primary "$CFG" a "" assume-clean=true
fio --name=load --ioengine=nbd --uri="$NBD_URI/vol0" --rw=randwrite \
  --bsrange=4k-64k --iodepth=16 --size=128M --time_based --runtime=60 \
  --randseed=$RANDOM --output="$T/fio2.out" 2>"$T/fio2.err" &
FIO=$!
BR_PIDS+=("$FIO")
# Kill once the replica lags: several MiB queued for it.
for ((i = 0; i < 400; i++)); do
  [ "$(jpeer "$CFG" queued_bytes)" -ge $((4 << 20)) ] && break
  kill -0 $FIO 2>/dev/null || { cat "$T/fio2.err" >&2; fail "fio died"; }
  sleep 0.05            # polling the control socket
done
q=$(jpeer "$CFG" queued_bytes)
[ "$q" -ge $((4 << 20)) ] || fail "the replica never lagged ($q bytes queued)"
kill -9 "$PID_a"
wait "$PID_a" 2>/dev/null || true
PID_a=
wait $FIO 2>/dev/null || true           # fio fails: its server died
stop_node b
log "primary killed with $q bytes queued for b; replica stopped"

# D: the regions whose contents differ between the two images now.
python3 - "$T/a/vol0.img" "$T/b/vol0.img" $G > "$T/D" <<'PY'
import sys
a, b, g = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(a, "rb") as fa, open(b, "rb") as fb:
    r = 0
    while True:
        x, y = fa.read(g), fb.read(g)
        if not x and not y:
            break
        if x != y:
            print(r)
        r += 1
PY
nd=$(wc -l < "$T/D")
[ "$nd" -gt 0 ] || fail "the crash left no region differing: the test proves nothing"
log "$nd regions differ between the images after the crash"

start_replica "$CFG" b
start_primary "$CFG" a                  # waits for replicating (resynced)
wait_in_sync "$CFG" a
hashed=$(jpeer "$CFG" resync_hashed_regions)
differ=$(jpeer "$CFG" resync_differ_regions)
data=$(jpeer "$CFG" resync_sent_bytes)
log "resync after the crash: $hashed regions hashed, $differ differ, $data bytes of data"
[ "$differ" -eq "$nd" ] || fail "$differ regions differed in the resync, the images had $nd"
[ "$data" -le $((nd * G)) ] || fail "$data bytes of data sent for $nd regions"
[ "$data" -gt 0 ] || fail "no data sent for $nd differing regions"
[ "$hashed" -ge "$nd" ] || fail "only $hashed regions hashed for $nd differing"
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
grep -q "not shut down cleanly" "$T/a.log" || fail "the restart did not notice the crash"
log "ok: checksum resync of an unchanged volume and after a crash"
