#!/usr/bin/env bash
# nbdkit conventions: --help documents every parameter, --dump-plugin
# works, -D blockrelay.wire=1 turns on debug output, and the plugin runs
# in the foreground (-f), daemonized (-P) and captive (--run), shutting
# down cleanly in each (no libuv handle left open, exit status 0).
. "$(dirname "$0")/lib.sh"
need nbdkit nbdcopy nbdinfo

help=$(nbdkit "$PLUGIN" --help)
for p in config= node= control= blockrelay.wire; do
  grep -q -- "$p" <<<"$help" || fail "--help does not document $p"
done
dump=$(nbdkit "$PLUGIN" --dump-plugin)
grep -q "^name=blockrelay$" <<<"$dump" || fail "--dump-plugin: no name"
grep -q "^thread_model=parallel$" <<<"$dump" || fail "--dump-plugin: not parallel"

nbdkit "$PLUGIN" node=a >"$T/noconf.out" 2>&1 && fail "started without config="
grep -q "config=FILE and node=NAME" "$T/noconf.out" || fail "no clear error without config="

write_pair_config "$T/p.yaml" sync 32M
start_replica "$T/p.yaml" b
head -c 4M /dev/urandom > "$T/r.bin"

# Captive: nbdkit runs the command and exits with its status.
env $(asan_env) nbdkit -U - -v -D blockrelay.wire=1 "$PLUGIN" config="$T/p.yaml" node=a \
  --run "$BLOCKRELAY status --config $T/p.yaml --node a --wait replicating --timeout 30 >/dev/null && nbdcopy $T/r.bin \"\$uri\"" \
  >"$T/run.log" 2>&1 || { cat "$T/run.log" >&2; fail "--run"; }
grep -q "debug: -> b type 4 seq" "$T/run.log" || fail "-D blockrelay.wire=1 printed no frames"
grep -q "handles left open" "$T/run.log" && fail "libuv handles leaked at shutdown"

# Daemonized: -P is written after the fork; SIGTERM stops it.
port=$(free_port)
env $(asan_env) nbdkit -P "$T/d.pid" -p "$port" -i 127.0.0.1 "$PLUGIN" \
  config="$T/p.yaml" node=a 2>"$T/daemon.log"
# The daemon child writes the pidfile after the parent has returned.
for _ in $(seq 200); do [ -s "$T/d.pid" ] && break; sleep 0.05; done
[ -s "$T/d.pid" ] || fail "no pidfile after daemonizing"
dpid=$(cat "$T/d.pid")
BR_PIDS+=("$dpid")
"$BLOCKRELAY" status --config "$T/p.yaml" --node a --wait replicating --timeout 30 >/dev/null
nbdinfo --list "nbd://127.0.0.1:$port" | grep -q "export=\"vol0\"\|export=vol0\|vol0" \
  || fail "export vol0 not listed"
kill -TERM "$dpid"
while kill -0 "$dpid" 2>/dev/null; do sleep 0.05; done
grep -q "handles left open" "$T/daemon.log" && fail "libuv handles leaked at shutdown"

# Foreground is what every other test uses; finish with a clean compare.
start_primary "$T/p.yaml" a
wait_in_sync "$T/p.yaml" a
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
cmp -n $((4 << 20)) "$T/r.bin" "$T/b/vol0.img" || fail "data of the --run copy missing"
