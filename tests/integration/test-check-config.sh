#!/usr/bin/env bash
# `blockrelay check-config`: the example topologies pass; broken files fail
# with exit status 1 and a "FILE:LINE:COL: message" on stderr that points
# at the offending key or value (or at the mapping missing a key).  The
# nbdkit plugin reports the same message when given a broken file.
. "$(dirname "$0")/lib.sh"

[ -x "$BLOCKRELAY" ] || fail "$BLOCKRELAY is not built"

# ---- the shipped examples must pass ----
n=0
for f in "$SRCDIR"/config/*.yaml; do
  [ -e "$f" ] || continue
  out=$("$BLOCKRELAY" check-config "$f" 2>"$T/err") ||
    { cat "$T/err" >&2; fail "check-config refuses the example $f"; }
  [ -s "$T/err" ] && { cat "$T/err" >&2; fail "check-config $f: stderr"; }
  grep -qF "$f: ok:" <<<"$out" || fail "check-config $f: no 'ok' in '$out'"
  n=$((n + 1))
done
[ $n -gt 0 ] || fail "no example configs in $SRCDIR/config"
log "ok: $n example configs pass"

# ---- broken files ----

# A valid base that the cases below modify.  Line numbers matter.
base() {
  cat <<'EOF'
volumes:
  - name: vol0
    size: 1G
nodes:
  - name: a
    address: 127.0.0.1:10901
    data-dir: data/a
  - name: b
    address: 127.0.0.1:10902
    data-dir: data/b
links:
  - {between: [a, b], mode: sync}
EOF
}
base > "$T/base.yaml"
"$BLOCKRELAY" check-config "$T/base.yaml" >/dev/null ||
  fail "the base config of this test is refused"

# bad NAME LINE COL PHRASE: check-config on $T/NAME.yaml (already written)
# exits 1, prints nothing on stdout, and its stderr starts with
# "FILE:LINE:COL: " and contains PHRASE.
bad() {
  local name=$1 line=$2 col=$3 phrase=$4 f=$T/$1.yaml rc=0 out
  out=$("$BLOCKRELAY" check-config "$f" 2>"$T/err") || rc=$?
  [ $rc -eq 1 ] || { cat "$T/err" >&2; fail "$name: exit status $rc, not 1"; }
  [ -z "$out" ] || fail "$name: unexpected stdout '$out'"
  [ "$(wc -l < "$T/err")" -eq 1 ] ||
    { cat "$T/err" >&2; fail "$name: expected exactly one line on stderr"; }
  case "$(cat "$T/err")" in
    "$f:$line:$col: "*) ;;
    *) cat "$T/err" >&2; fail "$name: stderr does not start with $f:$line:$col:" ;;
  esac
  grep -qF -- "$phrase" "$T/err" ||
    { cat "$T/err" >&2; fail "$name: stderr lacks '$phrase'"; }
  log "ok: $name: $(cat "$T/err")"
}

# Unknown key: line 4 is "    colour: red", the key at column 5.
base | sed '3a\    colour: red' > "$T/unknown-key.yaml"
bad unknown-key 4 5 "unknown key 'colour' in volume"

# Duplicate key: the second "size" (line 4) names the first (3:5).
base | sed '3a\    size: 2G' > "$T/duplicate-key.yaml"
bad duplicate-key 4 5 "duplicate key 'size' in volume (first at 3:5)"

# Bad sizes: the value of line 3 "    size: ..." starts at column 11.
base | sed 's/size: 1G/size: 12Q/' > "$T/bad-size.yaml"
bad bad-size 3 11 "volume size '12Q' is not a size"
base | sed 's/size: 1G/size: 1000/' > "$T/size-not-512.yaml"
bad size-not-512 3 11 "volume size '1000' is not a multiple of 512"
base | sed 's/size: 1G/size: -1G/' > "$T/negative-size.yaml"
bad negative-size 3 11 "volume size '-1G' is negative"
base | sed 's/size: 1G/size: 0/' > "$T/zero-size.yaml"
bad zero-size 3 11 "volume size must not be zero"
base | sed '3a\    granularity: 48K' > "$T/bad-granularity.yaml"
bad bad-granularity 4 18 "volume granularity '48K' is not a power of two"
# A granularity above the largest frame (32M) could never be resynced:
# refused with the bound and the reason, in a volume and in settings
# (line 1 "settings: {granularity: 64M}", the value at column 25).
base | sed '3a\    granularity: 64M' > "$T/granularity-over-frame.yaml"
bad granularity-over-frame 4 18 "volume granularity '64M' is outside 4K..32M: a dirty region is resynced in one frame, and a frame carries at most 32M"
{ echo 'settings: {granularity: 64M}'; base; } \
  > "$T/settings-granularity-over-frame.yaml"
bad settings-granularity-over-frame 1 25 "settings granularity '64M' is outside 4K..32M"

# activity-window: 0 is allowed, more than 1h is not (value at 1:29).
{ echo 'settings: {activity-window: 0}'; base; } > "$T/window-zero.yaml"
"$BLOCKRELAY" check-config "$T/window-zero.yaml" >/dev/null ||
  fail "check-config refuses activity-window: 0"
{ echo 'settings: {activity-window: 2h}'; base; } > "$T/window-too-long.yaml"
bad window-too-long 1 29 "settings activity-window '2h' is longer than 1h"

# Link to an unknown node: "  - {between: [a, c], mode: sync}", c at 12:19.
base | sed 's/\[a, b\]/[a, c]/' > "$T/unknown-node.yaml"
bad unknown-node 12 19 "link names unknown node 'c'"

# Link from a node to itself (the between list, at 12:15), and a bad mode
# (its value at 12:29).
base | sed 's/\[a, b\]/[a, a]/' > "$T/self-link.yaml"
bad self-link 12 15 "link from node 'a' to itself"
base | sed 's/mode: sync/mode: fast/' > "$T/bad-mode.yaml"
bad bad-mode 12 29 "link mode 'fast' is not sync or async"

# Outage policy: a bad on-peer-loss value (12:49, after "mode: sync, ")
# lists the valid ones; on-congestion: pull-ahead on a sync link is blamed
# on the key (12:35).
base | sed 's/mode: sync}/mode: sync, on-peer-loss: retry}/' \
  > "$T/bad-on-peer-loss.yaml"
bad bad-on-peer-loss 12 49 "link on-peer-loss 'retry' is not log, block or fail"
base | sed 's/mode: sync}/mode: sync, on-congestion: pull-ahead}/' \
  > "$T/pull-ahead-on-sync.yaml"
bad pull-ahead-on-sync 12 35 "link on-congestion 'pull-ahead' is for async links only"

# Duplicate volume name: the second vol0 on line 5, its name at column 12;
# the first volume's mapping starts at 2:5.
base | sed '3a\  - {name: vol1, size: 1G}\n  - {name: vol0, size: 2G}' \
  > "$T/duplicate-volume.yaml"
bad duplicate-volume 5 12 "duplicate volume name 'vol0' (first at 2:5)"

# Duplicate node name: node "b" renamed "a" (line 8, value at column 11).
base | sed '8s/name: b/name: a/' > "$T/duplicate-node.yaml"
bad duplicate-node 8 11 "duplicate node name 'a' (first at 5:5)"

# Missing required field: node b (mapping at 8:5) has no data-dir.
base | sed '/data-dir: data\/b/d' > "$T/missing-field.yaml"
bad missing-field 8 5 "node is missing required key 'data-dir'"
# ... and a file with no nodes at all (the top-level mapping, at 1:1).
base | sed '4,10d' > "$T/missing-nodes.yaml"
bad missing-nodes 1 1 "is missing required key 'nodes'"

# Not a mapping: a link given as a scalar (12:5), and a top-level list.
base | sed 's/  - {between: \[a, b\], mode: sync}/  - between a b/' \
  > "$T/not-a-mapping.yaml"
bad not-a-mapping 12 5 "link must be a mapping, not a scalar"
printf -- '- volumes\n- nodes\n' > "$T/top-not-a-mapping.yaml"
bad top-not-a-mapping 1 1 "must hold a mapping"

# Bad address: port out of range (line 6, value at column 14).
base | sed 's/127.0.0.1:10901/127.0.0.1:70000/' > "$T/bad-port.yaml"
bad bad-port 6 14 "port '70000' is not a number in 1..65535"

# YAML syntax errors: a second ':' on line 3 (column 13) ...
base | sed 's/size: 1G/size: 1G: 2G/' > "$T/syntax-colon.yaml"
bad syntax-colon 3 13 "syntax error: mapping values are not allowed"
# ... and an unclosed flow mapping (noticed at the end, 13:1; it names
# where the mapping started, 12:5).
base | sed 's/mode: sync}/mode: sync/' > "$T/syntax-unclosed.yaml"
bad syntax-unclosed 13 1 "syntax error: did not find expected ',' or '}' (while parsing a flow mapping at 12:5)"

# nodes N...: the volumes and N nodes of a topology (lines 1-2, then one
# line a node).
nodes() {
  local n p=10901
  printf 'volumes:\n  - {name: vol0, size: 1G}\nnodes:\n'
  for n in "$@"; do
    echo "  - {name: $n, address: 127.0.0.1:$p, data-dir: data/$n}"
    p=$((p + 1))
  done
}

# A ring of four makes the flow ambiguous (with a as primary, c is two hops
# away through b and through d): the link that reaches c a second time
# (line 11, c-d, column 5) is named, with the first path's link (10:5).
{ nodes a b c d
  cat <<'EOF2'
links:
  - {between: [a, b], mode: sync}
  - {between: [b, c], mode: async}
  - {between: [c, d], mode: async}
  - {between: [d, a], mode: async}
EOF2
} > "$T/ring.yaml"
bad ring 11 5 "makes the flow of data ambiguous: with a as primary, c is 2 hops away both through b (link at 10:5) and through d"

# The flow of a valid chain, for every primary, on stdout.
{ nodes a b c
  cat <<'EOF2'
links:
  - {between: [a, b], mode: sync}
  - {between: [b, c], mode: async, rate: 20M}
EOF2
} > "$T/chain.yaml"
out=$("$BLOCKRELAY" check-config "$T/chain.yaml") ||
  fail "chain.yaml refused"
grep -qxF "  with a as primary: a -> b (sync); b -> c (async, 20.0 MiB/s)" \
  <<<"$out" || fail "chain flow with a as primary: '$out'"
grep -qxF "  with c as primary: b -> a (sync); c -> b (async, 20.0 MiB/s)" \
  <<<"$out" || fail "chain flow with c as primary: '$out'"
log "ok: flow of a chain: $(echo $out)"

# Empty file, and two documents in one file.
: > "$T/empty.yaml"
bad empty 1 1 "the file is empty"
{ base; echo '---'; base; } > "$T/two-documents.yaml"
bad two-documents 14 1 "found a second YAML document"

# A missing file: "FILE: message" without a position.
rc=0
"$BLOCKRELAY" check-config "$T/nonexistent.yaml" 2>"$T/err" >/dev/null || rc=$?
[ $rc -eq 1 ] || fail "missing file: exit status $rc, not 1"
grep -qF "$T/nonexistent.yaml: cannot open: No such file or directory" \
  "$T/err" || { cat "$T/err" >&2; fail "missing file: message"; }

# ---- the nbdkit plugin reports the same message ----
if command -v nbdkit >/dev/null 2>&1 && [ -f "$PLUGIN" ]; then
  f=$T/duplicate-key.yaml
  rc=0
  env $(asan_env) timeout 30 nbdkit -f -p "$(free_port)" -i 127.0.0.1 \
    "$PLUGIN" config="$f" node=a >"$T/nbdkit.out" 2>"$T/nbdkit.err" || rc=$?
  [ $rc -ne 0 ] || fail "nbdkit started with a broken config"
  [ $rc -ne 124 ] || fail "nbdkit did not exit (timeout) with a broken config"
  grep -qF "$f:4:5: duplicate key 'size' in volume" "$T/nbdkit.err" ||
    { cat "$T/nbdkit.err" >&2; fail "nbdkit: no file:line:col message"; }
  log "ok: nbdkit: $(grep -F "$f:4:5:" "$T/nbdkit.err")"

  f=$T/syntax-colon.yaml
  rc=0
  env $(asan_env) timeout 30 nbdkit -f -p "$(free_port)" -i 127.0.0.1 \
    "$PLUGIN" config="$f" node=a >"$T/nbdkit.out" 2>"$T/nbdkit.err" || rc=$?
  [ $rc -ne 0 ] && [ $rc -ne 124 ] ||
    fail "nbdkit with $f: exit status $rc"
  grep -qF "$f:3:13: syntax error" "$T/nbdkit.err" ||
    { cat "$T/nbdkit.err" >&2; fail "nbdkit: no file:line:col message"; }
  log "ok: nbdkit: $(grep -F "$f:3:13:" "$T/nbdkit.err")"
else
  log "SKIP (part): nbdkit or $PLUGIN missing, plugin check not run"
fi
log "all config checks passed"
