#!/usr/bin/env bash
# blockrelay pause / resume of a downstream peer, under load.
#  - The link is sync with on-peer-loss: block and a long block-timeout, so
#    a write that waited for a paused peer would hang: while paused, fio's
#    writes complete (the pause logs them whatever on-peer-loss says).
#  - Paused: status says "paused", nothing reaches the replica (its image
#    lacks what was written), the dirty count grows, and no reconnection
#    happens (it is still paused after several reconnect intervals).
#  - Resumed: the peer reconnects, resyncs what changed, and after fio (with
#    crc32c verification) both copies are identical.
#  - Errors: an unknown peer or group, resume of a peer that is not paused,
#    no --peer, no node running: each a clear message, exit 1 (2 for usage).
. "$(dirname "$0")/lib.sh"
need nbdkit fio nbdcopy python3
fio --enghelp=nbd >/dev/null 2>&1 || skip "fio has no nbd engine"

write_pair_config "$T/pair.yaml" sync 128M "on-peer-loss: block, block-timeout: 10m"
C=(--config "$T/pair.yaml" --node a)
start_replica "$T/pair.yaml" b
start_primary "$T/pair.yaml" a

# json_peer FIELD: FIELD of the primary's peer b (status --json).
json_peer() {
  "$BLOCKRELAY" status "${C[@]}" --json |
    python3 -c "import json,sys; print(json.load(sys.stdin)['volumes'][0]['peers'][0]['$1'])"
}

# ---- errors first, while replicating ----
expect_err 1 "c is not a peer of node a" pause "${C[@]}" --peer c
expect_err 1 "node a has no group named 'nope'" pause "${C[@]}" --peer b --group nope
expect_err 1 "peer b of group vol0 is replicating, not paused" resume "${C[@]}" --peer b
expect_err 2 "give --peer NODE" pause "${C[@]}"
expect_err 1 "cannot reach $T/none.sock" pause --socket "$T/none.sock" --peer b
expect_err 1 "no node named 'zz'" pause --config "$T/pair.yaml" --node zz --peer b
[ "$(json_peer state)" = replicating ] || fail "a refused request changed the peer"

# ---- pause under load ----
fio --name=load --ioengine=nbd --uri="$NBD_URI/vol0" --rw=randwrite \
  --bs=4k --bsrange=4k-64k --iodepth=16 --size=128M --io_size=96M \
  --verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 \
  --randseed=$RANDOM --output="$T/fio.out" &
FIO=$!
BR_PIDS+=("$FIO")
out=$("$BLOCKRELAY" pause "${C[@]}" --peer b) || fail "pause failed"
[ "$out" = "peer b of group vol0: paused" ] || fail "pause said '$out'"
"$BLOCKRELAY" pause "${C[@]}" --peer b >/dev/null || fail "a second pause is refused"
[ "$(json_peer state)" = paused ] || fail "status does not say paused"
[ "$(json_peer last_error)" = "paused by the operator" ] || fail "no reason in status"
# Writes go on while paused, into the bitmap: wait until some are dirty.
"$BLOCKRELAY" status "${C[@]}" --wait paused --timeout 10 >/dev/null || fail "not paused"
for ((i = 0; i < 200; i++)); do
  [ "$(json_peer dirty_bytes)" -gt $((4 << 20)) ] && break
  kill -0 $FIO 2>/dev/null || break
  sleep 0.05            # polling the control socket
done
dirty=$(json_peer dirty_bytes)
[ "$dirty" -gt 0 ] || fail "no writes were logged while paused"
# No reconnection while paused: reconnect-max is 500ms, so 3 s would see it.
if "$BLOCKRELAY" status "${C[@]}" --wait replicating --timeout 3 >/dev/null 2>&1; then
  fail "the paused peer reconnected"
fi
[ "$(json_peer state)" = paused ] || fail "the peer left paused by itself"
log "ok: paused under load; $dirty bytes dirty and growing, no reconnection"

out=$("$BLOCKRELAY" resume "${C[@]}" --peer b) || fail "resume failed"
[[ $out == "peer b of group vol0: "* ]] || fail "resume said '$out'"
wait $FIO || { cat "$T/fio.out" >&2; fail "fio failed"; }
grep -q "err= 0" "$T/fio.out" || fail "fio reported errors"
wait_in_sync "$T/pair.yaml" a

# ---- paused with no load: nothing reaches the replica ----
"$BLOCKRELAY" pause "${C[@]}" --peer b >/dev/null || fail "pause failed"
head -c 8M /dev/urandom > "$T/new.bin"
timeout 60 nbdcopy --flush "$T/new.bin" "$NBD_URI/vol0" ||
  fail "a write waited for the paused sync peer (on-peer-loss: block)"
cmp -s -n $((8 << 20)) "$T/new.bin" "$T/b/vol0.img" &&
  fail "the paused replica received the data"
[ "$(json_peer dirty_bytes)" -ge $((8 << 20)) ] || fail "the 8M are not all dirty"
"$BLOCKRELAY" resume "${C[@]}" --peer b >/dev/null || fail "resume failed"
wait_in_sync "$T/pair.yaml" a
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
cmp -n $((8 << 20)) "$T/new.bin" "$T/b/vol0.img" || fail "the replica lacks the data"
log "ok: resumed, resynced, copies identical"
