#!/usr/bin/env bash
# BITMAP frames are refused, not trusted (I7): a fake replica (br-fakepeer)
# answers the primary's HELLO as the old primary of a failback (verdict
# rule 3: at the primary's base generation, owing it regions), so the
# primary waits for its bitmap, and then lies about it, one way per
# scenario: a count that is not the frame's bits, a range past the
# volume, bits past its last region, fewer regions than the WELCOME
# announced, an ACK instead of a BITMAP.  The primary must drop the
# connection at once with the reason in its log, merge nothing into its
# own bitmap, and then replicate normally to the real replica.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
need nbdkit
CFG=$T/p.yaml
# 515 regions of 64K: not a multiple of 64, so the last word of a bitmap
# has bits past the volume.
write_pair_config "$CFG" sync 33751040 "" \
  "reconnect-min: 50ms, reconnect-max: 200ms, heartbeat-timeout: 5s"

# A real pair first, so that a records b's base generation.
start_replica "$CFG" b
start_primary "$CFG" a
gen=$(br_json "$CFG" a | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["volumes"][0]["generation"])')
for _ in $(seq 200); do
  [ "$(peer_field "$CFG" a base_generation)" = "$gen" ] && break
  sleep 0.05            # polling the control socket
done
[ "$(peer_field "$CFG" a base_generation)" = "$gen" ] || fail "a never recorded b's base"
stop_node a
stop_node b


# a is primary again (a new generation, the old one on its history); the
# fakes take b's port, one connection each.
start_primary_nowait "$CFG" a
fakepeer bitmap-wrong-count
fakepeer bitmap-past-end
fakepeer bitmap-bits-past-end
fakepeer bitmap-short
fakepeer bitmap-missing

expect() {
  grep -q -- "$1" "$T/a.log" || { tail -20 "$T/a.log" >&2; fail "a.log lacks: $1"; }
}
expect "BITMAP of vol0 holds 3 regions, its header says 4"
expect "BITMAP of vol0 past the end of the volume"
expect "BITMAP of vol0 has bits past its last region"
expect "the BITMAP of vol0 holds 2 regions, its WELCOME said 3"
expect "expected BITMAP, got frame type 7"
peer_snapshot "$CFG" a
[ "$P_dirty" -eq 0 ] || fail "a merged a rejected bitmap: $P_dirty bytes dirty for b"

# The real replica: in sync again by rule 11, nothing to resend.
start_replica "$CFG" b
wait_in_sync "$CFG" a 30
[ "$(peer_field "$CFG" a verdict)" = "vol0: resync by rule 11" ] ||
  fail "the real replica: verdict '$(peer_field "$CFG" a verdict)'"
"$BLOCKRELAY" metrics --config "$CFG" --node a > "$T/a.prom" || fail "metrics"
n=$(sed -n 's/^blockrelay_errors_total{node="a",group="vol0",peer="b",kind="bad_frame"} //p' "$T/a.prom")
[ "$n" -eq 5 ] || fail "the 5 lies are counted as $n bad frames"
stop_node a
stop_node b
log "every lying bitmap was refused with its reason"
