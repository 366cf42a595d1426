#!/usr/bin/env bash
# Shutdown is not held up by control-socket clients.  Each process (the
# replica's blockrelayd, then the primary's nbdkit) gets two clients that
# stay connected: one that sends nothing, one that sends part of a request
# line and then nothing.  SIGTERM must still end the process, cleanly
# (exit status 0), within STOP_LIMIT seconds; a process that hangs is shown
# with its threads' stacks (gdb) and the test fails.  The engine's loop
# runs until its last handle is closed, so a client left open at stop would
# keep nbdkit's .cleanup and blockrelayd waiting forever.
. "$(dirname "$0")/lib.sh"
need nbdkit python3

STOP_LIMIT=10

# hold_client NODE NAME TEXT: a client of NODE's control socket that sends
# TEXT (possibly empty, no newline) and then waits for the server to close
# the connection.  Returns once it is connected and TEXT is sent.
hold_client() {
  local node=$1 name=$2 text=$3 pid
  rm -f "$T/$name.ready"
  python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode())
open(sys.argv[3], "w").write("connected\n")
while s.recv(4096):
    pass
' "$T/$node/control.sock" "$text" "$T/$name.ready" >>"$T/$name.log" 2>&1 &
  pid=$!
  BR_PIDS+=("$pid")
  wait_for_file "$T/$name.ready" "$pid"
}

# stop_with_clients CONFIG NODE: two idle clients on NODE, then SIGTERM.
stop_with_clients() {
  local cfg=$1 node=$2
  hold_client "$node" "$node-silent" ""
  hold_client "$node" "$node-partial" '{"cmd": "sta'
  # A full request after both: answered only once the loop has run its
  # accept callback past the earlier connections, so they are accepted
  # clients rather than entries in the listen backlog.
  "$BLOCKRELAY" status --config "$cfg" --node "$node" >/dev/null ||
    fail "status on $node with idle clients connected"
  stop_node "$node" "$STOP_LIMIT"
  ! grep -F "handles left open" "$T/$node.log" ||
    fail "$node left libuv handles open at shutdown"
  log "ok: $node exited on SIGTERM with two idle control clients connected"
}

write_pair_config "$T/c.yaml" sync 32M
start_replica "$T/c.yaml" b
start_primary "$T/c.yaml" a

stop_with_clients "$T/c.yaml" b
stop_with_clients "$T/c.yaml" a
log "all control shutdown checks passed"
