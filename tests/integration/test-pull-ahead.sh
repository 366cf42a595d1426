#!/usr/bin/env bash
# Congestion on a slow async link (rate: 4M, queue-size: 8M).
#
# on-congestion: pull-ahead — fio writes sequentially for 8 s: writers are
# not throttled to the link rate (throughput > 4x the rate), the peer goes
# `ahead` (its queue dropped, bits kept) or `syncing` during the load, its
# queue never exceeds queue-size, and after the load it converges.
#
# on-congestion: block (control) — the same load is held to about the link
# rate (once the 8 MiB queue is full, writers wait for the link), which
# shows the cap itself works.
#
# Both runs end by stopping the nodes and comparing the copies.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
need nbdkit fio
start=$SECONDS
RATE=$((4 << 20))
CFG=$T/pa.yaml

# load NAME: 8 s of 1 MiB sequential writes (QD 4) over the 32 MiB volume;
# prints the average write throughput in bytes/s.
load() {
  fio --name="$1" --ioengine=nbd --uri="$NBD_URI/vol0" --rw=write --bs=1M \
    --iodepth=4 --size=32M --time_based --runtime=8 --output-format=json \
    --output="$T/$1.json" || fail "fio $1"
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["jobs"][0]["write"]["bw_bytes"])' "$T/$1.json"
}

# ---- pull-ahead ----
write_pair_config "$CFG" async 32M "rate: 4M, queue-size: 8M, on-congestion: pull-ahead"
start_replica "$CFG" b
start_primary_nowait "$CFG" a "$T/a.log" assume-clean=true
wait_in_sync "$CFG" a 30
start_sampler "$T/s1" "$CFG" a
bw=$(load pull-ahead)
t0=$SECONDS
wait_in_sync "$CFG" a 120
conv=$((SECONDS - t0))
stop_sampler "$T/s1"
samples "$T/s1" a > "$T/s1.txt"; [ -z "${BR_VERBOSE:-}" ] || { cat "$T/s1.txt"; grep -v "cannot connect" "$T/a.log" | tail -30; tail -30 "$T/b.log"; } >&2
log "pull-ahead: writers achieved $((bw / 1024)) KiB/s on a $((RATE / 1024)) KiB/s link; converged $conv s after the load"
[ "$bw" -gt $((4 * RATE)) ] ||
  { tail -n 30 "$T/s1.txt" >&2; fail "writers throttled under pull-ahead: $bw B/s <= 4 x $RATE"; }
python3 - "$T/s1" $((8 << 20)) <<'PY' || { cat "$T/s1.txt" >&2; fail "pull-ahead not as expected"; }
import json, sys
S = [s["st"]["volumes"][0]["peers"][0] for s in map(json.loads, open(sys.argv[1])) if s["st"]]
states = [p["state"] for p in S]
assert "ahead" in states or "syncing" in states, "peer never ahead/syncing: %s" % sorted(set(states))
lost = [p for p in S if p["state"] not in ("replicating", "ahead", "syncing")]
assert not lost, "the link was lost during or after the load: %s" % lost[:3]
mq = max(p["queued_bytes"] for p in S)
assert mq <= int(sys.argv[2]), "queue reached %d bytes > queue-size" % mq
print("states seen: %s; max queued %d" % (sorted(set(states)), mq), file=sys.stderr)
PY
# 32 MiB dirty + 8 MiB queued at 4 MiB/s: 10 s; allow twice that.
[ "$conv" -le 20 ] || fail "convergence took $conv s for at most 40 MiB on a 4 MiB/s link"
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
no_bad_frames

# ---- block (control): the link rate caps the writers ----
rm -rf "$T/a" "$T/b"
write_pair_config "$CFG" async 32M "rate: 4M, queue-size: 8M, on-congestion: block"
start_replica "$CFG" b
start_primary_nowait "$CFG" a "$T/a2.log" assume-clean=true
wait_in_sync "$CFG" a 30
bw=$(load block)
log "block: writers achieved $((bw / 1024)) KiB/s on a $((RATE / 1024)) KiB/s link"
# 8 s at 4 MiB/s plus the 8 MiB queue: about 5 MiB/s.
[ "$bw" -lt $((RATE * 5 / 2)) ] || fail "the link rate did not hold writers back: $bw B/s"
[ "$bw" -gt $((RATE / 2)) ] || fail "writers far below the link rate: $bw B/s"
wait_in_sync "$CFG" a 60
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
no_bad_frames
log "done in $((SECONDS - start)) s"
