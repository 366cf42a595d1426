#!/usr/bin/env bash
# A replica is marked inconsistent before it applies anything of a resync
# (the RESYNC marker is the first record of the stream, peerfsm.c
# BR_FX_RESYNC_BEGIN): live writes that reach it during the resync must
# never let it claim to be consistent while it holds them without the
# older regions still to come.
# A pair in sync; the replica stopped; 16 MiB written; both
# restarted while a writer keeps rewriting the dirty region (its stripe is
# often busy, so live writes to it may reach the replica before the
# resync's own record of it).  Sampled
# continuously: whenever the replica has applied everything it received
# (more than the handshake) and the primary still says syncing, the
# replica must say consistent: false.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
need nbdkit qemu-io
CFG=$T/c.yaml
config() {   # config RESYNC_RATE
  write_pair_config "$CFG" sync 64M "${1:+resync-rate: $1}"
}
config ""
start_replica "$CFG" b
start_primary "$CFG" a
stop_node b
qemu-io -f raw -c 'write -P 0x77 0 16M' "$NBD_URI/vol0" >/dev/null || fail "write"
stop_node a
config 4M                             # a resync of about 4 s
start_primary_nowait "$CFG" a
( while :; do qemu-io -f raw -c 'write -P 0x66 0 256k' "$NBD_URI/vol0" \
    >/dev/null 2>&1; done ) &
BR_PIDS+=($!)
WRITER=$!
start_replica "$CFG" b
"$PY" - "$BLOCKRELAY" "$CFG" <<'PY' || fail "the replica claimed consistency during its resync"
import json, subprocess, sys, time
cli, cfg = sys.argv[1:3]
def st(node):
    r = subprocess.run([cli, "status", "--config", cfg, "--node", node,
                        "--json"], capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else None
checked = 0
t_end = time.monotonic() + 20
while time.monotonic() < t_end:
    # b first: once b has applied SYNCED, a is already replicating (it
    # queues SYNCED as it leaves syncing), so a later "syncing" from a
    # means b's answer was taken during the resync.
    b = st("b")
    a = st("a")
    if not a or not b:
        continue
    p = a["volumes"][0]["peers"][0]
    if p["state"] == "replicating" and checked:
        break
    ups = b.get("upstream") or []
    if p["state"] != "syncing" or not ups:
        continue
    u = ups[0]
    if u["received_bytes"] > 256 * 1024 and u["pending_bytes"] == 0:
        checked += 1
        if b["volumes"][0]["consistent"]:
            sys.exit("sample %d: b applied %d bytes of the stream during the "
                     "resync and says consistent" % (checked, u["received_bytes"]))
print("%d samples during the resync: b inconsistent in each" % checked,
      file=sys.stderr)
sys.exit(0 if checked else "no sample taken during the resync")
PY
kill "$WRITER"
wait_in_sync "$CFG" a 60
[ "$("$BLOCKRELAY" status --config "$CFG" --node b --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["volumes"][0]["consistent"])')" = True ] ||
  fail "b is not consistent after the resync"
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
log "the replica was inconsistent for the whole resync, consistent after"
