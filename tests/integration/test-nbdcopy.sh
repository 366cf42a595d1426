#!/usr/bin/env bash
# nbdcopy of random data into the primary's export, sync and async links;
# afterwards primary and replica images are identical and equal the source.
. "$(dirname "$0")/lib.sh"
need nbdkit nbdcopy

head -c 48M /dev/urandom > "$T/src.bin"
for mode in sync async; do
  write_pair_config "$T/$mode.yaml" "$mode" 64M
  rm -rf "$T/a" "$T/b"
  start_replica "$T/$mode.yaml" b
  start_primary "$T/$mode.yaml" a
  nbdcopy --flush "$T/src.bin" "$NBD_URI/vol0"
  wait_in_sync "$T/$mode.yaml" a
  stop_node a
  stop_node b
  same_images "$T/a/vol0.img" "$T/b/vol0.img"
  cmp -n $((48 << 20)) "$T/src.bin" "$T/b/vol0.img" || fail "replica lacks the data"
  log "$mode: ok"
done
