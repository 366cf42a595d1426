#!/usr/bin/env bash
# The real Linux kernel NBD client (in a qemu VM under TCG, DESIGN §7,
# tests/integration/vm/) attaches /dev/nbd0 to the primary's export vol0 over a
# sync link, makes an ext4 filesystem, writes /data.bin and reads it back.
# Afterwards primary and replica are identical, the replica image passes
# e2fsck -fn, and /data.bin on the loop-mounted replica image has the
# checksum the VM printed.
. "$(dirname "$0")/lib.sh" || exit 1
need nbdkit e2fsck losetup mount umount mountpoint sha256sum

if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
  log "qemu-system-x86_64 not found, trying apt-get install -y qemu-system-x86"
  DEBIAN_FRONTEND=noninteractive apt-get install -y qemu-system-x86 \
    >"$T/apt.out" 2>&1 || true
  command -v qemu-system-x86_64 >/dev/null 2>&1 ||
    skip "qemu-system-x86_64 is absent and cannot be installed"
fi
[ "$(id -u)" -eq 0 ] || skip "needs root (loop mount)"

RO_DIR=$T/ro
mkdir -p "$RO_DIR"
undo_mount() {
  if mountpoint -q "$RO_DIR"; then umount "$RO_DIR" || umount -l "$RO_DIR"; fi
}
on_exit undo_mount

write_pair_config "$T/sync.yaml" sync 256M
start_replica "$T/sync.yaml" b
start_primary "$T/sync.yaml" a

# The VM reaches the host's 127.0.0.1 as 10.0.2.2.  Default --workdir, so
# the initramfs cache is shared; the console log goes next to the other logs.
rc=0
sha=$("$SRCDIR/tests/integration/vm/run-vm.sh" --port "$NBD_PORT_a" \
  --export vol0 --mib 8 --timeout "${BR_VM_TIMEOUT:-400}" \
  --log "$T/vm-console.log" 2>"$T/run-vm.err") || rc=$?
case $rc in
  0) ;;
  77) skip "run-vm.sh: $(tail -n1 "$T/run-vm.err")" ;;
  *) cat "$T/run-vm.err" >&2; fail "the VM run failed (status $rc)" ;;
esac
[[ $sha =~ ^[0-9a-f]{64}$ ]] || fail "run-vm.sh printed '$sha', not a sha256"
log "$(tail -n1 "$T/run-vm.err")"

wait_in_sync "$T/sync.yaml" a
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
e2fsck -fn "$T/b/vol0.img" >"$T/e2fsck.log" 2>&1 ||
  { cat "$T/e2fsck.log" >&2; fail "e2fsck -fn on the replica image"; }

mount -t ext4 -o loop,ro "$T/b/vol0.img" "$RO_DIR"
got=$(sha256sum < "$RO_DIR/data.bin" | cut -d' ' -f1)
[ "$(stat -c %s "$RO_DIR/data.bin")" -eq $((8 << 20)) ] ||
  fail "/data.bin on the replica has the wrong size"
umount "$RO_DIR"
[ "$got" = "$sha" ] ||
  fail "/data.bin on the replica: sha256 $got, the VM printed $sha"
log "replica /data.bin sha256 $got matches the VM"
