#!/usr/bin/env bash
# "This disk is new" is durable before the disk exists (engine.c
# mark_lost): a replica whose backing file was lost gets a full sync even
# if it crashed right after the empty file was created (crash point
# volume-disk-created), and likewise right after the scoreboard recorded
# it (volume-fresh-marked), or before FRESH was set at all, after the
# history was wiped (volume-lost-history-wiped: the disk is still missing
# and the next start marks it again).  Without that, the next start found a disk
# file, trusted the scoreboard's old generation, resynced only the dirty
# bits and left the replica empty where the primary has data.
. "$(dirname "$0")/lib.sh"
need nbdkit qemu-io
CFG=$T/l.yaml
write_pair_config "$CFG" sync 32M
start_replica "$CFG" b
start_primary "$CFG" a
qemu-io -f raw -c 'write -P 0x5c 0 8M' "$NBD_URI/vol0" >/dev/null || fail "write"
wait_in_sync "$CFG" a

for point in volume-disk-created volume-fresh-marked volume-lost-history-wiped; do
  stop_node b
  rm -f "$T/b/vol0.img"                       # the replica's disk is lost
  rc=0
  BLOCKRELAY_CRASHPOINT=$point "$BLOCKRELAYD" --config "$CFG" --node b \
    >> "$T/b.log" 2>&1 || rc=$?
  [ $rc -eq 99 ] || fail "$point: blockrelayd exited $rc, not at the crash point"
  grep -q "crash point $point reached" "$T/b.log" || fail "$point not reached"
  full=$(grep -c "from a: full-sync by rule 7" "$T/b.log" || true)
  start_replica "$CFG" b
  wait_in_sync "$CFG" a 60
  [ "$(grep -c "from a: full-sync by rule 7" "$T/b.log")" -gt "$full" ] ||
    fail "$point: the lost disk was not fully synced"
  cmp "$T/a/vol0.img" "$T/b/vol0.img" ||
    fail "$point: the replica's new disk was trusted as in sync"
  log "$point: the new disk was fully synced"
done
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
