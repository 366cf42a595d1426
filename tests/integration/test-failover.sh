#!/usr/bin/env bash
# Failover and failback without editing the topology (issue 9, items 3
# and 9): promote, demote, and the generation verdict's failback rule.
#
# east is the primary (the plugin), west a replica run by the plugin with
# role=replica: it serves no NBD client until promoted.
#   1. west refuses clients; promote is refused while east is connected
#      and primary (P4); demote of east is refused while a client is
#      connected (D3).
#   2. Writes under load on east (a sync link), then east is killed.
#   3. west is promoted: every write east acknowledged is on west.
#   4. New writes through west (east is down: west logs them).
#   5. east returns as a replica: the resync goes west -> east and sends
#      only what changed on either side since the split (west's bitmap
#      for east, and east's own bitmap of what west may lack -- its
#      writes in flight and those in the activity window -- taken by the
#      verdict's rule 3), counted by west's own resync_sent_bytes, far
#      below the 1 GiB a full copy sends;
#      then every acknowledged write of both runs is on both copies and
#      the images are identical.
#   6. A planned failback in place: west demoted, east promoted, nothing
#      to resync, new writes on east reach west.
#   7. blockrelayd cannot be promoted (P3), and an inconsistent replica
#      (killed primary during a rate-limited resync) is refused (P6)
#      unless --force.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
need nbdkit qemu-io
need_ackwriter
start=$SECONDS
CFG=$T/fo.yaml
A=east B=west
IMG_A=$T/$A/vol0.img IMG_B=$T/$B/vol0.img
write_pair_config "$CFG" sync 1G "" "" $A $B

status_field() {        # CFG NODE PYEXPR: a value of the node's status
  br_json "$1" "$2" | "$PY" -c 'import json, sys
d = json.load(sys.stdin)
print(eval(sys.argv[1]))' "$3"
}

# 1. A replica that serves nothing, and the refusals.
start_primary_nowait "$CFG" $B "$T/$B.log" role=replica
URI_B=$NBD_URI/vol0
start_primary "$CFG" $A
URI_A=$NBD_URI/vol0
if qemu-io -f raw -c 'read 0 4k' "$URI_B" >"$T/q.out" 2>&1; then
  fail "the replica $B served a client"
fi
grep -q "is a replica" "$T/$B.log" || fail "$B did not say why it refused the client"
[ "$(status_field "$CFG" $B 'd["role"]')" = replica ] || fail "$B is not a replica"
[ "$(status_field "$CFG" $B 'd["groups"][0]["primary"]')" = $A ] ||
  fail "$B does not name $A as the primary of its group"
[ "$(status_field "$CFG" $A 'd["groups"][0]["primary"]')" = $A ] ||
  fail "$A does not name itself as the primary"
expect_err 1 "replicates from $A, which is connected and primary" \
  promote --config "$CFG" --node $B --timeout 1
"$BLOCKRELAY" promote --config "$CFG" --node $A >"$T/out" || fail "promote of a primary failed"
grep -q "P1: node $A is primary already" "$T/out" || fail "promote of a primary: $(cat "$T/out")"
mkfifo "$T/fifo"
qemu-io -f raw "$URI_A" <"$T/fifo" >"$T/holder.out" 2>&1 &
HOLDER=$!
exec 7>"$T/fifo"
for _ in $(seq 200); do
  [ "$(status_field "$CFG" $A 'd["clients"]')" -ge 1 ] && break
  sleep 0.05            # polling the control socket
done
[ "$(status_field "$CFG" $A 'd["clients"]')" -ge 1 ] || fail "$A does not count the NBD client"
expect_err 1 "D3: 1 NBD client connection(s) are open on node $A" \
  demote --config "$CFG" --node $A --timeout 1
echo quit >&7
exec 7>&-
wait "$HOLDER" || true

# 2. Load on east, then east dies.
start_writer "$URI_A" "$T/w1.log" 1 --depth 8
wait_acks "$T/w1.log" 400 60
kill9 $A
wait_exit "$WRITER_PID" 30 "the writer" || true
WRITER_PID=
log "$A killed after $(acks "$T/w1.log") acknowledged writes"

# 3. west takes over.
"$BLOCKRELAY" promote --config "$CFG" --node $B --timeout 10 || fail "promote $B"
[ "$(status_field "$CFG" $B 'd["role"]')" = primary ] || fail "$B is not primary"
[ "$(status_field "$CFG" $B 'd["groups"][0]["primary"]')" = $B ] ||
  fail "$B does not name itself as the primary after the promotion"
grep -q "promoted by the operator" "$T/$B.log" || fail "$B did not log its promotion"
check_acks "$T/w1.log" "$URI_B"
log "every write $A acknowledged is on $B"

# 4. New writes through west while east is down.
start_writer "$URI_B" "$T/w2.log" 1000000 --depth 4
wait_acks "$T/w2.log" 200 60
stop_writer || fail "a write through the promoted $B failed"
peer_snapshot "$CFG" $B
[[ $P_state =~ ^(logging|connecting|failed)$ ]] || fail "$B's peer $A is '$P_state' while $A is down"
dirty_b=$P_dirty
[ "$dirty_b" -gt 0 ] || fail "$B logged none of its writes for $A"

# 5. east comes back as a replica: the resync goes the new way.
start_primary_nowait "$CFG" $A "$T/$A.log" role=replica
URI_A=$NBD_URI/vol0
wait_in_sync "$CFG" $B 60
verdict=$(peer_field "$CFG" $B verdict)
taken=$(peer_field "$CFG" $B taken_regions)
log "$B's verdict for $A: $verdict ($taken regions of $A's bitmap taken)"
[[ $verdict =~ ^vol0:\ resync\ by\ rule\ (3|11)$ ]] ||
  fail "$B did not resync $A by the failback rules (3 or 11): '$verdict'"
if [[ $verdict == *"rule 3" ]]; then
  [ "$taken" -gt 0 ] || fail "rule 3 without $A's bitmap taken"
else
  [ "$taken" -eq 0 ] || fail "rule 11 took $taken regions of $A's bitmap"
fi
sent=$(peer_field "$CFG" $B resync_sent_bytes)
log "failback resync: $sent bytes sent; $B had $dirty_b bytes dirty for $A," \
    "$A's bitmap had $taken regions; the volume is $((1 << 30)) bytes"
[ "$sent" -le $((dirty_b + taken * 65536)) ] ||
  fail "the resync sent $sent bytes, more than the two bitmaps ($dirty_b + $taken regions)"
[ "$sent" -ge "$dirty_b" ] || fail "the resync sent $sent bytes, less than $B changed ($dirty_b)"
[ "$sent" -lt $((1 << 27)) ] || fail "the resync sent $sent bytes: a full copy?"
[ "$(status_field "$CFG" $A 'd["groups"][0]["primary"]')" = $B ] ||
  fail "$A does not name $B as the primary"
cat "$T/w1.log" "$T/w2.log" > "$T/w12.log"
check_acks "$T/w12.log" "$URI_B"

# 6. Planned failback in place: west demoted, east promoted.
"$BLOCKRELAY" demote --config "$CFG" --node $B --timeout 10 || fail "demote $B"
[ "$(status_field "$CFG" $B 'd["role"]')" = replica ] || fail "$B is not a replica"
"$BLOCKRELAY" promote --config "$CFG" --node $A --timeout 10 || fail "promote $A"
wait_in_sync "$CFG" $A 30
sent=$(peer_field "$CFG" $A resync_sent_bytes)
[ "$sent" -eq 0 ] || fail "failback of an unchanged pair sent $sent bytes"
qemu-io -f raw -c 'write -P 0x77 1M 1M' "$URI_A" >/dev/null || fail "write on $A after failback"
wait_in_sync "$CFG" $A 30
stop_node $A
stop_node $B
same_images "$IMG_A" "$IMG_B"
qemu-io -r -f raw -c 'read -P 0x77 1M 1M' "$IMG_B" | grep -q "verification failed" &&
  fail "$B lacks the write made on $A after the failback"

# 7. blockrelayd cannot be promoted; an inconsistent copy only by force.
start_replica "$CFG" $B
expect_err 1 "P3: blockrelayd serves no NBD export" promote --config "$CFG" --node $B
stop_node $B
rm -rf "${T:?}/$A" "${T:?}/$B"
write_pair_config "$T/slow.yaml" sync 64M "resync-rate: 1M" "" $A $B
start_primary_nowait "$T/slow.yaml" $B "$T/$B.log" role=replica
start_primary_nowait "$T/slow.yaml" $A "$T/$A.log" assume-clean=true
"$BLOCKRELAY" status --config "$T/slow.yaml" --node $A --wait replicating --timeout 30 >/dev/null ||
  fail "$A and $B did not reconnect"
stop_node $B
qemu-io -f raw -c 'write -P 0x99 8M 16M' "$NBD_URI/vol0" >/dev/null || fail "write on $A"
start_primary_nowait "$T/slow.yaml" $B "$T/$B.log" role=replica
wait_peer_match "$T/slow.yaml" $A syncing 30
for _ in $(seq 200); do
  [ "$(status_field "$T/slow.yaml" $B 'd["volumes"][0]["consistent"]')" = False ] && break
  sleep 0.05            # polling the control socket
done
[ "$(status_field "$T/slow.yaml" $B 'd["volumes"][0]["consistent"]')" = False ] ||
  fail "$B never became inconsistent during the resync"
kill9 $A
expect_err 1 "P6: vol0 is inconsistent on node $B" \
  promote --config "$T/slow.yaml" --node $B --timeout 5
"$BLOCKRELAY" promote --config "$T/slow.yaml" --node $B --force --timeout 10 ||
  fail "promote --force of an inconsistent copy"
grep -q "forced: a copy is inconsistent" "$T/$B.log" || fail "$B did not log the forced promotion"
stop_node $B
no_bad_frames
log "done in $((SECONDS - start)) s"
