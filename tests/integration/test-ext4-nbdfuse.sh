#!/usr/bin/env bash
# An ext4 filesystem through nbdfuse and a loop device on the primary's
# export, sync and async: files written, checked after a remount; then the
# copies are identical, the replica image passes e2fsck -fn, and the files
# read back with the same checksums from the replica image mounted read-only.
. "$(dirname "$0")/lib.sh" || exit 1
need nbdkit nbdfuse fusermount3 losetup mkfs.ext4 e2fsck mount umount \
  mountpoint sha256sum
[ -c /dev/fuse ] || skip "/dev/fuse is missing"
[ "$(id -u)" -eq 0 ] || skip "needs root (losetup, mount)"

FUSE_DIR=$T/fuse        # nbdfuse mountpoint; the export appears as nbd
FS_DIR=$T/fs            # ext4 on the loop device over the FUSE file
RO_DIR=$T/ro            # the replica image, loop-mounted read-only
mkdir -p "$FUSE_DIR" "$FS_DIR" "$RO_DIR"
LOOP=""
FUSE_PID=""

# Whatever is still set up when the test ends, in the only safe order:
# filesystems, then the loop device, then the FUSE mount.
undo_mounts() {
  local d
  for d in "$FS_DIR" "$RO_DIR"; do
    if mountpoint -q "$d"; then umount "$d" || umount -l "$d"; fi
  done
  if [ -n "$LOOP" ]; then losetup -d "$LOOP"; LOOP=""; fi
  if mountpoint -q "$FUSE_DIR"; then
    fusermount3 -u "$FUSE_DIR" || fusermount3 -u -z "$FUSE_DIR"
  fi
  if [ -n "$FUSE_PID" ]; then kill "$FUSE_PID"; FUSE_PID=""; fi
}
on_exit undo_mounts

# Wait until the loop device has really let go of its backing file
# (LOOP_CLR_FD may complete on the last close, after losetup returns).
wait_loop_detached() {
  local name=${1#/dev/} i
  for ((i = 0; i < 600; i++)); do
    [ -e "/sys/block/$name/loop/backing_file" ] || return 0
    sleep 0.05
  done
  fail "$1 still attached 30 s after losetup -d"
}

# A set of files of random sizes and a small directory tree.
populate() {
  local dir=$1 i j k
  for ((i = 0; i < 20; i++)); do
    head -c $((RANDOM * 128 + RANDOM % 4096)) /dev/urandom > "$dir/file$i.bin"
  done
  for i in 1 2 3; do
    for j in 1 2 3; do
      mkdir -p "$dir/tree/d$i/e$j"
      for k in 1 2 3 4; do
        head -c $((RANDOM % 70000)) /dev/urandom > "$dir/tree/d$i/e$j/f$k"
      done
    done
  done
  : > "$dir/tree/empty"
  ln -s ../file0.bin "$dir/tree/link"
}

# sha256 of every regular file below DIR (relative names, sorted).
checksums() {
  (cd "$1" && find . -path ./lost+found -prune -o -type f -print0 |
     sort -z | xargs -0 sha256sum)
}

verify() {
  local dir=$1 what=$2
  (cd "$dir" && sha256sum --quiet -c "$T/sums") ||
    fail "$what: checksums differ"
  [ "$(checksums "$dir" | cut -c67-)" = "$(cut -c67- "$T/sums")" ] ||
    fail "$what: the file list differs"
  [ "$(readlink "$dir/tree/link")" = ../file0.bin ] ||
    fail "$what: the symlink is wrong"
}

for mode in sync async; do
  write_pair_config "$T/$mode.yaml" "$mode" 256M
  rm -rf "$T/a" "$T/b"
  start_replica "$T/$mode.yaml" b
  start_primary "$T/$mode.yaml" a

  rm -f "$T/nbdfuse.pid"
  nbdfuse -P "$T/nbdfuse.pid" "$FUSE_DIR" "$NBD_URI/vol0" \
    >>"$T/nbdfuse.log" 2>&1 &
  FUSE_PID=$!
  wait_for_file "$T/nbdfuse.pid" "$FUSE_PID"
  [ "$(stat -c %s "$FUSE_DIR/nbd")" -eq $((256 << 20)) ] ||
    fail "$FUSE_DIR/nbd has the wrong size"

  LOOP=$(losetup --find --show "$FUSE_DIR/nbd") || fail "losetup failed"
  mkfs.ext4 -q -F -L brtest "$LOOP" >>"$T/mkfs.log" 2>&1 ||
    fail "mkfs.ext4 failed"
  mount -t ext4 "$LOOP" "$FS_DIR"
  populate "$FS_DIR"
  checksums "$FS_DIR" > "$T/sums"
  [ "$(wc -l < "$T/sums")" -eq 57 ] || fail "expected 57 files"
  sync -f "$FS_DIR"
  umount "$FS_DIR"

  # Remount (through the same loop device) and check everything.
  blockdev --flushbufs "$LOOP"
  mount -t ext4 "$LOOP" "$FS_DIR"
  verify "$FS_DIR" "$mode: primary after remount"
  umount "$FS_DIR"

  losetup -d "$LOOP"
  wait_loop_detached "$LOOP"
  LOOP=""
  fusermount3 -u "$FUSE_DIR"
  rc=0
  wait "$FUSE_PID" || rc=$?
  FUSE_PID=""
  [ $rc -eq 0 ] || fail "nbdfuse exited with status $rc"

  wait_in_sync "$T/$mode.yaml" a
  stop_node a
  stop_node b
  same_images "$T/a/vol0.img" "$T/b/vol0.img"
  e2fsck -fn "$T/b/vol0.img" >"$T/e2fsck.log" 2>&1 ||
    { cat "$T/e2fsck.log" >&2; fail "$mode: e2fsck -fn on the replica image"; }

  mount -t ext4 -o loop,ro "$T/b/vol0.img" "$RO_DIR"
  verify "$RO_DIR" "$mode: replica image"
  umount "$RO_DIR"
  log "$mode: ok"
done
