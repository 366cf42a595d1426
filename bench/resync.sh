#!/usr/bin/env bash
# bench/resync.sh — resync benchmark (issue 3, "Benchmark").
#
# In one run, on one 1 GiB volume whose backing files live in one directory
# on one disk, measures:
#
#   D   disk bandwidth: fio, sequential 1 MiB buffered writes of 1 GiB to
#       a plain file in that directory, then one fsync (--end_fsync=1);
#       three times at the start (the first one fills the primary's image
#       with non-zero data) and twice at the end; D is the median (the disk
#       is shared, single runs vary by 2x or more).
#   L   link bandwidth: a TCP stream over 127.0.0.1 between two python3
#       processes (1 GiB in 1 MiB sends); for information also nbdcopy of
#       the image to an `nbdkit memory` export.  min(D, L) is the reference.
#   full sync of a new replica (the whole volume dirty).
#   resync after N MiB of scattered 64 KiB writes (N/64K dirty regions, fio
#       randwrite through the primary's export while the replica is
#       stopped): time from starting the replica until
#       `blockrelay status --wait replicating` returns; bytes/s; ratio to
#       min(D, L).  Then the same with the link capped (`rate: 100M`), where
#       the reference is min(D, cap).
#   the naive alternative: nbdcopy --flush of the whole image to an
#       `nbdkit file` export of a fresh file.
#
# and checks the issue 3 targets: resync throughput >= 0.8 x min(D, L);
# resync after touching 1% of the volume <= 5% of the full copy's time.
# Prints a Markdown report and writes it to bench/last-resync.md.
#
# Readiness is a signal, never a fixed sleep: pidfiles (nbdkit -P,
# blockrelayd --pidfile, the python receiver's pidfile) and the control
# socket (blockrelay status).  A trap stops everything this script started.
# See bench/README.md.

set -euo pipefail

BENCHDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRCDIR=$(cd "$BENCHDIR/.." && pwd)
CMDLINE=$(printf '%q ' "$0" "$@")
CMDLINE=${CMDLINE% }

usage() {
  cat <<EOF
usage: bench/resync.sh [options]

  --sizes LIST      dirty amounts in MiB, comma-separated (default 10,64,256)
  --cap RATE        link cap for the capped rounds, a topology size
                    (default 100M = 100 MiB/s); "none" skips them
  --mode MODE       link mode, sync or async (default sync)
  --reconnect-max D topology reconnect-max (default 100ms; the engine's
                    default is 5s, which adds up to 5 s before a resync)
  --dir DIR         put backing files in a fresh directory under DIR
                    (default: under /var/tmp)
  --output FILE     Markdown report (default: bench/last-resync.md)
  --builddir DIR    where blockrelayd, blockrelay and the plugin are
                    (default: \$BUILDDIR or <repo>/build)
  --keep            keep the work directory (images, logs, JSON)
  -h, --help        this text
EOF
}

SIZES="10,64,256"
CAP=100M
MODE=sync
RECONNECT_MAX=100ms
BASEDIR=/var/tmp
OUTPUT=$BENCHDIR/last-resync.md
BUILDDIR=${BUILDDIR:-$SRCDIR/build}
KEEP=0
VOLSIZE_MIB=1024
GRAN=65536

while [ $# -gt 0 ]; do
  case $1 in
    --sizes) SIZES=$2; shift 2 ;;
    --sizes=*) SIZES=${1#*=}; shift ;;
    --cap) CAP=$2; shift 2 ;;
    --cap=*) CAP=${1#*=}; shift ;;
    --mode) MODE=$2; shift 2 ;;
    --mode=*) MODE=${1#*=}; shift ;;
    --reconnect-max) RECONNECT_MAX=$2; shift 2 ;;
    --reconnect-max=*) RECONNECT_MAX=${1#*=}; shift ;;
    --dir) BASEDIR=$2; shift 2 ;;
    --dir=*) BASEDIR=${1#*=}; shift ;;
    --output) OUTPUT=$2; shift 2 ;;
    --output=*) OUTPUT=${1#*=}; shift ;;
    --builddir) BUILDDIR=$2; shift 2 ;;
    --builddir=*) BUILDDIR=${1#*=}; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "resync.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

IFS=, read -r -a SIZE_LIST <<<"$SIZES"
for n in "${SIZE_LIST[@]}"; do
  [[ $n =~ ^[0-9]+$ && $n -gt 0 && $n -le $VOLSIZE_MIB ]] ||
    die "--sizes: '$n' is not a MiB count between 1 and $VOLSIZE_MIB"
done
case $MODE in sync|async) ;; *) die "--mode must be sync or async" ;; esac
if [ "$CAP" != none ]; then
  CAP_BYTES=$(python3 -c '
import re, sys
m = re.fullmatch(r"(\d+)\s*([KMGT]?)(i?B?)", sys.argv[1])
if not m: sys.exit(1)
print(int(m.group(1)) * 1024 ** " KMGT".index(m.group(2) or " "))' "$CAP") ||
    die "--cap: '$CAP' is not a size like 100M"
fi

# ---------------------------------------------------------------- tools
for t in fio nbdkit nbdcopy python3 ss sync cmp; do
  command -v "$t" >/dev/null 2>&1 || die "$t is not installed"
done
fio --enghelp=nbd >/dev/null 2>&1 || die "this fio has no nbd engine"
for f in blockrelayd blockrelay nbdkit-blockrelay-plugin.so; do
  [ -f "$BUILDDIR/$f" ] || die "$BUILDDIR/$f is missing: build first (cmake -S . -B build && make -C build)"
done

# ---------------------------------------------------------------- work dirs
mkdir -p "$BASEDIR"
WORK=$(mktemp -d "$BASEDIR/blockrelay-resync.XXXXXX")
SOCKDIR=$(mktemp -d /tmp/brresync.XXXXXX)   # sun_path is 108 bytes
RES=$WORK/results
LOGS=$WORK/logs
BIN=$WORK/bin
mkdir -p "$RES" "$LOGS" "$BIN"
: >"$RES/rows.tsv"
: >"$RES/checks.tsv"

. "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

now() { date +%s.%N; }
loadavg1() { cut -d' ' -f1 /proc/loadavg; }
check() { printf '%s\t%s\n' "$1" "$2" >>"$RES/checks.tsv"; }

# ---------------------------------------------------------------- binaries
cp "$BUILDDIR/blockrelayd" "$BUILDDIR/blockrelay" \
   "$BUILDDIR/nbdkit-blockrelay-plugin.so" "$BIN/"
BLOCKRELAYD=$BIN/blockrelayd
BLOCKRELAY=$BIN/blockrelay
PLUGIN=$BIN/nbdkit-blockrelay-plugin.so

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
DATE_START=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
FS=$(findmnt -n -T "$WORK" -o SOURCE,FSTYPE,OPTIONS 2>/dev/null ||
     df -T "$WORK" | tail -1)
log "command: $CMDLINE"
log "work directory: $WORK (load average $LOAD_START)"

D=$WORK/data
mkdir -p "$D/a" "$D/b" "$D/naive"
IMG_A=$D/a/vol0.img
IMG_B=$D/b/vol0.img

# ---------------------------------------------------------------- D
# disk_bw NAME FILE: fio, 1 GiB of sequential 1 MiB buffered writes and an
# fsync at the end; wall-clock time of the fio process (which includes the
# fsync).  Prints bytes/s.
disk_bw() {
  local name=$1 file=$2 t0 t1 rc=0
  sync -f "$WORK"
  t0=$(now)
  run_wait fio fio --name="$name" --filename="$file" --size=${VOLSIZE_MIB}M \
    --rw=write --bs=1M --ioengine=psync --direct=0 --end_fsync=1 \
    --output-format=json --output="$RES/$name.json" >>"$LOGS/fio.log" 2>&1 || rc=$?
  t1=$(now)
  [ $rc -eq 0 ] || die "fio $name failed; see $LOGS/fio.log"
  python3 -c 'import sys; print(int(int(sys.argv[1]) * 1048576 / (float(sys.argv[3]) - float(sys.argv[2]))))' \
    "$VOLSIZE_MIB" "$t0" "$t1"
}

# D_RUNS: "label bytes/s load" per run.
D_RUNS=()
d_run() {   # LABEL FILE
  local bw
  bw=$(disk_bw "disk-${1// /-}" "$2")
  D_RUNS+=("$1"$'\t'"$bw"$'\t'"$(loadavg1)")
  log "D ($1) = $((bw / 1048576)) MiB/s"
}
log "D: 1 GiB sequential 1 MiB writes + fsync (the first one fills the primary's image)"
d_run "start 1" "$IMG_A"
for i in 2 3; do
  d_run "start $i" "$D/naive/scratch.img"
  rm -f "$D/naive/scratch.img"
done

# ---------------------------------------------------------------- L
log "L: 1 GiB over a TCP connection on 127.0.0.1 (python3 sender -> receiver)"
free_port LPORT
rm -f "$WORK/tcp-recv.pid" "$RES/tcp.txt"
# (A background job's stdin is /dev/null: the receiver goes in a file.)
cat >"$WORK/tcp-recv.py" <<'PY'
import os, socket, sys, time
port, pidfile, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen(1)
with open(pidfile + ".tmp", "w") as f:
    f.write(f"{os.getpid()}\n")
os.rename(pidfile + ".tmp", pidfile)      # readiness: listening
c, _ = ls.accept()
buf = bytearray(1 << 20)
view = memoryview(buf)
n = 0
t0 = None
while True:
    k = c.recv_into(view)
    if t0 is None:
        t0 = time.monotonic()
    if k == 0:
        break
    n += k
t1 = time.monotonic()
with open(out, "w") as f:
    f.write(f"{n} {t1 - t0:.6f}\n")
PY
start_proc tcp-recv python3 "$WORK/tcp-recv.py" "$LPORT" "$WORK/tcp-recv.pid" "$RES/tcp.txt"
wait_pidfile "$WORK/tcp-recv.pid" tcp-recv
cat >"$WORK/tcp-send.py" <<'PY'
import os, socket, sys
port, mib = int(sys.argv[1]), int(sys.argv[2])
buf = os.urandom(1 << 20)
s = socket.create_connection(("127.0.0.1", port))
for _ in range(mib):
    s.sendall(buf)
s.shutdown(socket.SHUT_WR)
s.recv(1)          # until the receiver has closed (results written)
s.close()
PY
run_wait tcp-send python3 "$WORK/tcp-send.py" "$LPORT" "$VOLSIZE_MIB" ||
  die "TCP sender failed"
wait "${PIDS[tcp-recv]}" || die "TCP receiver failed: $(cat "$LOGS/tcp-recv.log")"
unset "PIDS[tcp-recv]"
read -r TCP_BYTES TCP_SECS <"$RES/tcp.txt"
[ "$TCP_BYTES" -eq $((VOLSIZE_MIB * 1048576)) ] || die "TCP receiver got $TCP_BYTES bytes"
L_TCP=$(python3 -c 'import sys; print(int(int(sys.argv[1]) / float(sys.argv[2])))' "$TCP_BYTES" "$TCP_SECS")
log "L (TCP) = $((L_TCP / 1048576)) MiB/s"

log "L (NBD): nbdcopy of the image to an nbdkit memory export"
free_port MPORT
rm -f "$WORK/mem.pid"
start_proc nbdkit-memory nbdkit -f -P "$WORK/mem.pid" -p "$MPORT" -i 127.0.0.1 \
  memory size=${VOLSIZE_MIB}M
wait_pidfile "$WORK/mem.pid" nbdkit-memory
T0=$(now)
run_wait nbdcopy nbdcopy "$IMG_A" "nbd://127.0.0.1:$MPORT/" \
  >>"$LOGS/nbdcopy.log" 2>&1 || die "nbdcopy to nbdkit memory failed"
T1=$(now)
stop_proc nbdkit-memory
L_NBD=$(python3 -c 'import sys; print(int(int(sys.argv[1]) * 1048576 / (float(sys.argv[3]) - float(sys.argv[2]))))' "$VOLSIZE_MIB" "$T0" "$T1")
log "L (nbdcopy -> nbdkit memory) = $((L_NBD / 1048576)) MiB/s"

# ---------------------------------------------------------------- the pair
# topology CAPSPEC: write the topology (CAPSPEC is "" or ", rate: X").
TOPO=$WORK/topology.yaml
free_port PA; free_port PB; free_port PNBD
topology() {
  cat >"$TOPO" <<EOF
settings:
  granularity: 64K
  reconnect-min: 50ms
  reconnect-max: $RECONNECT_MAX
volumes:
  - {name: vol0, size: ${VOLSIZE_MIB}M}
nodes:
  - {name: a, address: 127.0.0.1:$PA, data-dir: $D/a, control: $SOCKDIR/a.sock}
  - {name: b, address: 127.0.0.1:$PB, data-dir: $D/b, control: $SOCKDIR/b.sock}
links:
  - {between: [a, b], mode: $MODE$1}
EOF
  "$BLOCKRELAY" check-config "$TOPO" >>"$LOGS/check-config.log" 2>&1 ||
    die "bad topology $TOPO: $(cat "$LOGS/check-config.log")"
}
STATUS_A=(--config "$TOPO" --node a)
URI=nbd://127.0.0.1:$PNBD/vol0

start_replica() {
  rm -f "$WORK/b.pid"
  start_proc b "$BLOCKRELAYD" --config "$TOPO" --node b --pidfile "$WORK/b.pid"
  wait_pidfile "$WORK/b.pid" b
}
start_primary() {
  rm -f "$WORK/a.pid"
  start_proc a nbdkit -f -P "$WORK/a.pid" -p "$PNBD" -i 127.0.0.1 \
    "$PLUGIN" config="$TOPO" node=a
  wait_pidfile "$WORK/a.pid" a
}
wait_replicating() {
  run_wait status "$BLOCKRELAY" status "${STATUS_A[@]}" --wait replicating \
    --timeout 600 >>"$LOGS/status.log" 2>&1 || die "the pair did not get in sync"
}
# peer_field FIELD: FIELD of peer b in the primary's status --json.
peer_field() {
  "$BLOCKRELAY" status "${STATUS_A[@]}" --json 2>>"$LOGS/status.log" |
    python3 -c '
import json, sys
st = json.load(sys.stdin)
p = [p for v in st["volumes"] for p in v["peers"] if p["node"] == "b"][0]
print(p[sys.argv[1]])' "$1"
}
# wait_peer_down: until the primary has noticed the replica is gone.
wait_peer_down() {
  local i=0 st
  while :; do
    st=$(peer_field state) || st=unknown
    case $st in logging|connecting|handshake) return 0 ;; esac
    [ $i -lt 600 ] || die "the primary still sees the replica as '$st'"
    sleep 0.05
    i=$((i + 1))
  done
}
# log_times LOGFILE OFFSET T0: timestamps (epoch s) of the replica's first
# "replicating from a" (connected, handshake done) and "in sync with a"
# (SYNCED applied: the resync is complete and durable) lines after byte
# OFFSET of its log (blockrelayd logs with 1 ms timestamps; the plugin's
# info lines only reach nbdkit's debug output).
log_times() {
  python3 - "$@" <<'PY'
import datetime, re, sys
path, off, t0 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with open(path, "rb") as f:
    f.seek(off)
    text = f.read().decode(errors="replace")
base = datetime.datetime.fromtimestamp(t0).replace(hour=0, minute=0, second=0, microsecond=0)
def when(pat):
    for line in text.splitlines():
        m = re.match(r"(\d\d):(\d\d):(\d\d)\.(\d{3}) .*" + pat, line)
        if m:
            h, mi, s, ms = (int(x) for x in m.groups())
            t = (base + datetime.timedelta(hours=h, minutes=mi, seconds=s,
                                           milliseconds=ms)).timestamp()
            if t < t0 - 43200:
                t += 86400
            return f"{t:.3f}"
    return "-"
print(when(r"replicating from a"), when(r"in sync with a"))
PY
}

# row KIND N_MIB DIRTY SECS T_CONN T_DONE SENT REF LOAD
row() { local IFS=$'\t'; echo "$*" >>"$RES/rows.tsv"; }

# ---------------------------------------------------------------- full sync
topology ""
log "full sync: replica b (empty) and primary a (image filled above, new scoreboard)"
start_replica
OFF=$(stat -c %s "$LOGS/b.log")
T0=$(now)
start_primary
wait_replicating
T1=$(now)
read -r TC TD < <(log_times "$LOGS/b.log" "$OFF" "$T0")
SENT=$(peer_field sent_bytes)
tail -c +$((OFF + 1)) "$LOGS/b.log" | grep -q "resync from a started" ||
  die "the replica was not resynced"
row full "$VOLSIZE_MIB" $((VOLSIZE_MIB * 1048576)) "$(python3 -c "print(f'{$T1 - $T0:.3f}')")" \
  "$TC" "$TD" "$SENT" "$T0" "$(loadavg1)" "-"
log "full sync of ${VOLSIZE_MIB} MiB: $(python3 -c "print(f'{$T1 - $T0:.2f}')") s"

# resync_round KIND N: one measurement (see the header).
resync_round() {
  local kind=$1 n=$2 dirty t0 t1 tc td sent0 sent1 off load
  wait_replicating
  log "$kind N=$n MiB: stopping the replica"
  stop_proc b
  wait_peer_down
  sent0=$(peer_field sent_bytes)
  log "$kind N=$n MiB: $((n * 16)) scattered 64 KiB writes through the primary"
  run_wait fio fio --name="w-$kind-$n" --ioengine=nbd --uri="$URI" \
    --size=${VOLSIZE_MIB}M --io_size=${n}M --rw=randwrite --bs=64k \
    --iodepth=16 --randseed=$((n * 7 + ${#kind})) \
    --output-format=json --output="$RES/w-$kind-$n.json" \
    >>"$LOGS/fio.log" 2>&1 || die "fio randwrite failed"
  dirty=$(peer_field dirty_bytes)
  if [ "$dirty" -ne $((n * 1048576)) ]; then
    log "WARNING: dirty_bytes is $dirty, expected $((n * 1048576))"
    check "$kind N=$n: dirty_bytes before the restart" "**$dirty, expected $((n * 1048576))**"
  else
    check "$kind N=$n: dirty_bytes before the restart" "$dirty = $n MiB (as expected)"
  fi
  load=$(loadavg1)
  sync -f "$WORK"   # the writes' dirty page cache is not the resync's cost
  off=$(stat -c %s "$LOGS/b.log")
  log "$kind N=$n MiB: starting the replica; timing until status --wait replicating returns"
  t0=$(now)
  start_replica
  wait_replicating
  t1=$(now)
  sent1=$(peer_field sent_bytes)
  read -r tc td < <(log_times "$LOGS/b.log" "$off" "$t0")
  # Payload plus frame headers; more would mean regions resent.
  if [ $((sent1 - sent0)) -gt $((n * 1048576 * 101 / 100 + 65536)) ]; then
    check "$kind N=$n: bytes sent for the resync" "**$((sent1 - sent0)) (more than N MiB + 1%)**"
  else
    check "$kind N=$n: bytes sent for the resync" "$((sent1 - sent0)) (N MiB + headers)"
  fi
  row "$kind" "$n" "$dirty" "$(python3 -c "print(f'{$t1 - $t0:.3f}')")" "$tc" "$td" \
    "$((sent1 - sent0))" "$t0" "$load" "-"
  log "$kind N=$n MiB: $(python3 -c "print(f'{$t1 - $t0:.3f}')") s"
}

for n in "${SIZE_LIST[@]}"; do
  resync_round resync "$n"
done

if [ "$CAP" != none ]; then
  log "restarting the pair with the link capped at $CAP/s"
  wait_replicating
  stop_proc a
  stop_proc b
  topology ", rate: $CAP"
  start_replica
  start_primary
  wait_replicating
  for n in "${SIZE_LIST[@]}"; do
    resync_round capped "$n"
  done
fi

wait_replicating
stop_proc a
stop_proc b
if cmp -s "$IMG_A" "$IMG_B"; then
  check "primary and replica images at the end" "identical (cmp)"
else
  check "primary and replica images at the end" "**DIFFER** ($(cmp "$IMG_A" "$IMG_B" 2>&1 | head -1))"
  log "WARNING: the images differ"
fi

# ---------------------------------------------------------------- naive
log "naive: nbdcopy --flush of the primary's image to an nbdkit file export of a fresh file"
truncate -s ${VOLSIZE_MIB}M "$D/naive/copy.img"
free_port FPORT
rm -f "$WORK/naive.pid"
start_proc nbdkit-file nbdkit -f -P "$WORK/naive.pid" -p "$FPORT" -i 127.0.0.1 \
  file "$D/naive/copy.img"
wait_pidfile "$WORK/naive.pid" nbdkit-file
sync -f "$WORK"
LOAD_NAIVE=$(loadavg1)
T0=$(now)
run_wait nbdcopy nbdcopy --flush "$IMG_A" "nbd://127.0.0.1:$FPORT/" \
  >>"$LOGS/nbdcopy.log" 2>&1 || die "nbdcopy full copy failed"
T1=$(now)
stop_proc nbdkit-file
NAIVE_SECS=$(python3 -c "print(f'{$T1 - $T0:.3f}')")
log "full nbdcopy: $NAIVE_SECS s"
if cmp -s "$IMG_A" "$D/naive/copy.img"; then
  check "nbdcopy destination" "identical to the primary's image (cmp)"
else
  check "nbdcopy destination" "**DIFFERS** from the primary's image"
fi
rm -f "$D/naive/copy.img"

log "D again at the end"
for i in 1 2; do
  d_run "end $i" "$D/naive/scratch.img"
  rm -f "$D/naive/scratch.img"
done
printf '%s\n' "${D_RUNS[@]}" >"$RES/disk.tsv"

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
mkdir -p "$(dirname "$OUTPUT")"
{
  cat <<EOF
## blockrelay resync benchmark (issue 3)

- command: \`$CMDLINE\`
- date: $DATE_START
- nproc: $(nproc); CPU: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1); memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
- kernel: $(uname -srm); OS: $(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-unknown}")
- fio: $(fio --version); nbdkit: $(nbdkit --version | head -1); nbdcopy: $(nbdcopy --version | head -1)
- backing directory: $WORK on \`$FS\`
- blockrelay: git $(git -C "$SRCDIR" rev-parse --short HEAD 2>/dev/null || echo '?') ($(git -C "$SRCDIR" status --porcelain 2>/dev/null | wc -l) files modified/untracked in the tree), build type $(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILDDIR/CMakeCache.txt" 2>/dev/null || echo '?'), plugin built $(date -u -r "$BUILDDIR/nbdkit-blockrelay-plugin.so" '+%Y-%m-%d %H:%M UTC')
- topology: one ${VOLSIZE_MIB} MiB volume, granularity 64 KiB, \`mode: $MODE\`, default queue-size (64M), no resync-rate, reconnect-min 50ms / reconnect-max $RECONNECT_MAX; capped rounds add \`rate: $CAP\` to the link
- load average at start: $LOAD_START
- load average at end: $LOAD_END
EOF
  python3 - "$RES" "$L_TCP" "$L_NBD" "$NAIVE_SECS" \
    "${CAP_BYTES:-0}" "$CAP" "$LOAD_NAIVE" <<'PY'
import statistics, sys
res = sys.argv[1]
l_tcp, l_nbd = (int(x) for x in sys.argv[2:4])
naive = float(sys.argv[4])
cap_bytes, cap = int(sys.argv[5]), sys.argv[6]
load_naive = sys.argv[7]
MiB = 1048576
druns = [l.rstrip("\n").split("\t") for l in open(f"{res}/disk.tsv") if l.strip()]
D = int(statistics.median(int(bw) for _, bw, _ in druns))
L = l_tcp
ref = min(D, L)
ref_cap = min(D, cap_bytes) if cap_bytes else 0
rows = [l.rstrip("\n").split("\t") for l in open(f"{res}/rows.tsv") if l.strip()]

def f(x, nd=2):
    return f"{x:,.{nd}f}"

print()
print("### Bandwidth references (measured in this run)")
print()
print("| quantity | how | MiB/s | load (1 min) |")
print("|---|---|--:|--:|")
for label, bw, load in druns:
    print(f"| D ({label}) | fio, 1 GiB sequential 1 MiB buffered writes to a plain file + fsync (wall time) | {f(int(bw) / MiB, 0)} | {load} |")
print(f"| **D** | median of the {len(druns)} runs | **{f(D / MiB, 0)}** | |")
print(f"| L | 1 GiB over one TCP connection on 127.0.0.1, python3 sender → receiver | {f(l_tcp / MiB, 0)} | |")
print(f"| L (NBD, information) | nbdcopy of the image → `nbdkit memory` | {f(l_nbd / MiB, 0)} | |")
print(f"| **min(D, L)** | the reference | **{f(ref / MiB, 0)}** | |")
if cap_bytes:
    print(f"| min(D, cap) | link capped with `rate: {cap}` | {f(ref_cap / MiB, 0)} | |")
print()
print("### Resync")
print()
print("Time = from starting the replica (blockrelayd) until `blockrelay status --wait replicating` "
      "on the primary returns (every region durable on the replica and the peer back to "
      "replicating; the wait polls every 50 ms).  Of which: *to connect* = until the replica "
      "logged `replicating from a` (process start, the primary's reconnect timer, handshake), "
      "*engine* = from then until the replica logged `in sync with a` (every resync record "
      "applied and durable; replica's log, 1 ms resolution).  MiB/s = N / time.  "
      "Sent = bytes the primary sent on the link meanwhile (status `sent_bytes`).")
print()
print("| run | N MiB (regions) | dirty before | time s | to connect s | engine s | sent MiB | MiB/s | × reference | MiB/s (engine) | × ref (engine) | load (1 min) |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
results = []
for kind, n, dirty, secs, tc, td, sent, t0, load, _ in rows:
    n, dirty, secs, sent, t0 = int(n), int(dirty), float(secs), int(sent), float(t0)
    r = ref_cap if kind == "capped" else ref
    conn = float(tc) - t0 if tc != "-" else None
    eng = float(td) - float(tc) if tc != "-" and td != "-" else None
    bps = n * MiB / secs
    ebps = n * MiB / eng if eng else None
    label = {"full": "full sync of a new replica", "resync": "resync",
             "capped": f"resync, link capped at {cap}/s"}[kind]
    print(f"| {label} | {n:,} ({n * 16:,}) | {f(dirty / MiB, 1)} MiB | {f(secs, 3)} | "
          f"{f(conn, 3) if conn is not None else '–'} | {f(eng, 3) if eng is not None else '–'} | "
          f"{f(sent / MiB, 1)} | {f(bps / MiB, 0)} | {f(bps / r)} | "
          f"{f(ebps / MiB, 0) if ebps else '–'} | {f(ebps / r) if ebps else '–'} | {load} |")
    results.append((kind, n, secs, bps, r, ebps))
print()
print(f"Naive alternative: `nbdcopy --flush` of the whole {1024} MiB image to an `nbdkit file` "
      f"export of a fresh file: **{f(naive, 3)} s** ({f(1024 / naive, 0)} MiB/s; load {load_naive}).")
if cap_bytes:
    print(f"Over a link capped at {cap}/s the same copy would take at least "
          f"{f(1024 * MiB / cap_bytes, 2)} s.")
print()
print("Bytes sent to resync an unchanged volume: **not applicable** — there is no checksum-based "
      "resync yet; only regions marked in the dirty bitmap are sent, so an unchanged volume with "
      "a clean bitmap sends nothing, and one whose bitmap was lost is sent in full.")
print()
print("### Targets (issue 3)")
print()
print("| target | measured | verdict |")
print("|---|---|---|")
for kind, n, secs, bps, r, ebps in results:
    if kind == "full":
        name = f"full sync ({n} MiB) throughput ≥ 0.8 × min(D, L)"
    elif kind == "capped":
        name = f"resync of {n} MiB throughput ≥ 0.8 × min(D, cap)"
    else:
        name = f"resync of {n} MiB throughput ≥ 0.8 × min(D, L)"
    ratio = bps / r
    v = "met" if ratio >= 0.8 else f"**MISSED** ({f(ratio)} of the reference; {f((0.8 - ratio) / 0.8 * 100, 0)}% short)"
    extra = f"; engine alone {f(ebps / r)}" if ebps else ""
    print(f"| {name} | {f(bps / MiB, 0)} MiB/s = {f(ratio)} ×{extra} | {v} |")
small = [x for x in results if x[0] == "resync" and x[1] <= 11]
for kind, n, secs, bps, r, ebps in small:
    pct = secs / naive * 100
    v = "met" if pct <= 5 else f"**MISSED** ({f(pct / 5, 1)}× the allowed time)"
    print(f"| resync after touching {n} MiB (~{f(n / 1024 * 100, 0)}% of the volume) ≤ 5% of the full nbdcopy ({f(naive, 3)} s → ≤ {f(naive * 0.05, 3)} s) | {f(secs, 3)} s = {f(pct, 1)}% | {v} |")
if not small:
    print("| resync after touching 1% of the volume ≤ 5% of a full copy | (no N ≤ 11 MiB in --sizes) | not measured |")
print()
print("### Checks")
print()
for line in open(f"{res}/checks.tsv"):
    what, result = line.rstrip("\n").split("\t")
    print(f"* {what}: {result}")
PY
} >"$OUTPUT.tmp"
mv "$OUTPUT.tmp" "$OUTPUT"
cat "$OUTPUT"
log "report written to $OUTPUT"
