#!/usr/bin/env bash
# A replica backed by a block device (a loop device over a sparse file) via
# the topology's per-node "disks:" override, sync and async: random data
# (nbdcopy) plus qemu-io writes, zeroes and discards through the primary;
# afterwards the primary file, the loop device and the loop device's backing
# file all equal the expected image.  A loop device of the wrong size makes
# blockrelayd refuse to start with a message naming both sizes.
. "$(dirname "$0")/lib.sh" || exit 1
need nbdkit nbdcopy qemu-io losetup truncate

declare -a LOOPS=()
detach_loops() {
  local l
  for l in "${LOOPS[@]}"; do losetup -d "$l"; done
}
on_exit detach_loops

# attach FILE SIZE: a sparse file attached to a free loop device; prints it.
attach() {
  truncate -s "$2" "$1"
  losetup --find --show "$1" 2>>"$T/losetup.log" ||
    skip "losetup cannot attach a loop device: $(cat "$T/losetup.log")"
}

# detach DEV: losetup -d, then wait until the kernel has let go of it.
detach() {
  local dev=$1 name=${1#/dev/} i l keep=()
  losetup -d "$dev"
  for l in "${LOOPS[@]}"; do [ "$l" = "$dev" ] || keep+=("$l"); done
  LOOPS=("${keep[@]}")
  for ((i = 0; i < 600; i++)); do
    [ -e "/sys/block/$name/loop/backing_file" ] || return 0
    sleep 0.05
  done
  fail "$dev still attached 30 s after losetup -d"
}

# write_blockdev_config FILE MODE SIZE DEV: like write_pair_config, with
# b's copy of vol0 on DEV.
write_blockdev_config() {
  local file=$1 mode=$2 size=$3 dev=$4
  PORT_A=$(free_port)
  PORT_B=$(free_port)
  cat > "$file" <<EOF
volumes:
  - {name: vol0, size: $size}
nodes:
  - {name: a, address: 127.0.0.1:$PORT_A, data-dir: $T/a}
  - name: b
    address: 127.0.0.1:$PORT_B
    data-dir: $T/b
    disks: {vol0: $dev}
links:
  - {between: [a, b], mode: $mode}
EOF
}

QEMU_IO_OPS=(
  -c 'write -P 0x5a 1M 256k'
  -c 'write -P 0xa5 -f 7M 64k'
  -c 'write -z 3M 512k'
  -c 'write -z -u 10M 2M'
  -c 'discard 20M 1M'
  -c 'discard 33M 64k'
  -c 'write -P 0x77 12345 777'
  -c 'flush'
  -c 'write -P 0x3c -f 63M 1M'
  -c 'flush'
)

# --- data through a replica on a loop device --------------------------------
head -c 40M /dev/urandom > "$T/src.bin"
# The expected image: the same operations on a plain file.
cp "$T/src.bin" "$T/expected.img"
truncate -s 64M "$T/expected.img"
qemu-io -f raw "${QEMU_IO_OPS[@]}" "$T/expected.img" > "$T/expected.out"

for mode in sync async; do
  rm -rf "$T/a" "$T/b"
  rm -f "$T/b-disk.raw"
  LOOP=$(attach "$T/b-disk.raw" 64M)
  LOOPS+=("$LOOP")
  [ -b "$LOOP" ] || fail "$LOOP is not a block device"
  write_blockdev_config "$T/$mode.yaml" "$mode" 64M "$LOOP"
  "$BLOCKRELAY" check-config "$T/$mode.yaml" >/dev/null ||
    fail "check-config refused $T/$mode.yaml"
  start_replica "$T/$mode.yaml" b
  start_primary "$T/$mode.yaml" a
  nbdcopy --flush "$T/src.bin" "$NBD_URI/vol0"
  qemu-io -f raw "${QEMU_IO_OPS[@]}" "$NBD_URI/vol0" > "$T/qemu-io.out"
  grep -q "^discard " "$T/qemu-io.out" || fail "qemu-io did not run"
  wait_in_sync "$T/$mode.yaml" a
  stop_node a
  stop_node b
  [ ! -e "$T/b/vol0.img" ] || fail "b created $T/b/vol0.img despite disks:"
  cmp "$T/a/vol0.img" "$LOOP" || fail "$mode: primary and $LOOP differ"
  log "identical: $T/a/vol0.img $LOOP"
  cmp "$T/expected.img" "$LOOP" || fail "$mode: $LOOP has the wrong content"
  detach "$LOOP"
  cmp "$T/expected.img" "$T/b-disk.raw" ||
    fail "$mode: the loop device's backing file has the wrong content"
  log "$mode: ok"
done

# --- a block device of the wrong size ---------------------------------------
rm -rf "$T/a" "$T/b"
LOOP=$(attach "$T/small.raw" 32M)
LOOPS+=("$LOOP")
write_blockdev_config "$T/small.yaml" sync 64M "$LOOP"
rc=0
timeout 30 "$BLOCKRELAYD" --config "$T/small.yaml" --node b \
  --pidfile "$T/small.pid" >"$T/small.out" 2>"$T/small.err" || rc=$?
[ $rc -ne 124 ] || fail "blockrelayd kept running on a 32M device for 64M"
[ $rc -ne 0 ] || fail "blockrelayd accepted a 32M device for a 64M volume"
[ $rc -lt 128 ] || fail "blockrelayd died of a signal ($rc)"
[ ! -s "$T/small.pid" ] || fail "blockrelayd wrote its pidfile anyway"
if ! grep -q "$LOOP" "$T/small.err" || ! grep -q 33554432 "$T/small.err" ||
   ! grep -q 67108864 "$T/small.err"; then
  cat "$T/small.out" "$T/small.err" >&2
  fail "the error does not name $LOOP and both sizes"
fi
log "wrong size refused (exit $rc): $(grep 33554432 "$T/small.err" | head -n1)"
detach "$LOOP"
