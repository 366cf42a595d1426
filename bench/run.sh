#!/usr/bin/env bash
# bench/run.sh — blockrelay benchmark harness (DESIGN.md §8, issues 2, 4).
#
# In one run, side by side on backing files in one directory, measures with
# fio --ioengine=nbd:
#   B            nbdkit's own file plugin on a 1 GiB file (the baseline)
#   none         the blockrelay plugin with no peer
#   async        the plugin, async to 1 peer (blockrelayd on this host)
#   sync         the plugin, sync to 1 peer
#   cascade      a -> b (sync) -> c (async): the plugin on a, blockrelayd on
#                b (a relay: it forwards what it applies) and on c
#   cascade-async  the same with both hops async
#   (cascade-sync, both hops sync: only on request with --configs)
#   one-to-two   a -> b (sync) and a -> c (async), directly
#   (one-to-two-async, both async: only on request with --configs)
#   async-tls, sync-tls  async / sync with tls: psk (TLS 1.3, issue 13)
#   qemu-mirror  qemu-storage-daemon exporting a raw file over NBD, with a
#                blockdev-mirror job (sync=full, copy-mode=write-blocking)
#                to an nbdkit file export of a second file
# and workloads: 1 MiB sequential write QD16, 4 KiB random write QD32,
# 4 KiB random write QD1 (IOPS, mean and p99 latency), 4 KiB random read QD32.
# Prints a Markdown table of absolute figures and ratios to B, and writes it
# (with the command line and machine info) to bench/last-run.md.
#
# Readiness is always a signal, never a fixed sleep: pidfiles (nbdkit -P,
# blockrelayd --pidfile, qemu-storage-daemon --pidfile), the control socket
# (blockrelay status --wait replicating) and QMP (BLOCK_JOB_READY).  A trap
# stops everything this script started, whatever happens.
#
# Standalone: needs only the build directory, fio (with the nbd engine),
# nbdkit (file plugin), qemu-storage-daemon + qemu-io (for qemu-mirror),
# python3 (standard library), ss.  See bench/README.md.

set -euo pipefail

BENCHDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRCDIR=$(cd "$BENCHDIR/.." && pwd)
CMDLINE=$(printf '%q ' "$0" "$@")
CMDLINE=${CMDLINE% }

usage() {
  cat <<EOF
usage: bench/run.sh [options]

  --runtime SECS    measured seconds per workload (default 10)
  --ramp SECS       fio ramp_time before measuring (default 2)
  --quick           --runtime 3 --ramp 1
  --dir DIR         put backing files in a fresh directory under DIR
                    (default: under /var/tmp)
  --output FILE     Markdown report (default: bench/last-run.md)
  --configs LIST    comma-separated subset/order of B,none,async,sync,
                    cascade,cascade-async,cascade-sync,one-to-two,
                    one-to-two-async,async-tls,sync-tls,qemu-mirror
                    (default: all but cascade-sync and
                    one-to-two-async; B first)
  --size SIZE       volume size (default 1G)
  --builddir DIR    where blockrelayd, blockrelay and the plugin are
                    (default: \$BUILDDIR or <repo>/build)
  --rounds N        run all configurations N times, interleaved (B, none,
                    ..., B, none, ...); the table shows the median (default 1)
  --perf            also sample the server processes with perf (cpu-clock)
                    during each workload; flat profiles go to
                    <output without .md>.perf/ (for diagnosis: sampling
                    costs some throughput, so do not quote those figures)
  --keep            keep the work directory (backing files, logs, fio JSON)
  -h, --help        this text
EOF
}

RUNTIME=10
RAMP=2
BASEDIR=/var/tmp
OUTPUT=$BENCHDIR/last-run.md
CONFIGS="B,none,async,sync,async-tls,sync-tls,cascade,cascade-async,one-to-two,qemu-mirror"
SIZE=1G
BUILDDIR=${BUILDDIR:-$SRCDIR/build}
KEEP=0
ROUNDS=1
PERF=0

while [ $# -gt 0 ]; do
  case $1 in
    --runtime) RUNTIME=$2; shift 2 ;;
    --runtime=*) RUNTIME=${1#*=}; shift ;;
    --ramp) RAMP=$2; shift 2 ;;
    --ramp=*) RAMP=${1#*=}; shift ;;
    --quick) RUNTIME=3; RAMP=1; shift ;;
    --dir) BASEDIR=$2; shift 2 ;;
    --dir=*) BASEDIR=${1#*=}; shift ;;
    --output) OUTPUT=$2; shift 2 ;;
    --output=*) OUTPUT=${1#*=}; shift ;;
    --configs) CONFIGS=$2; shift 2 ;;
    --configs=*) CONFIGS=${1#*=}; shift ;;
    --size) SIZE=$2; shift 2 ;;
    --size=*) SIZE=${1#*=}; shift ;;
    --builddir) BUILDDIR=$2; shift 2 ;;
    --builddir=*) BUILDDIR=${1#*=}; shift ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --rounds=*) ROUNDS=${1#*=}; shift ;;
    --perf) PERF=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $RUNTIME =~ ^[0-9]+$ && $RUNTIME -gt 0 ]] || die "--runtime must be a positive integer"
[[ $RAMP =~ ^[0-9]+$ ]] || die "--ramp must be an integer"
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -gt 0 ]] || die "--rounds must be a positive integer"

IFS=, read -r -a CFG_LIST <<<"$CONFIGS"
for c in "${CFG_LIST[@]}"; do
  case $c in
    B|none|async|sync|cascade|cascade-async|cascade-sync|one-to-two|one-to-two-async|async-tls|sync-tls|qemu-mirror) ;;
    *) die "unknown configuration '$c'" ;;
  esac
done
[ "${CFG_LIST[0]}" = B ] || die "--configs must start with B (the baseline ratios refer to)"

# ---------------------------------------------------------------- tools
for t in fio nbdkit python3 ss sync cmp; do
  command -v "$t" >/dev/null 2>&1 || die "$t is not installed"
done
fio --enghelp=nbd >/dev/null 2>&1 || die "this fio has no nbd engine"
for f in blockrelayd blockrelay nbdkit-blockrelay-plugin.so; do
  [ -f "$BUILDDIR/$f" ] || die "$BUILDDIR/$f is missing: build first (cmake -S . -B build && make -C build)"
done
if [ $PERF -eq 1 ]; then
  command -v perf >/dev/null 2>&1 || die "--perf: perf is not installed"
  PERFDIR=${OUTPUT%.md}.perf
  rm -rf "$PERFDIR"
  mkdir -p "$PERFDIR"
fi
HAVE_QEMU=1
for t in qemu-storage-daemon qemu-io; do
  command -v "$t" >/dev/null 2>&1 || HAVE_QEMU=0
done

# ---------------------------------------------------------------- work dirs
mkdir -p "$BASEDIR"
WORK=$(mktemp -d "$BASEDIR/blockrelay-bench.XXXXXX")
# Unix sockets (control, QMP) live in a short path: sun_path is 108 bytes.
SOCKDIR=$(mktemp -d /tmp/brbench.XXXXXX)
RES=$WORK/results
LOGS=$WORK/logs
BIN=$WORK/bin
mkdir -p "$RES" "$LOGS" "$BIN"
: >"$RES/cpu.tsv"
: >"$RES/checks.tsv"
: >"$RES/settle.tsv"

. "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

# CPU clock ticks used so far by the given pids (all their threads).
proc_ticks() {
  local pid st sum=0 f
  for pid in "$@"; do
    st=$(<"/proc/$pid/stat") 2>/dev/null || continue
    read -r -a f <<<"${st##*) }"    # f[0] is the state, field 3 of stat
    sum=$((sum + f[11] + f[12]))    # utime + stime
  done
  echo $sum
}
# Busy ticks of the whole machine (user+nice+system+irq+softirq).
sys_ticks() {
  local _cpu user nice system _idle _iowait irq softirq _rest
  read -r _cpu user nice system _idle _iowait irq softirq _rest </proc/stat
  echo $((user + nice + system + irq + softirq))
}
HZ=$(getconf CLK_TCK)

# ---------------------------------------------------------------- binaries
# Snapshot the binaries: other people may rebuild $BUILDDIR during a run.
cp "$BUILDDIR/blockrelayd" "$BUILDDIR/blockrelay" \
   "$BUILDDIR/nbdkit-blockrelay-plugin.so" "$BIN/"
BLOCKRELAYD=$BIN/blockrelayd
BLOCKRELAY=$BIN/blockrelay
PLUGIN=$BIN/nbdkit-blockrelay-plugin.so

# ---------------------------------------------------------------- info
build_type() {   # CMAKE_BUILD_TYPE, or the flags CMakeLists.txt defaulted to
  local bt flags
  bt=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILDDIR/CMakeCache.txt" 2>/dev/null) || true
  flags=$(sed -n 's/^C_FLAGS = //p' "$BUILDDIR"/CMakeFiles/blockrelayd.dir/flags.make 2>/dev/null |
          grep -oE -- '-O[0-9s]|-g|-DNDEBUG|-fsanitize=[a-z]+' | tr '\n' ' ') || true
  echo "${bt:-(default)} (${flags% })"
}
machine_info() {
  local fs
  fs=$(findmnt -n -T "$WORK" -o SOURCE,FSTYPE,OPTIONS 2>/dev/null ||
       df -T "$WORK" | tail -1)
  cat <<EOF
- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')
- command: \`$CMDLINE\`
- runtime per workload: ${RUNTIME} s measured after a ${RAMP} s ramp; volume size $SIZE; rounds: $ROUNDS
- nproc: $(nproc); CPU: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1); memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
- kernel: $(uname -srm); OS: $(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-unknown}")
- fio: $(fio --version); nbdkit: $(nbdkit --version | head -1); qemu-storage-daemon: $( [ $HAVE_QEMU -eq 1 ] && qemu-storage-daemon --version | head -1 || echo "not installed")
- backing directory: $WORK on \`$fs\`
- blockrelay: git $(git -C "$SRCDIR" rev-parse --short HEAD 2>/dev/null || echo '?') ($(git -C "$SRCDIR" status --porcelain 2>/dev/null | wc -l) files modified/untracked in the tree), build type $(build_type), plugin built $(date -u -r "$BUILDDIR/nbdkit-blockrelay-plugin.so" '+%Y-%m-%d %H:%M UTC')
- load average at start: $LOAD_START
EOF
}
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
INFO=$(machine_info)

log "command: $CMDLINE"
log "work directory: $WORK"

# ---------------------------------------------------------------- fio
# fio_job CFG NAME URI [fio options...]: one fio run, JSON to RES/CFG/NAME.json,
# CPU use of the servers (SERVER_PIDS) and of the machine to cpu.tsv.
SERVER_PIDS=()
fio_job() {
  local cfg=$1 name=$2 uri=$3; shift 3
  local t0 t1 p0 p1 s0 s1 out=$RES/round-$ROUND/$cfg/$name.json rc=0
  mkdir -p "$RES/round-$ROUND/$cfg"
  if [ $PERF -eq 1 ] && [ "$name" != prefill ]; then
    local pids
    pids=$(IFS=,; echo "${SERVER_PIDS[*]}")
    start_proc perf perf record -e cpu-clock -F 999 -p "$pids" \
      -o "$RES/round-$ROUND/$cfg/$name.perf.data"
  fi
  t0=$(date +%s.%N); p0=$(proc_ticks "${SERVER_PIDS[@]}"); s0=$(sys_ticks)
  run_wait fio fio --name="$name" --ioengine=nbd --uri="$uri" --size="$SIZE" \
      --output-format=json --output="$out" "$@" \
      >>"$LOGS/fio.log" 2>&1 || rc=$?
  t1=$(date +%s.%N); p1=$(proc_ticks "${SERVER_PIDS[@]}"); s1=$(sys_ticks)
  if [ -n "${PIDS[perf]:-}" ]; then
    kill -INT "${PIDS[perf]}" 2>/dev/null || true
    stop_proc perf
    (
      set +e +o pipefail    # head closes the pipes early
      echo "# $cfg $name (round $ROUND): samples by thread name"
      perf report -i "$RES/round-$ROUND/$cfg/$name.perf.data" --stdio \
        --sort comm 2>/dev/null | grep -v '^#' | grep -v '^$' | head -20
      echo
      echo "# $cfg $name (round $ROUND): samples by thread, library, symbol"
      perf report -i "$RES/round-$ROUND/$cfg/$name.perf.data" --stdio \
        --sort comm,dso,sym 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60
    ) >"$PERFDIR/$cfg-$name-round$ROUND.txt"
  fi
  [ $rc -eq 0 ] || die "fio $name on $cfg failed (exit $rc); see $LOGS/fio.log and $out"
  python3 - "$out" "$ROUND" "$cfg" "$name" "$t0" "$t1" "$p0" "$p1" "$s0" "$s1" "$HZ" \
    >>"$RES/cpu.tsv" <<'PY'
import json, sys
out, rnd, cfg, name = sys.argv[1:5]
t0, t1 = float(sys.argv[5]), float(sys.argv[6])
p0, p1, s0, s1, hz = (int(x) for x in sys.argv[7:12])
text = open(out).read()
job = json.loads(text[text.find("{"):])["jobs"][0]
wall = t1 - t0
fio_cores = (job.get("usr_cpu", 0) + job.get("sys_cpu", 0)) / 100
print(f"{rnd}\t{cfg}\t{name}\t{wall:.3f}\t{(p1 - p0) / hz / wall:.3f}\t"
      f"{(s1 - s0) / hz / wall:.3f}\t{fio_cores:.3f}")
PY
}

# settle CFG WORKLOAD: nothing queued or dirty towards any peer of any
# sending node (blockrelay configs: STATUS_NODES, in hop order, so a relay
# is asked only once its upstream has handed it everything), then the dirty
# page cache of the backing filesystem written back, so each workload
# starts from the same state.  How long the replicas took to catch up after
# WORKLOAD goes to settle.tsv (the wait polls every 50 ms).
STATUS_CONF=""
STATUS_NODES=()
settle() {
  local n t0 t1
  if [ ${#STATUS_NODES[@]} -gt 0 ]; then
    t0=$(date +%s.%N)
    for n in "${STATUS_NODES[@]}"; do
      run_wait status "$BLOCKRELAY" status --config "$STATUS_CONF" --node "$n" \
        --wait replicating --timeout 300 >>"$LOGS/status.log" 2>&1 ||
        die "peers of $n did not get back in sync"
    done
    t1=$(date +%s.%N)
    printf '%s\t%s\t%s\t%s\n' "$ROUND" "$1" "$2" \
      "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" >>"$RES/settle.tsv"
  fi
  run_wait sync sync -f "$WORK"
}

# run_workloads CFG URI: prefill, then the four measured workloads.
run_workloads() {
  local cfg=$1 uri=$2
  local common=(--time_based --runtime="$RUNTIME" --ramp_time="$RAMP")
  local rnd=(--norandommap --random_generator=tausworthe64 --randrepeat=1)
  log "$cfg: prefill ($SIZE, 1 MiB writes, QD16)"
  fio_job "$cfg" prefill "$uri" --rw=write --bs=1M --iodepth=16
  settle "$cfg" prefill
  log "$cfg: 1 MiB sequential write QD16"
  fio_job "$cfg" seqwrite "$uri" "${common[@]}" --rw=write --bs=1M --iodepth=16
  settle "$cfg" seqwrite
  log "$cfg: 4 KiB random write QD32"
  fio_job "$cfg" randwrite32 "$uri" "${common[@]}" "${rnd[@]}" \
    --rw=randwrite --bs=4k --iodepth=32
  settle "$cfg" randwrite32
  log "$cfg: 4 KiB random write QD1"
  fio_job "$cfg" randwrite1 "$uri" "${common[@]}" "${rnd[@]}" \
    --rw=randwrite --bs=4k --iodepth=1 --lat_percentiles=1
  settle "$cfg" randwrite1
  log "$cfg: 4 KiB random read QD32"
  fio_job "$cfg" randread32 "$uri" "${common[@]}" "${rnd[@]}" \
    --rw=randread --bs=4k --iodepth=32
}

check() {
  local pre=""
  [ "$ROUNDS" -eq 1 ] || pre="round $ROUND: "
  printf '%s\t%s\t%s\n' "$1" "$2" "$pre$3" >>"$RES/checks.tsv"
}

compare_images() {   # CFG FILE1 FILE2 [WHAT]
  local cfg=$1 a=$2 b=$3 what=${4:-images}
  if cmp -s "$a" "$b"; then
    check "$cfg" "$what after the run" "identical (cmp)"
  else
    check "$cfg" "$what after the run" "**DIFFER** ($(cmp "$a" "$b" 2>&1 | head -1))"
    log "WARNING: $cfg: $a and $b differ"
  fi
}

# ---------------------------------------------------------------- configs
start_nbdkit() {   # NAME PORT PLUGIN ARGS...: nbdkit in the foreground (-f)
  local name=$1 port=$2; shift 2
  rm -f "$WORK/$name.pid"
  start_proc "$name" nbdkit -f -P "$WORK/$name.pid" -p "$port" -i 127.0.0.1 "$@"
  wait_pidfile "$WORK/$name.pid" "$name"
}

run_B() {
  local d=$WORK/r$ROUND/B port
  mkdir -p "$d"
  truncate -s "$SIZE" "$d/vol0.img"
  free_port port
  start_nbdkit B-nbdkit "$port" file "$d/vol0.img"
  SERVER_PIDS=("${PIDS[B-nbdkit]}"); STATUS_NODES=()
  run_workloads B "nbd://127.0.0.1:$port/vol0"
  stop_proc B-nbdkit
}

# topo_links CFG: the links of a blockrelay configuration, one
# "FROM TO MODE" a line, in hop order from the primary a (a link from a
# node comes after the link into it).  a runs the plugin; every other node
# is a blockrelayd on this host.
topo_links() {
  case $1 in
    none) ;;
    async|sync) echo "a b $1" ;;
    async-tls|sync-tls) echo "a b ${1%-tls}" ;;
    cascade) echo "a b sync"; echo "b c async" ;;           # a -> b -> c
    cascade-async) echo "a b async"; echo "b c async" ;;
    cascade-sync) echo "a b sync"; echo "b c sync" ;;
    one-to-two) echo "a b sync"; echo "a c async" ;;        # a -> b, a -> c
    one-to-two-async) echo "a b async"; echo "a c async" ;;
  esac
}

# node_status CFG CONF NODE TAG: NODE's status, appended to RES/CFG-status.txt.
node_status() {
  { echo "# round $ROUND, $4: node $3"
    "$BLOCKRELAY" status --config "$2" --node "$3" 2>&1 || true
    echo; } >>"$RES/$1-status.txt"
}

# run_blockrelay CFG: the plugin on node a (assume-clean=true: every copy
# starts as the same sparse file), blockrelayd on the other nodes.
run_blockrelay() {
  local cfg=$1 d=$WORK/r$ROUND/$1 port conf n i from to mode st
  local -a lfrom=() lto=() lmode=() nodes=(a) senders=()
  local -A seen=([a]=1) sends=() addr=()
  while read -r from to mode; do
    lfrom+=("$from"); lto+=("$to"); lmode+=("$mode")
    [ -n "${seen[$to]:-}" ] || { nodes+=("$to"); seen[$to]=1; }
    [ -n "${sends[$from]:-}" ] || { senders+=("$from"); sends[$from]=1; }
  done < <(topo_links "$cfg")
  mkdir -p "$d"
  conf=$d/topology.yaml
  for n in "${nodes[@]}"; do free_port "addr[$n]"; done
  free_port port
  if [[ $cfg == *-tls ]]; then
    head -c 32 /dev/urandom >"$d/secret"
    chmod 600 "$d/secret"
  fi
  {
    [[ $cfg != *-tls ]] || echo "settings: {secret-file: $d/secret, tls: psk}"
    echo "volumes:"
    echo "  - {name: vol0, size: $SIZE}"
    echo "nodes:"
    for n in "${nodes[@]}"; do
      echo "  - {name: $n, address: 127.0.0.1:${addr[$n]}, data-dir: $d/$n, control: $SOCKDIR/$cfg-$n.sock}"
    done
    if [ ${#lfrom[@]} -gt 0 ]; then
      echo "links:"
      for i in "${!lfrom[@]}"; do
        echo "  - {between: [${lfrom[i]}, ${lto[i]}], mode: ${lmode[i]}}"
      done
    fi
  } >"$conf"
  "$BLOCKRELAY" check-config "$conf" >>"$LOGS/$cfg.log" 2>&1 ||
    die "$cfg: bad topology $conf"
  # Replicas first, the last hop first; then the primary.
  SERVER_PIDS=()
  for ((i = ${#nodes[@]} - 1; i >= 1; i--)); do
    n=${nodes[i]}
    rm -f "$WORK/$cfg-$n.pid"
    echo "=== round $ROUND" >>"$LOGS/$cfg-$n.log"
    start_proc "$cfg-$n" "$BLOCKRELAYD" --config "$conf" --node "$n" \
      --pidfile "$WORK/$cfg-$n.pid"
    wait_pidfile "$WORK/$cfg-$n.pid" "$cfg-$n"
    SERVER_PIDS+=("${PIDS[$cfg-$n]}")
  done
  echo "=== round $ROUND" >>"$LOGS/$cfg-a.log"
  start_nbdkit "$cfg-a" "$port" "$PLUGIN" config="$conf" node=a assume-clean=true
  SERVER_PIDS+=("${PIDS[$cfg-a]}")
  STATUS_CONF=$conf
  STATUS_NODES=("${senders[@]}")
  [ ${#senders[@]} -gt 0 ] || STATUS_NODES=(a)
  # Ready when every sending node, in hop order, has every peer replicating
  # and clean (including any resync a relay owes its children).
  for n in "${STATUS_NODES[@]}"; do
    run_wait status "$BLOCKRELAY" status --config "$conf" --node "$n" \
      --wait replicating --timeout 300 >>"$LOGS/status.log" 2>&1 ||
      die "$cfg: node $n never reached replicating"
  done
  for n in "${STATUS_NODES[@]}"; do node_status "$cfg" "$conf" "$n" "before"; done
  st=$(cat "$RES/$cfg-status.txt")
  for i in "${!lfrom[@]}"; do
    # Each link shows as a replicating peer of the right mode on its sender.
    awk -v r="$ROUND" -v n="${lfrom[i]}" -v to="${lto[i]}" -v m="${lmode[i]}" '
      $0 == "# round " r ", before: node " n { on = 1; next } /^# / { on = 0 }
      on && $0 ~ (" " to " +" m " +replicating ") { ok = 1 }
      END { exit !ok }' <<<"$st" ||
      die "$cfg: ${lfrom[i]} does not show ${lto[i]} as a replicating ${lmode[i]} peer: $st"
  done
  run_workloads "$cfg" "nbd://127.0.0.1:$port/vol0"
  settle "$cfg" randread32
  for n in "${STATUS_NODES[@]}"; do node_status "$cfg" "$conf" "$n" "after"; done
  for n in "${nodes[@]}"; do
    echo "=== round $ROUND: stopping" >>"$LOGS/$cfg-$n.log"
  done
  for n in "${nodes[@]}"; do stop_proc "$cfg-$n"; done
  for n in "${nodes[@]:1}"; do
    compare_images "$cfg" "$d/a/vol0.img" "$d/$n/vol0.img" "images of a and $n"
  done
  log_problems "$cfg" "${nodes[@]}"
  STATUS_NODES=()
}

# log_problems CFG NODE...: one check with, per node, the warning and error
# lines it logged in this round before it was stopped (the lines after the
# "=== stopping" mark are the expected shutdown: connections closed), and
# how often a relay's queue overflowed (its peer fell back to a resync
# from the bitmap).  The plugin logs info lines only with nbdkit -v, so a
# primary's own overflows do not show here.
log_problems() {
  local cfg=$1 n f part cnt first full msg="" sep=""; shift
  for n in "$@"; do
    f=$LOGS/$cfg-$n.log
    [ -f "$f" ] || continue
    part=$(sed -n "/^=== round $ROUND\$/,/^=== round $ROUND: stopping/p" "$f")
    cnt=$(grep -Eic 'error|warn|fail|lost|split|abort' <<<"$part" || true)
    first=$(grep -Ei 'error|warn|fail|lost|split|abort' <<<"$part" | head -1 || true)
    full=$(grep -c 'queue full' <<<"$part" || true)
    msg+="$sep$n: "
    if [ "$cnt" -eq 0 ]; then
      msg+="clean"
    else
      msg+="**$cnt warning/error lines**, first \`${first:0:200}\`"
    fi
    [ "$full" -eq 0 ] || msg+=", queue full (pulled ahead) ${full}×"
    sep="; "
  done
  check "$cfg" "logs while running" "$msg"
}

run_qemu_mirror() {
  local cfg=qemu-mirror d=$WORK/r$ROUND/qemu-mirror tport qport qmp i off pat jobs
  mkdir -p "$d"
  truncate -s "$SIZE" "$d/src.img" "$d/dst.img"
  free_port tport; free_port qport
  qmp=$SOCKDIR/qmp.sock
  # Mirror target: nbdkit's file plugin on a second file.
  start_nbdkit qm-target "$tport" file "$d/dst.img"
  # Source: qemu-storage-daemon exporting a raw file over NBD, buffered I/O
  # like the nbdkit file plugin and the blockrelay volume layer.
  rm -f "$WORK/qm-qsd.pid"
  start_proc qm-qsd qemu-storage-daemon \
    --blockdev "driver=file,node-name=src-file,filename=$d/src.img,aio=threads,cache.direct=off" \
    --blockdev "driver=raw,node-name=src,file=src-file" \
    --nbd-server "addr.type=inet,addr.host=127.0.0.1,addr.port=$qport" \
    --export "type=nbd,id=exp0,node-name=src,name=vol0,writable=on" \
    --chardev "socket,id=qmp0,path=$qmp,server=on,wait=off" \
    --monitor chardev=qmp0 \
    --pidfile "$WORK/qm-qsd.pid"
  wait_pidfile "$WORK/qm-qsd.pid" qm-qsd
  # blockdev-add the NBD target, blockdev-mirror sync=full
  # copy-mode=write-blocking, wait for BLOCK_JOB_READY, check
  # query-block-jobs (mirror, ready, no error).
  run_wait qmp python3 "$BENCHDIR/qmp.py" "$qmp" mirror --target-port "$tport" \
    --timeout 300 >"$RES/qemu-mirror-jobs.json" 2>>"$LOGS/qm-qmp.log" ||
    die "qemu-mirror: mirror job did not start or become ready: $(cat "$LOGS/qm-qmp.log")"
  jobs=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["query-block-jobs"][0]; print(", ".join(f"{k}={j[k]}" for k in ("type","status","ready","io-status","len","offset") if k in j))' "$RES/qemu-mirror-jobs.json")
  check "$cfg" "mirror job before measuring" "blockdev-mirror sync=full copy-mode=write-blocking accepted; BLOCK_JOB_READY received; query-block-jobs: $jobs"
  # Behavioural proof of write-blocking: each write acknowledged by the
  # source export is already on the target when read back right away (in
  # background mode these reads see stale data).
  for i in 1 2 3 4 5 6 7 8; do
    off=$(( (i * 7919) % 1000 * 1048576 ))
    pat=$(( 16 + i * 13 ))
    qemu-io -f raw "nbd://127.0.0.1:$qport/vol0" \
      -c "write -P $pat $off 64k" >>"$LOGS/qm-probe.log" 2>&1 ||
      die "qemu-mirror: probe write failed"
    qemu-io -r -f raw "nbd://127.0.0.1:$tport/" \
      -c "read -P $pat $off 64k" >>"$LOGS/qm-probe.log" 2>&1 ||
      die "qemu-mirror: probe write $i was not on the target when acknowledged: not write-blocking?"
    grep -q "Pattern verification failed" "$LOGS/qm-probe.log" &&
      die "qemu-mirror: probe write $i was not on the target when acknowledged: not write-blocking?"
  done
  check "$cfg" "write-blocking probe" "8/8 writes acknowledged by the source were already on the target when read back at once"
  SERVER_PIDS=("${PIDS[qm-qsd]}" "${PIDS[qm-target]}"); STATUS_NODES=()
  run_workloads "$cfg" "nbd://127.0.0.1:$qport/vol0"
  python3 "$BENCHDIR/qmp.py" "$qmp" query >"$RES/qemu-mirror-jobs-after.json" \
    2>>"$LOGS/qm-qmp.log" || die "qemu-mirror: query-block-jobs failed"
  jobs=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))[0]; print(", ".join(f"{k}={j[k]}" for k in ("type","status","ready","io-status") if k in j))' "$RES/qemu-mirror-jobs-after.json") ||
    die "qemu-mirror: the mirror job is gone after the workloads"
  check "$cfg" "mirror job after measuring" "$jobs"
  stop_proc qm-qsd
  stop_proc qm-target
  compare_images "$cfg" "$d/src.img" "$d/dst.img"
}

# ---------------------------------------------------------------- main
declare -A RAN=()
ROUND=0
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
for cfg in "${CFG_LIST[@]}"; do
  log "=== round $ROUND/$ROUNDS: configuration $cfg"
  sync -f "$WORK"
  case $cfg in
    B) run_B ;;
    none|async|sync|cascade|cascade-async|cascade-sync|one-to-two|one-to-two-async|async-tls|sync-tls)
      run_blockrelay "$cfg" ;;
    qemu-mirror)
      if [ $HAVE_QEMU -eq 0 ]; then
        log "qemu-storage-daemon or qemu-io missing: skipping qemu-mirror"
        check qemu-mirror skipped "qemu-storage-daemon or qemu-io not installed"
        continue
      fi
      run_qemu_mirror ;;
  esac
  RAN[$cfg]=1
  # Free the disk space and the page cache of this configuration's files.
  [ $KEEP -eq 1 ] || rm -rf "${WORK:?}/r$ROUND/$cfg"
done
done
REPORT_CFGS=()
for cfg in "${CFG_LIST[@]}"; do
  [ -z "${RAN[$cfg]:-}" ] || REPORT_CFGS+=("$cfg")
done

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$(dirname "$OUTPUT")"
{
  echo "## blockrelay benchmark"
  echo
  echo "$INFO"
  echo "- load average at end: $LOAD_END"
  echo "- method: one fio job (--ioengine=nbd, one NBD connection) per workload; every configuration's volume starts as a sparse $SIZE file, is prefilled through its own export (1 MiB writes) so no workload touches holes (blockrelay configurations: the plugin runs with assume-clean=true, so no initial full sync; every node, in hop order, replicating before the prefill), and between workloads replication is drained (blockrelay status --wait replicating on every sending node, in hop order) and the backing filesystem synced (sync -f)."
  echo
  python3 "$BENCHDIR/report.py" "$RES" "${REPORT_CFGS[@]}"
} >"$OUTPUT.tmp"
mv "$OUTPUT.tmp" "$OUTPUT"
cat "$OUTPUT"
log "report written to $OUTPUT"
