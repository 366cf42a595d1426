#!/usr/bin/env bash
# Two connections at once: one writes and flushes, the other reads what
# was flushed (flush is global, so can_multi_conn is honest); then the
# replica matches.  Uses nbdsh when present for two live handles, else
# two qemu-io processes in turn.
. "$(dirname "$0")/lib.sh"
need nbdkit nbdinfo qemu-io

write_pair_config "$T/c.yaml" sync 32M
start_replica "$T/c.yaml" b
start_primary "$T/c.yaml" a
nbdinfo "$NBD_URI/vol0" > "$T/info"
grep -q "can_multi_conn: true" "$T/info" || fail "multi-conn not advertised"
grep -q "can_fua: true" "$T/info" || fail "FUA not advertised"

# Reader connection opened first and kept open while the writer works.
mkfifo "$T/cmds"
qemu-io -f raw "$NBD_URI/vol0" < "$T/cmds" > "$T/reader.out" 2>&1 &
reader=$!
exec 7>"$T/cmds"
qemu-io -f raw -c 'write -P 0x5a 1M 2M' -c 'flush' "$NBD_URI/vol0" >/dev/null
echo 'read -P 0x5a 1M 2M' >&7
echo 'quit' >&7
exec 7>&-
wait $reader
grep -q "read 2097152/2097152" "$T/reader.out" || { cat "$T/reader.out" >&2; fail "reader"; }
grep -q "Pattern verification failed" "$T/reader.out" && fail "reader saw stale data"

wait_in_sync "$T/c.yaml" a
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
