#!/usr/bin/env bash
# A chain of sync links acknowledges end to end.
#
# a -> b (sync) -> c (sync), on 127.0.0.1.  b pipelines its waits for c
# (it does not wait for c record by record; it holds the ACK it owes a
# below the first record c has not acknowledged), so a write that a
# completed has been applied on c too.  An ackwriter writes to a with 8
# requests in flight; at a random point a and b are both killed (SIGKILL)
# at once.  Whatever the writer saw acknowledged must then be in c's image
# (applied writes are in c's page cache: c itself keeps running).  If b
# acknowledged before c had applied, writes in flight between b and c
# would be missing from c: the b-c link is capped at 4 MB/s, so records
# wait in b's queue for c long enough for that to show.  Three rounds; between them the chain is
# restarted and brought back in sync, and every copy compared.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
need nbdkit
need_ackwriter

CFG=$T/chain.yaml
write_local_config "$CFG" a b c <<EOF
  - {between: [a, b], mode: sync}
  - {between: [b, c], mode: sync, rate: 4M}
EOF

start_replica "$CFG" c
seq=0
for round in 1 2 3; do
  start_replica "$CFG" b
  start_primary_nowait "$CFG" a
  wait_in_sync "$CFG" a 60
  wait_in_sync "$CFG" b 60
  start_writer "$NBD_URI/vol0" "$T/w$round.acks" $seq --depth 8
  wait_acks "$T/w$round.acks" $(rand 100 300) 60
  kill -9 "$PID_a" "$PID_b"
  wait "$PID_a" "$PID_b" 2>/dev/null || true
  PID_a= PID_b=
  rc=0
  wait_exit "$WRITER_PID" 30 "the writer" || rc=$?
  [ $rc -eq 0 ] || [ $rc -eq 3 ] || fail "writer exit status $rc"
  n=$(acks "$T/w$round.acks")
  cat "$T"/w[1-9].acks > "$T/all.acks"
  check_acks "$T/all.acks" "$T/c/vol0.img"
  log "round $round: $n writes acknowledged by a were all on c when a and b died"
  seq=$((seq + 100000))
done
start_replica "$CFG" b
start_primary_nowait "$CFG" a
wait_in_sync "$CFG" a 60
wait_in_sync "$CFG" b 60
stop_node a
stop_node b
stop_node c
same_images "$T/a/vol0.img" "$T/b/vol0.img"
same_images "$T/b/vol0.img" "$T/c/vol0.img"
check_acks "$T/all.acks" "$T/a/vol0.img"
