#!/usr/bin/env bash
# The async queue is bounded: with the replica frozen (SIGSTOP), writes
# complete until the link's queue-size is reached, then writers wait; the
# queue never exceeds its bound; when the replica resumes, the queue drains
# and the copies converge.
. "$(dirname "$0")/lib.sh"
need nbdkit qemu-io python3

write_pair_config "$T/q.yaml" async 64M "queue-size: 4M"
start_replica "$T/q.yaml" b
start_primary "$T/q.yaml" a

queued() {
  "$BLOCKRELAY" status --config "$T/q.yaml" --node a --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["volumes"][0]["peers"][0]["queued_bytes"])'
}

kill -STOP "$PID_b"
on_exit "kill -CONT $PID_b"
# Two 1 MiB writes fit and complete although the replica is frozen.
qemu-io -f raw -c 'write -P 0x31 0 1M' -c 'write -P 0x32 1M 1M' \
  "$NBD_URI/vol0" >/dev/null || fail "async writes did not complete"
[ "$(queued)" -eq $((2 << 20)) ] || fail "expected 2 MiB queued, got $(queued)"

# Eight more: two fit (4 MiB bound), the third must wait.
cmds=()
for i in $(seq 2 9); do cmds+=(-c "write -P 0x4$i ${i}M 1M"); done
qemu-io -f raw "${cmds[@]}" "$NBD_URI/vol0" > "$T/writer.out" 2>&1 &
writer=$!
for _ in $(seq 400); do
  [ "$(queued)" -ge $((4 << 20)) ] && break
  sleep 0.05
done
q=$(queued)
[ "$q" -eq $((4 << 20)) ] || fail "queue at $q bytes, expected exactly the 4 MiB bound"
kill -0 $writer 2>/dev/null || { cat "$T/writer.out" >&2; fail "the writer finished although the queue was full"; }

kill -CONT "$PID_b"
wait $writer || { cat "$T/writer.out" >&2; fail "writer failed after the replica resumed"; }
wait_in_sync "$T/q.yaml" a
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
qemu-io -r -f raw -c 'read -P 0x31 0 1M' -c 'read -P 0x49 9M 1M' "$T/b/vol0.img" \
  | grep -q "Pattern verification failed" && fail "replica content wrong"
exit 0
