#!/usr/bin/env bash
# What an upstream trusts (P5 in src/peer.c): a fake replica (br-fakepeer)
# answers the primary's HELLO wrongly, one way per scenario, and the
# primary must drop the connection at once with a clear reason:
#   a WELCOME whose volume size, granularity, name, protocol or node
#   differs from what the primary expects;
#   a frame header announcing a 32 MiB payload before the handshake is
#   done (no allocation, no waiting for it: closed within 2 s while the
#   heartbeat timeout is 5 s);
#   a refusal whose text holds control characters: logged escaped (no raw
#   ESC, BEL or newline from the peer reaches the log);
#   and each counted by kind in blockrelay metrics (errors_total).
. "$(dirname "$0")/lib.sh"
need nbdkit
CFG=$T/p.yaml
write_pair_config "$CFG" sync 32M "" \
  "reconnect-min: 50ms, reconnect-max: 200ms, heartbeat-timeout: 5s"

# The primary retries while nothing listens; each fake judges one try.
start_primary_nowait "$CFG" a

fakepeer welcome-wrong-size
fakepeer welcome-wrong-granularity
fakepeer welcome-wrong-name
fakepeer welcome-wrong-proto
fakepeer welcome-wrong-node
fakepeer huge-frame
fakepeer refusal-control-chars

expect() {
  grep -q -- "$1" "$T/a.log" || { tail -20 "$T/a.log" >&2; fail "a.log lacks: $1"; }
}
expect "vol0 is 34603008 bytes on b, 33554432 here"
expect "vol0 has granularity 131072 on b, 65536 here"
expect "WELCOME volume 0 is not-vol0, expected vol0"
# The version this build speaks, from the codec's header.
proto=$(sed -n 's/^#define BR_WIRE_VERSION \([0-9]*\).*/\1/p' "$SRCDIR/src/wire.h")
[ -n "$proto" ] || fail "no BR_WIRE_VERSION in src/wire.h"
expect "WELCOME chose protocol 2, this node speaks $proto"
expect "expected node b, reached not-b"
expect "frame larger than this connection allows"
expect 'EVIL\\x1b\[31m red\\x0aFORGED LOG LINE\\x07'
if grep -q $'\x1b\|\x07' "$T/a.log"; then
  fail "a control character from the peer reached the log"
fi
grep -q "^FORGED LOG LINE" "$T/a.log" && fail "the peer forged a log line"
# Each refusal is counted by kind (blockrelay metrics, errors_total).
"$BLOCKRELAY" metrics --config "$CFG" --node a > "$T/a.prom" || fail "metrics"
grep '^blockrelay_errors_total' "$T/a.prom" >&2
errors() {
  sed -n "s/^blockrelay_errors_total{node=\"a\",group=\"vol0\",peer=\"b\",kind=\"$1\"} //p" "$T/a.prom"
}
[ "$(errors bad_frame)" -eq 1 ] || fail "the huge frame is not counted as bad_frame"
[ "$(errors handshake_refused)" -eq 6 ] || fail "the 6 refusals are not counted as handshake_refused"
[ "$(errors peer_error)" -eq 0 ] || fail "a refusal counted as peer_error"
stop_node a
log "every bad answer was refused with its reason"
