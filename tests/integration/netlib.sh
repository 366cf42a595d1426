# Network-namespace topologies for the multi-node tests (sourced after
# lib.sh and faultlib.sh): test-topo-star, test-topo-chain, test-topo-mesh,
# test-rate-cap, test-group-order.
#
# Every node of a topology file runs in a network namespace of its own;
# every link of the file is a veth pair between the two nodes' namespaces.
# A node's address (a /32 on its `lo`) is routed only over the veths of its
# own links, so a node can reach its direct neighbours and nobody else:
# in a chain a - b - c, a cannot connect to c, and cutting b - c leaves
# a - b working.  The control sockets and pidfiles are files under $T, so
# `blockrelay status --config CFG --node N` runs from the host namespace.
#
# API
#
#   topo_up SRC_YAML OUT_YAML [SETTINGS...]
#       Read SRC_YAML (e.g. config/chain.yaml) with /usr/bin/python3 + yaml
#       and build the network: one namespace per node (NS_<node>, named
#       br<pid>-<node>; deleted at exit), one veth pair per link (a /30 out
#       of a 10.R.S.0/24 picked at random per run), host routes.  Writes
#       OUT_YAML: the same volumes, links and settings, each node's address
#       replaced by its namespace address (10.R.S.201, .202, ... in the
#       order of the nodes; the port is kept), its data-dir by $T/<node>
#       (a `control:` key is dropped: the socket is $T/<node>/control.sock).
#       Each SETTINGS argument is one or more YAML "key: value" lines merged
#       into settings:, e.g. topo_up f out "heartbeat: 200ms" \
#       "heartbeat-timeout: 1s" "reconnect-max: 500ms".  Skips the test
#       (exit 77) when not root, or ip, python3-yaml or namespaces are
#       missing.  Node names must be shell identifiers ([A-Za-z0-9_], as
#       lib.sh's PID_<node> requires).
#       With TOPO_VOLUME_SIZE set (e.g. 64M), every volume gets that size.
#       Sets: TOPO_CFG (OUT_YAML), TOPO_NODES (array, file order),
#       NS_<node>, TOPO_ADDR[node] (its address), TOPO_PORT[node],
#       TOPO_IF[x,y] (the interface in x's namespace that leads to y).
#   topo_set_link CFG X Y KEY VALUE
#       Set (or with VALUE "-" remove) a key of the X-Y link in CFG, e.g.
#       topo_set_link "$CFG" b c rate 80M.  Before the nodes start.
#   topo_edit CFG PYTHON...
#       Run python statements on CFG's document (bound to `doc`) and write
#       it back, e.g. topo_edit "$CFG" \
#       'doc["volumes"].append({"name": "vol1", "size": "32M"})'.
#   link_cut X Y / link_restore X Y
#       The X-Y veth pair down (both ends) / up again with its routes.
#       Only that link: the other links of X and Y keep working.
#   ns_exec NODE CMD...
#       Run CMD in NODE's namespace (e.g. an NBD client of the primary).
#   ns_start_replica CFG NODE
#       blockrelayd --config CFG --node NODE in NODE's namespace; returns
#       once its pidfile ($T/NODE.pid) is written.  Sets PID_<node>; logs
#       to $T/<node>.log.  `ip netns exec` execs, so PID_<node> is the
#       daemon: lib.sh's stop_node and faultlib.sh's kill9 work on it.
#   ns_start_primary CFG NODE
#       nbdkit -f with the plugin in NODE's namespace, serving on
#       127.0.0.1:10809 there (with the ASan runtime preloaded under an
#       ASan build, as lib.sh does); returns once nbdkit's pidfile is
#       written (the peers may still be connecting: use topo_wait_in_sync).
#       Sets PID_<node> and NBD_URI_NS=nbd://127.0.0.1:10809 (reachable
#       only inside NODE's namespace: ns_exec NODE fio ... / WRITER_NETNS).
#   topo_wait_in_sync CFG NODE...
#       lib.sh's wait_in_sync for each NODE in the order given: the primary
#       first, then the relays in hop order (a relay's own peers are its
#       children in the tree).  A leaf with no peers is in sync at once.
#       Timeout per node: $TOPO_SYNC_TIMEOUT (default 60 s).
#   topo_check_flow CFG NODE ROLE "PEER:MODE..." "UPSTREAM..." "DOWNSTREAM..."
#       NODE's status (blockrelay status --json, saved as $T/NODE.json)
#       says: role ROLE (primary|replica); exactly these peers with these
#       modes, e.g. "b:sync c:async" ("" for none); exactly these upstream
#       nodes; and every group's "downstream" is exactly DOWNSTREAM.
#       Fails the test with the JSON otherwise.
#   topo_stop NODE...
#       lib.sh's stop_node for each NODE (SIGTERM, wait, nonzero = fail);
#       with no NODE, every node of the topology, in file order.
#   topo_same VOLUME REF NODE...
#       $T/<node>/VOLUME.img of each NODE is identical to REF's.

declare -a TOPO_NODES=()
declare -A TOPO_ADDR=() TOPO_PORT=() TOPO_IF=() TOPO_GW=()
TOPO_CFG=
NETLIB_PY=/usr/bin/python3

# topo_ns NODE: the node's namespace name (fails when there is none).
topo_ns() {
  local v="NS_$1"
  [ -n "${!v:-}" ] || fail "node $1 has no network namespace (topo_up?)"
  echo "${!v}"
}

topo_up() {
  local src=$1 out=$2 plan ns n i x y gwx gwy
  shift 2
  [ "$(id -u)" -eq 0 ] || skip "needs root for ip netns"
  command -v ip >/dev/null 2>&1 || skip "ip (iproute2) is not installed"
  "$NETLIB_PY" -c 'import yaml' 2>/dev/null ||
    skip "python3-yaml is not installed"
  [ -r "$src" ] || fail "topo_up: cannot read $src"
  plan=$("$NETLIB_PY" - "$src" "$out" "$T" "$$" "$(rand 1 254)" \
    "$(rand 0 254)" "$@" <<'PYEOF'
import os, re, sys, yaml

src, out, tdir, pid, r, s = sys.argv[1:7]
extra = sys.argv[7:]
with open(src) as f:
    doc = yaml.safe_load(f)
if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
    sys.exit("%s: no nodes: list" % src)
nodes = doc["nodes"]
links = doc.get("links") or []
if len(nodes) > 54 or len(links) > 50:
    sys.exit("%s: too many nodes or links for one /24" % src)
names = []
for k, n in enumerate(nodes):
    name = str(n["name"])
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        sys.exit("%s: node name %r is not a shell identifier" % (src, name))
    port = str(n["address"]).rsplit(":", 1)[1]
    addr = "10.%s.%s.%d" % (r, s, 201 + k)
    n["address"] = "%s:%s" % (addr, port)
    n["data-dir"] = "%s/%s" % (tdir, name)
    n.pop("control", None)
    names.append(name)
    print("TOPO_NODES+=(%s)" % name)
    print("TOPO_ADDR[%s]=%s" % (name, addr))
    print("TOPO_PORT[%s]=%s" % (name, port))
    print("NS_%s=br%s-%s" % (name, pid, name))
for i, l in enumerate(links):
    x, y = [str(v) for v in l["between"]]
    if x not in names or y not in names:
        sys.exit("%s: link %s-%s names an unknown node" % (src, x, y))
    def ifname(to):
        return "to-" + to if len(to) <= 12 else "l%d" % i
    base = "10.%s.%s." % (r, s)
    print("TOPO_IF[%s,%s]=%s" % (x, y, ifname(y)))
    print("TOPO_IF[%s,%s]=%s" % (y, x, ifname(x)))
    # the /30's two ends: x's and y's; each is the other's gateway
    print("TOPO_GW[%s,%s]=%s%d" % (x, y, base, 4 * i + 2))
    print("TOPO_GW[%s,%s]=%s%d" % (y, x, base, 4 * i + 1))
vsize = os.environ.get("TOPO_VOLUME_SIZE")
if vsize:
    for v in doc.get("volumes") or []:
        v["size"] = vsize
settings = doc.get("settings") or {}
for e in extra:
    m = yaml.safe_load(e)
    if not isinstance(m, dict):
        sys.exit("topo_up: settings argument %r is not key: value" % e)
    settings.update(m)
if settings:
    doc["settings"] = settings
with open(out, "w") as f:
    f.write("# generated by netlib.sh topo_up from %s\n" % src)
    yaml.safe_dump(doc, f, sort_keys=False, default_flow_style=None)
PYEOF
  ) || fail "topo_up: cannot read the topology $src"
  eval "$plan"
  TOPO_CFG=$out

  # Namespaces, each with lo up and the node's address on lo.
  for n in "${TOPO_NODES[@]}"; do
    ns=$(topo_ns "$n")
    ip netns add "$ns" 2>/dev/null ||
      skip "cannot create network namespaces (ip netns add $ns)"
    on_exit "ip netns del $ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "${TOPO_ADDR[$n]}/32" dev lo
  done
  # One veth pair per link: a /30 (x is .1 of it, y .2), both ends up.
  for i in "${!TOPO_IF[@]}"; do
    x=${i%%,*}
    y=${i#*,}
    [[ "$x" < "$y" ]] || continue          # each pair once
    ip -n "$(topo_ns "$x")" link add "${TOPO_IF[$x,$y]}" type veth \
      peer name "${TOPO_IF[$y,$x]}" netns "$(topo_ns "$y")"
    gwx=${TOPO_GW[$y,$x]}                  # x's end of the /30
    gwy=${TOPO_GW[$x,$y]}                  # y's end
    ip -n "$(topo_ns "$x")" addr add "$gwx/30" dev "${TOPO_IF[$x,$y]}"
    ip -n "$(topo_ns "$y")" addr add "$gwy/30" dev "${TOPO_IF[$y,$x]}"
    topo_link_set_up "$x" "$y"
  done
  "$BLOCKRELAY" check-config "$out" >/dev/null ||
    fail "check-config refused $out: $("$BLOCKRELAY" check-config "$out" 2>&1)"
  log "topology $(basename "$src"): ${#TOPO_NODES[@]} nodes in namespaces" \
    "br$$-*, addresses ${TOPO_ADDR[${TOPO_NODES[0]}]%.*}.201..."
}

# Both ends of the x-y veth up and each end's host route to the other
# node's address (taking a link down removes the routes through it).
topo_link_set_up() {
  local x=$1 y=$2 nsx nsy
  nsx=$(topo_ns "$x")
  nsy=$(topo_ns "$y")
  ip -n "$nsx" link set "${TOPO_IF[$x,$y]}" up
  ip -n "$nsy" link set "${TOPO_IF[$y,$x]}" up
  ip -n "$nsx" route replace "${TOPO_ADDR[$y]}/32" via "${TOPO_GW[$x,$y]}" \
    dev "${TOPO_IF[$x,$y]}" src "${TOPO_ADDR[$x]}"
  ip -n "$nsy" route replace "${TOPO_ADDR[$x]}/32" via "${TOPO_GW[$y,$x]}" \
    dev "${TOPO_IF[$y,$x]}" src "${TOPO_ADDR[$y]}"
}

topo_set_link() {
  local cfg=$1 x=$2 y=$3 key=$4 value=$5
  "$NETLIB_PY" - "$cfg" "$x" "$y" "$key" "$value" <<'PYEOF' ||
import sys, yaml
cfg, x, y, key, value = sys.argv[1:6]
with open(cfg) as f:
    doc = yaml.safe_load(f)
for l in doc.get("links") or []:
    if sorted(str(v) for v in l["between"]) == sorted([x, y]):
        if value == "-":
            l.pop(key, None)
        else:
            l[key] = value
        break
else:
    sys.exit("%s: no link %s-%s" % (cfg, x, y))
with open(cfg, "w") as f:
    f.write("# generated by netlib.sh (link %s-%s: %s %s)\n" % (x, y, key, value))
    yaml.safe_dump(doc, f, sort_keys=False, default_flow_style=None)
PYEOF
    fail "topo_set_link $*: failed"
  "$BLOCKRELAY" check-config "$cfg" >/dev/null ||
    fail "check-config refused $cfg: $("$BLOCKRELAY" check-config "$cfg" 2>&1)"
}

topo_edit() {
  local cfg=$1
  shift
  "$NETLIB_PY" - "$cfg" "$*" <<'PYEOF' || fail "topo_edit $cfg: $* failed"
import sys, yaml
cfg, code = sys.argv[1:3]
with open(cfg) as f:
    doc = yaml.safe_load(f)
exec(code, {"doc": doc})
with open(cfg, "w") as f:
    f.write("# generated by netlib.sh (edited: %s)\n" % code.replace("\n", " "))
    yaml.safe_dump(doc, f, sort_keys=False, default_flow_style=None)
PYEOF
  "$BLOCKRELAY" check-config "$cfg" >/dev/null ||
    fail "check-config refused $cfg: $("$BLOCKRELAY" check-config "$cfg" 2>&1)"
}

link_cut() {
  local x=$1 y=$2
  [ -n "${TOPO_IF[$x,$y]:-}" ] || fail "link_cut: no link $x-$y"
  ip -n "$(topo_ns "$x")" link set "${TOPO_IF[$x,$y]}" down
  ip -n "$(topo_ns "$y")" link set "${TOPO_IF[$y,$x]}" down
}

link_restore() {
  local x=$1 y=$2
  [ -n "${TOPO_IF[$x,$y]:-}" ] || fail "link_restore: no link $x-$y"
  topo_link_set_up "$x" "$y"
}

ns_exec() {
  local ns
  ns=$(topo_ns "$1")
  shift
  ip netns exec "$ns" "$@"
}

ns_start_replica() {
  local cfg=$1 node=$2 ns pid
  ns=$(topo_ns "$node")
  rm -f "$T/$node.pid"
  ip netns exec "$ns" "$BLOCKRELAYD" --config "$cfg" --node "$node" \
    --pidfile "$T/$node.pid" ${BR_DEBUG:+--debug "$BR_DEBUG"} \
    >>"$T/$node.log" 2>&1 &
  pid=$!
  BR_PIDS+=("$pid")
  printf -v "PID_$node" %s "$pid"
  wait_for_file "$T/$node.pid" "$pid"
}

ns_start_primary() {
  local cfg=$1 node=$2 ns pid
  ns=$(topo_ns "$node")
  rm -f "$T/$node.pid"
  ip netns exec "$ns" env $(asan_env) nbdkit -f -P "$T/$node.pid" \
    -p 10809 -i 127.0.0.1 ${NBDKIT_DEBUG:-} "$PLUGIN" config="$cfg" \
    node="$node" >>"$T/$node.log" 2>&1 &
  pid=$!
  BR_PIDS+=("$pid")
  printf -v "PID_$node" %s "$pid"
  wait_for_file "$T/$node.pid" "$pid"
  NBD_URI_NS="nbd://127.0.0.1:10809"
}

topo_wait_in_sync() {
  local cfg=$1 n
  shift
  for n in "$@"; do
    wait_in_sync "$cfg" "$n" "${TOPO_SYNC_TIMEOUT:-60}"
  done
}

topo_check_flow() {
  local cfg=$1 node=$2
  "$BLOCKRELAY" status --config "$cfg" --node "$node" --json \
    > "$T/$node.json" || fail "no status from $node"
  "$NETLIB_PY" - "$T/$node.json" "${@:2}" <<'PYEOF' ||
import json, sys
st = json.load(open(sys.argv[1]))
node, role, peers, up, down = sys.argv[2:7]
want = dict(p.split(":") for p in peers.split())
err = []
if st.get("role") != role:
    err.append("role %s, wanted %s" % (st.get("role"), role))
for v in st["volumes"]:
    have = {p["node"]: p["mode"] for p in v["peers"]}
    if have != want:
        err.append("volume %s: peers %r, wanted %r" % (v["name"], have, want))
ups = sorted(set(u["node"] for u in st.get("upstream", [])))
if ups != sorted(up.split()):
    err.append("upstream %r, wanted %r" % (ups, up.split()))
groups = st.get("groups")
if groups is None:
    err.append("no \"groups\" in the status")
else:
    for g in groups:
        if sorted(g.get("downstream", [])) != sorted(down.split()):
            err.append("group %s: downstream %r, wanted %r"
                       % (g.get("name"), g.get("downstream"), down.split()))
if err:
    print("%s: %s" % (node, "; ".join(err)), file=sys.stderr)
    print(json.dumps(st, indent=1), file=sys.stderr)
    sys.exit(1)
PYEOF
    fail "$node: not the expected flow (status above)"
}

topo_stop() {
  local n
  [ $# -gt 0 ] || set -- "${TOPO_NODES[@]}"
  for n in "$@"; do
    stop_node "$n"
  done
}

topo_same() {
  local vol=$1 ref=$2 n
  shift 2
  for n in "$@"; do
    same_images "$T/$ref/$vol.img" "$T/$n/$vol.img"
  done
}

# ns_fio_start NODE TAG [fio options]: in the background (FIO_PID), one fio
# run on NODE's export vol0 (the primary's, in its namespace): random
# writes of 4K..64K over the volume, then a read-back pass verifying every
# block's crc32c; output in $T/fio-TAG.out.  Extra options (e.g. --rate=,12m
# or --io_size=96M) are appended.
ns_fio_start() {
  local node=$1 tag=$2 ns
  shift 2
  eval "ns=\$NS_$node"
  (cd "$T" && exec ip netns exec "$ns" fio --name="$tag" --ioengine=nbd \
    --uri="$NBD_URI_NS/vol0" --rw=randwrite --bsrange=4k-64k --iodepth=8 \
    --size=64M --io_size=64M --verify=crc32c --do_verify=1 \
    --verify_state_save=0 --randseed=$RANDOM --output="$T/fio-$tag.out" "$@") &
  FIO_PID=$!
  BR_PIDS+=("$FIO_PID")
}

# ns_fio_wait TAG: wait for ns_fio_start's run; fails unless it exited 0,
# reported no error and its verification pass ran.
ns_fio_wait() {
  local tag=$1 rc=0
  wait_exit "$FIO_PID" 120 fio || rc=$?
  [ $rc -eq 0 ] || { cat "$T/fio-$tag.out" >&2; fail "fio ($tag) failed"; }
  grep -q "err= 0" "$T/fio-$tag.out" ||
    { cat "$T/fio-$tag.out" >&2; fail "fio ($tag) reported an error"; }
  grep -q "read:" "$T/fio-$tag.out" ||
    { cat "$T/fio-$tag.out" >&2; fail "fio's ($tag) verification did not run"; }
}
