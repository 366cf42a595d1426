#!/usr/bin/env bash
# blockrelay verify: compare a replica's copy with the primary's, online.
#  - A sync pair a->b, one 128M volume (2048 regions of 64K), filled with
#    random data through the primary and in sync: verify says "identical",
#    exit 0, and the regions compared plus those skipped as dirty are every
#    region of the volume; stderr (not a terminal) ends with the final
#    progress line.
#  - Four regions of the REPLICA's image are corrupted behind its back
#    (two adjacent ones, one alone, the last region of the volume) while a
#    fio random-write load runs through the primary on the first half of
#    the volume and goes on during the verify: verify exits 1 and prints
#    exactly the three merged ranges, ascending, and no other (the writes
#    in flight never show up as differences).
#  - verify --repair: exit 1, the same ranges and the repair line; the peer
#    resyncs them, and once in sync a verify says identical again; both
#    nodes stopped, the images are identical byte for byte.
#  - Errors, each exit 2 and one clear line: an unknown volume, a node that
#    is not a peer, a paused peer ("not replicating"), no --peer, no node
#    running ("cannot reach").
. "$(dirname "$0")/lib.sh"
need nbdkit fio nbdcopy python3 dd
fio --enghelp=nbd >/dev/null 2>&1 || skip "fio has no nbd engine"

G=65536
SIZE=$((128 << 20))
REGIONS=$((SIZE / G))
# activity-window 0: a region's bit is cleared as soon as the peer has it
# durably, so regions written by the fill are not held (and skipped) later.
write_pair_config "$T/p.yaml" sync 128M "" "activity-window: 0"
C=(--config "$T/p.yaml" --node a)
start_replica "$T/p.yaml" b
start_primary "$T/p.yaml" a "" assume-clean=true  # a pair created empty together


# run_verify RC ARGS...: blockrelay verify vol0 --peer b ARGS, which must
# exit RC; stdout in $T/v.out, stderr in $T/v.err.  Checks the summary
# line (the first) and that compared + skipped = every region; sets
# V_COMPARED, V_SKIPPED.
run_verify() {
  local want=$1 rc=0 first
  shift
  "$BLOCKRELAY" verify vol0 --peer b "${C[@]}" "$@" >"$T/v.out" 2>"$T/v.err" || rc=$?
  [ $rc -eq "$want" ] ||
    { cat "$T/v.out" "$T/v.err" >&2; fail "verify $*: exit $rc, not $want"; }
  first=$(head -n 1 "$T/v.out")
  local re='^vol0 on b: (identical|([0-9]+) regions differ) \(([0-9]+) regions compared, ([0-9]+) skipped as dirty\)$'
  [[ $first =~ $re ]] || { cat "$T/v.out" >&2; fail "verify $*: bad summary '$first'"; }
  V_DIFFER=${BASH_REMATCH[2]:-0}
  V_COMPARED=${BASH_REMATCH[3]}
  V_SKIPPED=${BASH_REMATCH[4]}
  [ $((V_COMPARED + V_SKIPPED)) -eq $REGIONS ] ||
    { cat "$T/v.out" "$T/v.err" >&2
      fail "verify $*: $V_COMPARED compared + $V_SKIPPED skipped is not the $REGIONS regions"; }
  [ "$V_COMPARED" -ge $((REGIONS / 2)) ] ||
    { cat "$T/v.out" >&2; fail "verify $*: only $V_COMPARED regions compared"; }
  # Progress on stderr (not a terminal here): lines, the last one final.
  tail -n 1 "$T/v.err" | grep -qx "verify vol0 on b: $REGIONS/$REGIONS regions" ||
    { cat "$T/v.err" >&2; fail "verify $*: stderr does not end with the final progress line"; }
  if grep -v "^verify vol0 on b: [0-9]*/$REGIONS regions$" "$T/v.err" | grep -q .; then
    cat "$T/v.err" >&2
    fail "verify $*: stderr has more than progress lines"
  fi
  log "ok: verify $*: exit $rc: $first"
}

# ---- fill and verify an intact copy ----
head -c $SIZE /dev/urandom > "$T/fill.bin"
nbdcopy --flush "$T/fill.bin" "$NBD_URI/vol0"
wait_in_sync "$T/p.yaml" a
run_verify 0
[ "$(wc -l < "$T/v.out")" -eq 1 ] || { cat "$T/v.out" >&2; fail "identical, yet more than one line"; }
cmp -s "$T/fill.bin" "$T/b/vol0.img" || fail "the replica does not hold the fill"

# ---- errors (no verify running) ----
expect_err 2 "node a has no volume named 'zz'" verify zz --peer b "${C[@]}"
expect_err 2 "c is not a peer of node a" verify vol0 --peer c "${C[@]}"
expect_err 2 "give --peer NODE" verify vol0 "${C[@]}"
expect_err 2 "cannot reach $T/none.sock" verify vol0 --peer b --socket "$T/none.sock"
"$BLOCKRELAY" pause "${C[@]}" --peer b >/dev/null || fail "pause failed"
"$BLOCKRELAY" status "${C[@]}" --wait paused --timeout 10 >/dev/null || fail "not paused"
expect_err 2 "not replicating" verify vol0 --peer b "${C[@]}"
"$BLOCKRELAY" resume "${C[@]}" --peer b >/dev/null || fail "resume failed"
wait_in_sync "$T/p.yaml" a

# ---- corrupt the replica behind its back, under load elsewhere ----
# Regions 1500 and 1501 (adjacent: one range), 1800, and the last one.
# A region is corrupted whole, in part, or in its last 4K.
corrupt() {           # corrupt REGION OFFSET-IN-REGION LENGTH
  local off=$(($1 * G + $2))
  python3 - "$T/b/vol0.img" "$off" "$3" <<'PY'
import os, sys
path, off, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "r+b") as f:
    f.seek(off)
    old = f.read(n)
    # Every byte changed: no chance of writing what was there.
    f.seek(off)
    f.write(bytes((b ^ 0x5a) for b in old))
    f.flush()
    os.fsync(f.fileno())
PY
}
corrupt 1500 0 $G
corrupt 1501 1000 512
corrupt 1800 4096 8192
corrupt $((REGIONS - 1)) $((G - 4096)) 4096
cmp -s "$T/fill.bin" "$T/b/vol0.img" && fail "the corruption did not change the replica's image"
printf 'differ %d %d\ndiffer %d %d\ndiffer %d %d\n' \
  $((1500 * G)) $((2 * G)) $((1800 * G)) $G $(((REGIONS - 1) * G)) $G > "$T/expect"

# A load on the first half only (regions 0..1023), running through both
# verifies below.
fio --name=load --ioengine=nbd --uri="$NBD_URI/vol0" --rw=randwrite \
  --bs=4k --bsrange=4k-64k --iodepth=16 --offset=0 --size=64M \
  --time_based --runtime=120 --randseed=$RANDOM --output="$T/fio.out" \
  2>"$T/fio.err" &
FIO=$!
BR_PIDS+=("$FIO")
# Verify only once the load is really writing: the replica's copy of the
# first half moves away from the fill.
for ((i = 0; i < 200; i++)); do
  cmp -s -n $((64 << 20)) "$T/fill.bin" "$T/b/vol0.img" || break
  kill -0 $FIO 2>/dev/null || { cat "$T/fio.err" >&2; fail "fio died"; }
  sleep 0.05          # polling for the load's first writes
done
cmp -s -n $((64 << 20)) "$T/fill.bin" "$T/b/vol0.img" && fail "the load wrote nothing"

run_verify 1
kill -0 $FIO 2>/dev/null || fail "the load stopped before the verify ended"
[ "$V_DIFFER" -eq 4 ] || fail "verify counted $V_DIFFER regions differing, not 4"
tail -n +2 "$T/v.out" > "$T/got"
diff -u "$T/expect" "$T/got" >&2 || fail "verify reported other ranges than the corrupted ones"
log "ok: exactly the corrupted ranges, with writes in flight ($V_SKIPPED skipped as dirty)"

# ---- repair ----
run_verify 1 --repair
[ "$V_DIFFER" -eq 4 ] || fail "verify --repair counted $V_DIFFER regions differing, not 4"
{ cat "$T/expect"; echo "repair: 4 regions marked out of sync for b; resync started"; } > "$T/expect.r"
tail -n +2 "$T/v.out" > "$T/got"
diff -u "$T/expect.r" "$T/got" >&2 || fail "verify --repair printed something else"
kill -0 $FIO 2>/dev/null || fail "the load stopped before the repair"
kill -TERM $FIO
wait $FIO || true
grep -q "err= 0" "$T/fio.out" || { cat "$T/fio.out" "$T/fio.err" >&2; fail "fio reported errors"; }
wait_in_sync "$T/p.yaml" a
run_verify 0
[ "$V_SKIPPED" -eq 0 ] || fail "$V_SKIPPED regions skipped as dirty with no writes going on"
[ "$V_COMPARED" -eq $REGIONS ] || fail "only $V_COMPARED of $REGIONS regions compared"
log "ok: repaired; a verify of the quiet volume compares every region"

# ---- no daemon ----
stop_node a
expect_err 2 "cannot reach" verify vol0 --peer b "${C[@]}"
stop_node b
same_images "$T/a/vol0.img" "$T/b/vol0.img"
log "ok: verify, --repair and its errors"
