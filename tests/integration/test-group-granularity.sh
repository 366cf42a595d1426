#!/usr/bin/env bash
# A consistency group whose volumes have different granularities: the
# resync reads each region with a buffer of that volume's region size (a
# buffer sized for the first volume overflowed the heap when a later
# volume had larger regions; the ASan build shows it).  vol0 has 4K
# regions, wal0 1M ones; the replica misses writes to both and is resynced;
# every copy must be identical.
. "$(dirname "$0")/lib.sh"
need nbdkit qemu-io
CFG=$T/g.yaml
PORT_A=$(free_port); PORT_B=$(free_port)
cat > "$CFG" <<EOT
settings: {reconnect-min: 50ms, reconnect-max: 200ms}
volumes:
  - {name: vol0, size: 16M, group: db, granularity: 4K}
  - {name: wal0, size: 16M, group: db, granularity: 1M}
nodes:
  - {name: a, address: 127.0.0.1:$PORT_A, data-dir: $T/a}
  - {name: b, address: 127.0.0.1:$PORT_B, data-dir: $T/b}
links:
  - {between: [a, b], mode: sync}
EOT
start_replica "$CFG" b
start_primary "$CFG" a
stop_node b
uri=nbd://127.0.0.1:$NBD_PORT_a
qemu-io -f raw -c 'write -P 0x31 0 3M' "$uri/vol0" >/dev/null || fail "write vol0"
qemu-io -f raw -c 'write -P 0x32 1M 5M' "$uri/wal0" >/dev/null || fail "write wal0"
start_replica "$CFG" b
wait_in_sync "$CFG" a 60
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
same_images "$T/a/wal0.img" "$T/b/wal0.img"
log "both volumes of the group resynced, each by its own region size"
