#!/usr/bin/env bash
# Least privilege (src/privdrop.c).  blockrelayd started as root with
# --user nobody must, once ready (its pidfile), run as nobody (real,
# effective and saved uid in /proc/PID/status), with its control socket
# mode 0600 owned by nobody, which root can still use (status); its
# scoreboard and disk files are 0600 and its data-dir 0700; replication
# works; a non-root blockrelayd asked to become another user refuses to
# start with a clear error, and so does --user for an unknown user.
. "$(dirname "$0")/lib.sh"
need nbdkit qemu-io setpriv
[ "$(id -u)" = 0 ] || skip "needs root"
id nobody >/dev/null 2>&1 || skip "no user nobody"
NOBODY=$(id -u nobody)
CFG=$T/p.yaml
write_pair_config "$CFG" sync 32M
chmod 711 "$T"                          # nobody may reach $T/run
install -d -o nobody -m 0700 "$T/run"   # the pidfile's directory

rc=0
"$BLOCKRELAYD" --config "$CFG" --node b --user no-such-user-br \
  --control "$T/x.sock" > "$T/bad.out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q "user no-such-user-br: no such user" "$T/bad.out" ||
  { cat "$T/bad.out" >&2; fail "--user of an unknown user (rc $rc)"; }
rc=0
sed "s|data-dir: $T/b|data-dir: $T/run/b|" "$CFG" > "$T/run/q.yaml"
setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
  "$BLOCKRELAYD" --config "$T/run/q.yaml" --node b --user root \
  > "$T/bad.out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q "only root can change user" "$T/bad.out" ||
  { cat "$T/bad.out" >&2; fail "a non-root --user (rc $rc)"; }
rm -rf "$T/b" "$T/run/b"

"$BLOCKRELAYD" --config "$CFG" --node b --user nobody \
  --pidfile "$T/run/b.pid" >>"$T/b.log" 2>&1 &
PID_b=$!
BR_PIDS+=("$PID_b")
wait_for_file "$T/run/b.pid" "$PID_b"
uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$PID_b/status")
[ "$uids" = "$NOBODY $NOBODY $NOBODY $NOBODY" ] ||
  fail "blockrelayd runs with uids '$uids', not nobody's ($NOBODY)"
gids=$(awk '/^Gid:/ {print $2, $3, $4}' "/proc/$PID_b/status")
[ "$gids" = "$(id -g nobody) $(id -g nobody) $(id -g nobody)" ] ||
  fail "blockrelayd runs with gids '$gids'"
grep -q "running as user nobody (uid $NOBODY" "$T/b.log" || fail "no log line"
[ "$(stat -c '%a %U' "$T/b/control.sock")" = "600 nobody" ] ||
  fail "control socket: $(stat -c '%a %U' "$T/b/control.sock")"
"$BLOCKRELAY" status --config "$CFG" --node b >/dev/null ||
  fail "root cannot use b's control socket"
rc=0
setpriv --reuid=daemon --regid=daemon --clear-groups \
  "$BLOCKRELAY" status --config "$CFG" --node b >/dev/null 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "another user could use b's control socket"

start_primary "$CFG" a
qemu-io -f raw -c 'write -P 0x33 0 2M' "$NBD_URI/vol0" >/dev/null || fail "write"
wait_in_sync "$CFG" a
for f in "$T/b/vol0.meta" "$T/b/vol0.img" "$T/a/vol0.meta" "$T/a/vol0.img"; do
  [ "$(stat -c %a "$f")" = 600 ] || fail "$f has mode $(stat -c %a "$f")"
done
[ "$(stat -c %a "$T/b")" = 700 ] || fail "$T/b has mode $(stat -c %a "$T/b")"
[ "$(stat -c %a "$T/a/control.sock")" = 600 ] || fail "a's control socket"
ls -l "$T/b" "$T/run" >&2
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
log "blockrelayd ran as nobody; socket 0600; files 0600; replication worked"
