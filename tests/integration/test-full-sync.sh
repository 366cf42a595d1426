#!/usr/bin/env bash
# Full sync of a 1 GiB volume while fio writes to it.
#
# 1. A pair in sync holding 384 MiB of random data.  The replica is stopped
#    and its data dir wiped (it lost its disk); the primary's bits are all
#    clear, so only the generation identifiers can tell it the replica is
#    new.  The replica comes back empty: every region must be resent (state
#    syncing, resync_left_bytes ~1 GiB and falling, the replica says
#    consistent=false), while fio randwrite --verify runs against the
#    primary.  Afterwards the replica says consistent=true, and the copies
#    are identical.
# 2. A fresh pair started with assume-clean=true goes straight to
#    replicating: no resync (resync_left_bytes 0 throughout, nothing
#    received by the replica) until something is written.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faultlib.sh"
need nbdkit nbdcopy fio qemu-io
start=$SECONDS
CFG=$T/f.yaml

# ---- 1. wiped replica, full sync under fio ----
write_pair_config "$CFG" sync 1G
start_primary_nowait "$CFG" a "$T/a.log"          # replica not there yet
head -c 384M /dev/urandom > "$T/fill.bin"
nbdcopy "$T/fill.bin" "$NBD_URI/vol0" || fail "nbdcopy"
rm -f "$T/fill.bin"
start_replica "$CFG" b
wait_in_sync "$CFG" a 120
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
log "pair in sync with 384 MiB of data ($((SECONDS - start)) s)"

# The replica loses its disk.  Restart the primary with a resync-rate so
# the full sync lasts long enough to write during it (384 MiB of data at
# 96 MiB/s: >= 4 s).
rm -rf "$T/b"
write_pair_config "$CFG" sync 1G "resync-rate: 96M"
start_primary_nowait "$CFG" a "$T/a.log"
peer_snapshot "$CFG" a
# A clean stop of a pair in sync leaves nothing to resync (operations.md:
# "scoreboards are marked clean"); so the full sync below can only come
# from the generation identifiers.
[ "$P_dirty" -eq 0 ] ||
  check_later "primary reports $P_dirty dirty bytes after a clean stop of a pair in sync (a clean restart would resync them)"
start_sampler "$T/s1" "$CFG" a "$CFG" b
start_replica "$CFG" b
wait_peer_match "$CFG" a syncing 30
fio --name=during-full-sync --ioengine=nbd --uri="$NBD_URI/vol0" \
  --rw=randwrite --bs=16k --iodepth=16 --size=1G --io_size=96M \
  --verify=crc32c --verify_fatal=1 --verify_state_save=0 --randseed=42 --output="$T/fio1.out" \
  || { cat "$T/fio1.out" >&2; fail "fio during the full sync"; }
peer_snapshot "$CFG" a
fio_end_state=$P_state
wait_in_sync "$CFG" a 120
stop_sampler "$T/s1"
samples "$T/s1" a > "$T/s1-a.txt"
samples "$T/s1" b > "$T/s1-b.txt"
log "fio finished with the peer in state $fio_end_state"
python3 - "$T/s1" <<'PY' || { tail -n 40 "$T/s1-a.txt" "$T/s1-b.txt" >&2; fail "full sync not as expected"; }
import json, sys
S = [json.loads(l) for l in open(sys.argv[1])]
A = [(s["t"], s["st"]["volumes"][0]["peers"][0]) for s in S if s["node"] == "a" and s["st"]]
B = [(s["t"], s["st"]["volumes"][0]) for s in S if s["node"] == "b" and s["st"]]
sy = [(t, p) for t, p in A if p["state"] == "syncing"]
assert sy, "never saw the primary's peer syncing"
lefts = [p["resync_left_bytes"] for _, p in sy]
G = 1 << 30
assert max(lefts) >= 0.75 * G, "not a full sync: at most %d bytes left to resync" % max(lefts)
assert len(set(lefts)) >= 3 and lefts[-1] < lefts[0], "resync_left_bytes did not fall: %s" % lefts[:20]
assert all(b <= a for a, b in zip(lefts, lefts[1:])), "resync_left_bytes went up"
t0, t1 = sy[0][0], sy[-1][0]
# The primary says syncing when its handshake ends; the replica says
# inconsistent once it has applied the RESYNC marker, the stream's first
# record, a few milliseconds later: a sample taken in between may still say
# consistent.  From its first inconsistent sample on, it must stay so.
inc = [(t, v) for t, v in B if t0 <= t <= t1]
first = next((i for i, (t, v) in enumerate(inc) if not v["consistent"]), None)
assert first is not None, "replica never said consistent=false during the full sync"
assert inc[first][0] - t0 < 1.0, \
    "replica said consistent=false only %.2f s into the full sync" % (inc[first][0] - t0)
assert not any(v["consistent"] for t, v in inc[first:]), \
    "replica did not say consistent=false throughout the full sync: %s" % [v["consistent"] for t, v in inc]
print("full sync: %.1f s in syncing, left %d -> %d" % (t1 - t0, lefts[0], lefts[-1]), file=sys.stderr)
PY
peer_snapshot "$CFG" b
[ "$V_consistent" = true ] || fail "replica still says consistent=false after the full sync"
grep -q "err= *0" "$T/fio1.out" || fail "fio reported errors"
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
log "part 1 done ($((SECONDS - start)) s)"

# ---- 2. assume-clean: a pair created empty together ----
rm -rf "$T/a" "$T/b"
write_pair_config "$CFG" sync 1G
start_replica "$CFG" b
start_sampler "$T/s2" "$CFG" a "$CFG" b
start_primary_nowait "$CFG" a "$T/a2.log" assume-clean=true
wait_in_sync "$CFG" a 30
peer_snapshot "$CFG" b
rx0=$U_rx
stop_sampler "$T/s2"
samples "$T/s2" a > "$T/s2-a.txt"
python3 - "$T/s2" <<'PY' || { cat "$T/s2-a.txt" >&2; fail "assume-clean pair resynced"; }
import json, sys
S = [json.loads(l) for l in open(sys.argv[1])]
A = [s["st"]["volumes"][0]["peers"][0] for s in S if s["node"] == "a" and s["st"]]
assert A, "no status samples from the primary"
assert not any(p["state"] == "syncing" for p in A), "peer went through syncing"
assert all(p["resync_left_bytes"] == 0 for p in A), "resync_left_bytes > 0"
PY
[ "$rx0" -lt 65536 ] || fail "replica received $rx0 bytes from an assume-clean primary before any write"
qemu-io -f raw -c 'write -P 0x5a 100M 1M' "$NBD_URI/vol0" >/dev/null || fail "qemu-io write"
wait_in_sync "$CFG" a 30
peer_snapshot "$CFG" b
[ "$U_rx" -ge $((1 << 20)) ] && [ "$U_rx" -lt $((4 << 20)) ] ||
  fail "replica received $U_rx bytes for a 1 MiB write (expected ~1 MiB)"
stop_node a
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
no_bad_frames
check_later_done
log "done in $((SECONDS - start)) s"
