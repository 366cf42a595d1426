#!/usr/bin/env bash
# I3 under fire: a resync racing live writes to the SAME regions.
#
# With the replica down, 8 MiB of scattered regions (256 KiB each) get
# random contents (only bits are set).  The replica comes back with a low
# resync-rate, so the resync of those regions is slow; while the peer is
# `syncing`, a libnbd client hammers the same regions with small random
# writes (and some zeroes and FUA writes), 32 in flight, mostly around the
# region the resync is reading now, never two overlapping at once so the
# final content of every block is known: the writer keeps a model.  If a
# resync read of a region and a live write to it could interleave (resync
# reads old data, the live write is queued, then the stale resync record
# is queued after it), the replica ends with old data while the primary's
# bit is clear: the copies differ at the end.
#
# Two rounds each for a sync and an async link.  Each round ends by
# stopping both nodes and comparing: primary == replica == writer's model.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
need nbdkit
need_ackwriter                        # $PY with libnbd: the writer below

SIZE=64M
GRAN=${BR_GRAN:-262144}   # region size (a larger region: a longer resync read)
NREG=$((8 * 1048576 / GRAN))  # 8 MiB of regions
STRIDE=7                  # region indices 3, 10, 17, ... (scattered)
RESYNC_RATE=2M            # 8 MiB dirty -> about 4 s of syncing

# The writer.  init: fill every region with random data (synchronously).
# hammer: small random writes inside the regions until STOPFILE exists.
# Both keep the model of the whole volume in MODEL (a file of SIZE bytes).
cat > "$T/writer.py" <<'PY'
import json, nbd, os, random, subprocess, sys, threading, time
mode, uri, model_path, size, nreg, stride, gran = sys.argv[1:8]
size, nreg, stride = int(size), int(nreg), int(stride)
GR, BS = int(gran), 512
regions = [3 + i * stride for i in range(nreg)]
assert (regions[-1] + 1) * GR <= size
h = nbd.NBD()
h.connect_uri(uri)
if mode == "init":
    model = bytearray(size)
    for r in regions:
        data = os.urandom(GR)
        h.pwrite(data, r * GR)
        model[r * GR:(r + 1) * GR] = data
    h.flush()
else:
    stopfile, countfile, seed, cli, cfg = sys.argv[8:13]
    model = bytearray(open(model_path, "rb").read())
    rnd = random.Random(int(seed))
    # The resync walks the regions in ascending order and a region leaves
    # the out-of-sync set when it is durable on the replica, so
    # resync_left_bytes tells where the resync is reading now.  Most writes
    # go to the regions around that point, where a race is possible.
    frontier = [0]
    def watch():
        while not os.path.exists(stopfile):
            r = subprocess.run([cli, "status", "--config", cfg, "--node", "a",
                                "--json"], capture_output=True, text=True)
            try:
                p = json.loads(r.stdout)["volumes"][0]["peers"][0]
                if p["state"] == "syncing":
                    frontier[0] = max(0, nreg - p["resync_left_bytes"] // GR)
            except (ValueError, KeyError, IndexError):
                pass
            time.sleep(0.02)
    threading.Thread(target=watch, daemon=True).start()
    def pick_region():
        if rnd.random() < 0.9:
            k = min(nreg - 1, frontier[0] + rnd.randint(0, 2))
            return regions[max(0, k)]
        return rnd.choice(regions)
    QD = 32
    inflight = {}       # cookie -> (buffer, first block, last block + 1)
    busy = set()        # 512-byte blocks with a write in flight
    done = zeros = fua = 0
    deadline = time.time() + 120
    stopping = False
    while True:
        if not stopping and os.path.exists(stopfile):
            stopping = True
        if time.time() > deadline:
            sys.exit("writer: nobody told me to stop within 120 s")
        tries = 0
        while not stopping and len(inflight) < QD and tries < 64:
            tries += 1
            r = pick_region()
            nblk = rnd.randint(1, 32)                  # 512 B .. 16 KiB
            first = r * GR // BS + rnd.randint(0, GR // BS - nblk)
            blks = range(first, first + nblk)
            if any(b in busy for b in blks):
                continue
            off, n = first * BS, nblk * BS
            flags = 0
            if rnd.random() < 0.1:
                flags |= nbd.CMD_FLAG_FUA
                fua += 1
            if rnd.random() < 0.05:
                c = h.aio_zero(n, off, flags=flags)
                buf = None
                model[off:off + n] = bytes(n)
                zeros += 1
            else:
                data = os.urandom(n)
                buf = nbd.Buffer.from_bytearray(bytearray(data))
                c = h.aio_pwrite(buf, off, flags=flags)
                model[off:off + n] = data
            busy.update(blks)
            inflight[c] = (buf, first, first + nblk)
        if not inflight:
            break
        h.poll(-1)
        for c in list(inflight):
            if h.aio_command_completed(c):      # raises if the write failed
                _, a, b = inflight.pop(c)
                busy.difference_update(range(a, b))
                done += 1
                if done % 50 == 0:
                    with open(countfile + ".tmp", "w") as f:
                        f.write("%d\n" % done)
                    os.rename(countfile + ".tmp", countfile)
    h.flush()
    print("writer: %d writes (%d zero, %d FUA)" % (done, zeros, fua))
    with open(countfile, "w") as f:
        f.write("%d\n" % done)
h.shutdown()
with open(model_path, "wb") as f:
    f.write(model)
PY

run_round() {
  local mode=$1 cfg=$T/h-$1.yaml
  log "=== round: $mode link, resync-rate $RESYNC_RATE"
  rm -rf "$T/a" "$T/b" "$T/model" "$T/stop" "$T/count"

  # 0. A pair, in sync (the initial sync of the empty volume is unthrottled).
  write_pair_config "$cfg" "$mode" $SIZE "" "granularity: $GRAN"
  start_replica "$cfg" b
  start_primary "$cfg" a
  stop_node a
  stop_node b

  # 1. Replica down: random contents for the regions, only bits are set.
  write_pair_config "$cfg" "$mode" $SIZE "resync-rate: $RESYNC_RATE" "granularity: $GRAN"
  start_primary_nowait "$cfg" a "$T/a.log"
  "$PY" "$T/writer.py" init "$NBD_URI/vol0" "$T/model" 67108864 $NREG $STRIDE $GRAN \
    || fail "initial writes"
  peer_snapshot "$cfg" a
  [ "$P_dirty" -eq $((NREG * GRAN)) ] ||
    fail "expected $((NREG * GRAN)) bytes dirty with the replica down, status says $P_dirty"

  # 2. Replica back: slow resync; hammer the same regions while it runs.
  start_sampler "$T/s-$mode" "$cfg" a
  start_replica "$cfg" b
  wait_peer_match "$cfg" a syncing 30
  "$PY" "$T/writer.py" hammer "$NBD_URI/vol0" "$T/model" 67108864 $NREG $STRIDE $GRAN \
    "$T/stop" "$T/count" $RANDOM "$BLOCKRELAY" "$cfg" > "$T/writer-$mode.out" 2>&1 &
  local writer=$! i during=0
  # The resync is over when the peer leaves `syncing`.
  for ((i = 0; i < 60 * 20; i++)); do
    peer_snapshot "$cfg" a || true
    [ "$P_state" = syncing ] || break
    kill -0 $writer 2>/dev/null || { cat "$T/writer-$mode.out" >&2; fail "writer died during the resync"; }
    sleep 0.05
  done
  [ "$P_state" != syncing ] || fail "resync did not finish within 60 s"
  during=$(cat "$T/count" 2>/dev/null || echo 0)
  touch "$T/stop"
  wait $writer || { cat "$T/writer-$mode.out" >&2; fail "writer failed"; }
  cat "$T/writer-$mode.out" >&2
  [ "$P_state" = replicating ] ||
    fail "after the resync the peer is '$P_state', not replicating (last error: $P_error)"
  wait_in_sync "$cfg" a 60
  stop_sampler "$T/s-$mode"
  samples "$T/s-$mode" a > "$T/s-$mode.txt"

  # The resync really raced the writer, and it was paced by resync-rate.
  [ "$during" -ge 200 ] || fail "only $during live writes completed while syncing"
  python3 - "$T/s-$mode" <<'PY' || { tail -n 60 "$T/s-$mode.txt" >&2; fail "resync progress not as expected"; }
import json, sys
S = [json.loads(l) for l in open(sys.argv[1])]
sy = [(s["t"], s["st"]["volumes"][0]["peers"][0]) for s in S
      if s["st"] and s["st"]["volumes"][0]["peers"][0]["state"] == "syncing"]
assert sy, "never saw state syncing"
lefts = [p["resync_left_bytes"] for _, p in sy]
assert max(lefts) > 0, "resync_left_bytes was 0 throughout"
assert len(set(lefts)) >= 3, "resync_left_bytes did not move: %s" % sorted(set(lefts))
assert all(b <= a for a, b in zip(lefts, lefts[1:])), "resync_left_bytes went up: %s" % lefts
assert all("resync_rate" in p and "resync_eta" in p for _, p in sy), "no resync_rate/eta in status"
dur = sy[-1][0] - sy[0][0]
# 8 MiB at 2 MiB/s is ~4 s; unthrottled it takes well under a second.
assert dur >= 2.0, "syncing lasted only %.2f s: resync-rate not applied?" % dur
print("syncing for %.1f s, %d samples, left %d -> %d bytes" % (dur, len(sy), lefts[0], lefts[-1]), file=sys.stderr)
PY
  log "$during live writes completed during the resync"

  stop_node a
  stop_node b
  same_images "$T/a/vol0.img" "$T/b/vol0.img"
  cmp "$T/model" "$T/a/vol0.img" || fail "primary content differs from the writer's model"
  log "round $mode: primary == replica == model"
}

start=$SECONDS
# Each round is one chance to hit a race window; BR_ROUNDS overrides.
for mode in ${BR_ROUNDS:-sync async sync async}; do
  run_round "$mode"
done
no_bad_frames
log "done in $((SECONDS - start)) s"
