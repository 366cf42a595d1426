#!/usr/bin/env bash
# `blockrelay status` prints a peer's words (a peer's last error, e.g. its
# refusal message, and an upstream's error) with control characters and
# other non-printable bytes escaped, so they cannot clear the terminal or
# forge lines of output.  The node here is a stand-in control socket that
# answers with such errors; --json passes them on JSON-escaped.
. "$(dirname "$0")/lib.sh"
need python3

SOCK=$T/fake.sock
python3 - "$SOCK" "$T/fake.ready" >>"$T/fake.log" 2>&1 <<'PY' &
import json, os, socket, sys
peer = {"node": "b", "address": "127.0.0.1:1", "mode": "sync",
        "state": "failed", "since": 0, "dirty_bytes": 0, "queued_bytes": 0,
        "acked_seq": 0, "durable_seq": 0, "sent_bytes": 0,
        "resync_left_bytes": 0, "resync_rate": 0, "resync_eta": 0,
        "last_error": "b refused: \x1b[2J\nfake: in sync\\ \u00e9",
        "rate": 0, "resync_rate_cap": 0, "lag_bytes": 0, "lag_seconds": 0.0}
up = {"node": "c", "group": "vol0", "address": "127.0.0.1:2",
      "mode": "async", "rate": 0, "applied_seq": 0, "durable_seq": 0,
      "received_bytes": 0, "pending_bytes": 0, "error": "c: \r\x07bell"}
answer = {"ok": True, "node": "a", "role": "primary", "pid": 1,
          "uptime": 1, "config": "x.yaml",
          "volumes": [{"name": "vol0", "group": "vol0", "role": "primary",
                       "size": 1048576, "granularity": 65536,
                       "consistent": True, "disk": "/dev/null",
                       "peers": [peer]}],
          "upstream": [up],
          "groups": [{"name": "vol0", "origin": "a", "upstream": None,
                      "connected": False, "consistent": True,
                      "volumes": ["vol0"], "downstream": ["b"]}]}
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(4)
open(sys.argv[2], "w").write("ready\n")
for _ in range(2):
    c, _ = s.accept()
    c.makefile().readline()
    c.sendall((json.dumps(answer) + "\n").encode())
    c.close()
PY
FAKE=$!
BR_PIDS+=("$FAKE")
wait_for_file "$T/fake.ready" "$FAKE"

"$BLOCKRELAY" status --socket "$SOCK" > "$T/table.out" ||
  fail "status on the stand-in socket"
! LC_ALL=C grep -q '[^[:print:]]' "$T/table.out" ||
  { od -c "$T/table.out" >&2; fail "status printed a non-printable byte"; }
grep -qF 'last error: b refused: \x1b[2J\x0afake: in sync\\ \xc3\xa9' \
  "$T/table.out" || { cat "$T/table.out" >&2; fail "last error not escaped"; }
grep -qF 'error: c: \x0d\x07bell' "$T/table.out" ||
  { cat "$T/table.out" >&2; fail "upstream error not escaped"; }
[ "$(grep -c 'fake: in sync' "$T/table.out")" -eq 1 ] ||
  fail "the peer's text made a line of its own"
log "ok: $(grep -F 'last error' "$T/table.out" | sed 's/^ *//')"

"$BLOCKRELAY" status --socket "$SOCK" --json > "$T/json.out" ||
  fail "status --json on the stand-in socket"
python3 -c '
import json, sys
st = json.load(open(sys.argv[1]))
e = st["volumes"][0]["peers"][0]["last_error"]
assert e == "b refused: \x1b[2J\nfake: in sync\\ \u00e9", repr(e)
' "$T/json.out" || fail "--json changed the error text"
log "ok: --json passes the text on, JSON-escaped"
wait "$FAKE" || fail "the stand-in control socket failed"
log "all status escaping checks passed"
