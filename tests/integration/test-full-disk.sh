#!/usr/bin/env bash
# A real full disk (tmpfs holding a sparse backing file).
#
# 1. The replica's data dir is a 40 MiB tmpfs holding a sparse 64 MiB
#    volume.  60 MiB of random data written at the primary: every write
#    succeeds for the client (sync link, on-peer-loss: log), the peer goes
#    `failed` with ENOSPC ("No space left") in last_error.  Then the tmpfs
#    grows to 128 MiB, the replica restarts, resyncs, and the copies are
#    identical.
# 2. The primary's data dir is a 16 MiB tmpfs: the NBD client gets ENOSPC
#    ("No space left on device" in qemu-io) and the nbdkit log says so.
#    When the primary says in sync, the copies are identical (the replica
#    may have applied writes that did not fit on the primary).  After the
#    tmpfs grows and the primary restarts, it serves and stays in sync.
#
# The pairs start with assume-clean=true (created empty together): a full
# sync of an empty volume would otherwise write zeros on a tmpfs (which has
# no FALLOC_FL_ZERO_RANGE) and fill it before the test begins.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
need nbdkit nbdcopy qemu-io
start=$SECONDS
CFG=$T/fd.yaml

# ---- 1. the replica's disk fills up ----
log "=== 1. replica on a 40 MiB tmpfs"
mount_tmpfs "$T/b" 40M
write_pair_config "$CFG" sync 64M
start_replica "$CFG" b
start_primary_nowait "$CFG" a "$T/a.log" assume-clean=true
wait_in_sync "$CFG" a 30
head -c 60M /dev/urandom > "$T/data.bin"
nbdcopy "$T/data.bin" "$NBD_URI/vol0" || fail "writes failed at the client while only the replica's disk is full"
wait_peer_match "$CFG" a failed 30
log "peer failed: $P_error"
grep -Eiq "ENOSPC|no space left" <<<"$P_error" || fail "last_error does not say the replica's disk is full: '$P_error'"
grep -Eiq "no space left" "$T/b.log" || fail "the replica did not log ENOSPC"
# The primary keeps serving, and tracks what the replica is missing.
qemu-io -f raw -c 'write -P 0x33 62M 1M' "$NBD_URI/vol0" | grep -q '^wrote' || fail "primary stopped serving"
peer_snapshot "$CFG" a
[ "$P_dirty" -ge $((20 << 20)) ] || fail "only $P_dirty bytes dirty after ~20 MiB did not fit on the replica"
cmp -n $((60 << 20)) "$T/data.bin" "$T/a/vol0.img" || fail "primary content is not what was written"

mount -o remount,size=128M "$T/b" || fail "cannot grow the tmpfs"
stop_node_rc b
log "replica exited with status $STOP_RC after ENOSPC"
start_replica "$CFG" b
wait_in_sync "$CFG" a 60
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
log "part 1 done ($((SECONDS - start)) s)"

# ---- 2. the primary's disk fills up ----
log "=== 2. primary on a 16 MiB tmpfs"
umount "$T/b"
rm -rf "$T/a" "$T/b"
mount_tmpfs "$T/a" 16M
start_replica "$CFG" b
start_primary_nowait "$CFG" a "$T/a2.log" assume-clean=true
wait_in_sync "$CFG" a 30
cmds=()
for i in $(seq 0 23); do cmds+=(-c "write -P $((0x20 + i)) ${i}M 1M"); done
out=$(qemu-io -f raw "${cmds[@]}" "$NBD_URI/vol0" 2>&1) || true
echo "$out" > "$T/qemu2.out"
nok=$(grep -c '^wrote 1048576/1048576' <<<"$out" || true)
nfail=$(grep -c '^write failed: No space left on device' <<<"$out" || true)
log "primary on a full tmpfs: $nok writes succeeded, $nfail failed with ENOSPC"
[ "$nfail" -ge 1 ] || { echo "$out" >&2; fail "no write failed with ENOSPC at the client"; }
[ $((nok + nfail)) -eq 24 ] || { echo "$out" >&2; fail "writes failed with other errors"; }
[ "$nok" -ge 10 ] || fail "only $nok MiB fit on a 16 MiB tmpfs"
grep -i "no space left on device" "$T/a2.log" >&2 || fail "nbdkit log does not say the disk is full"
# The replica may have applied the writes that did not fit here: when the
# primary says in sync, the copies must be identical (no restart first).
wait_in_sync "$CFG" a 60
stop_node_rc a
log "primary exited with status $STOP_RC after ENOSPC"
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
# More room, a restart: still identical, and the primary serves again.
mount -o remount,size=128M "$T/a" || fail "cannot grow the tmpfs"
start_replica "$CFG" b
start_primary "$CFG" a
qemu-io -f raw -c 'write -P 0x7e 30M 1M' "$NBD_URI/vol0" | grep -q '^wrote' || fail "write after growing the disk"
wait_in_sync "$CFG" a 60
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
no_bad_frames
log "done in $((SECONDS - start)) s"
