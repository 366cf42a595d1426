#!/bin/sh
# /init of the blockrelay kernel-NBD test VM (copied into the initramfs by
# build-initramfs.sh).  Runs the real Linux NBD client against a server on the
# host (QEMU user networking: the host is 10.0.2.2), then powers off.
#
# Kernel command line parameters (all optional except br.port):
#   br.port=PORT        NBD server port on the host
#   br.host=IP          server address                      (default 10.0.2.2)
#   br.export=NAME      export name; empty = default export (default empty)
#   br.mode=write       mkfs.ext4, mount, write the pattern file, read it back
#   br.mode=verify      connect read-only, mount ro, check the pattern file
#   br.seed=STR         pattern seed                        (default blockrelay)
#   br.mib=N            pattern file size in MiB            (default 4)
#   br.file=NAME        file name in the filesystem root    (default data.bin)
#   br.bs=N             nbd-client block size 512..4096     (default: client's)
#   br.ip=CIDR          guest address                       (default 10.0.2.15/24)
#   br.gw=IP            default gateway                     (default 10.0.2.2)
#
# Console protocol (one line each, on ttyS0):
#   BR-VM-STEP <what>                               progress
#   BR-VM-RESULT ok sha256=<hex> md5=<hex> bytes=<n> file=/<name> mode=<mode> uptime=<s>
#   BR-VM-RESULT fail <reason>
# Exactly one BR-VM-RESULT line is printed, then the VM powers off.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin

mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o size=256m tmpfs /tmp

NBD=/dev/nbd0
MNT=/mnt
CONNECTED=0
MOUNTED=0

step() { echo "BR-VM-STEP $*"; }

finish() {
    sync
    # poweroff -f needs ACPI; if it somehow returns, exiting init panics the
    # kernel and panic=-1 + qemu -no-reboot ends the VM anyway.
    poweroff -f
    exit 1
}

fail() {
    [ "$MOUNTED" = 1 ] && umount "$MNT" 2>/dev/null
    [ "$CONNECTED" = 1 ] && /usr/sbin/nbd-client -d "$NBD" >/dev/null 2>&1
    echo "BR-VM-RESULT fail $*"
    finish
}

# ---- parameters ----------------------------------------------------------
PORT="" HOST=10.0.2.2 EXPORT="" MODE=write SEED=blockrelay MIB=4
FILE=data.bin BS="" IP=10.0.2.15/24 GW=10.0.2.2
# shellcheck disable=SC2013 # word splitting is the point
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        br.port=*)   PORT=${arg#br.port=} ;;
        br.host=*)   HOST=${arg#br.host=} ;;
        br.export=*) EXPORT=${arg#br.export=} ;;
        br.mode=*)   MODE=${arg#br.mode=} ;;
        br.seed=*)   SEED=${arg#br.seed=} ;;
        br.mib=*)    MIB=${arg#br.mib=} ;;
        br.file=*)   FILE=${arg#br.file=} ;;
        br.bs=*)     BS=${arg#br.bs=} ;;
        br.ip=*)     IP=${arg#br.ip=} ;;
        br.gw=*)     GW=${arg#br.gw=} ;;
    esac
done
[ -n "$PORT" ] || fail "no br.port= on the kernel command line"
case "$MODE" in write|verify) ;; *) fail "bad br.mode=$MODE" ;; esac
case "$MIB" in ''|*[!0-9]*) fail "bad br.mib=$MIB" ;; esac

# ---- kernel modules ------------------------------------------------------
# /etc/br-modules lists .ko paths in dependency order.  A failed insmod is
# only logged (crc32c-intel needs SSE4.2, the NIC not in use may not probe);
# what matters is checked afterwards.
step "modules"
while read -r ko; do
    [ -n "$ko" ] || continue
    case "$ko" in
        */nbd.ko) insmod "$ko" nbds_max=4 max_part=0 2>/dev/null ;;
        *)        insmod "$ko" 2>/dev/null ;;
    esac || echo "BR-VM-STEP insmod-failed $ko"
done < /etc/br-modules
[ -b "$NBD" ] || fail "no $NBD after loading nbd.ko"
grep -qw ext4 /proc/filesystems || fail "ext4 not available"

# ---- network -------------------------------------------------------------
step "network"
[ -d /sys/class/net/eth0 ] || fail "no eth0 (NIC driver missing?)"
ip link set lo up
ip addr add "$IP" dev eth0 || fail "ip addr add $IP"
ip link set eth0 up || fail "ip link set eth0 up"
ip route add default via "$GW" || fail "ip route add default via $GW"

# ---- NBD -----------------------------------------------------------------
step "nbd-client $HOST $PORT export='$EXPORT' mode=$MODE"
set --
[ -n "$EXPORT" ] && set -- "$@" -N "$EXPORT"
[ -n "$BS" ] && set -- "$@" -b "$BS"
[ "$MODE" = verify ] && set -- "$@" -R
/usr/sbin/nbd-client "$@" "$HOST" "$PORT" "$NBD" || fail "nbd-client connect to $HOST:$PORT failed"
CONNECTED=1
sectors=$(cat /sys/block/nbd0/size 2>/dev/null)
case "$sectors" in ''|0) fail "$NBD has size 0 after connect" ;; esac
step "connected sectors=$sectors"

# ---- expected content ----------------------------------------------------
awk -v mib="$MIB" -v seed="$SEED" -f /etc/pattern.awk > /tmp/expected.bin || fail "pattern generation"
want=$(sha256sum /tmp/expected.bin | cut -d' ' -f1)

mkdir -p "$MNT"
if [ "$MODE" = write ]; then
    step "mke2fs"
    /sbin/mke2fs -q -F -t ext4 "$NBD" || fail "mke2fs failed"
    mount -t ext4 "$NBD" "$MNT" || fail "mount after mke2fs failed"
    MOUNTED=1
    step "write /$FILE"
    cp /tmp/expected.bin "$MNT/$FILE" || fail "write /$FILE failed"
    sync
    got=$(sha256sum "$MNT/$FILE" | cut -d' ' -f1)
    [ "$got" = "$want" ] || fail "cached read mismatch sha256=$got want=$want"
    # Unmount and remount so the read-back really comes from the NBD server.
    umount "$MNT" || fail "umount after write failed"
    MOUNTED=0
    echo 3 > /proc/sys/vm/drop_caches
    mount -t ext4 -o ro "$NBD" "$MNT" || fail "remount failed"
    MOUNTED=1
else
    step "mount ro"
    mount -t ext4 -o ro "$NBD" "$MNT" || fail "mount ro failed"
    MOUNTED=1
fi

step "read back /$FILE"
[ -f "$MNT/$FILE" ] || fail "/$FILE missing"
got=$(sha256sum "$MNT/$FILE" | cut -d' ' -f1)
md5=$(md5sum "$MNT/$FILE" | cut -d' ' -f1)
bytes=$(stat -c %s "$MNT/$FILE")
cmp -s "$MNT/$FILE" /tmp/expected.bin || fail "content mismatch sha256=$got want=$want bytes=$bytes"

umount "$MNT" || fail "final umount failed"
MOUNTED=0
/usr/sbin/nbd-client -d "$NBD" >/dev/null 2>&1 || fail "nbd-client -d failed"
CONNECTED=0

up=$(cut -d' ' -f1 /proc/uptime)
echo "BR-VM-RESULT ok sha256=$got md5=$md5 bytes=$bytes file=/$FILE mode=$MODE uptime=$up"
finish
