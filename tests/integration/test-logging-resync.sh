#!/usr/bin/env bash
# Logging mode and resync: the primary starts with its replica down and
# keeps serving writes (only bits are set); when the replica comes up the
# dirty regions are resynced while new writes continue, and the copies
# converge.  Then the primary is killed with SIGKILL under write load and
# restarted: the scoreboard says what may differ, and after the resync the
# copies are identical again.
. "$(dirname "$0")/lib.sh"
need nbdkit nbdcopy qemu-io fio

write_pair_config "$T/p.yaml" sync 128M

# 1. Replica absent: writes succeed and are only logged.
start_nbdkit_only() {
  local port; port=$(free_port)
  rm -f "$T/a.pid"
  env $(asan_env) nbdkit -f -P "$T/a.pid" -p "$port" -i 127.0.0.1 "$PLUGIN" \
    config="$T/p.yaml" node=a >>"$T/a.log" 2>&1 &
  PID_a=$!; BR_PIDS+=("$PID_a")
  wait_for_file "$T/a.pid" "$PID_a"
  NBD_URI="nbd://127.0.0.1:$port"
}
start_nbdkit_only
head -c 24M /dev/urandom > "$T/r.bin"
nbdcopy "$T/r.bin" "$NBD_URI/vol0"
qemu-io -f raw -c 'write -P 0x77 64M 3M' -c 'write -z 100M 1M' "$NBD_URI/vol0" >/dev/null
"$BLOCKRELAY" status --config "$T/p.yaml" --node a --json > "$T/st.json"
python3 - "$T/st.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["volumes"][0]["peers"][0]
assert p["state"] in ("logging", "connecting"), p
assert p["dirty_bytes"] >= 27 * 2**20, p   # 24M + 3M (+ the zeroed 1M)
PY

# 2. Replica comes up: resync, with live writes racing it.
start_replica "$T/p.yaml" b
fio --name=live --ioengine=nbd --uri="$NBD_URI/vol0" --rw=randwrite --bs=4k \
  --iodepth=8 --size=128M --io_size=8M --randseed=7 --output="$T/fio1.out" \
  || fail "fio during resync"
wait_in_sync "$T/p.yaml" a
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"

# 3. SIGKILL of the primary under load, restart, converge.
start_replica "$T/p.yaml" b
start_primary "$T/p.yaml" a
fio --name=load --ioengine=nbd --uri="$NBD_URI/vol0" --rw=randwrite --bs=64k \
  --iodepth=16 --size=128M --time_based --runtime=30 --randseed=9 \
  --output="$T/fio2.out" 2>>"$T/fio2.err" &
fio_pid=$!
# Kill once the load is running: wait until the replica has applied data.
for _ in $(seq 200); do
  n=$("$BLOCKRELAY" status --config "$T/p.yaml" --node b --json |
      python3 -c 'import json,sys; u=json.load(sys.stdin)["upstream"]; print(u[0]["applied_seq"] if u else 0)')
  [ "$n" -gt 200 ] && break
  sleep 0.05
done
[ "$n" -gt 200 ] || fail "load never reached the replica"
kill -9 "$PID_a"
wait "$PID_a" 2>/dev/null || true
PID_a=
wait $fio_pid 2>/dev/null || true       # fio fails: its server died
start_primary "$T/p.yaml" a              # waits for replicating (resynced)
wait_in_sync "$T/p.yaml" a
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
grep -q "not shut down cleanly" "$T/a.log" || fail "restart did not notice the crash"
