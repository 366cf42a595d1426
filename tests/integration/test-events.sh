#!/usr/bin/env bash
# blockrelay events: every state change, resync and verify progress and
# error of a node as JSON lines, and the one log line per state change.
#  - A pair a (nbdkit, primary) -> b (blockrelayd), sync, its link capped
#    (rate 400K) so that a resync of 1 MiB and a verify of 16384 regions
#    each take a few seconds.  `blockrelay events --now` runs in the
#    background on a for the whole test; it is subscribed once its
#    now-done line is there.
#  - Then: b stopped (replicating -> logging, reason "connection closed by
#    peer", an error event), 1 MiB written, b started again (-> connecting
#    -> handshake -> syncing, the reason naming the verdict rule, resync
#    progress, a final progress with nothing left, -> replicating), pause
#    and resume, a verify (progress, verify-done identical), a stopped
#    (-> logging "shutting down", then "end", exit 0).
#  - Every line is one JSON object, times are RFC 3339 UTC with ms and
#    never go back, each transition starts where the one before ended, the
#    expected ones come in order; the primary's log has exactly one line
#    per transition of the stream, the same reason, in the same order, and
#    no separate verdict line.
#  - --now on a node without peers (b: only now-done, then "end" at its
#    clean stop), --count, --timeout, a refused request,
#    a socket that answers for another node, no daemon (exit 2), a node
#    killed under a running stream (exit 1).
#  - A reader that does not read while a node retries a dead peer every
#    millisecond: one overflow line after whole lines, then EOF.
. "$(dirname "$0")/lib.sh"
need nbdkit nbdcopy python3

CFG=$T/ev.yaml
PORT_A=$(free_port); PORT_B=$(free_port)
while [ "$PORT_B" = "$PORT_A" ]; do PORT_B=$(free_port); done
cat > "$CFG" <<EOT
settings: {reconnect-min: 50ms, reconnect-max: 300ms}
volumes:
  - {name: vol0, size: 64M, granularity: 4K}
nodes:
  - {name: a, address: 127.0.0.1:$PORT_A, data-dir: $T/a}
  - {name: b, address: 127.0.0.1:$PORT_B, data-dir: $T/b}
links:
  - {between: [a, b], mode: sync, rate: 400K}
EOT
"$BLOCKRELAY" check-config "$CFG" >/dev/null || fail "check-config refused $CFG"
C=(--config "$CFG" --node a)

# ---- errors that need no running node ----
expect_err 2 "cannot reach $T/none.sock" events --socket "$T/none.sock"
expect_err 2 "cannot reach" events "${C[@]}"
expect_err 2 "no node named 'zz'" events --config "$CFG" --node zz
expect_err 2 "--count 'x' is not a positive number" events "${C[@]}" --count x
expect_err 2 "--timeout '0' is not a positive number of seconds" events "${C[@]}" --timeout 0
expect_err 2 "unexpected argument 'extra'" events "${C[@]}" extra

start_replica "$CFG" b
# assume-clean: the new, empty replica is taken as in sync (no full sync
# of 64M through a 400K link); -v: nbdkit prints the info lines.
NBDKIT_DEBUG=-v start_primary "$CFG" a "$T/a.log" assume-clean=true

# wait_line FILE PATTERN PID: until a line of FILE matches PATTERN (the
# events client's own output: its readiness), while PID lives.
wait_line() {
  local i
  for ((i = 0; i < 600; i++)); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || fail "the events client died: $(cat "$1.err" 2>/dev/null)"
    sleep 0.05          # polling the client's output
  done
  fail "no line matching '$2' in $1 within 30 s"
}

"$BLOCKRELAY" events "${C[@]}" --now > "$T/ev.jsonl" 2>"$T/ev.jsonl.err" &
EV=$!
BR_PIDS+=("$EV")
wait_line "$T/ev.jsonl" '"now-done"' "$EV"
log "subscribed: $(head -n 1 "$T/ev.jsonl")"

# ---- --now and --count on a second client ----
"$BLOCKRELAY" events "${C[@]}" --now --count 2 > "$T/now.jsonl" ||
  fail "events --now --count 2 failed"
python3 - "$T/now.jsonl" <<'PY' || { cat "$T/now.jsonl" >&2; fail "bad --now output"; }
import json, sys
l = [json.loads(x) for x in open(sys.argv[1]).read().splitlines()]
assert len(l) == 2, "%d lines, not 2" % len(l)
s, d = l
assert s["type"] == "peer-state" and s["node"] == "a" and s["group"] == "vol0" \
    and s["peer"] == "b" and s["from"] is None and s["event"] is None \
    and s["to"] == "replicating", s
assert d["type"] == "now-done" and d["node"] == "a", d
PY
# --timeout on a quiet stream: nothing but the --now lines, exit 0.
t0=$SECONDS
"$BLOCKRELAY" events "${C[@]}" --timeout 0.5 > "$T/quiet.jsonl" ||
  fail "events --timeout did not exit 0"
[ $((SECONDS - t0)) -le 5 ] || fail "events --timeout 0.5 took $((SECONDS - t0)) s"
[ ! -s "$T/quiet.jsonl" ] || { cat "$T/quiet.jsonl" >&2; fail "events on a quiet link printed lines"; }
# A socket that answers for another node; a refused request.
expect_err 2 "answers for node 'a', not 'b'" events --socket "$T/a/control.sock" --node b
python3 - "$T/a/control.sock" <<'PY' || fail "a bad events request was not refused"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b'{"cmd":"events","now":"yes"}\n')
data = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    data += b
lines = data.decode().splitlines()
assert len(lines) == 1, lines
r = json.loads(lines[0])
assert r["ok"] is False and "bad request" in r["error"], r
PY
log "ok: --now, --count, --timeout, wrong node, bad request"

# ---- the replica goes away, misses 1 MiB, comes back ----
# A subscriber of b (blockrelayd) too: b's clean stop ends its stream.
"$BLOCKRELAY" events --config "$CFG" --node b --now > "$T/b0.jsonl" 2>"$T/b0.jsonl.err" &
EVB=$!
BR_PIDS+=("$EVB")
wait_line "$T/b0.jsonl" '"now-done"' "$EVB"
stop_node b
rc=0
wait "$EVB" || rc=$?
[ $rc -eq 0 ] || { cat "$T/b0.jsonl.err" >&2; fail "events on b exited $rc at b's clean stop, not 0"; }
python3 - "$T/b0.jsonl" <<'PY' || { cat "$T/b0.jsonl" >&2; fail "b's stream did not end cleanly"; }
import json, sys
l = [json.loads(x) for x in open(sys.argv[1]).read().splitlines()]
assert [o["type"] for o in l] == ["now-done", "end"], l
assert all(o["node"] == "b" for o in l), l
PY
wait_line "$T/ev.jsonl" '"from":"replicating","to":"logging"' "$EV"
head -c 1M /dev/urandom > "$T/data.bin"
timeout 60 nbdcopy --flush "$T/data.bin" "$NBD_URI/vol0" || fail "write while b is away"
start_replica "$CFG" b
"$BLOCKRELAY" status "${C[@]}" --wait syncing --timeout 30 >/dev/null ||
  fail "the resync did not start"
wait_in_sync "$CFG" a 60
log "ok: resynced after the outage"

# ---- pause, resume ----
"$BLOCKRELAY" pause "${C[@]}" --peer b >/dev/null || fail "pause"
wait_line "$T/ev.jsonl" '"to":"paused"' "$EV"
"$BLOCKRELAY" resume "${C[@]}" --peer b >/dev/null || fail "resume"
wait_in_sync "$CFG" a 30

# ---- a verify ----
"$BLOCKRELAY" verify vol0 --peer b "${C[@]}" > "$T/verify.out" 2>/dev/null ||
  { cat "$T/verify.out" >&2; fail "verify of a pair in sync"; }
wait_line "$T/ev.jsonl" '"type":"verify-done"' "$EV"

# ---- the primary stops: the stream ends cleanly ----
stop_node a
rc=0
wait "$EV" || rc=$?
[ $rc -eq 0 ] || { cat "$T/ev.jsonl.err" >&2; fail "events exited $rc when the node stopped, not 0"; }

python3 - "$T/ev.jsonl" "$T/a.log" <<'PY' || { cat "$T/ev.jsonl" >&2; fail "the event stream is wrong"; }
import datetime, json, re, sys

lines = open(sys.argv[1]).read().splitlines()
ev = []
for n, l in enumerate(lines, 1):
    o = json.loads(l)               # every line one JSON object
    assert isinstance(o, dict) and o["node"] == "a" and "type" in o, (n, l)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", o["time"]), o
    o["t"] = datetime.datetime.strptime(o["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    ev.append(o)
for a, b in zip(ev, ev[1:]):
    assert b["t"] >= a["t"], "time went back: %s then %s" % (a["time"], b["time"])
assert ev[0]["type"] == "peer-state" and ev[0]["from"] is None, ev[0]
assert ev[1]["type"] == "now-done", ev[1]
assert ev[-1]["type"] == "end", ev[-1]

ps = [o for o in ev if o["type"] == "peer-state" and o["from"] is not None]
for o in ps:
    assert o["group"] == "vol0" and o["peer"] == "b" and o["from"] != o["to"], o
    assert o["reason"], ("no reason", o)
state = ev[0]["to"]
for o in ps:                        # each change starts where the last ended
    assert o["from"] == state, "%s -> %s after %s" % (o["from"], o["to"], state)
    state = o["to"]

def find(pred, start, what):
    for i in range(start, len(ev)):
        if pred(ev[i]):
            return i
    raise AssertionError("missing (in order): " + what)

def tr(f, t, e=None):
    return lambda o: o["type"] == "peer-state" and o["from"] == f \
        and o["to"] == t and (e is None or o["event"] == e)

i = find(lambda o: o["type"] == "error" and o["kind"] == "connection_lost", 2,
         "error connection_lost")
i = find(tr("replicating", "logging", "lost"), i, "replicating -> logging")
assert ev[i]["reason"] == "connection closed by peer", ev[i]
i = find(tr("logging", "connecting", "connect"), i, "logging -> connecting")
i = find(tr("connecting", "handshake", "connected"), i, "connecting -> handshake")
i = find(tr("handshake", "syncing", "sync-needed"), i, "handshake -> syncing")
assert re.search(r"vol0: resync by rule \d+ \(.*\); \d+ regions to resync$",
                 ev[i]["reason"]), ev[i]
sync = i
end = find(tr("syncing", "replicating", "resync-done"), i, "syncing -> replicating")
assert ev[end]["reason"] == "resync complete", ev[end]
prog = [o for o in ev[sync:end] if o["type"] == "resync-progress"]
assert len(prog) >= 2, "resync progress: %r" % prog
for o in prog:
    assert o["group"] == "vol0" and o["peer"] == "b", o
    assert o["done_bytes"] + o["left_bytes"] == o["total_bytes"], o
dones = [o["done_bytes"] for o in prog]
assert dones == sorted(dones), "resync progress went back: %s" % dones
assert any(o["left_bytes"] > 0 for o in prog[:-1]), prog
fin = prog[-1]                      # the final one, with the change
assert fin["left_bytes"] == 0 and fin["done_bytes"] == fin["total_bytes"] \
    and fin["total_bytes"] >= 1 << 20, fin
assert ev.index(fin) == end - 1, "the final progress is not just before the change"
i = find(tr("replicating", "paused", "pause"), end, "replicating -> paused")
assert ev[i]["reason"] == "paused by the operator", ev[i]
i = find(tr("paused", "logging", "resume"), i, "paused -> logging")
assert ev[i]["reason"] == "resumed by the operator", ev[i]
# Back: in sync, or (the bits of the resync just done may still be held,
# bits.c C4/C5) the same regions resynced again.
i = find(lambda o: o["type"] == "peer-state" and o["from"] == "handshake",
         i, "the handshake after resume")
assert re.search(r"vol0: resync by rule \d+ \(.*\); (nothing|\d+ regions) to resync$",
                 ev[i]["reason"]), ev[i]
i = find(lambda o: o["type"] == "peer-state" and o["to"] == "replicating",
         i, "-> replicating after resume")
v0 = i
vd = find(lambda o: o["type"] == "verify-done", i, "verify-done")
d = ev[vd]
assert d["volume"] == "vol0" and d["peer"] == "b" and d["result"] == "identical" \
    and d["total_regions"] == 16384 and d["done_regions"] == 16384 \
    and d["differ_regions"] == 0 and d["repair"] is False and d["error"] == "", d
vp = [o for o in ev[v0:vd] if o["type"] == "verify-progress"]
assert vp, "no verify-progress before verify-done"
for o in vp:
    assert o["volume"] == "vol0" and o["total_regions"] == 16384 \
        and 0 <= o["done_regions"] < 16384 and o["differ_regions"] == 0, o
assert [o["done_regions"] for o in vp] == sorted(o["done_regions"] for o in vp), vp
i = find(tr("replicating", "logging", "stop"), vd, "replicating -> logging at stop")
assert ev[i]["reason"] == "shutting down", ev[i]

# The log: one line per change, same order, same reason.  The log also
# has the changes from before the subscription: the stream's are its last.
logged = []
for l in open(sys.argv[2], errors="replace"):
    m = re.search(r"peer b \(group vol0\): (\w+) -> (\w+): (.*)$", l.rstrip("\n"))
    if m:
        why = m.group(3)
        for tail in ("; logging writes until it is back",
                     "; writes are logged until an operator chooses a side"):
            if why.endswith(tail):
                why = why[:-len(tail)]
        logged.append((m.group(1), m.group(2), why))
streamed = [(o["from"], o["to"], o["reason"]) for o in ps]
assert logged[-len(streamed):] == streamed, \
    "log and stream differ:\n log %s\n stream %s" % (logged[-len(streamed):], streamed)
assert len(logged) > len(streamed)  # the first connection, before --now
print("%d lines, %d transitions, %d resync and %d verify progress lines"
      % (len(ev), len(ps), len(prog), len(vp)), file=sys.stderr)
PY
# The verdict is in the change's line, not in a line of its own too.
! grep -q "peer b: resync by rule" "$T/a.log" || fail "the verdict is logged twice"
grep -q "warning: peer b (group vol0): replicating -> logging: connection closed by peer; logging writes until it is back" "$T/a.log" ||
  fail "the loss is not a warning"
log "ok: the stream and the log agree, every change in order with its reason"

# ---- a node without peers; a node that goes away ----
"$BLOCKRELAY" events --config "$CFG" --node b --now > "$T/b.jsonl" 2>"$T/b.jsonl.err" &
EVB=$!
BR_PIDS+=("$EVB")
wait_line "$T/b.jsonl" '"now-done"' "$EVB"
[ "$(wc -l < "$T/b.jsonl")" -eq 1 ] || { cat "$T/b.jsonl" >&2; fail "--now on b: not just now-done"; }
kill -9 "$PID_b"
rc=0
wait "$EVB" || rc=$?
[ $rc -eq 1 ] || fail "events exited $rc when the node was killed, not 1"
grep -q "went away" "$T/b.jsonl.err" || { cat "$T/b.jsonl.err" >&2; fail "no reason given"; }
wait "$PID_b" 2>/dev/null || true
PID_b=
log "ok: a killed node ends the stream with exit 1"

# ---- a reader too slow: one overflow line, then the node closes it ----
# c serves vol0 with a peer d that never runs, retried every millisecond:
# three events per attempt, so a reader that reads nothing falls 1 MiB
# behind within seconds.  The node says so in its log (the signal to start
# reading); the reader then gets whole lines, the last one "overflow",
# and EOF.
write_local_config "$T/slow.yaml" c d <<EOL
  - {between: [c, d], mode: async}
EOL
sed -i 's/^settings: {.*}$/settings: {reconnect-min: 1ms, reconnect-max: 1ms}/' "$T/slow.yaml"
"$BLOCKRELAY" check-config "$T/slow.yaml" >/dev/null || fail "check-config refused slow.yaml"
start_primary_nowait "$T/slow.yaml" c "$T/c.log"
python3 - "$T/c/control.sock" "$T/c.log" <<'PY' || fail "no overflow for a slow reader"
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sys.argv[1])
s.sendall(b'{"cmd":"events"}\n')
f = s.makefile("rb")
ok = json.loads(f.readline())
assert ok["ok"] is True and ok["node"] == "c", ok
t0 = time.time()
while b"read too slowly" not in open(sys.argv[2], "rb").read():
    assert time.time() - t0 < 60, "the node never dropped the slow reader"
    time.sleep(0.05)    # polling the node's log
lines = f.read().decode().split("\n")
assert lines[-1] == "", "the stream ends inside a line: %r" % lines[-1][-80:]
ev = [json.loads(l) for l in lines[:-1]]
assert len(ev) > 1000, len(ev)
assert ev[-1]["type"] == "overflow" and "lost" in ev[-1]["message"], ev[-1]
assert all(o["type"] != "overflow" for o in ev[:-1])
kinds = {o["type"] for o in ev[:-1]}
assert kinds == {"peer-state", "error"}, kinds
print("slow reader: %d lines, then overflow and EOF" % len(ev), file=sys.stderr)
PY
stop_node c
log "ok: a slow reader gets one overflow line and is closed"
