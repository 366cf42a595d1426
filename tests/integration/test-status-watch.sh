#!/usr/bin/env bash
# blockrelay status --watch: a live view of a node.
#  - During a full sync capped by resync-rate, --watch --count 5 prints five
#    refreshes (a "--- HH:MM:SS" line and the table each), the peer
#    syncing with a resync progress bar whose percentage does not fall.
#  - --watch --json prints one JSON object a line, each a whole status.
#  - After a verify, status --json reports it (state, regions, done).
#  - Errors: a bad --interval or --count, --watch with --wait (exit 2); the
#    node going away ends an endless --watch with exit 1.
. "$(dirname "$0")/lib.sh"
need nbdkit python3

write_pair_config "$T/w.yaml" sync 64M "resync-rate: 12M"
C=(--config "$T/w.yaml" --node a)
start_replica "$T/w.yaml" b
start_primary_nowait "$T/w.yaml" a "$T/a.log"   # a new replica: a full sync, ~5 s
"$BLOCKRELAY" status "${C[@]}" --wait syncing --timeout 20 >/dev/null ||
  fail "the full sync did not start"

"$BLOCKRELAY" status "${C[@]}" --watch --interval 0.3 --count 5 > "$T/watch.out" ||
  fail "status --watch failed"
n=$(grep -c '^--- [0-9][0-9]:[0-9][0-9]:[0-9][0-9], every 0.3s ---$' "$T/watch.out")
[ "$n" -eq 5 ] || { cat "$T/watch.out" >&2; fail "$n refreshes, not 5"; }
[ "$(grep -c '^VOLUME ' "$T/watch.out")" -eq 5 ] || fail "not one table a refresh"
python3 - "$T/watch.out" <<'PY' || { cat "$T/watch.out" >&2; fail "no sane resync progress"; }
import re, sys
pct = [float(m.group(1)) for m in
       re.finditer(r"resync \[[#.]{30}\] +([0-9.]+)% .* left at .*/s, eta \d+s",
                   open(sys.argv[1]).read())]
assert pct, "no resync progress bar"
assert all(0 <= p <= 100 for p in pct), pct
assert all(b >= a for a, b in zip(pct, pct[1:])), "progress went back: %s" % pct
print("resync progress seen: %s" % pct, file=sys.stderr)
PY

"$BLOCKRELAY" status "${C[@]}" --watch --json --interval 0.2 --count 3 > "$T/watch.json" ||
  fail "status --watch --json failed"
python3 - "$T/watch.json" <<'PY' || { cat "$T/watch.json" >&2; fail "bad JSON lines"; }
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 3, "%d lines, not 3" % len(lines)
for l in lines:
    st = json.loads(l)
    assert st["ok"] and st["node"] == "a" and st["volumes"][0]["peers"][0]["node"] == "b"
PY
log "ok: --watch --json gives 3 status lines"

wait_in_sync "$T/w.yaml" a 60
"$BLOCKRELAY" verify vol0 --peer b "${C[@]}" >/dev/null 2>&1 || fail "verify of a pair in sync"
"$BLOCKRELAY" status "${C[@]}" --json > "$T/st.json"
python3 - "$T/st.json" <<'PY' || { cat "$T/st.json" >&2; fail "no verify in status"; }
import json, sys
v = json.load(open(sys.argv[1]))["volumes"][0]["peers"][0]["verify"]
assert v["state"] == "finished" and v["regions"] == 1024 and v["done"] == 1024 \
    and v["differ"] == 0, v
PY
log "ok: status reports the finished verify"

expect_err 2 "--interval '0' is not a number of seconds" status "${C[@]}" --watch --interval 0
expect_err 2 "--count 'x' is not a positive number" status "${C[@]}" --watch --count x
expect_err 2 "--watch and --wait do not go together" status "${C[@]}" --watch --wait replicating

# An endless watch ends (exit 1) when the node goes away.
"$BLOCKRELAY" status "${C[@]}" --watch --interval 0.2 > "$T/endless.out" 2>"$T/endless.err" &
W=$!
BR_PIDS+=("$W")
wait_for_file "$T/endless.out" "$W"
stop_node a
rc=0
wait "$W" || rc=$?
[ $rc -eq 1 ] || fail "an endless --watch exited $rc when the node stopped, not 1"
grep -q "cannot reach" "$T/endless.err" || { cat "$T/endless.err" >&2; fail "no reason given"; }
log "ok: --watch ends with exit 1 when the node goes away"
stop_node b
