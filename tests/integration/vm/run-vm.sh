#!/bin/bash
# Boot a tiny VM (qemu, TCG) that uses the real Linux kernel NBD client
# against an NBD server on the host, and check what it wrote/read.
#
#   run-vm.sh --port PORT [--export NAME] [--timeout SECS] [--workdir DIR]
#             [--mode write|verify] [--seed STR] [--mib N] [--file NAME]
#             [--host IP] [--nic e1000|virtio] [--blocksize N]
#             [--log FILE] [--verbose]
#
# The guest reaches the host as 10.0.2.2 (QEMU user networking, which maps it
# to the host's 127.0.0.1), so the server must listen on 127.0.0.1 or any.
#
# --mode write (default): nbd-client, mkfs.ext4 (wipes the export!), mount,
#   write a deterministic pattern file (pattern.awk, --mib MiB, --seed),
#   unmount, remount read-only, read it back, compare, disconnect.
# --mode verify: connect read-only, mount ro, read the file and compare it
#   with the pattern (e.g. on a replica after a write run on the primary).
#
# Exit 0: prints the file's sha256 (64 hex digits, nothing else) on stdout.
#   The VM printed "BR-VM-RESULT ok ..." and its checksum equals the pattern's
#   checksum recomputed on the host with the same busybox awk.
# Exit 1: anything else; the tail of the console log goes to stderr.
# Exit 77: qemu-system-x86_64 is absent and "apt-get install -y
#   qemu-system-x86" failed.
#
# One VM per --workdir at a time (flock); the initramfs is cached there.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"

PROG=run-vm.sh
die() { echo "$PROG: $*" >&2; exit 1; }
usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; }

PORT="" EXPORT="" TIMEOUT=180 WORKDIR="${TMPDIR:-/tmp}/blockrelay-vm"
MODE=write SEED=blockrelay MIB=4 FILE=data.bin HOST=10.0.2.2 NIC=e1000
BS="" LOG="" VERBOSE=0 MEM=512
while [[ $# -gt 0 ]]; do
    opt=$1
    case "$opt" in
        --*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue ;;
    esac
    case "$opt" in
        --verbose) VERBOSE=1; shift; continue ;;
        -h|--help) usage; exit 0 ;;
    esac
    [[ $# -ge 2 ]] || die "$opt needs a value"
    val=$2; shift 2
    case "$opt" in
        --port) PORT=$val ;;
        --export) EXPORT=$val ;;
        --timeout) TIMEOUT=$val ;;
        --workdir) WORKDIR=$val ;;
        --mode) MODE=$val ;;
        --seed) SEED=$val ;;
        --mib) MIB=$val ;;
        --file) FILE=$val ;;
        --host) HOST=$val ;;
        --nic) NIC=$val ;;
        --blocksize) BS=$val ;;
        --mem) MEM=$val ;;
        --log) LOG=$val ;;
        *) die "unknown option $opt (see --help)" ;;
    esac
done

[[ $PORT =~ ^[0-9]+$ ]] || die "--port PORT is required (numeric)"
[[ $TIMEOUT =~ ^[0-9]+$ && $TIMEOUT -gt 0 ]] || die "bad --timeout"
[[ $MIB =~ ^[0-9]+$ && $MIB -gt 0 ]] || die "bad --mib"
[[ $MEM =~ ^[0-9]+$ ]] || die "bad --mem"
[[ $MODE == write || $MODE == verify ]] || die "bad --mode (write|verify)"
# Values travel on the kernel command line: no blanks or quotes.
[[ $EXPORT =~ ^[A-Za-z0-9._:/@+-]*$ ]] || die "--export may only use [A-Za-z0-9._:/@+-]"
[[ $SEED =~ ^[A-Za-z0-9._:/@+-]+$ ]] || die "--seed may only use [A-Za-z0-9._:/@+-]"
[[ $FILE =~ ^[A-Za-z0-9._-]+$ ]] || die "--file must be a plain file name"
[[ $HOST =~ ^[0-9.]+$ ]] || die "--host must be an IPv4 address"
[[ -z $BS || $BS =~ ^(512|1024|2048|4096)$ ]] || die "bad --blocksize"
case "$NIC" in
    e1000) NICDEV=e1000 ;;
    virtio) NICDEV=virtio-net-pci ;;
    *) die "bad --nic (e1000|virtio)" ;;
esac

# ---- qemu ------------------------------------------------------------------
QEMU=$(command -v qemu-system-x86_64 || true)
if [[ -z $QEMU ]]; then
    echo "$PROG: qemu-system-x86_64 not found, trying apt-get install -y qemu-system-x86" >&2
    if DEBIAN_FRONTEND=noninteractive apt-get install -y qemu-system-x86 >&2; then
        QEMU=$(command -v qemu-system-x86_64 || true)
    fi
    if [[ -z $QEMU ]]; then
        echo "$PROG: SKIP: qemu-system-x86_64 unavailable" >&2
        exit 77
    fi
fi

# ---- kernel + initramfs ----------------------------------------------------
KVER=$(br_vm_pick_kver) || die "no kernel with both /boot/vmlinuz-V and /lib/modules/V (apt-get install linux-image-amd64)"
KERNEL=/boot/vmlinuz-$KVER
[[ -r $KERNEL ]] || die "$KERNEL not readable"
mkdir -p "$WORKDIR"
WORKDIR=$(cd "$WORKDIR" && pwd)

exec 8>"$WORKDIR/.vm.lock"
flock 8

INITRD=$("$HERE/build-initramfs.sh" --kver "$KVER" "$WORKDIR") || die "initramfs build failed"

# Expected checksum, computed with the same busybox binary the VM uses.
WANT=$(/bin/busybox awk -v mib="$MIB" -v seed="$SEED" -f "$HERE/pattern.awk" | sha256sum | cut -d' ' -f1)

[[ -n $LOG ]] || LOG=$WORKDIR/console.log
mkdir -p "$(dirname "$LOG")"
: > "$LOG"
: > "$LOG.qemu"

APPEND="console=ttyS0 quiet panic=-1 br.port=$PORT br.host=$HOST br.mode=$MODE br.seed=$SEED br.mib=$MIB br.file=$FILE"
[[ -n $EXPORT ]] && APPEND+=" br.export=$EXPORT"
[[ -n $BS ]] && APPEND+=" br.bs=$BS"

# The guest powers itself off after printing its result line, which makes
# qemu exit; the timeout only catches hangs.
QPID="" TPID=""
cleanup() {
    if [[ -n $QPID ]]; then kill "$QPID" 2>/dev/null || true; fi
    if [[ -n $TPID ]]; then kill "$TPID" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

START=$(date +%s.%N)
timeout -k 5 "$TIMEOUT" "$QEMU" \
    -accel tcg -cpu max -smp 1 -m "$MEM" \
    -nodefaults -display none -no-reboot \
    -chardev "file,id=con,path=$LOG" -serial chardev:con -monitor none \
    -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND" \
    -netdev user,id=n0 -device "$NICDEV,netdev=n0" \
    </dev/null >>"$LOG.qemu" 2>&1 &
QPID=$!
if [[ $VERBOSE == 1 ]]; then
    tail -n +1 -F --pid="$QPID" "$LOG" >&2 2>/dev/null &
    TPID=$!
fi
set +e
wait "$QPID"
QRC=$?
set -e
QPID=""
[[ -n $TPID ]] && { wait "$TPID" 2>/dev/null || true; TPID=""; }
END=$(date +%s.%N)
ELAPSED=$(awk -v a="$START" -v b="$END" 'BEGIN { printf "%.1f", b - a }')

RESULT=$(tr -d '\r' < "$LOG" | grep -a '^BR-VM-RESULT ' | tail -n1 || true)

fail() {
    {
        echo "$PROG: FAIL: $*"
        echo "$PROG: qemu exit status $QRC after ${ELAPSED}s; console log $LOG; last lines:"
        tr -d '\r' < "$LOG" | tail -n 40 | sed 's/^/  | /'
        if [[ -s $LOG.qemu ]]; then
            echo "$PROG: qemu stderr ($LOG.qemu):"
            tail -n 10 "$LOG.qemu" | sed 's/^/  | /'
        fi
    } >&2
    exit 1
}

if [[ $QRC == 124 || $QRC == 137 ]]; then
    fail "timed out after ${TIMEOUT}s"
fi
case "$RESULT" in
    "BR-VM-RESULT ok "*) ;;
    "") fail "no BR-VM-RESULT line" ;;
    *) fail "VM reported: ${RESULT#BR-VM-RESULT fail }" ;;
esac
GOT=$(sed -n 's/.* sha256=\([0-9a-f]\{64\}\)\( .*\)\{0,1\}$/\1/p' <<<"$RESULT")
[[ -n $GOT ]] || fail "malformed result line: $RESULT"
[[ $GOT == "$WANT" ]] || fail "VM sha256=$GOT but the host pattern gives $WANT"

echo "$PROG: ok in ${ELAPSED}s: $RESULT" >&2
echo "$GOT"
