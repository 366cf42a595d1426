#!/usr/bin/env bash
# Injected disk faults (BLOCKRELAY_FAULTS, see docs/operations.md).
#
# (a) primary, write:EIO:after=4 — the first 4 writes succeed, later ones
#     reach the NBD client as EIO ("Input/output error" in qemu-io), with a
#     clear line in the nbdkit log.  The replica may have received the
#     failed writes: the primary must not report the peer in sync while
#     the copies differ (stopped as soon as it says in sync, they compare
#     equal); restarted without faults, still equal.
# (b) primary, sync:ENOSPC — flush and FUA writes fail with ENOSPC at the
#     client (libnbd sees errno ENOSPC); restarted without faults, converges.
# (c) replica, write:EIO:after=4 — the primary marks the peer `failed` with
#     the replica's error in last_error, keeps serving writes (logging: the
#     bits of the failed write and every later one stay set); the replica
#     restarted without faults resyncs and the copies converge.
#
# Every part ends with both nodes stopped and the copies compared.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
need nbdkit qemu-io
need_ackwriter                        # $PY with libnbd: the ENOSPC check of (b)
start=$SECONDS
CFG=$T/d.yaml

# qemu_writes FIRST LAST: one 64 KiB write of pattern 0x40+i at i MiB for
# each i; prints qemu-io's output (qemu-io goes on after a failed command).
qemu_writes() {
  local cmds=() i
  for ((i = $1; i <= $2; i++)); do
    cmds+=(-c "write -P $((0x40 + i)) ${i}M 64k")
  done
  qemu-io -f raw "${cmds[@]}" "$NBD_URI/vol0" 2>&1 || true
}

# check_patterns IMG FIRST LAST: the 64 KiB at i MiB holds pattern 0x40+i.
check_patterns() {
  local img=$1 cmds=() i out
  for ((i = $2; i <= $3; i++)); do
    cmds+=(-c "read -P $((0x40 + i)) ${i}M 64k")
  done
  out=$(qemu-io -r -f raw "${cmds[@]}" "$img" 2>&1) || true
  if grep -q "Pattern verification failed\|failed" <<<"$out"; then
    echo "$out" >&2
    fail "$img: wrong content for writes $2..$3"
  fi
}

# converge: restart the primary without faults, wait, stop, compare.
converge() {
  start_primary "$CFG" a
  wait_in_sync "$CFG" a 60
  stop_node a
  stop_node b
  same_images "$T/a/vol0.img" "$T/b/vol0.img"
}

write_pair_config "$CFG" sync 64M

# ---- (a) primary write:EIO after 4 ----
part_a() {
log "=== (a) primary: write:EIO:after=4"
rm -rf "$T/a" "$T/b"
start_replica "$CFG" b
BLOCKRELAY_FAULTS="write:EIO:after=4:path=$T/a/" \
  start_primary_nowait "$CFG" a "$T/a-eio.log"
wait_in_sync "$CFG" a 30
out=$(qemu_writes 0 5)
echo "$out" > "$T/qemu-a.out"
[ "$(grep -c '^wrote 65536/65536' <<<"$out")" -eq 4 ] &&
  [ "$(grep -c '^write failed: Input/output error' <<<"$out")" -eq 2 ] ||
  { echo "$out" >&2; fail "expected 4 writes to succeed and 2 to fail with EIO"; }
grep -i "vol0.*input/output error" "$T/a-eio.log" >&2 ||
  fail "no log line about the failed write in the nbdkit log"
# The failed writes are not reported replicated in silence: reads still work.
if qemu-io -f raw -c 'read -P 0x40 0 64k' -c 'read -P 0x43 3M 64k' "$NBD_URI/vol0" |
   grep -q "Pattern verification failed"; then
  fail "successful writes not readable"
fi
# The replica may have applied the writes that failed here.  The primary
# must repair that from its own content (reads still work) before it
# reports the peer in sync, and whenever it says in sync the copies are
# identical: stop both now, no restart (a restart would resync whatever
# bits happen to be set and hide the question).
wait_in_sync "$CFG" a 60
stop_node_rc a
log "(a) nbdkit exited with status $STOP_RC after the faults"
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
check_patterns "$T/b/vol0.img" 0 3
# And a restart without faults is clean too.
start_replica "$CFG" b
converge
}

# ---- (b) primary sync:ENOSPC ----
part_b() {
log "=== (b) primary: sync:ENOSPC"
rm -rf "$T/a" "$T/b"
start_replica "$CFG" b
BLOCKRELAY_FAULTS="sync:ENOSPC:path=$T/a/" \
  start_primary_nowait "$CFG" a "$T/a-enospc.log"
wait_in_sync "$CFG" a 30
"$PY" - "$NBD_URI/vol0" <<'PY' || fail "flush/FUA did not fail with ENOSPC"
import errno, nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(b"\x61" * 65536, 8 << 20)             # a plain write still works
def expect_enospc(what, fn):
    try:
        fn()
    except nbd.Error as e:
        if e.errnum != errno.ENOSPC:
            sys.exit("%s failed with %s, expected ENOSPC" % (what, e))
        print("%s: %s" % (what, e), file=sys.stderr)
        return
    sys.exit("%s succeeded although every sync fails" % what)
expect_enospc("flush", h.flush)
if h.can_fua():
    expect_enospc("FUA write", lambda: h.pwrite(b"\x62" * 65536, 9 << 20, nbd.CMD_FLAG_FUA))
h.shutdown()
PY
grep -i "no space left on device" "$T/a-enospc.log" >&2 ||
  fail "no log line about the failed sync in the nbdkit log"
stop_node_rc a
log "(b) nbdkit exited with status $STOP_RC after the faults"
converge
if qemu-io -r -f raw -c 'read -P 0x61 8M 64k' "$T/b/vol0.img" | grep -q "Pattern verification failed"; then
  fail "the plain write before the failed flush is missing on the replica"
fi
}

# ---- (c) replica write:EIO after 4 ----
part_c() {
log "=== (c) replica: write:EIO:after=4"
rm -rf "$T/a" "$T/b"
BLOCKRELAY_FAULTS="write:EIO:after=4" start_replica "$CFG" b
start_primary "$CFG" a
out=$(qemu_writes 0 9)
echo "$out" > "$T/qemu-c.out"
[ "$(grep -c '^wrote 65536/65536' <<<"$out")" -eq 10 ] ||
  { echo "$out" >&2; fail "writes failed at the client although only the replica's disk fails"; }
wait_peer_match "$CFG" a failed 30
log "(c) peer failed: $P_error"
grep -Eiq "input/output error|EIO" <<<"$P_error" || fail "last_error does not carry the replica's error: '$P_error'"
grep -Eiq "input/output error" "$T/b.log" || fail "the replica did not log its disk error"
# Writes go on (logging); the failed write and all later ones stay dirty.
out=$(qemu_writes 10 11)
[ "$(grep -c '^wrote 65536/65536' <<<"$out")" -eq 2 ] || { echo "$out" >&2; fail "primary stopped serving writes"; }
peer_snapshot "$CFG" a
[ "$P_dirty" -ge $((8 * 65536)) ] ||
  fail "only $P_dirty bytes dirty: writes 4..11 failed on the replica and must stay tracked"
[[ $P_state =~ ^(failed|logging|connecting|handshake|syncing)$ ]] ||
  fail "peer is '$P_state' although the replica's disk still fails"
stop_node_rc b
log "(c) replica exited with status $STOP_RC after its disk errors"
start_replica "$CFG" b                        # no faults now
wait_in_sync "$CFG" a 60
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
check_patterns "$T/b/vol0.img" 0 11
}

# BR_PARTS selects parts when debugging (default: all).
for part in $(grep -o . <<<"${BR_PARTS:-abc}"); do
  "part_$part"
done
no_bad_frames
log "done in $((SECONDS - start)) s"
