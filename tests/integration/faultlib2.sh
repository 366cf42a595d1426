# Helpers for the outage and fault tests (sourced after lib.sh):
# test-resync-hammer, test-full-sync, test-pull-ahead, test-disk-faults,
# test-full-disk, test-split-brain.  The process and config helpers they
# use (start_primary_nowait, stop_node_rc, write_pair_config) are lib.sh's.
#
# Readiness is always a signal (pidfile, control socket state), never a
# sleep.  Status is read with `blockrelay status --json`; a background
# sampler records it for assertions about what happened *during* a load.

# The system python has the libnbd bindings (python3-libnbd); a python3
# earlier in PATH (pyenv) may not.
PY3=/usr/bin/python3

# br_json CONFIG NODE: the node's status as JSON (fails if it does not answer).
br_json() {
  "$BLOCKRELAY" status --config "$1" --node "$2" --json
}

# peer_snapshot CONFIG NODE [VOL] [PEER]: sets shell variables from
# volumes[VOL].peers[PEER]: P_state P_dirty P_queued P_left P_rate P_eta
# P_error P_sent, and V_consistent (volumes[VOL].consistent: true|false),
# U_rx (received_bytes summed over the upstream sessions).
# Returns 1 if the node does not answer.
peer_snapshot() {
  local out
  out=$(br_json "$1" "$2" 2>/dev/null | python3 -c '
import json, shlex, sys
d = json.load(sys.stdin)
v = d["volumes"][int(sys.argv[1])]
peers = v.get("peers") or []
p = peers[int(sys.argv[2])] if len(peers) > int(sys.argv[2]) else {}
def q(k, x): print("%s=%s" % (k, shlex.quote("" if x is None else str(x))))
q("P_state", p.get("state"))
q("P_dirty", p.get("dirty_bytes", 0))
q("P_queued", p.get("queued_bytes", 0))
q("P_left", p.get("resync_left_bytes", 0))
q("P_rate", p.get("resync_rate", ""))
q("P_eta", p.get("resync_eta", ""))
q("P_error", p.get("last_error", ""))
q("P_sent", p.get("sent_bytes", 0))
q("V_consistent", "true" if v.get("consistent") else "false")
q("U_rx", sum(u.get("received_bytes", 0) for u in d.get("upstream") or []))
' "${3:-0}" "${4:-0}") || return 1
  eval "$out"
}

# wait_peer_state CONFIG NODE REGEX [TIMEOUT]: poll until the first peer's
# state matches the extended REGEX (anchored).
wait_peer_state() {
  local cfg=$1 node=$2 re=$3 timeout=${4:-30} i
  for ((i = 0; i < timeout * 20; i++)); do
    if peer_snapshot "$cfg" "$node" && [[ $P_state =~ ^($re)$ ]]; then
      return 0
    fi
    sleep 0.05
  done
  br_json "$cfg" "$node" >&2 || true
  fail "peer of $node never reached state /$re/ within ${timeout}s (last: ${P_state:-?})"
}

# start_sampler OUT CONFIG NODE [CONFIG NODE ...]
# Records every node's status --json, as fast as it answers (~20/s), one
# JSON line per sample {"t": seconds, "node": N, "st": status-or-null},
# until stop_sampler.  Sets SAMPLER_PID.
start_sampler() {
  local out=$1
  shift
  rm -f "$out.stop"
  python3 - "$BLOCKRELAY" "$out" "$@" <<'PY' &
import json, os, subprocess, sys, time
cli, out, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
nodes = list(zip(rest[0::2], rest[1::2]))
t0 = time.time()
with open(out, "w") as f:
    while not os.path.exists(out + ".stop"):
        for cfg, node in nodes:
            r = subprocess.run([cli, "status", "--config", cfg, "--node", node,
                                "--json"], capture_output=True, text=True)
            try:
                st = json.loads(r.stdout) if r.returncode == 0 else None
            except ValueError:
                st = None
            f.write(json.dumps({"t": round(time.time() - t0, 3), "node": node,
                                "st": st}) + "\n")
            f.flush()
        time.sleep(0.03)
PY
  SAMPLER_PID=$!
  BR_PIDS+=("$SAMPLER_PID")
}

stop_sampler() {
  [ -n "${SAMPLER_PID:-}" ] || return 0
  touch "$1.stop"
  wait "$SAMPLER_PID" || true
  SAMPLER_PID=
}

# samples OUT NODE: print "t state dirty queued left consistent rx error" per
# sample of NODE (first volume, first peer); for logs and quick greps.
samples() {
  python3 - "$1" "$2" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    s = json.loads(line)
    if s["node"] != sys.argv[2]:
        continue
    st = s["st"]
    if st is None:
        print(s["t"], "down"); continue
    v = st["volumes"][0]
    p = (v.get("peers") or [{}])[0]
    rx = sum(u.get("received_bytes", 0) for u in st.get("upstream") or [])
    print(s["t"], p.get("state", "-"), p.get("dirty_bytes", 0),
          p.get("queued_bytes", 0), p.get("resync_left_bytes", 0),
          "consistent" if v.get("consistent") else "inconsistent", rx,
          repr(p.get("last_error", "")))
PY
}

# image_sha IMG: sha256 of a file.
image_sha() { sha256sum "$1" | cut -d' ' -f1; }

# mount_tmpfs DIR SIZE: a private tmpfs (for full-disk tests), unmounted at exit.
mount_tmpfs() {
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2" tmpfs "$1" || skip "cannot mount tmpfs (needs root)"
  on_exit "umount -l $1"
}

# no_bad_frames: a replica must never refuse a frame from a legitimate
# primary (I7 refusals are for garbage, not for our own traffic).
no_bad_frames() {
  local f
  for f in "$T"/*.log; do
    [ -f "$f" ] || continue
    if grep -i "bad frame" "$f" >&2; then
      fail "$(basename "$f"): a node refused a frame of our own replication traffic"
    fi
  done
}

# check_later MSG: record a failure but go on, so the rest of the test still
# runs (and can find more); check_later_done at the end fails if any were
# recorded.
declare -a BR_LATER=()
check_later() {
  log "FAILED CHECK (reported at the end): $*"
  BR_LATER+=("$*")
}
check_later_done() {
  local m
  [ ${#BR_LATER[@]} -eq 0 ] && return 0
  for m in "${BR_LATER[@]}"; do log "FAIL: $m"; done
  fail "${#BR_LATER[@]} check(s) failed"
}
