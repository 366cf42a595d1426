# Helpers for the fault and outage tests (test-kill-*, test-linkcut,
# test-disk-faults, test-full-*, test-split-brain, test-resync-hammer,
# test-pull-ahead, test-sync-chain, test-relay-resume, and with netlib.sh
# the topology tests); sourced after lib.sh.  lib.sh has the process and
# config helpers they use too (start_primary_nowait, stop_node_rc,
# write_pair_config, ...); nothing here redefines a name of lib.sh.
#
# Readiness and progress come from real signals, never sleeps: pidfiles,
# the control socket's JSON (blockrelay status --json), the writer's log of
# acknowledged writes.  A background sampler records status for assertions
# about what happened *during* a load.

ACKWRITER=$SRCDIR/tests/integration/ackwriter.py
# Debian's python3 has the libnbd bindings (python3-libnbd); a python3
# earlier in PATH (pyenv) may not.  Every python of these helpers is $PY.
PY=/usr/bin/python3

# need_ackwriter: skip the test unless $PY can import nbd (python3-libnbd),
# which ackwriter.py and any other libnbd python client need.
need_ackwriter() {
  [ -x "$PY" ] || skip "$PY is not installed"
  "$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"
}

# br_json CFG NODE: the node's status as JSON (fails if it does not answer).
br_json() {
  "$BLOCKRELAY" status --config "$1" --node "$2" --json
}

# peer_field CFG NODE FIELD: FIELD of every peer of every volume, one a
# line (nothing if the node does not answer).
peer_field() {
  br_json "$1" "$2" 2>/dev/null |
    "$PY" -c 'import json, sys
try:
    for v in json.load(sys.stdin)["volumes"]:
        for p in v["peers"]:
            print(p[sys.argv[1]])
except Exception:
    pass' "$3"
}

# wait_peer_state CFG NODE TIMEOUT STATE...: until every peer of every
# volume is in one of STATE; prints their states.  Returns 1 on timeout
# (the caller says why).
wait_peer_state() {
  local cfg=$1 node=$2 timeout=$3 s i st ok
  shift 3
  for ((i = 0; i < timeout * 20; i++)); do
    s=$(peer_field "$cfg" "$node" state)
    ok=${s:+yes}
    for st in $s; do
      case " $* " in *" $st "*) ;; *) ok= ;; esac
    done
    if [ -n "$ok" ]; then
      echo $s
      return 0
    fi
    sleep 0.05          # polling the control socket
  done
  log "peers of $node: '$(echo $s)' after ${timeout}s (wanted: $*)"
  "$BLOCKRELAY" status --config "$cfg" --node "$node" >&2 || true
  return 1
}

# acks LOG: number of acknowledged writes in a writer's log.
acks() {
  local n
  n=$(grep -c '^A' "$1" 2>/dev/null) || true
  echo "${n:-0}"
}

# start_writer URI LOG SEQ_START [extra args]: ackwriter in the background
# (WRITER_PID).  With WRITER_NETNS set, it runs in that network namespace.
start_writer() {
  local uri=$1 logf=$2 seq=$3
  shift 3
  : > "$logf"
  ${WRITER_NETNS:+ip netns exec "$WRITER_NETNS"} \
    "$PY" "$ACKWRITER" write "$uri" "$logf" --seq-start "$seq" \
    --max-seconds 120 "$@" 2>>"$T/writer.log" &
  WRITER_PID=$!
  BR_PIDS+=("$WRITER_PID")
}

# wait_acks LOG N TIMEOUT: until LOG has N acknowledged writes.  Fails if the
# writer exits first or the writes stall for TIMEOUT seconds.
wait_acks() {
  local logf=$1 n=$2 timeout=$3 i have
  for ((i = 0; i < timeout * 20; i++)); do
    have=$(acks "$logf")
    [ "$have" -ge "$n" ] && return 0
    kill -0 "$WRITER_PID" 2>/dev/null ||
      fail "writer exited after $have of $n acknowledged writes"
    sleep 0.05          # polling the writer's log
  done
  fail "writes stalled: $(acks "$logf") acknowledged, waited for $n for ${timeout}s"
}

# wait_exit PID TIMEOUT WHAT: reap a child, failing if it is still running
# after TIMEOUT seconds (a hung request); returns its exit status.
wait_exit() {
  local pid=$1 timeout=$2 what=$3 i rc=0
  for ((i = 0; i < timeout * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05          # polling for the exit
  done
  kill -0 "$pid" 2>/dev/null && fail "$what still running after ${timeout}s (hung I/O?)"
  wait "$pid" || rc=$?
  return $rc
}

# stop_writer: SIGTERM, the writer drains its requests; returns its status
# (0: every request succeeded, 3: a request failed).
stop_writer() {
  local rc=0
  kill -TERM "$WRITER_PID" 2>/dev/null || true
  wait_exit "$WRITER_PID" 30 "the writer" || rc=$?
  WRITER_PID=
  return $rc
}

# check_acks LOG TARGET: every acknowledged write is in TARGET (file/URI).
check_acks() {
  "$PY" "$ACKWRITER" check "$1" "$2" 2>>"$T/check.log" ||
    { tail -n 25 "$T/check.log" >&2; fail "acknowledged writes missing from $2"; }
}

# rand A B: a random integer in [A, B].
rand() { echo $(($1 + RANDOM % ($2 - $1 + 1))); }

# rsleep MS_MIN MS_MAX: a random delay (a random kill point, not readiness).
rsleep() {
  local ms; ms=$(rand "$1" "$2")
  sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
}

# kill9 NODE: SIGKILL the node's process and reap it.
kill9() {
  local node=$1 pid
  eval "pid=\${PID_$node:-}"
  [ -n "$pid" ] || fail "kill9 $node: not running"
  kill -0 "$pid" 2>/dev/null || fail "$node (pid $pid) died on its own"
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  eval "PID_$node="
}

# check_same A B: two copies (files or nbd:// URIs) are identical.
check_same() {
  "$PY" "$ACKWRITER" same "$1" "$2" 2>>"$T/check.log" ||
    { tail -n 22 "$T/check.log" >&2; fail "$1 and $2 differ"; }
}

# fio_loop_start NETNS URI: fio back to back in network namespace NETNS
# (empty: this one) until fio_loop_stop: each run writes 4096 random 4K
# blocks (at most 500/s, about 8 s) and then reads them back verifying
# crc32c.  A failed run leaves its output in fio-N.out and stops the loop.
fio_loop_start() {
  local ns=$1 uri=$2
  rm -f "$T/fio-loop-done" "$T/fio-failed"
  (
    cd "$T"                             # fio may leave state files in its cwd
    i=0
    while [ ! -e "$T/fio-loop-done" ]; do
      i=$((i + 1))
      ${ns:+ip netns exec "$ns"} fio --name=loop --ioengine=nbd \
        --uri="$uri" --rw=randwrite --bs=4k --iodepth=8 \
        --size=64M --io_size=16M --rate_iops=,500 --verify=crc32c \
        --do_verify=1 --verify_state_save=0 --randseed=$RANDOM \
        --output="$T/fio-$i.out" 2>>"$T/fio.err" &&
        grep -q "err= 0" "$T/fio-$i.out" &&
        grep -q "read:" "$T/fio-$i.out" ||     # the verification pass ran
        { echo "$i" > "$T/fio-failed"; exit 1; }
      echo "$i" > "$T/fio-runs"
    done
  ) &
  FIO_LOOP_PID=$!
  BR_PIDS+=("$FIO_LOOP_PID")
}

# fio_ok: fails the test if a fio run of the loop has failed.
fio_ok() {
  local n
  [ ! -e "$T/fio-failed" ] && return 0
  n=$(cat "$T/fio-failed")
  cat "$T/fio-$n.out" "$T/fio.err" >&2
  fail "fio run $n failed (verification error or I/O error)"
}

# fio_loop_stop: let the current run finish; fails on any failed run.
# FIO_RUNS gets the number of runs.
fio_loop_stop() {
  local rc=0
  touch "$T/fio-loop-done"
  wait_exit "$FIO_LOOP_PID" 120 fio || rc=$?
  fio_ok
  [ $rc -eq 0 ] || fail "the fio loop exited $rc"
  FIO_RUNS=$(cat "$T/fio-runs" 2>/dev/null || echo 0)
}

# peer_snapshot CONFIG NODE [VOL] [PEER]: sets shell variables from
# volumes[VOL].peers[PEER]: P_state P_dirty P_queued P_left P_rate P_eta
# P_error P_sent, and V_consistent (volumes[VOL].consistent: true|false),
# U_rx (received_bytes summed over the upstream sessions).
# Returns 1 if the node does not answer.
peer_snapshot() {
  local out
  out=$(br_json "$1" "$2" 2>/dev/null | "$PY" -c '
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

# wait_peer_match CFG NODE REGEX [TIMEOUT]: until the first peer's state
# (of the first volume) matches the extended REGEX (anchored), within
# TIMEOUT seconds (default 30); leaves that peer_snapshot's P_* variables
# set.  Fails the test on timeout.  (For every peer in a set of states,
# returning 1 on timeout: wait_peer_state.)
wait_peer_match() {
  local cfg=$1 node=$2 re=$3 timeout=${4:-30} i
  for ((i = 0; i < timeout * 20; i++)); do
    if peer_snapshot "$cfg" "$node" && [[ $P_state =~ ^($re)$ ]]; then
      return 0
    fi
    sleep 0.05          # polling the control socket
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
  "$PY" - "$BLOCKRELAY" "$out" "$@" <<'PY' &
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

# stop_sampler OUT: stop start_sampler's recording into OUT.
stop_sampler() {
  [ -n "${SAMPLER_PID:-}" ] || return 0
  touch "$1.stop"
  wait "$SAMPLER_PID" || true
  SAMPLER_PID=
}

# samples OUT NODE: print "t state dirty queued left consistent rx error" per
# sample of NODE (first volume, first peer); for logs and quick greps.
samples() {
  "$PY" - "$1" "$2" <<'PY'
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
# recorded.  check_later_done: fails the test if check_later recorded any
# failure (each is listed).
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
