# Helpers for the fault tests (test-kill-*.sh, test-linkcut.sh); sourced
# after lib.sh.  Readiness and progress come from real signals: the
# writer's log of acknowledged writes and the control socket's JSON.
# start_primary_nowait and the config writers are lib.sh's.

ACKWRITER=$SRCDIR/tests/integration/ackwriter.py
# Debian's python3 has python3-libnbd; a python3 earlier in PATH may not.
PY=/usr/bin/python3

need_ackwriter() {
  [ -x "$PY" ] || skip "$PY is not installed"
  "$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"
}

# peer_field CFG NODE FIELD: FIELD of every peer of every volume, one a
# line (nothing if the node does not answer).
peer_field() {
  "$BLOCKRELAY" status --config "$1" --node "$2" --json 2>/dev/null |
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
