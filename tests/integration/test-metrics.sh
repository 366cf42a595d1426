#!/usr/bin/env bash
# blockrelay metrics and a node's metrics-file (Prometheus text format).
#  - A pair (nbdkit primary a, blockrelayd replica b), both with a
#    metrics-file and metrics-interval 1s.  After 8M written and in sync:
#    `blockrelay metrics` and the file parse with a strict parser of the
#    text format (every sample's family has one HELP and one TYPE before
#    it, valid types, counters end in _total and are >= 0, no duplicate
#    series, escaped label values), and their values agree with
#    `blockrelay status --json` (state, connected, dirty and queued bytes,
#    lag; bytes replicated >= bytes written); the replica's file shows its
#    upstream session with at least the bytes written received.
#  - The replica stopped and 4M more written: the peer is logging and not
#    connected, its dirty bytes are those of status and >= 4M, a
#    connection_lost error is counted, and the file (rewritten: its mtime
#    moves) says the same.  No temporary file is left behind; a clean stop
#    writes the file once more.
#  - A metrics-file in a directory that does not exist: one warning for
#    the whole streak of failures, the node keeps running, and once the
#    directory exists the file is written and that is logged.
#  - Errors: no node running, a socket of another node, no node given, an
#    unknown node: each a clear message and a non-zero exit.
. "$(dirname "$0")/lib.sh"
need nbdkit nbdcopy python3

write_pair_config "$T/pair.yaml" sync 64M "" \
  "metrics-interval: 1s, activity-window: 0"
sed -i -e "s|data-dir: $T/a}|data-dir: $T/a, metrics-file: a.prom}|" \
       -e "s|data-dir: $T/b}|data-dir: $T/b, metrics-file: $T/b.prom}|" \
       "$T/pair.yaml"
"$BLOCKRELAY" check-config "$T/pair.yaml" >/dev/null || fail "check-config"
C=(--config "$T/pair.yaml" --node a)
start_replica "$T/pair.yaml" b
start_primary "$T/pair.yaml" a

# A strict parser of the text exposition format (0.0.4), then the checks
# of one text against one status.  Usage: promcheck.py TEXT STATUS MODE
# (MODE up: in sync; down: the replica stopped; replica: node b).
cat > "$T/promcheck.py" <<'EOF'
import json, math, re, sys

NAME = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*$')
LABEL = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*$')
TYPES = {'counter', 'gauge', 'histogram', 'summary', 'untyped'}

def die(msg):
    sys.exit('promcheck: ' + msg)

def parse_labels(s, i, line):
    labels = {}
    while True:
        if s[i] == '}':
            return labels, i + 1
        m = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*').match(s, i)
        if not m or s[m.end():m.end() + 2] != '="':
            die('bad label in: %r' % line)
        name, i, val = m.group(0), m.end() + 2, ''
        while s[i] != '"':
            if s[i] == '\\':
                esc = s[i + 1]
                if esc not in '\\"n':
                    die('bad escape \\%s in: %r' % (esc, line))
                val += '\n' if esc == 'n' else esc
                i += 2
            elif s[i] == '\n':
                die('raw newline in a label value')
            else:
                val += s[i]
                i += 1
        if name in labels:
            die('label %s twice in: %r' % (name, line))
        labels[name] = val
        i += 1
        if s[i] == ',':
            i += 1
        elif s[i] != '}':
            die('expected , or } in: %r' % line)

def parse(text):
    fams, order, seen = {}, [], set()
    if not text.endswith('\n'):
        die('the text does not end with a newline')
    for line in text[:-1].split('\n'):
        if line.startswith('#'):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ('HELP', 'TYPE'):
                name = parts[2]
                if not NAME.match(name):
                    die('bad name %r' % name)
                f = fams.setdefault(name, {'help': None, 'type': None,
                                           'samples': []})
                key = parts[1].lower()
                if f[key] is not None:
                    die('second %s for %s' % (parts[1], name))
                if f['samples']:
                    die('%s of %s after its samples' % (parts[1], name))
                if key == 'type':
                    if len(parts) != 4 or parts[3] not in TYPES:
                        die('bad TYPE line %r' % line)
                    f['type'] = parts[3]
                else:
                    if len(parts) != 4:
                        die('empty HELP for %s' % name)
                    f['help'] = parts[3]
                if name not in order:
                    order.append(name)
            continue
        m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)', line)
        if not m:
            die('bad sample line %r' % line)
        name, i, labels = m.group(1), m.end(), {}
        if i < len(line) and line[i] == '{':
            labels, i = parse_labels(line + '\n', i + 1, line)
        rest = line[i:].split(' ')
        if rest[0] != '' or len(rest) not in (2, 3):
            die('bad value part in %r' % line)
        try:
            value = float(rest[1])
        except ValueError:
            die('bad value in %r' % line)
        if name not in fams or fams[name]['type'] is None:
            die('sample %s has no TYPE before it' % name)
        if fams[name]['help'] is None:
            die('sample %s has no HELP' % name)
        if order[-1] != name:
            die('sample %s is not with its family' % name)
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            die('duplicate series %r' % (key,))
        seen.add(key)
        fams[name]['samples'].append((labels, value))
    return fams

text, status, mode = open(sys.argv[1]).read(), json.load(open(sys.argv[2])), sys.argv[3]
fams = parse(text)
for name, f in fams.items():
    if not name.startswith('blockrelay_'):
        die('%s lacks the prefix' % name)
    if (f['type'] == 'counter') != name.endswith('_total'):
        die('%s: type %s and name disagree' % (name, f['type']))
    for labels, v in f['samples']:
        if math.isnan(v) or (f['type'] == 'counter' and v < 0):
            die('%s%r = %r' % (name, labels, v))
        if labels.get('node') != status['node']:
            die('%s%r: not node %s' % (name, labels, status['node']))

def value(name, **want):
    got = [v for labels, v in fams[name]['samples']
           if all(labels.get(k) == w for k, w in want.items())]
    if len(got) != 1:
        die('%d samples of %s%r' % (len(got), name, want))
    return got[0]

def expect(what, ok):
    if not ok:
        die(what)
    print('ok: ' + what)

role = status['role']
expect('node_info role %s' % role, value('blockrelay_node_info', role=role) == 1)
for vol in status['volumes']:
    vl = dict(group=vol['group'], volume=vol['name'])
    expect('%s size' % vol['name'],
           value('blockrelay_volume_size_bytes', **vl) == vol['size'])
    expect('%s consistent' % vol['name'],
           value('blockrelay_volume_consistent', **vl) == int(vol['consistent']))
    expect('%s no disk errors' % vol['name'],
           value('blockrelay_disk_errors_total', **vl) == 0)
    for p in vol['peers']:
        pl = dict(group=vol['group'], peer=p['node'])
        states = [l['state'] for l, v in fams['blockrelay_peer_state']['samples']
                  if l['peer'] == p['node'] and v == 1]
        expect('peer %s state %s' % (p['node'], p['state']), states == [p['state']])
        conn = p['state'] in ('syncing', 'replicating', 'ahead')
        expect('peer %s connected %d' % (p['node'], conn),
               value('blockrelay_peer_connected', **pl) == int(conn))
        expect('dirty bytes %d' % p['dirty_bytes'],
               value('blockrelay_dirty_bytes', volume=vol['name'], **pl)
               == p['dirty_bytes'])
        expect('queue bytes %d' % p['queued_bytes'],
               value('blockrelay_queue_bytes', **pl) == p['queued_bytes'])
        expect('lag bytes %d' % p['lag_bytes'],
               value('blockrelay_lag_bytes', **pl) == p['lag_bytes'])
        expect('resync remaining %d' % p['resync_left_bytes'],
               value('blockrelay_resync_remaining_bytes', volume=vol['name'],
                     **pl) == p['resync_left_bytes'])
        expect('durable seq %d' % p['durable_seq'],
               value('blockrelay_peer_durable_seq', **pl) == p['durable_seq'])
        rep = value('blockrelay_replicated_bytes_total', **pl)
        expect('replicated bytes %d >= %d written' % (rep, int(sys.argv[4])),
               rep >= int(sys.argv[4]))
        expect('replicated writes > 0',
               value('blockrelay_replicated_writes_total', **pl) > 0)
        lost = value('blockrelay_errors_total', kind='connection_lost', **pl)
        expect('peer %s: connection_lost %d (%s)' % (p['node'], lost, mode),
               (lost >= 1) == (mode == 'down'))
        expect('no bad frames',
               value('blockrelay_errors_total', kind='bad_frame', **pl) == 0)
        if mode == 'up':
            expect('in sync: no lag', value('blockrelay_lag_seconds', **pl) == 0
                   and p['dirty_bytes'] == 0 and p['state'] == 'replicating')
        else:
            expect('down: dirty %d >= %d' % (p['dirty_bytes'], int(sys.argv[5])),
                   p['dirty_bytes'] >= int(sys.argv[5])
                   and value('blockrelay_lag_bytes', **pl) >= p['dirty_bytes']
                   and value('blockrelay_lag_seconds', **pl) >= 0)
ups = fams['blockrelay_upstream_received_bytes_total']['samples']
expect('%d upstream sessions' % len(status['upstream']),
       len(ups) == len(status['upstream']))
for u in status['upstream']:
    rx = value('blockrelay_upstream_received_bytes_total', group=u['group'],
               upstream=u['node'])
    expect('upstream %s received %d >= %d' % (u['node'], rx, int(sys.argv[4])),
           rx >= int(sys.argv[4]))
EOF

# check TEXT MODE WRITTEN [DIRTY] NODE: promcheck against NODE's status
# taken right after TEXT.
check() {
  "$BLOCKRELAY" status --config "$T/pair.yaml" --node "$5" --json \
    > "$T/status.json" || fail "status of $5"
  python3 "$T/promcheck.py" "$1" "$T/status.json" "$2" "$3" "$4" \
    > "$T/check.out" 2>&1 || { cat "$T/check.out" >&2; fail "$1 ($2): wrong"; }
  log "$1 ($2): $(grep -c '^ok' "$T/check.out") checks passed"
}

# wait_rewritten FILE NS: wait (10 s at most) until FILE has been
# rewritten twice after NS (nanoseconds since the epoch): the first
# rewrite may hold a snapshot taken before NS, the second cannot.
wait_rewritten() {
  local i n=0 since=$2 m
  for ((i = 0; i < 200; i++)); do
    m=$(stat -c %.9Y "$1" 2>/dev/null | tr -d .) || m=0
    if [ "$m" -gt "$since" ]; then
      n=$((n + 1))
      [ $n -eq 2 ] && return 0
      since=$m
    fi
    sleep 0.05          # polling the metrics file (interval 1s)
  done
  fail "$1 was not rewritten twice within 10 s"
}
now_ns() { date +%s%N; }

# ---- errors ----
expect_err() {        # expect_err RC PHRASE ARGS...: exit RC, PHRASE on stderr
  local want=$1 phrase=$2 rc=0
  shift 2
  "$BLOCKRELAY" "$@" >"$T/out" 2>"$T/err" || rc=$?
  [ $rc -eq "$want" ] || { cat "$T/err" >&2; fail "blockrelay $*: exit $rc, not $want"; }
  grep -qF -- "$phrase" "$T/err" || { cat "$T/err" >&2; fail "blockrelay $*: no '$phrase'"; }
  [ ! -s "$T/out" ] || fail "blockrelay $*: printed metrics anyway"
  log "ok: blockrelay $*: $(head -1 "$T/err")"
}
expect_err 1 "cannot reach $T/none.sock" metrics --socket "$T/none.sock"
expect_err 1 "answers for node 'b', not 'a'" metrics --socket "$T/b/control.sock" --node a
expect_err 2 "give --config and --node, or --socket" metrics
expect_err 1 "no node named 'zz'" metrics --config "$T/pair.yaml" --node zz
expect_err 2 "unexpected argument 'extra'" metrics "${C[@]}" extra

# ---- in sync after 8M ----
head -c 8M /dev/urandom > "$T/data.bin"
nbdcopy --flush "$T/data.bin" "$NBD_URI/vol0" || fail "nbdcopy"
wait_in_sync "$T/pair.yaml" a
t0=$(now_ns)
"$BLOCKRELAY" metrics "${C[@]}" > "$T/cli-up.prom" || fail "blockrelay metrics"
check "$T/cli-up.prom" up $((8 << 20)) 0 a
wait_rewritten "$T/a.prom" "$t0"
check "$T/a.prom" up $((8 << 20)) 0 a
wait_rewritten "$T/b.prom" "$t0"
check "$T/b.prom" replica $((8 << 20)) 0 b
grep -q '^blockrelay_node_info{node="b",role="replica"} 1$' "$T/b.prom" ||
  fail "b.prom does not say replica"

# ---- the replica stopped, 4M more written ----
stop_node b
head -c 4M /dev/urandom > "$T/more.bin"
nbdcopy --flush "$T/more.bin" "$NBD_URI/vol0" || fail "nbdcopy (down)"
"$BLOCKRELAY" status "${C[@]}" --wait logging --timeout 20 >/dev/null ||
  fail "the peer is not logging"
t0=$(now_ns)
"$BLOCKRELAY" metrics "${C[@]}" > "$T/cli-down.prom" || fail "blockrelay metrics"
check "$T/cli-down.prom" down $((8 << 20)) $((4 << 20)) a
wait_rewritten "$T/a.prom" "$t0"
check "$T/a.prom" down $((8 << 20)) $((4 << 20)) a
ls "$T"/a.prom.tmp.* "$T"/b.prom.tmp.* 2>/dev/null && fail "temporary files left"

# ---- a metrics-file that cannot be written: logged once, not fatal ----
sed "s|metrics-file: $T/b.prom|metrics-file: $T/nodir/b.prom|" "$T/pair.yaml" \
  > "$T/nodir.yaml"
start_replica "$T/nodir.yaml" b
wait_in_sync "$T/pair.yaml" a
for ((i = 0; i < 200; i++)); do
  grep -q "metrics-file $T/nodir/b.prom: cannot create" "$T/b.log" && break
  sleep 0.05            # polling the log for the first failure
done
# Two more intervals must fail quietly; a failed attempt leaves no trace
# to wait for, so this one waits by the clock.
sleep 2.5
[ "$(grep -c "metrics-file $T/nodir/b.prom" "$T/b.log")" -eq 1 ] ||
  fail "the failing metrics-file was not logged exactly once"
"$BLOCKRELAY" status --config "$T/pair.yaml" --node b >/dev/null ||
  fail "b stopped answering with a failing metrics-file"
mkdir "$T/nodir"
wait_for_file "$T/nodir/b.prom" "$PID_b" 10
for ((i = 0; i < 100; i++)); do
  grep -q "metrics-file $T/nodir/b.prom: written again" "$T/b.log" && break
  sleep 0.05            # polling the log (written just after the rename)
done
grep -q "metrics-file $T/nodir/b.prom: written again" "$T/b.log" ||
  fail "the recovery was not logged"
stop_node b
log "ok: a failing metrics-file is logged once, is not fatal, and recovers"

# ---- a clean stop writes the file once more ----
# (Removed first: an mtime would not do, file times are coarser than the
# clock.  The 1s timer may rewrite it before the stop, rarely; that makes
# this check weaker, never wrong.)
rm "$T/a.prom"
stop_node a
[ -s "$T/a.prom" ] || fail "a.prom was not written at the stop"
grep -q '^blockrelay_peer_state{node="a",group="vol0",peer="b",state="logging"} 1$' \
  "$T/a.prom" || fail "a.prom at the stop does not say logging"
log "ok: metrics consistent with status, up and down; file atomic and final"
