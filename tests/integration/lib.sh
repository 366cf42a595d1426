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

# cycles N M: how many cycles a randomized fault test runs by default: N,
# or M under ASan+UBSan, whose run is for memory errors and undefined
# behaviour on the same paths (10x slower), while the default build keeps
# the full count and tests/soak/ runs many more.
cycles() {
  if [ "$BR_SANITIZE" = address ]; then echo "$2"; else echo "$1"; fi
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

# write_pair_config FILE MODE [SIZE] [LINK_EXTRA] [SETTINGS_EXTRA] [A B]
# Two nodes (default names a and b) on 127.0.0.1 with distinct free ports
# (PORT_A, PORT_B), data dirs $T/<name>, one volume vol0 of SIZE (default
# 256M), one link of MODE.  LINK_EXTRA goes inside the link's flow mapping
# (e.g. "on-peer-loss: log, queue-size: 4M"), SETTINGS_EXTRA inside
# settings (e.g. "heartbeat: 100ms, heartbeat-timeout: 600ms").
# Reconnection is fast (reconnect-min 50ms, reconnect-max 500ms) so tests do
# not wait on backoff; SETTINGS_EXTRA may set either key instead.  Fails the
# test unless the file passes check-config.
write_pair_config() {
  local file=$1 mode=$2 size=${3:-256M} link=${4:-} settings=${5:-}
  local a=${6:-a} b=${7:-b} d
  for d in "reconnect-max: 500ms" "reconnect-min: 50ms"; do
    [[ ", $settings" == *", ${d%%:*}:"* ]] || settings="$d${settings:+, $settings}"
  done
  PORT_A=$(free_port)
  PORT_B=$(free_port)
  while [ "$PORT_B" = "$PORT_A" ]; do PORT_B=$(free_port); done
  cat > "$file" <<EOF
settings: {$settings}
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

# start_primary_nowait CONFIG NODE [LOG] [plugin params...]
# nbdkit -f with the plugin on a free port, returning once it serves (its
# pidfile, nbdkit -P, is written); does not wait for the peers (they may be
# down, a resync may still be running).  LOG defaults to $T/<node>.log;
# plugin params (e.g. assume-clean=true) follow config= and node=.  The
# environment (e.g. BLOCKRELAY_FAULTS=...) is inherited.  A port taken
# between choosing and binding it is retried with another (5 tries).
# Sets PID_<node>, NBD_PORT_<node> and NBD_URI.
start_primary_nowait() {
  local cfg=$1 node=$2 logf=${3:-$T/$2.log} port pid try i
  shift 3 || shift $#
  for try in 1 2 3 4 5; do
    port=$(free_port)
    rm -f "$T/$node.pid"
    env $(asan_env) nbdkit -f -P "$T/$node.pid" -p "$port" -i 127.0.0.1 \
      ${NBDKIT_DEBUG:-} "$PLUGIN" config="$cfg" node="$node" "$@" \
      >>"$logf" 2>&1 &
    pid=$!
    BR_PIDS+=("$pid")
    for ((i = 0; i < 600; i++)); do
      [ -s "$T/$node.pid" ] && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05        # polling for the pidfile
    done
    if [ -s "$T/$node.pid" ]; then
      eval "PID_$node=$pid"
      eval "NBD_PORT_$node=$port"
      NBD_URI="nbd://127.0.0.1:$port"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null && fail "$node: no pidfile after 30s"
    wait "$pid" 2>/dev/null || true
    tail -n 3 "$logf" | grep -q "Address already in use" ||
      fail "$node (nbdkit) died at start"
    log "port $port was taken; trying another"
  done
  fail "$node: no free port after 5 tries"
}

# start_primary CONFIG NODE [LOG] [plugin params...]: start_primary_nowait,
# then waits (30 s at most) for every peer to be replicating.
start_primary() {
  start_primary_nowait "$@"
  "$BLOCKRELAY" status --config "$1" --node "$2" --wait replicating \
    --timeout 30 >/dev/null || fail "primary $2 never reached replicating"
}

# stop_wait NODE [SECONDS]: SIGTERM, then wait at most SECONDS (default
# 60) for the process to exit (a process that hangs in shutdown would
# otherwise hang the whole test run); on a hang the threads' stacks go to
# $T/hang-<node>.log (gdb) and to stderr, the process is killed and the
# test fails.  Sets STOP_RC to the exit status (0 when NODE is not
# running).
stop_wait() {
  local node=$1 limit=${2:-60} pid i st=gone
  eval "pid=\${PID_$node:-}"
  STOP_RC=0
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < limit * 20; i++)); do
    read -r st 2>/dev/null < "/proc/$pid/stat" || st=gone
    st=${st##*) }           # the field after "(comm)": the process state
    st=${st%% *}
    [ "$st" = Z ] || [ "$st" = gone ] && break
    sleep 0.05              # polling for the exit
  done
  if [ "$st" != Z ] && [ "$st" != gone ]; then
    if command -v gdb >/dev/null; then
      timeout 60 gdb -p "$pid" -batch -ex 'thread apply all bt' \
        >"$T/hang-$node.log" 2>&1 || true
      grep -E '^Thread|^#' "$T/hang-$node.log" >&2 || true
    fi
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    eval "PID_$node="
    fail "$node (pid $pid) did not exit within $limit s of SIGTERM (stacks in hang-$node.log)"
  fi
  wait "$pid" || STOP_RC=$?
  eval "PID_$node="
}

# stop_node NODE [SECONDS]: stop_wait; the exit status must be 0 (a
# sanitizer report makes the process exit nonzero).
stop_node() {
  stop_wait "$1" "${2:-60}"
  [ "$STOP_RC" -eq 0 ] || fail "$1 exited with status $STOP_RC"
}

# stop_node_rc NODE: stop_wait, the exit status only recorded in STOP_RC
# (for processes whose disks were made to fail); a death by signal (a
# crash, a sanitizer abort) still fails the test.
stop_node_rc() {
  stop_wait "$1"
  [ "$STOP_RC" -lt 128 ] || fail "$1 died with status $STOP_RC (signal $((STOP_RC - 128)))"
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

# expect_err RC PHRASE ARGS...: blockrelay ARGS exits RC with PHRASE on
# stderr (the output is left in $T/out and $T/err).
expect_err() {
  local want=$1 phrase=$2 rc=0
  shift 2
  "$BLOCKRELAY" "$@" >"$T/out" 2>"$T/err" || rc=$?
  [ $rc -eq "$want" ] || { cat "$T/out" "$T/err" >&2; fail "blockrelay $*: exit $rc, not $want"; }
  grep -qF -- "$phrase" "$T/err" || { cat "$T/err" >&2; fail "blockrelay $*: no '$phrase' on stderr"; }
  log "ok: blockrelay $*: $(tail -n 1 "$T/err")"
}

# fakepeer SCENARIO: run br-fakepeer (a misbehaving replica) on PORT_B
# until it has judged one connection from the primary; fails the test
# unless the primary dropped it.  Its output goes to fake-SCENARIO.out.
fakepeer() {
  local out=$T/fake-$1.out rc=0
  "$BUILDDIR/br-fakepeer" 127.0.0.1 "$PORT_B" "$1" > "$out" 2>&1 &
  local pid=$!
  BR_PIDS+=("$pid")
  wait "$pid" || rc=$?
  cat "$out" >&2
  [ $rc -eq 0 ] || fail "$1: the primary did not drop the connection"
}
