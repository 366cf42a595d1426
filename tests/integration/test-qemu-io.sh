#!/usr/bin/env bash
# qemu-io drives FUA writes, flush, write-zeroes (with and without unmap),
# discard and unaligned writes through the plugin; the replica matches
# byte for byte and reads back the patterns and the zeros.
. "$(dirname "$0")/lib.sh"
need nbdkit qemu-io

for mode in sync async; do
  write_pair_config "$T/$mode.yaml" "$mode" 64M
  rm -rf "$T/a" "$T/b"
  start_replica "$T/$mode.yaml" b
  start_primary "$T/$mode.yaml" a
  qemu-io -f raw \
    -c 'write -P 0x11 0 4M' \
    -c 'write -P 0x22 -f 4M 1M' \
    -c 'flush' \
    -c 'write -P 0x33 12345 777' \
    -c 'write -z 1M 512k' \
    -c 'write -z -u 2M 1M' \
    -c 'discard 3M 64k' \
    -c 'write -P 0x44 -f 63M 1M' \
    -c 'flush' \
    "$NBD_URI/vol0" > "$T/qemu-io.out"
  wait_in_sync "$T/$mode.yaml" a
  stop_node a
  stop_node b
  same_images "$T/a/vol0.img" "$T/b/vol0.img"
  # The replica holds exactly what was written.
  qemu-io -r -f raw \
    -c 'read -P 0x11 0 12345' \
    -c 'read -P 0x33 12345 777' \
    -c 'read -P 0x11 13122 1035454' \
    -c 'read -P 0 1M 512k' \
    -c 'read -P 0x11 1536k 512k' \
    -c 'read -P 0 2M 1M' \
    -c 'read -P 0 3M 64k' \
    -c 'read -P 0x22 4M 1M' \
    -c 'read -P 0x44 63M 1M' \
    "$T/b/vol0.img" > "$T/verify.out"
  if grep -q "Pattern verification failed" "$T/verify.out" ||
     [ "$(grep -c "^read " "$T/verify.out")" -ne 9 ]; then
    cat "$T/verify.out" >&2
    fail "$mode: replica content is wrong"
  fi
  log "$mode: ok"
done
