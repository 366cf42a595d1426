#!/usr/bin/env bash
# fio (nbd engine) random writes with crc32c verification against the
# primary, sync and async; afterwards the copies are identical.
. "$(dirname "$0")/lib.sh"
need nbdkit fio
fio --enghelp=nbd >/dev/null 2>&1 || skip "fio has no nbd engine"

for mode in sync async; do
  write_pair_config "$T/$mode.yaml" "$mode" 128M
  rm -rf "$T/a" "$T/b"
  start_replica "$T/$mode.yaml" b
  start_primary "$T/$mode.yaml" a
  fio --name=verify --ioengine=nbd --uri="$NBD_URI/vol0" --rw=randwrite \
    --bs=4k --bsrange=4k-64k --iodepth=16 --size=128M --io_size=48M \
    --verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 --randseed=$RANDOM \
    --output="$T/fio-$mode.out" || { cat "$T/fio-$mode.out" >&2; fail "fio"; }
  grep -q "err= 0" "$T/fio-$mode.out" || fail "fio reported errors"
  wait_in_sync "$T/$mode.yaml" a
  stop_node a
  stop_node b
  same_images "$T/a/vol0.img" "$T/b/vol0.img"
  log "$mode: ok"
done
