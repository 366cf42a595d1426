#!/usr/bin/env bash
# Per-link rate caps on a cascade of two async hops with different caps:
#
#   a --async, rate 24M-- b --async, rate 12M-- c
#
# each node in its own network namespace (netlib.sh).  fio writes 300 MiB
# sequentially at the primary a as fast as it can, far more than either
# link carries, so both links stay saturated for several seconds.  While
# they are, the bytes received from upstream (the "received_bytes" of the
# upstream entry in the receiver's status) and the bytes sent (the
# sender's peer "sent_bytes") are sampled at two instants RATE_WINDOW
# seconds apart; the rate of each hop must be within +-15% of its own cap
# (a link that ignores its cap, or the second hop running at the first
# hop's pace, fails).  A backlog on the sender at both instants (queued or
# dirty bytes, or the writer still running) shows the link was busy for
# the whole window.  The sender's status must report each link's cap
# (the peer's "rate").  Then everything converges and the three copies must
# be identical.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
. "$(dirname "$0")/netlib.sh"
need nbdkit fio
need_ackwriter                        # for $PY (status JSON parsing)

RATE1=24                              # MiB/s, a - b
RATE2=12                              # MiB/s, b - c
RATE_WINDOW=${RATE_WINDOW:-5}         # seconds between the two samples
TOL=15                                # percent

cat > "$T/src.yaml" <<EOF
volumes:
  - {name: vol0, size: 320M}
nodes:
  - {name: a, address: 127.0.0.1:10901, data-dir: data/a}
  - {name: b, address: 127.0.0.1:10902, data-dir: data/b}
  - {name: c, address: 127.0.0.1:10903, data-dir: data/c}
links:
  - {between: [a, b], mode: async, rate: ${RATE1}M}
  - {between: [b, c], mode: async, rate: ${RATE2}M}
EOF
CFG=$T/rate.yaml
topo_up "$T/src.yaml" "$CFG" "heartbeat: 200ms" "heartbeat-timeout: 3s" \
  "reconnect-max: 500ms"

t0=$SECONDS
ns_start_replica "$CFG" c
ns_start_replica "$CFG" b
ns_start_primary "$CFG" a
topo_wait_in_sync "$CFG" a b
log "a, b, c in sync (empty) after $((SECONDS - t0))s"

# The load: 300 MiB of sequential 1 MiB writes, queue depth 4.
(cd "$T" && exec ip netns exec "$NS_a" fio --name=flood --ioengine=nbd \
  --uri="$NBD_URI_NS/vol0" --rw=write --bs=1M --iodepth=4 --size=300M \
  --output="$T/fio.out") &
fio_pid=$!
BR_PIDS+=("$fio_pid")

# measure: sample both hops twice, RATE_WINDOW s apart, once hop 2 has
# started moving data; print the rates and check them.
"$PY" - "$BLOCKRELAY" "$CFG" "$RATE1" "$RATE2" "$RATE_WINDOW" "$TOL" \
  "$fio_pid" <<'EOF' || fail "a link's rate was not within ${TOL}% of its cap"
import json, os, subprocess, sys, time

br, cfg, rate1, rate2, window, tol, fio = sys.argv[1:8]
caps = {("a", "b"): int(rate1) << 20, ("b", "c"): int(rate2) << 20}
window, tol, fio = float(window), float(tol), int(fio)

def status(node):
    out = subprocess.run([br, "status", "--config", cfg, "--node", node,
                          "--json"], capture_output=True, text=True).stdout
    return json.loads(out) if out else None

def sample():
    """{(up, down): (received, sent, backlog)} and the mid time."""
    t1 = time.monotonic()
    st = {n: status(n) for n in "abc"}
    t2 = time.monotonic()
    r = {}
    for up, down in caps:
        rx = sum(u["received_bytes"] for u in st[down]["upstream"]
                 if u["node"] == up) if st[down] else None
        tx = backlog = None
        if st[up]:
            ps = [p for v in st[up]["volumes"] for p in v["peers"]
                  if p["node"] == down]
            if ps:
                tx = sum(p["sent_bytes"] for p in ps)
                backlog = sum(p["queued_bytes"] + p["dirty_bytes"] for p in ps)
            if ps:
                caps_seen[(up, down)] = {p.get("rate") for p in ps}
        r[(up, down)] = (rx, tx, backlog)
    return r, (t1 + t2) / 2, st

caps_seen = {}

def running(pid):
    try:
        os.kill(pid, 0)
        return open("/proc/%d/stat" % pid).read().split()[2] != "Z"
    except OSError:
        return False

# Readiness: the second hop carries data (the first one does before it).
deadline = time.monotonic() + 30
while True:
    s0, _, st = sample()
    if (s0[("b", "c")][0] or 0) > 4 << 20:
        break
    if time.monotonic() > deadline:
        sys.exit("hop b -> c carried no data within 30 s: %r" % s0)
    time.sleep(0.1)               # polling the control sockets
time.sleep(0.5)                   # past the first burst (a full socket buffer)
s1, t1, st1 = sample()
time.sleep(window)                # the measurement window
s2, t2, st2 = sample()
fio_running = running(fio)
ok = True
for hop, cap in caps.items():
    (rx1, tx1, bl1), (rx2, tx2, bl2) = s1[hop], s2[hop]
    dt = t2 - t1
    busy = (bl1 or 0) > 0 and (bl2 or 0) > 0 or (hop == ("a", "b") and fio_running)
    msg = "%s -> %s: cap %.1f MiB/s" % (hop[0], hop[1], cap / 2**20)
    rates = []
    if rx1 is not None and rx2 is not None:
        rates.append(("received", (rx2 - rx1) / dt))
    if tx1 is not None and tx2 is not None:
        rates.append(("sent", (tx2 - tx1) / dt))
    for what, r in rates:
        dev = 100.0 * (r - cap) / cap
        msg += ", %s %.2f MiB/s (%+.1f%%)" % (what, r / 2**20, dev)
        if abs(dev) > tol:
            ok = False
    msg += " over %.2fs; backlog %s / %s bytes%s" % (
        dt, bl1, bl2, ", writer running" if fio_running else "")
    print("rate-cap: " + msg, file=sys.stderr)
    if not rates:
        print("rate-cap: no counters for %s -> %s" % hop, file=sys.stderr)
        ok = False
    if caps_seen.get(hop) != {cap}:
        print("rate-cap: %s's peer %s reports rate %r, wanted %d"
              % (hop[0], hop[1], caps_seen.get(hop), cap), file=sys.stderr)
        ok = False
    if not busy:
        print("rate-cap: %s -> %s was not saturated for the whole window"
              % hop, file=sys.stderr)
        ok = False
sys.exit(0 if ok else 1)
EOF

rc=0
wait_exit "$fio_pid" 120 fio || rc=$?
[ $rc -eq 0 ] && grep -q "err= 0" "$T/fio.out" ||
  { cat "$T/fio.out" >&2; fail "fio failed"; }
log "300 MiB written at a after $((SECONDS - t0))s"
TOPO_SYNC_TIMEOUT=90 topo_wait_in_sync "$CFG" a b
log "c in sync after $((SECONDS - t0))s; bytes sent in all: a -> b" \
  "$(peer_field "$CFG" a sent_bytes), b -> c $(peer_field "$CFG" b sent_bytes)" \
  "(300 MiB = 314572800 written)"
topo_stop a b c
topo_same vol0 a b c
log "done in $((SECONDS - t0))s"
