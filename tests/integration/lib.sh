# blockrelay integration test library (sourced by tests/integration/test-*.sh)
#
# Every test gets a private work directory, free TCP ports, and a cleanup
# trap that stops whatever it started.  Processes are started for real:
# blockrelayd from $BUILDDIR and nbdkit with the plugin.  Readiness comes
# from signals, never sleeps: pidfiles (blockrelayd --pidfile, nbdkit -P)
# and the control socket (blockrelay status --wait).
#
# Environment: BUILDDIR (default ./build), SRCDIR (default: repo top),
# BR_SANITIZE ("address" when the build is ASan+UBSan: nbdkit then runs
# with the ASan runtime preloaded, since nbdkit itself is not instrumented).

set -euo pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILDDIR=${BUILDDIR:-$SRCDIR/build}
BR_SANITIZE=${BR_SANITIZE:-}
BLOCKRELAY=$BUILDDIR/blockrelay
BLOCKRELAYD=$BUILDDIR/blockrelayd
PLUGIN=${BR_PLUGIN:-$BUILDDIR/nbdkit-blockrelay-plugin.so}  # BR_PLUGIN: e.g. an
# uninstrumented plugin next to TSan-built daemons

# Short path: Unix socket paths are limited to 108 bytes.
T=$(mktemp -d /tmp/brt.XXXXXX)
declare -a BR_PIDS=()
declare -a BR_CLEANUP=()

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
skip() { log "SKIP: $*"; exit 77; }

br_cleanup() {
  local rc=$?
  set +e
  local i
  for ((i = ${#BR_CLEANUP[@]} - 1; i >= 0; i--)); do
    eval "${BR_CLEANUP[$i]}" >/dev/null 2>&1
  done
  for pid in "${BR_PIDS[@]}"; do
    kill -9 "$pid" 2>/dev/null
  done
  if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
    log "exit $rc; logs follow"
    for f in "$T"/*.log; do
      [ -f "$f" ] || continue
      echo "---- $f (last 40 lines)" >&2
      tail -n 40 "$f" >&2
    done
  fi
  rm -rf "$T"
  exit $rc
}
trap br_cleanup EXIT
on_exit() { BR_CLEANUP+=("$*"); }

need() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || skip "$c is not installed"
  done
}

# A TCP port below the ephemeral range (so no outgoing connection can be
# holding it) that no socket uses (checked with ss).
free_port() {
  local p lo
  lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$lo" -gt 12000 ] || lo=32768
  while :; do
    p=$((10000 + RANDOM % (lo - 10000)))
    if ! ss -Htan "sport = :$p" | grep -q .; then
      echo "$p"
      return
    fi
  done
}

# Wait until FILE exists (a pidfile), or the process PID died, or TIMEOUT.
wait_for_file() {
  local file=$1 pid=$2 timeout=${3:-30} waited=0
  while [ ! -s "$file" ]; do
    kill -0 "$pid" 2>/dev/null || fail "process $pid died before writing $file"
    [ $waited -ge $((timeout * 20)) ] && fail "timed out waiting for $file"
    sleep 0.05
    waited=$((waited + 1))
  done
}

asan_env() {
  if [ "$BR_SANITIZE" = address ]; then
    echo "LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
  fi
}

# nbdkit itself is not instrumented: under ASan every nbdkit that loads the
# plugin needs the runtime preloaded.
nbdkit() {
  if [ "$BR_SANITIZE" = address ]; then
    env $(asan_env) nbdkit "$@"
  else
    command nbdkit "$@"
  fi
}

# write_pair_config FILE MODE [SIZE] [extra volume keys]
# Two nodes a and b on 127.0.0.1, one volume vol0, one link of MODE.
write_pair_config() {
  local file=$1 mode=$2 size=${3:-256M}
  PORT_A=$(free_port)
  PORT_B=$(free_port)
  while [ "$PORT_B" = "$PORT_A" ]; do PORT_B=$(free_port); done
  cat > "$file" <<EOF
volumes:
  - {name: vol0, size: $size}
nodes:
  - {name: a, address: 127.0.0.1:$PORT_A, data-dir: $T/a}
  - {name: b, address: 127.0.0.1:$PORT_B, data-dir: $T/b}
links:
  - {between: [a, b], mode: $mode}
EOF
}

# write_local_config FILE NODES...: one 64M volume vol0, the named nodes
# on 127.0.0.1 with distinct free ports and fast fault settings (heartbeat
# 200ms, timeout 1s, reconnect-max 300ms), data in $T/<node>; the links
# come from standard input (YAML lines after "links:").
write_local_config() {
  local file=$1 n p used=" "
  shift
  {
    echo "settings: {heartbeat: 200ms, heartbeat-timeout: 1s, reconnect-max: 300ms}"
    printf 'volumes:\n  - {name: vol0, size: 64M}\nnodes:\n'
    for n in "$@"; do
      p=$(free_port)
      while [[ $used == *" $p "* ]]; do p=$(free_port); done
      used+="$p "
      echo "  - {name: $n, address: 127.0.0.1:$p, data-dir: $T/$n}"
    done
    echo "links:"
    cat
  } > "$file"
}

# start_replica CONFIG NODE: blockrelayd, waits for its pidfile.
start_replica() {
  local cfg=$1 node=$2
  rm -f "$T/$node.pid"
  "$BLOCKRELAYD" --config "$cfg" --node "$node" --pidfile "$T/$node.pid" \
    ${BR_DEBUG:+--debug "$BR_DEBUG"} >>"$T/$node.log" 2>&1 &
  local pid=$!
  BR_PIDS+=("$pid")
  eval "PID_$node=$pid"
  wait_for_file "$T/$node.pid" "$pid"
}

# start_primary CONFIG NODE: nbdkit with the plugin on a free port
# (NBD_PORT_<node>), waits for -P, then for every peer to replicate.
start_primary() {
  local cfg=$1 node=$2 port
  port=$(free_port)
  rm -f "$T/$node.pid"
  env $(asan_env) nbdkit -f -P "$T/$node.pid" -p "$port" -i 127.0.0.1 \
    ${NBDKIT_DEBUG:-} "$PLUGIN" config="$cfg" node="$node" \
    >>"$T/$node.log" 2>&1 &
  local pid=$!
  BR_PIDS+=("$pid")
  eval "PID_$node=$pid"
  eval "NBD_PORT_$node=$port"
  wait_for_file "$T/$node.pid" "$pid"
  NBD_URI="nbd://127.0.0.1:$port"
  "$BLOCKRELAY" status --config "$cfg" --node "$node" --wait replicating \
    --timeout 30 >/dev/null || fail "primary $node never reached replicating"
}

# stop_node NODE [SECONDS]: SIGTERM and wait for the process to exit; fails
# on a nonzero exit (a sanitizer report makes the process exit nonzero),
# and on a process still running SECONDS (default 60) after the signal.
stop_node() {
  local node=$1 limit=${2:-60} pid rc=0 i=0
  eval "pid=\${PID_$node:-}"
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  # A process that does not exit within the limit is hung: show where, then
  # kill it (the test fails either way).
  while kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid")" != Z ]; do
    if [ $i -ge $((limit * 20)) ]; then
      log "$node ($pid) did not exit within $limit s of SIGTERM"
      command -v gdb >/dev/null &&
        gdb -p "$pid" -batch -ex "thread apply all bt 12" 2>/dev/null |
        grep -E '^Thread|^#' >&2
      kill -KILL "$pid"
      wait "$pid" 2>/dev/null
      eval "PID_$node="
      fail "$node did not exit within $limit s of SIGTERM (stacks above)"
    fi
    sleep 0.05
    i=$((i + 1))
  done
  wait "$pid" || rc=$?
  eval "PID_$node="
  [ $rc -eq 0 ] || fail "$node exited with status $rc"
}

# wait_in_sync CONFIG NODE: every peer of NODE replicating with nothing
# dirty and nothing queued (the control socket says so).
wait_in_sync() {
  "$BLOCKRELAY" status --config "$1" --node "$2" --wait replicating \
    --timeout "${3:-60}" >/dev/null || fail "$2 did not get in sync"
}

# same_images FILE1 FILE2: byte-for-byte comparison.
same_images() {
  cmp "$1" "$2" || fail "$1 and $2 differ"
  log "identical: $1 $2"
}
