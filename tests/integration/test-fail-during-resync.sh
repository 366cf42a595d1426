#!/usr/bin/env bash
# A local write that fails while a resync record of the same region is on
# its way to the peer (bits.c C2, br_resync_clears): the record was read
# before the failure, so it must not bring the region back in sync; the
# peer, which received the failed write's record, must end with this
# disk's content.
# A pair in sync; the replica stopped; 8 regions written; the primary
# restarted with every later local write failing (BLOCKRELAY_FAULTS) and
# its link capped at 128K/s, so the resync records wait in the queue for
# seconds after they were read; as soon as the resync starts, region 6 is
# written (the write fails locally, its record still reaches the
# replica, after region 6's resync record, read before it).  After
# the resync the copies must be identical, without the failed write's
# bytes anywhere.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
need nbdkit qemu-io
CFG=$T/r.yaml
config() {   # config LINK_RATE
  write_pair_config "$CFG" sync 16M "${1:+rate: $1}"
}
config ""
start_replica "$CFG" b
start_primary "$CFG" a
stop_node b
qemu-io -f raw -c 'write -P 0x77 0 512k' "$NBD_URI/vol0" >/dev/null || fail "write"
stop_node a
config 128K
start_replica "$CFG" b
BLOCKRELAY_FAULTS="write:EIO:path=$T/a/" start_primary_nowait "$CFG" a
# The resync has started sending: every region's record has been read and
# queued (one batch), and region 6's waits for the link's tokens (half a
# second a region at 128K/s).
for ((i = 0; i < 400; i++)); do
  [ "$(peer_field "$CFG" a state)" = syncing ] &&
    [ "$(peer_field "$CFG" a sent_bytes)" -gt 16384 ] && break
  sleep 0.01                              # polling the control socket
done
[ "$(peer_field "$CFG" a state)" = syncing ] || fail "the resync did not start"
qemu-io -f raw -c 'write -P 0xee 384k 64k' "$NBD_URI/vol0" >/dev/null 2>&1 &&
  fail "the write succeeded although the disk fails every write"
grep -q "local write at 393216+65536 failed" "$T/a.log" ||
  fail "no local failure logged"
wait_in_sync "$CFG" a 60
stop_node a
stop_node b
cmp "$T/a/vol0.img" "$T/b/vol0.img" ||
  fail "the replica kept the bytes of a write this disk refused"
python3 - "$T/b/vol0.img" <<'PY' || fail "the failed write's bytes are on the replica"
import sys
d = open(sys.argv[1], "rb").read(1 << 20)
sys.exit(1 if b"\xee" * 512 in d else 0)
PY
log "the region of the failed write was resent from this disk's content"
