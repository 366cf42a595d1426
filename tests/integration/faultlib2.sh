# Helpers for the outage and fault tests (sourced after lib.sh):
# test-resync-hammer, test-full-sync, test-pull-ahead, test-disk-faults,
# test-full-disk, test-split-brain.
#
# Readiness is always a signal (pidfile, control socket state), never a
# sleep.  Status is read with `blockrelay status --json`; a background
# sampler records it for assertions about what happened *during* a load.

# The system python has the libnbd bindings (python3-libnbd); a python3
# earlier in PATH (pyenv) may not.
PY3=/usr/bin/python3

# Ports come from lib.sh's free_port (below the ephemeral range).

# write_pair_yaml FILE MODE SIZE [LINK_EXTRA] [SETTINGS_EXTRA] [A B]
# Two nodes (default names a and b, data dirs $T/<name>), one volume vol0,
# one link.  LINK_EXTRA is appended inside the link's flow mapping, e.g.
# "resync-rate: 2M, on-peer-loss: log"; SETTINGS_EXTRA inside settings.
# Reconnection is fast (reconnect-max 500ms) so tests do not wait on backoff.
write_pair_yaml() {
  local file=$1 mode=$2 size=$3 link=${4:-} settings=${5:-} a=${6:-a} b=${7:-b}
  PORT_A=$(free_port)
  PORT_B=$(free_port)
  while [ "$PORT_B" = "$PORT_A" ]; do PORT_B=$(free_port); done
  cat > "$file" <<EOF
settings: {reconnect-min: 50ms, reconnect-max: 500ms${settings:+, $settings}}
volumes:
  - {name: vol0, size: $size}
nodes:
  - {name: $a, address: 127.0.0.1:$PORT_A, data-dir: $T/$a}
  - {name: $b, address: 127.0.0.1:$PORT_B, data-dir: $T/$b}
links:
  - {between: [$a, $b], mode: $mode${link:+, $link}}
EOF
  "$BLOCKRELAY" check-config "$file" >/dev/null ||
    fail "check-config refused $file: $("$BLOCKRELAY" check-config "$file" 2>&1)"
}

# start_primary_nowait CONFIG NODE [LOG] [plugin params...]
# nbdkit with the plugin, without waiting for the peers (they may be down).
# The environment (e.g. BLOCKRELAY_FAULTS=...) is inherited.  Sets
# PID_<node>, NBD_PORT_<node> and NBD_URI.
start_primary_nowait() {
  local cfg=$1 node=$2 logf=${3:-$T/$2.log} port pid
  shift 3 || shift $#
  port=$(free_port)
  rm -f "$T/$node.pid"
  env $(asan_env) nbdkit -f -P "$T/$node.pid" -p "$port" -i 127.0.0.1 \
    ${NBDKIT_DEBUG:-} "$PLUGIN" config="$cfg" node="$node" "$@" \
    >>"$logf" 2>&1 &
  pid=$!
  BR_PIDS+=("$pid")
  eval "PID_$node=$pid"
  eval "NBD_PORT_$node=$port"
  wait_for_file "$T/$node.pid" "$pid"
  NBD_URI="nbd://127.0.0.1:$port"
}

# stop_wait NODE: SIGTERM, then wait at most 60 s for the process to exit
# (a process that hangs in shutdown would otherwise hang the whole test
# run); on a hang, the threads' stacks go to the log (gdb) and the test
# fails.  Sets STOP_RC to the exit status.
stop_wait() {
  local node=$1 pid i st
  eval "pid=\${PID_$node:-}"
  STOP_RC=0
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 600; i++)); do
    st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo gone)
    [ "$st" = Z ] || [ "$st" = gone ] && break
    sleep 0.1
  done
  if [ "$st" != Z ] && [ "$st" != gone ]; then
    if command -v gdb >/dev/null; then
      timeout 60 gdb -p "$pid" -batch -ex 'thread apply all bt' \
        >"$T/hang-$node.log" 2>&1 || true
    fi
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    eval "PID_$node="
    fail "$node (pid $pid) did not exit within 60 s of SIGTERM (stacks in hang-$node.log)"
  fi
  wait "$pid" || STOP_RC=$?
  eval "PID_$node="
}

# stop_node NODE (overrides lib.sh's with a bounded wait): SIGTERM, exit
# status must be 0.
stop_node() {
  stop_wait "$1"
  [ "$STOP_RC" -eq 0 ] || fail "$1 exited with status $STOP_RC"
}

# stop_node_rc NODE: like stop_node but only records the exit status in
# STOP_RC (for processes whose disks were made to fail); a death by signal
# (a crash, a sanitizer abort) still fails the test.
stop_node_rc() {
  stop_wait "$1"
  [ "$STOP_RC" -lt 128 ] || fail "$1 died with status $STOP_RC (signal $((STOP_RC - 128)))"
}

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
