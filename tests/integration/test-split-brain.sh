#!/usr/bin/env bash
# Split brain (I6): both sides written while partitioned, then reconnected.
#
# east (primary) and west (replica) in sync; both stopped.  west is run AS
# A PRIMARY (the plugin with node=west, same config) and written while east
# is down; then east is run as primary and written while west is down.
# When west comes back as a replica, the generation identifiers show the
# histories diverged: east's peer goes `halted` with "split brain" in
# last_error naming both nodes, west logs that it refuses, replication does
# not proceed, and neither image is changed by the attempt (sha256 before
# and after).  Each side still holds exactly its own writes.
# Control: histories that did not diverge (clean stops right after the
# initial sync, writes on the primary only) are never called split brain.
# Last: a replica promoted while it is behind (the old primary holds writes
# it never got) is refused by the old primary, now its replica.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
need nbdkit qemu-io
start=$SECONDS
CFG=$T/sb.yaml
A=east B=west
IMG_A=$T/$A/vol0.img IMG_B=$T/$B/vol0.img

write_pair_config "$CFG" sync 64M "" "" $A $B

# 1. In sync, with common data.
start_replica "$CFG" $B
start_primary "$CFG" $A
qemu-io -f raw -c 'write -P 0x11 0 4M' "$NBD_URI/vol0" >/dev/null || fail "write"
wait_in_sync "$CFG" $A
stop_node $A
stop_node $B
same_images "$IMG_A" "$IMG_B"

# 2. west becomes a primary while east is down, and is written.
start_primary_nowait "$CFG" $B "$T/$B-as-primary.log"
qemu-io -f raw -c 'write -P 0x22 8M 2M' "$NBD_URI/vol0" >/dev/null || fail "write at $B"
peer_snapshot "$CFG" $B
[[ $P_state =~ ^(logging|connecting|handshake)$ ]] || fail "$B's peer $A is '$P_state' although $A is down"
stop_node $B

# 3. east is primary again (west down) and is written too.
start_primary_nowait "$CFG" $A "$T/$A.log"
qemu-io -f raw -c 'write -P 0x33 16M 2M' "$NBD_URI/vol0" >/dev/null || fail "write at $A"
qemu-io -f raw -c 'flush' "$NBD_URI/vol0" >/dev/null
sha_a=$(image_sha "$IMG_A")
sha_b=$(image_sha "$IMG_B")

# 4. west comes back as a replica: divergent histories.
start_sampler "$T/s" "$CFG" $A
start_replica "$CFG" $B
wait_peer_match "$CFG" $A halted 30
log "$A's peer: $P_error"
grep -qi "split brain" <<<"$P_error" || fail "last_error does not say split brain: '$P_error'"
grep -qw "$A" <<<"$P_error" && grep -qw "$B" <<<"$P_error" ||
  fail "last_error does not name both nodes ($A, $B): '$P_error'"
# The replica refuses as well, and says so in its log.
for _ in $(seq 100); do grep -qi "split brain" "$T/$B.log" && break; sleep 0.05; done
grep -i "split brain" "$T/$B.log" >&2 || fail "$B did not log that it refused (split brain)"

# Replication does not proceed: watch for 3 s.  A split brain halts the
# peer: it is never retried until an operator acts (no reconnecting).
t_end=$((SECONDS + 3))
while [ $SECONDS -lt $t_end ]; do
  peer_snapshot "$CFG" $A
  [[ $P_state =~ ^halted$ ]] ||
    fail "after a split brain $A's peer went to '$P_state'"
  [ "$P_left" -eq 0 ] || fail "a resync was started after a split brain ($P_left bytes left)"
  sleep 0.1
done
peer_snapshot "$CFG" $A
[ "$P_state" = halted ] || fail "the halted peer left halted: '$P_state'"
peer_snapshot "$CFG" $B
[ "$U_rx" -lt 65536 ] || fail "$B received $U_rx bytes (replication data?) after refusing"
stop_sampler "$T/s"
samples "$T/s" $A > "$T/s.txt"
if grep -Eq ' (syncing|replicating) ' "$T/s.txt"; then
  cat "$T/s.txt" >&2
  fail "the peer went syncing/replicating during the split brain"
fi

# 5. Stop everything: neither image was touched by the attempt.
stop_node $A
stop_node $B
[ "$(image_sha "$IMG_A")" = "$sha_a" ] || fail "$A's image changed during the split-brain attempt"
[ "$(image_sha "$IMG_B")" = "$sha_b" ] || fail "$B's image changed during the split-brain attempt"
# Each side holds the common data and only its own writes.
check() {
  qemu-io -r -f raw "${@:2}" "$1" | grep -q "Pattern verification failed" &&
    fail "$1: unexpected content"
  return 0
}
check "$IMG_A" -c 'read -P 0x11 0 4M' -c 'read -P 0 8M 2M' -c 'read -P 0x33 16M 2M'
check "$IMG_B" -c 'read -P 0x11 0 4M' -c 'read -P 0x22 8M 2M' -c 'read -P 0 16M 2M'
if cmp -s "$IMG_A" "$IMG_B"; then fail "the images are identical: one side was overwritten"; fi
log "split brain detected and refused ($((SECONDS - start)) s)"

# 5b. The operator resolves it: east's data is kept, west's changes since
# the split are discarded.  Both come back (east as primary, west as a
# replica): halted again; resolve on east names west; west resyncs from
# east with both bitmaps (verdict rule 1): west's writes (8M+2M) and
# east's (16M+2M), not a full copy; the copies converge to east's.
start_primary_nowait "$CFG" $A "$T/$A.log"
URI_A=$NBD_URI/vol0
start_replica "$CFG" $B
wait_peer_match "$CFG" $A halted 30
expect_err 1 "run resolve there" resolve vol0 --discard $B --config "$CFG" --node $B
expect_err 1 "no volume named 'nope'" resolve nope --discard $B --config "$CFG" --node $A
expect_err 1 "$A is not a downstream peer" resolve vol0 --discard $A --config "$CFG" --node $B
expect_err 2 "give VOLUME and --discard NODE" resolve vol0 --config "$CFG" --node $A
"$BLOCKRELAY" resolve vol0 --discard $B --config "$CFG" --node $A >"$T/out" ||
  fail "resolve refused: $(cat "$T/out")"
grep -q "the changes of $B are discarded" "$T/out" || fail "resolve said: $(cat "$T/out")"
wait_in_sync "$CFG" $A 60
verdict=$(peer_field "$CFG" $A verdict)
[ "$verdict" = "vol0: resync by rule 1" ] || fail "after resolve: verdict '$verdict'"
sent=$(peer_field "$CFG" $A resync_sent_bytes)
log "resolved by rule 1: $sent bytes resynced to $B"
[ "$sent" -ge $((4 << 20)) ] || fail "resolve resynced $sent bytes, less than both sides' writes"
[ "$sent" -lt $((16 << 20)) ] || fail "resolve resynced $sent bytes: a full copy?"
expect_err 1 "no split brain to resolve" resolve vol0 --discard $B --config "$CFG" --node $A
# Both record the generation of the resync (for 5c): east once west's
# SYNCED is durable.
for _ in $(seq 200); do
  [ "$(peer_field "$CFG" $A base_generation)" = \
    "$(br_json "$CFG" $A | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["volumes"][0]["generation"])')" ] && break
  sleep 0.05            # polling the control socket
done
stop_node $A
stop_node $B
same_images "$IMG_A" "$IMG_B"
check "$IMG_B" -c 'read -P 0x11 0 4M' -c 'read -P 0 8M 2M' -c 'read -P 0x33 16M 2M'
log "split brain resolved: $B holds $A's data"

# 5c. after-split-brain: discard-zero-changes (the default).  west is run
# as a primary and stopped without a write (a new generation, nothing
# changed), then returns as a replica: resynced by rule 13, no operator.
start_primary_nowait "$CFG" $B "$T/$B-as-primary.log"
stop_node $B
start_replica "$CFG" $B
start_primary "$CFG" $A
verdict=$(peer_field "$CFG" $A verdict)
[ "$verdict" = "vol0: resync by rule 13" ] ||
  fail "a replica with no changes since the split: verdict '$verdict'"
stop_node $A
stop_node $B
same_images "$IMG_A" "$IMG_B"

# 6. Control: histories that did NOT diverge must never be called a split
# brain.  A fresh pair stopped right after it reports replicating (the
# generation bookkeeping of the initial full sync may still be in flight),
# or after only the primary wrote while the replica was down, restarts in
# either order and reaches replicating.
rm -rf "$T/$A" "$T/$B"
for cycle in $(seq 1 12); do
  rm -rf "$T/$A" "$T/$B"
  start_replica "$CFG" $B
  start_primary "$CFG" $A
  if [ $((cycle % 2)) -eq 0 ]; then
    stop_node $B                                   # replica first, then write
    qemu-io -f raw -c "write -P $cycle ${cycle}M 1M" "$NBD_URI/vol0" >/dev/null || fail "write"
    stop_node $A
    start_primary_nowait "$CFG" $A "$T/$A.log"
    start_replica "$CFG" $B
  else
    stop_node $A                                   # primary first
    stop_node $B
    start_replica "$CFG" $B
    start_primary_nowait "$CFG" $A "$T/$A.log"
  fi
  "$BLOCKRELAY" status --config "$CFG" --node $A --wait replicating --timeout 15 >/dev/null || {
    peer_snapshot "$CFG" $A
    fail "control cycle $cycle: no divergence, yet the peer is '$P_state': $P_error"
  }
  stop_node $A
  stop_node $B
  same_images "$IMG_A" "$IMG_B"
done

# 7. A replica made primary while it is behind.  east writes a region
# while west is down (east's bitmap holds it for west), both stop, and
# west is started as the primary with east as its replica.  west's
# generation history contains east's generation (it adopted it), but east
# holds writes west never got: east must refuse (split brain), not report
# "in sync" while the copies differ, and nothing may be overwritten.
rm -rf "$T/$A" "$T/$B"
start_replica "$CFG" $B
start_primary "$CFG" $A
qemu-io -f raw -c 'write -P 0x44 0 1M' "$NBD_URI/vol0" >/dev/null || fail "write"
wait_in_sync "$CFG" $A
stop_node $B
qemu-io -f raw -c 'write -P 0x55 4M 64k' "$NBD_URI/vol0" >/dev/null ||
  fail "write while $B is down"
stop_node $A
sha_a=$(image_sha "$IMG_A")
sha_b=$(image_sha "$IMG_B")
start_replica "$CFG" $A
start_primary_nowait "$CFG" $B "$T/$B-as-primary.log"
wait_peer_match "$CFG" $B halted 30   # B, promoted while behind, stops replicating to A
peer_snapshot "$CFG" $B
grep -qi "split brain" <<<"$P_error" ||
  fail "promoted while behind: last_error is '$P_error', not a split brain"
for _ in $(seq 100); do grep -q "holds 1 regions that $B" "$T/$A.log" && break; sleep 0.05; done
grep "holds 1 regions that $B" "$T/$A.log" >&2 ||
  fail "$A did not say it holds a region $B lacks"
stop_node $B
stop_node $A
[ "$(image_sha "$IMG_A")" = "$sha_a" ] || fail "$A's image was overwritten"
[ "$(image_sha "$IMG_B")" = "$sha_b" ] || fail "$B's image changed"
log "a replica promoted while behind is refused by the copy that is ahead"

no_bad_frames
log "done in $((SECONDS - start)) s"
