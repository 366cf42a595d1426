#!/usr/bin/env bash
# on-peer-loss for sync links: `fail` returns EIO to the client while the
# peer is away; `block` holds writes until the peer is back and in sync
# (and then they complete), or until block-timeout, after which they
# complete in logging mode.  Copies converge in every case.
. "$(dirname "$0")/lib.sh"
need nbdkit qemu-io python3

policy_config() {   # FILE POLICY [extra link keys]
  write_pair_config "$1" sync 32M "on-peer-loss: $2${3:+, $3}" \
    "heartbeat: 100ms, heartbeat-timeout: 600ms, reconnect-max: 200ms"
}
state() {
  "$BLOCKRELAY" status --config "$1" --node a --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["volumes"][0]["peers"][0]["state"])'
}

# ---- fail ----
policy_config "$T/f.yaml" fail
start_replica "$T/f.yaml" b
start_primary "$T/f.yaml" a
qemu-io -f raw -c 'write -P 0x11 0 1M' "$NBD_URI/vol0" >/dev/null || fail "write with the peer up"
stop_node b
for _ in $(seq 100); do [ "$(state "$T/f.yaml")" != replicating ] && break; sleep 0.05; done
out=$(qemu-io -f raw -c 'write -P 0x22 1M 1M' "$NBD_URI/vol0" 2>&1) || true
grep -q "Input/output error" <<<"$out" || fail "fail policy: write did not fail with EIO: $out"
grep -q "on-peer-loss: fail" "$T/a.log" || fail "fail policy: no log line"
start_replica "$T/f.yaml" b
wait_in_sync "$T/f.yaml" a
qemu-io -f raw -c 'write -P 0x33 2M 1M' "$NBD_URI/vol0" >/dev/null || fail "write after the peer returned"
wait_in_sync "$T/f.yaml" a
stop_node a; stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
rm -rf "$T/a" "$T/b"

# ---- block: the write waits for the peer, then completes ----
policy_config "$T/b.yaml" block "block-timeout: 60s"
start_replica "$T/b.yaml" b
start_primary "$T/b.yaml" a
stop_node b
for _ in $(seq 100); do [ "$(state "$T/b.yaml")" != replicating ] && break; sleep 0.05; done
qemu-io -f raw -c 'write -P 0x44 0 1M' "$NBD_URI/vol0" > "$T/blocked.out" 2>&1 &
writer=$!
# The write cannot complete while the peer is away: it is still pending
# once the write has reached the engine (its bits are set).
for _ in $(seq 200); do
  d=$("$BLOCKRELAY" status --config "$T/b.yaml" --node a --json |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["volumes"][0]["peers"][0]["dirty_bytes"])')
  [ "$d" -ge $((1 << 20)) ] && break
  sleep 0.05
done
[ "$d" -ge $((1 << 20)) ] || fail "block policy: the write never reached the engine"
kill -0 $writer 2>/dev/null || fail "block policy: the write completed while the peer was away"
start_replica "$T/b.yaml" b
wait $writer || { cat "$T/blocked.out" >&2; fail "block policy: write failed"; }
wait_in_sync "$T/b.yaml" a
stop_node a; stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
rm -rf "$T/a" "$T/b"

# ---- block with a short timeout: the write completes in logging mode ----
policy_config "$T/t.yaml" block "block-timeout: 1s"
start_replica "$T/t.yaml" b
start_primary "$T/t.yaml" a
stop_node b
for _ in $(seq 100); do [ "$(state "$T/t.yaml")" != replicating ] && break; sleep 0.05; done
t0=$(date +%s%N)
qemu-io -f raw -c 'write -P 0x55 0 1M' "$NBD_URI/vol0" >/dev/null || fail "block timeout: write failed"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $ms -ge 900 ] || fail "block timeout: the write did not wait (${ms} ms)"
grep -q "past block-timeout" "$T/a.log" || fail "block timeout: no log line"
start_replica "$T/t.yaml" b
wait_in_sync "$T/t.yaml" a
stop_node a; stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
