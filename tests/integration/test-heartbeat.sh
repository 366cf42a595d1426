#!/usr/bin/env bash
# Heartbeats: an idle link stays up (PINGs are answered, nothing is torn
# down), and a peer that stops answering (SIGSTOP: no RST, like a cut
# link) is declared lost after heartbeat-timeout; writes go on in logging
# mode; when it answers again it is reconnected and resynced.
. "$(dirname "$0")/lib.sh"
need nbdkit qemu-io python3

write_pair_config "$T/h.yaml" sync 32M "" \
  "heartbeat: 100ms, heartbeat-timeout: 600ms, reconnect-max: 300ms"
start_replica "$T/h.yaml" b
start_primary "$T/h.yaml" a

peer() {
  "$BLOCKRELAY" status --config "$T/h.yaml" --node a --json |
    python3 -c "import json,sys; p=json.load(sys.stdin)['volumes'][0]['peers'][0]; print(p['$1'])"
}

# Idle for 15 heartbeat intervals: the session must survive them.
sleep 1.5   # the behaviour under test is the passage of time itself
[ "$(peer state)" = replicating ] || fail "idle link dropped: $(peer last_error)"
[ "$(grep -c 'replicating from a' "$T/b.log")" -eq 1 ] || fail "the replica saw reconnects"
grep -q "closed" "$T/b.log" && fail "a connection was closed on an idle link"

# A frozen replica is detected by the heartbeat.
kill -STOP "$PID_b"
on_exit "kill -CONT $PID_b"
for _ in $(seq 100); do
  [ "$(peer state)" != replicating ] && break
  sleep 0.05
done
[ "$(peer state)" != replicating ] || fail "frozen peer not detected"
peer last_error | grep -q "heartbeat timeout\|no answer" || fail "reason: $(peer last_error)"
qemu-io -f raw -c 'write -P 0x61 0 1M' "$NBD_URI/vol0" >/dev/null || fail "write while logging"
[ "$(peer dirty_bytes)" -ge $((1 << 20)) ] || fail "write not tracked"

kill -CONT "$PID_b"
wait_in_sync "$T/h.yaml" a 30
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
