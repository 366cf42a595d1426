#!/usr/bin/env bash
# What a FLUSH promises while a sync peer is resyncing (group.c, I4):
#   on-peer-loss block  the FLUSH waits until the resync is done (the peer
#                       then holds every write replied to before it);
#   on-peer-loss fail   the FLUSH fails with EIO;
#   on-peer-loss log    the FLUSH completes; what the peer lacks is dirty
#                       in the durable bitmap (status shows it).
# Each case: a pair in sync, the replica stopped, 4 MiB written (under
# on-peer-loss log), both restarted with the policy of the case and
# resync-rate 1M so the resync takes seconds; a FLUSH is sent while the
# peer is syncing and judged when it completes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
need nbdkit qemu-io
need_ackwriter
CFG=$T/f.yaml

config() {   # config POLICY RESYNC_RATE
  write_pair_config "$CFG" sync 64M \
    "on-peer-loss: $1, block-timeout: 60s${2:+, resync-rate: $2}"
}

# flush_during_resync: prints "SECONDS STATE LEFT RESULT" for a FLUSH sent
# while a's peer is syncing; STATE and LEFT are read when it completed.
flush_during_resync() {
  "$PY" - "$NBD_URI/vol0" "$BLOCKRELAY" "$CFG" <<'PY'
import errno, json, subprocess, sys, time
import nbd
uri, cli, cfg = sys.argv[1:4]
def peer():
    out = subprocess.run([cli, "status", "--config", cfg, "--node", "a",
                          "--json"], capture_output=True, text=True).stdout
    return json.loads(out)["volumes"][0]["peers"][0]
for _ in range(200):
    if peer()["state"] == "syncing":
        break
    time.sleep(0.05)            # polling the control socket
else:
    sys.exit("the peer never went syncing")
h = nbd.NBD()
h.connect_uri(uri)
t0 = time.monotonic()
try:
    h.flush()
    result = "ok"
except nbd.Error as e:
    result = "error:%s" % (errno.errorcode.get(e.errno, e.errno),)
dt = time.monotonic() - t0
p = peer()
print("%.2f %s %d %s" % (dt, p["state"], p["resync_left_bytes"], result))
PY
}

run_case() {   # run_case POLICY
  local policy=$1 out
  rm -rf "$T/a" "$T/b"
  config log ""                 # dirty regions made under log
  start_replica "$CFG" b
  start_primary "$CFG" a
  stop_node b
  qemu-io -f raw -c 'write -P 0x5a 8M 4M' "$NBD_URI/vol0" >/dev/null ||
    fail "$policy: write while b is down"
  stop_node a
  config "$policy" 1M
  start_replica "$CFG" b
  start_primary_nowait "$CFG" a
  out=$(flush_during_resync) || fail "$policy: $out"
  log "$policy: flush during the resync: $out (seconds state left result)"
  FLUSH=($out)
  wait_in_sync "$CFG" a 60
  stop_node a
  stop_node b
  same_images "$T/a/vol0.img" "$T/b/vol0.img"
}

run_case block
[ "${FLUSH[3]}" = ok ] || fail "block: the flush failed: ${FLUSH[3]}"
[ "${FLUSH[1]}" = replicating ] && [ "${FLUSH[2]}" -eq 0 ] ||
  fail "block: the flush completed while the peer was ${FLUSH[1]} with ${FLUSH[2]} bytes to resync"
python3 -c "import sys; sys.exit(float('${FLUSH[0]}') < 1.0)" ||
  fail "block: the flush did not wait for the resync (${FLUSH[0]} s)"

run_case fail
[ "${FLUSH[3]}" = "error:EIO" ] || fail "fail: the flush returned ${FLUSH[3]}, not EIO"

run_case log
[ "${FLUSH[3]}" = ok ] || fail "log: the flush failed: ${FLUSH[3]}"
python3 -c "import sys; sys.exit(float('${FLUSH[0]}') >= 1.0)" ||
  fail "log: the flush waited for the resync (${FLUSH[0]} s)"
[ "${FLUSH[2]}" -gt 0 ] || fail "log: nothing was left to resync when the flush completed"
log "a FLUSH keeps the promise of each on-peer-loss policy during a resync"
