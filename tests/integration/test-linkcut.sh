#!/usr/bin/env bash
# Link cuts under fio load.  The primary (nbdkit with the plugin, and the
# fio client) runs in network namespace A, the replica (blockrelayd) in
# namespace B; a veth pair joins them (10.231.N.1 and .2, both ends inside
# namespaces this test made).  While fio writes with crc32c verification
# (sync link), the link is set down at random points and up again, several
# times: the primary must notice each cut by heartbeat timeout (the peer
# leaves replicating), keep serving writes (logging), and once the link is
# up reconnect, resync and return to replicating on its own.  fio runs
# back to back throughout; every run must finish with no error and pass
# its verification.  A second volume (its own group, so its own
# connection) takes writes from ackwriter.py at the same time: during every
# cut it must keep acknowledging writes, and every acknowledged write must
# be on the replica at the end.  Then the copies are stopped and compared
# byte for byte.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
need nbdkit fio ip
need_ackwriter                        # for $PY (status JSON parsing)
[ "$(id -u)" -eq 0 ] || skip "needs root for ip netns"

MIN_CUTS=4
NET=10.231.$(rand 1 254)
NS_A=brA-$$-$RANDOM
NS_B=brB-$$-$RANDOM
ip netns add "$NS_A" || skip "cannot create network namespaces"
on_exit "ip netns del $NS_A"
ip netns add "$NS_B"
on_exit "ip netns del $NS_B"
ip -n "$NS_A" link set lo up
ip -n "$NS_B" link set lo up
ip -n "$NS_A" link add va type veth peer name vb netns "$NS_B"
ip -n "$NS_A" addr add "$NET.1/24" dev va
ip -n "$NS_B" addr add "$NET.2/24" dev vb
ip -n "$NS_A" link set va up
ip -n "$NS_B" link set vb up

CFG=$T/p.yaml
cat > "$CFG" <<EOF2
settings:
  heartbeat: 200ms
  heartbeat-timeout: 1s
  reconnect-max: 500ms
volumes:
  - {name: vol0, size: 64M}
  - {name: vol1, size: 32M}
nodes:
  - {name: a, address: $NET.1:10901, data-dir: $T/a}
  - {name: b, address: $NET.2:10902, data-dir: $T/b}
links:
  - {between: [a, b], mode: sync}
EOF2

# Processes inside the namespaces: `ip netns exec` execs the program, so $!
# is the daemon itself.
start_replica_ns() {
  rm -f "$T/b.pid"
  ip netns exec "$NS_B" "$BLOCKRELAYD" --config "$CFG" --node b \
    --pidfile "$T/b.pid" ${BR_DEBUG:+--debug "$BR_DEBUG"} >>"$T/b.log" 2>&1 &
  PID_b=$!
  BR_PIDS+=("$PID_b")
  wait_for_file "$T/b.pid" "$PID_b"
}
start_primary_ns() {
  rm -f "$T/a.pid"
  ip netns exec "$NS_A" env $(asan_env) nbdkit -f -P "$T/a.pid" -p 10809 \
    -i 127.0.0.1 ${NBDKIT_DEBUG:-} "$PLUGIN" config="$CFG" node=a \
    >>"$T/a.log" 2>&1 &
  PID_a=$!
  BR_PIDS+=("$PID_a")
  wait_for_file "$T/a.pid" "$PID_a"
}

# link_down: one end of the veth pair, chosen at random (either end down
# takes the carrier away from both); prints which.
link_down() {
  if [ $((RANDOM % 2)) -eq 0 ]; then
    ip -n "$NS_A" link set va down
    echo "primary's end"
  else
    ip -n "$NS_B" link set vb down
    echo "replica's end"
  fi
}
link_up() {
  ip -n "$NS_A" link set va up
  ip -n "$NS_B" link set vb up
}

start_replica_ns
start_primary_ns
wait_in_sync "$CFG" a 30

# fio runs back to back for as long as the cuts take: each run writes 4096
# random 4K blocks (at most 500/s, about 8 s) and then reads them back and
# verifies them.  A failed run leaves its output in fio-N.out and stops the
# loop.
fio_loop_start "$NS_A" "nbd://127.0.0.1:10809/vol0"
WRITER_NETNS=$NS_A start_writer "nbd://127.0.0.1:10809/vol1" "$T/w.acks" 0 \
  --rate 200 --depth 4 --max-seconds 600


want=$(rand $MIN_CUTS 6)
t0=$SECONDS
for ((cut = 1; cut <= want; cut++)); do
  rsleep 200 1500                     # the link stays up a random while
  fio_ok
  end=$(link_down)
  tcut=$(date +%s%N)
  s=$(wait_peer_state "$CFG" a 5 logging connecting handshake) ||
    fail "cut $cut ($end) was not detected within 5s (heartbeat-timeout 1s)"
  log "cut $cut ($end) at +$((SECONDS - t0))s: peers $s after" \
    "$((($(date +%s%N) - tcut) / 1000000)) ms"
  # Writes go on while the link is down.
  wait_acks "$T/w.acks" $(($(acks "$T/w.acks") + 20)) 5
  rsleep 0 600                        # and down a random while longer
  link_up
  tup=$(date +%s%N)
  wait_peer_state "$CFG" a 60 replicating >/dev/null ||
    fail "the peers did not return to replicating after cut $cut"
  log "link up: replicating again after $((($(date +%s%N) - tup) / 1000000)) ms"
done
fio_loop_stop
log "$want cuts during $FIO_RUNS fio runs, all verified, in $((SECONDS - t0))s"
rc=0
stop_writer || rc=$?
[ $rc -eq 0 ] || fail "a write to vol1 failed (writer exit $rc); see writer.log"

wait_in_sync "$CFG" a
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
same_images "$T/a/vol1.img" "$T/b/vol1.img"
check_acks "$T/w.acks" "$T/b/vol1.img"
