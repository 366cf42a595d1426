# bench/proc.sh — process control shared by bench/run.sh and bench/resync.sh
# (sourced after LOGS, WORK, SOCKDIR, KEEP and log/die are defined):
# start/stop/wait for the processes a run starts, free ports, and the
# cleanup trap that stops everything and reports the logs on failure.

declare -A PIDS=()     # name -> pid of every process still running
declare -A USED_PORTS=()

is_running() {
  local pid=$1 st
  [ -r "/proc/$pid/stat" ] || return 1
  st=$(<"/proc/$pid/stat") || return 1
  st=${st##*) }
  [ "${st%% *}" != Z ]
}

# stop_proc NAME [TIMEOUT]: SIGTERM, wait for the exit (SIGKILL after
# TIMEOUT seconds).  Returns the exit status.
stop_proc() {
  local name=$1 timeout=${2:-30} pid rc=0 i=0
  pid=${PIDS[$name]:-}
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  while is_running "$pid"; do
    if [ $i -ge $((timeout * 20)) ]; then
      log "$name ($pid) ignored SIGTERM for ${timeout}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.05
    i=$((i + 1))
  done
  wait "$pid" 2>/dev/null || rc=$?
  unset "PIDS[$name]"
  [ $rc -eq 0 ] || log "$name exited with status $rc (log: $LOGS/$name.log)"
  return 0
}

# The script's own stdout/stderr, for the trap: a signal may arrive while a
# redirection (run_wait ... >>log) is in force.  Children do not get them.
exec 3>&1 4>&2
cleanup() {
  local rc=$? name
  set +e
  trap - EXIT INT TERM
  exec 1>&3 2>&4
  for name in "${!PIDS[@]}"; do
    kill -TERM "${PIDS[$name]}" 2>/dev/null
  done
  for name in "${!PIDS[@]}"; do
    stop_proc "$name" 10
  done
  if [ $rc -ne 0 ]; then
    log "failed (exit $rc); last lines of the logs:"
    for f in "$LOGS"/*.log; do
      [ -s "$f" ] || continue
      echo "---- $f" >&2
      tail -n 20 "$f" >&2
    done
  fi
  rm -rf "$SOCKDIR"
  if [ $KEEP -eq 1 ]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_proc NAME CMD...: run CMD in the background, logging to NAME.log.
start_proc() {
  local name=$1; shift
  "$@" >>"$LOGS/$name.log" 2>&1 3>&- 4>&- &
  PIDS[$name]=$!
}

# run_wait NAME CMD...: run CMD to completion, but in the background with
# a wait, so that a signal to this script is handled at once (and the trap
# stops CMD too).  Returns CMD's exit status.
run_wait() {
  local name=$1 rc=0; shift
  "$@" 3>&- 4>&- &
  PIDS[$name]=$!
  wait "${PIDS[$name]}" || rc=$?
  unset "PIDS[$name]"
  return $rc
}

# wait_pidfile FILE NAME [TIMEOUT]: until FILE is non-empty; fails if the
# process NAME died first.
wait_pidfile() {
  local file=$1 name=$2 timeout=${3:-30} i=0
  while [ ! -s "$file" ]; do
    is_running "${PIDS[$name]}" || die "$name died before writing $file"
    [ $i -lt $((timeout * 20)) ] || die "timed out waiting for $file"
    sleep 0.05
    i=$((i + 1))
  done
}

# free_port VAR: a TCP port nobody listens on (checked with ss) and not
# handed out before in this run, stored in VAR (no subshell, so the
# USED_PORTS bookkeeping survives).
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    [ -z "${USED_PORTS[$p]:-}" ] || continue
    if ! ss -Hltn "sport = :$p" | grep -q .; then
      USED_PORTS[$p]=1
      printf -v "$1" '%s' "$p"
      return
    fi
  done
}

