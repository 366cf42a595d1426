#!/usr/bin/env bash
# The systemd units as installed (cmake --install into a staging root):
#  1. systemd-analyze verify accepts each one with no warning at all (an
#     unknown key is only a warning there, so any output fails), for an
#     instance named after a node;
#  2. the hardening the units promise is in them (ProtectSystem=strict,
#     ReadWritePaths= the data dir, NoNewPrivileges, no capabilities,
#     Restart=on-failure) and `systemd-analyze security --offline` rates
#     each service's exposure at most 3.0 ("OK");
#  3. the command lines work as systemd would run them: blockrelayd's
#     ExecStart with a notify socket says READY=1 once it serves and
#     STOPPING=1 on SIGTERM (Type=notify), and the primary's ExecStart runs
#     under systemd-socket-activate on the socket of the .socket unit's
#     ListenStream (socket activation, the plugin loaded by its short name
#     from the staged plugindir); data written through that socket reaches
#     the replica byte for byte.
# systemd is not PID 1 here, so the units are not started by systemd
# itself; the staged paths replace the installed prefix in the copies
# that verify reads (verify checks that ExecStart's program exists).
. "$(dirname "$0")/lib.sh"
need systemd-analyze systemd-socket-activate nbdcopy python3

STAGE=$T/stage
DESTDIR=$STAGE cmake --install "$BUILDDIR" >"$T/install.log" 2>&1 ||
  { cat "$T/install.log" >&2; fail "cmake --install failed"; }
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILDDIR/CMakeCache.txt")
unitdir=$STAGE$prefix/lib/systemd/system
plugindir=$(pkg-config --variable=plugindir nbdkit)
for u in blockrelayd@.service blockrelay-primary@.service blockrelay-primary@.socket; do
  [ -f "$unitdir/$u" ] || fail "$u is not installed in $prefix/lib/systemd/system"
done
[ -f "$STAGE$plugindir/nbdkit-blockrelay-plugin.so" ] ||
  fail "the plugin is not installed in nbdkit's plugindir $plugindir"

# ---- 1. verify, for instances, with the staged programs ----
V=$T/units
mkdir -p "$V"
inst() {        # inst UNIT@.TYPE NODE: an instance copy in $V
  local base=${1%@*} type=${1##*.}
  sed "s#$prefix/bin/#$STAGE$prefix/bin/#g" "$unitdir/$1" > "$V/$base@$2.$type"
}
inst blockrelayd@.service site-b
inst blockrelay-primary@.service site-a
inst blockrelay-primary@.socket site-a
(cd "$V" && systemd-analyze verify --man=no blockrelayd@site-b.service \
   blockrelay-primary@site-a.socket blockrelay-primary@site-a.service) \
  >"$T/verify.log" 2>&1 || { cat "$T/verify.log" >&2; fail "systemd-analyze verify failed"; }
[ -s "$T/verify.log" ] && { cat "$T/verify.log" >&2; fail "systemd-analyze verify warned"; }
log "ok: systemd-analyze verify: no warnings"

# ---- 2. hardening ----
for s in blockrelayd@site-b.service blockrelay-primary@site-a.service; do
  for d in ProtectSystem=strict ReadWritePaths=/var/lib/blockrelay \
           NoNewPrivileges=yes CapabilityBoundingSet= Restart=on-failure; do
    grep -qx "$d" "$V/$s" || fail "$s lacks $d"
  done
  (cd "$V" && systemd-analyze security --offline=true --no-pager "$s") \
    >"$T/security.log" 2>&1 || true
  score=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p' "$T/security.log")
  [ -n "$score" ] || { cat "$T/security.log" >&2; fail "$s: no exposure score"; }
  awk -v s="$score" 'BEGIN { exit !(s <= 3.0) }' ||
    { grep -E '✗' "$T/security.log" >&2; fail "$s: exposure $score > 3.0"; }
  log "ok: $s: hardening present, exposure $score"
done
grep -q '^Type=notify$' "$V/blockrelayd@site-b.service" || fail "blockrelayd unit is not Type=notify"

# ---- 3. the command lines, as systemd runs them ----
# ExecStart of UNIT with %i = NODE and the topology path replaced.
execstart() {
  sed -n 's/^ExecStart=//p' "$V/$1" | sed "s#%i#$2#g; s#/etc/blockrelay/blockrelay.yaml#$3#g"
}
write_pair_config "$T/pair.yaml" sync 64M "" "" site-a site-b

# A notify socket that logs every datagram, one per line.
cat > "$T/notify.py" <<'PY'
import socket, sys, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[2] + ".ready", "w").write("bound\n")
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        for line in s.recv(4096).decode().split("\n"):
            out.write(line + "\n")
PY
python3 "$T/notify.py" "$T/notify.sock" "$T/notify.txt" &
BR_PIDS+=("$!")
wait_for_file "$T/notify.txt.ready" "$!"

read -ra cmd <<<"$(execstart blockrelayd@site-b.service site-b "$T/pair.yaml")"
[ "${cmd[0]}" = "$STAGE$prefix/bin/blockrelayd" ] || fail "unexpected ExecStart ${cmd[*]}"
NOTIFY_SOCKET=$T/notify.sock "${cmd[@]}" >>"$T/site-b.log" 2>&1 &
PID_site_b=$!
BR_PIDS+=("$PID_site_b")
for ((i = 0; i < 600; i++)); do         # the readiness signal itself
  grep -qx 'READY=1' "$T/notify.txt" 2>/dev/null && break
  kill -0 "$PID_site_b" 2>/dev/null || fail "blockrelayd died before READY=1"
  sleep 0.05
done
grep -qx 'READY=1' "$T/notify.txt" || fail "blockrelayd never said READY=1"
grep -qx 'STATUS=node site-b: 1 volumes' "$T/notify.txt" || fail "no STATUS line"
"$BLOCKRELAY" status --config "$T/pair.yaml" --node site-b >/dev/null ||
  fail "blockrelayd said READY=1 but its control socket does not answer"
log "ok: blockrelayd: READY=1 when its control socket answers"

# The socket unit's ListenStream, with the instance name.
listen=$(sed -n 's/^ListenStream=//p' "$V/blockrelay-primary@site-a.socket" | sed 's#%i#site-a#')
[ "$listen" = /run/blockrelay/site-a.sock ] || fail "unexpected ListenStream $listen"
sock=$T/site-a.sock         # the same socket, in this test's directory
read -ra cmd <<<"$(execstart blockrelay-primary@site-a.service site-a "$T/pair.yaml")"
[ "${cmd[1]}" = --foreground ] && [ "${cmd[2]}" = blockrelay ] ||
  fail "unexpected ExecStart ${cmd[*]}"
# nbdkit finds "blockrelay" in its plugindir; the staged copy stands in.
cmd[2]=$STAGE$plugindir/nbdkit-blockrelay-plugin.so
# systemd-socket-activate passes on only the variables named with -E
# (under ASan: the runtime nbdkit must preload).
sa_env=()
for kv in $(asan_env); do sa_env+=(-E "$kv"); done
systemd-socket-activate "${sa_env[@]}" -l "$sock" "${cmd[@]}" >>"$T/site-a.log" 2>&1 &
PID_site_a=$!
BR_PIDS+=("$PID_site_a")
# Socket readiness: the socket exists before nbdkit runs; a client's
# connection is what starts it (systemd-socket-activate, like a socket
# unit with Accept=no, runs the service on the first connection).
for ((i = 0; i < 600; i++)); do
  [ -S "$sock" ] && break
  kill -0 "$PID_site_a" 2>/dev/null || fail "systemd-socket-activate died"
  sleep 0.05            # polling for the socket
done
[ -S "$sock" ] || fail "no listening socket $sock"
# systemd-socket-activate execs the service in its own process.
[ "$(cat /proc/$PID_site_a/comm)" = systemd-socket- ] ||
  fail "nbdkit ran before any connection ($(cat /proc/$PID_site_a/comm))"
head -c 16M /dev/urandom > "$T/src.bin"
nbdcopy --flush "$T/src.bin" "nbd+unix:///vol0?socket=$sock" ||
  fail "nbdcopy through the activated socket failed"
[ "$(cat /proc/$PID_site_a/comm)" = nbdkit ] || fail "no nbdkit behind the socket"
wait_in_sync "$T/pair.yaml" site-a
stop_node site_a
stop_node site_b
grep -qx 'STOPPING=1' "$T/notify.txt" || fail "blockrelayd never said STOPPING=1"
same_images "$T/site-a/vol0.img" "$T/site-b/vol0.img"
cmp -n $((16 << 20)) "$T/src.bin" "$T/site-b/vol0.img" || fail "replica lacks the data"
log "ok: socket-activated primary replicated to the notify-ready replica"
