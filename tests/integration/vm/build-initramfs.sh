#!/bin/bash
# Build the initramfs for the kernel-NBD test VM from files already on the host.
#
#   build-initramfs.sh [--kver VERSION] OUTDIR
#
# Prints the absolute path of the resulting cpio.gz on stdout and points
# OUTDIR/initramfs.cpio.gz at it.  The archive is named after a hash of every
# input (this script, init.sh, pattern.awk, the binaries, their libraries and
# the kernel modules, by content), so a rebuild happens only when an input
# changes; otherwise the cached file is reused.
#
# Contents: /bin/busybox (busybox-static) with its applet links,
# /usr/sbin/nbd-client and /sbin/mke2fs (real ones, with the shared libraries
# ldd reports), /etc/mke2fs.conf, the modules for nbd, ext4 (+ deps), e1000 and
# virtio-net (+ deps) from /lib/modules/VERSION, /etc/br-modules (load order),
# /etc/pattern.awk and /init (init.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"

die() { echo "build-initramfs.sh: $*" >&2; exit 1; }

KVER=""
OUTDIR=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --kver) KVER=${2:?--kver needs a value}; shift 2 ;;
        --kver=*) KVER=${1#--kver=}; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) [[ -z $OUTDIR ]] || die "only one OUTDIR"; OUTDIR=$1; shift ;;
    esac
done
[[ -n $OUTDIR ]] || die "usage: build-initramfs.sh [--kver VERSION] OUTDIR"
[[ -n $KVER ]] || KVER=$(br_vm_pick_kver) || die "no kernel with both /boot/vmlinuz-V and /lib/modules/V"
MODDIR=/lib/modules/$KVER
[[ -r $MODDIR/modules.dep ]] || die "$MODDIR/modules.dep missing"

BUSYBOX=/bin/busybox
NBDCLIENT=/usr/sbin/nbd-client
MKE2FS=/sbin/mke2fs
MKE2FS_CONF=/etc/mke2fs.conf
for f in "$BUSYBOX" "$NBDCLIENT" "$MKE2FS"; do
    [[ -x $f ]] || die "$f missing (apt-get install busybox-static nbd-client e2fsprogs)"
done
for t in cpio gzip ldd modprobe sha256sum flock; do
    command -v "$t" >/dev/null || die "$t not found"
done

# ---- resolve inputs --------------------------------------------------------
# Modules in dependency order, deduplicated.  Options from the host's
# /etc/modprobe.d are ignored (init.sh passes its own).
MODULES=(nbd crc32c_generic ext4 e1000 virtio_pci virtio_net)
mapfile -t KOS < <(
    for m in "${MODULES[@]}"; do
        modprobe --show-depends -S "$KVER" "$m" || echo "MISSING $m"
    done | awk '$1 == "MISSING" { print "MISSING " $2; next }
                $1 == "insmod" && !seen[$2]++ { print $2 }'
)
for k in "${KOS[@]}"; do
    [[ $k != MISSING* ]] || die "module ${k#MISSING } not found for $KVER"
done

# Shared libraries of the dynamically linked binaries (paths as ldd prints).
mapfile -t LIBS < <(
    ldd "$NBDCLIENT" "$MKE2FS" |
        awk '/=>/ && $3 ~ /^\// { print $3; next } $1 ~ /^\// && $1 !~ /:$/ { print $1 }' |
        sort -u
)
[[ ${#LIBS[@]} -gt 0 ]] || die "ldd found no libraries"

INPUTS=("$HERE/build-initramfs.sh" "$HERE/init.sh" "$HERE/pattern.awk"
        "$BUSYBOX" "$NBDCLIENT" "$MKE2FS" "${LIBS[@]}" "${KOS[@]}")
[[ -r $MKE2FS_CONF ]] && INPUTS+=("$MKE2FS_CONF")

KEY=$( { echo "kver=$KVER"; printf '%s\n' "${INPUTS[@]}"; sha256sum "${INPUTS[@]}"; } |
       sha256sum | cut -c1-16)

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
OUT=$OUTDIR/initramfs-$KVER-$KEY.cpio.gz

publish() {
    ln -sfn "$(basename "$OUT")" "$OUTDIR/.initramfs.cpio.gz.$$"
    mv -Tf "$OUTDIR/.initramfs.cpio.gz.$$" "$OUTDIR/initramfs.cpio.gz"
    echo "$OUT"
}

# Serialise concurrent builds into the same OUTDIR.
exec 9>"$OUTDIR/.build.lock"
flock 9
if [[ -s $OUT ]]; then
    publish
    exit 0
fi

# ---- assemble --------------------------------------------------------------
STAGE=$(mktemp -d "$OUTDIR/.stage.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
R=$STAGE/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,lib64,etc,proc,sys,dev,tmp,mnt,run}

cp "$BUSYBOX" "$R/bin/busybox"
cp "$NBDCLIENT" "$R/usr/sbin/nbd-client"
cp "$MKE2FS" "$R/sbin/mke2fs"          # real mke2fs; the busybox applet must not shadow it
[[ -r $MKE2FS_CONF ]] && cp "$MKE2FS_CONF" "$R/etc/mke2fs.conf"
for lib in "${LIBS[@]}"; do
    mkdir -p "$R$(dirname "$lib")"
    cp -L "$lib" "$R$lib"
done

# Busybox applet links, never over a real binary copied above.
while read -r applet; do
    [[ -n $applet && ! -e $R/$applet && ! -L $R/$applet ]] || continue
    mkdir -p "$R/$(dirname "$applet")"
    ln -s /bin/busybox "$R/$applet"
done < <("$BUSYBOX" --list-full)

# Modules, decompressed if needed, plus the load order file.
: > "$R/etc/br-modules"
for ko in "${KOS[@]}"; do
    rel=${ko#"$MODDIR"/}
    case "$rel" in
        *.ko.xz)  dst=${rel%.xz};  mkdir -p "$R/lib/modules/$KVER/$(dirname "$rel")"; xz -dc "$ko" > "$R/lib/modules/$KVER/$dst" ;;
        *.ko.zst) dst=${rel%.zst}; mkdir -p "$R/lib/modules/$KVER/$(dirname "$rel")"; zstd -qdc "$ko" > "$R/lib/modules/$KVER/$dst" ;;
        *.ko.gz)  dst=${rel%.gz};  mkdir -p "$R/lib/modules/$KVER/$(dirname "$rel")"; gzip -dc "$ko" > "$R/lib/modules/$KVER/$dst" ;;
        *.ko)     dst=$rel;        mkdir -p "$R/lib/modules/$KVER/$(dirname "$rel")"; cp "$ko" "$R/lib/modules/$KVER/$dst" ;;
        *) die "unexpected module file $ko" ;;
    esac
    echo "/lib/modules/$KVER/$dst" >> "$R/etc/br-modules"
done

cp "$HERE/pattern.awk" "$R/etc/pattern.awk"
cp "$HERE/init.sh" "$R/init"
chmod 0755 "$R/init"
echo "$KVER" > "$R/etc/br-kver"
# /dev/console lets the kernel give init a stdout before devtmpfs is mounted;
# init.sh redirects to it again, so failing here (no CAP_MKNOD) is harmless.
mknod -m 600 "$R/dev/console" c 5 1 2>/dev/null || true

( cd "$R" && find . -mindepth 1 | LC_ALL=C sort |
      cpio --quiet -o -H newc -R 0:0 --reproducible ) | gzip -n -6 > "$STAGE/out.cpio.gz"
mv -f "$STAGE/out.cpio.gz" "$OUT"

# Drop stale archives of this kernel version from older inputs.
for old in "$OUTDIR"/initramfs-"$KVER"-*.cpio.gz; do
    [[ $old == "$OUT" ]] || rm -f "$old"
done
publish
