#!/usr/bin/env bash
# The deployment examples in deploy/kubernetes and deploy/compose hold
# together, checked statically (no cluster, no container engine):
#
#  (a) every YAML file there parses (every document of it), with no
#      duplicate keys;
#  (b) Kubernetes: every ConfigMap, Secret and PersistentVolumeClaim that a
#      volume, envFrom or env valueFrom names is in the set (and so is the
#      key it names), every volumeMount names a volume of its pod template
#      (or a volumeClaimTemplate), every StatefulSet's serviceName is a
#      headless Service of the set that publishes not-ready addresses and
#      selects its pods, and kustomization.yaml lists exactly the other
#      YAML files of the directory.  Compose: named volumes, networks,
#      depends_on and bind-mounted files exist, and no `$` would be
#      interpolated from the host's environment;
#  (c) the topology in the ConfigMap and deploy/compose/blockrelay.yaml pass
#      `blockrelay check-config`; every container's config path and secret
#      file lie on a mount of that ConfigMap / Secret (or bind-mounted file);
#      every node of a topology is run by exactly one container (node names
#      from BLOCKRELAY_NODE, the pod name, the StatefulSet's ordinals or
#      the compose service), exactly one runs as primary, each replica's
#      address names its own pod's DNS name (or service name) and a port it
#      exposes, and data-dirs lie on persistent volumes;
#  (d) every container runs localhost/blockrelay with a role the entrypoint
#      knows (primary, replica; also health, check-config for init
#      containers and probes), unless it replaces the entrypoint to be an
#      NBD client: then the socket its nbd+unix URI names lies, at the same
#      place, on a volume the primary of its pod (compose project) shares
#      and serves its BLOCKRELAY_NBD_SOCKET on, and the export is a volume
#      of the topology.
#
# `kubectl kustomize` is run too when kubectl is installed.
. "$(dirname "$0")/lib.sh"

need python3
python3 -c 'import yaml' 2>/dev/null || skip "python3 has no PyYAML"
[ -x "$BLOCKRELAY" ] || fail "$BLOCKRELAY is not built"

DEPLOY=$SRCDIR/deploy
for d in kubernetes compose; do
  [ -d "$DEPLOY/$d" ] || fail "$DEPLOY/$d is missing"
done

python3 - "$DEPLOY" "$BLOCKRELAY" "$T" <<'PY' || fail "the deployment examples are inconsistent (see above)"
import base64, os, posixpath, re, shlex, subprocess, sys
import yaml

DEPLOY, BLOCKRELAY, TMP = sys.argv[1:4]
K8S = os.path.join(DEPLOY, "kubernetes")
COMPOSE = os.path.join(DEPLOY, "compose")
IMAGE = "localhost/blockrelay"
ENTRYPOINT = "/usr/local/bin/blockrelay-entrypoint"
ROLES = {"primary", "replica", "health", "check-config"}
SERVING = {"primary", "replica"}         # roles of a long-running container
DEFAULT_CONFIG = "/etc/blockrelay/blockrelay.yaml"
DEFAULT_SOCKET = "/run/blockrelay/nbd.sock"
UID = 10001

problems = []
def bad(where, msg):
    problems.append(f"{where}: {msg}")
def ok(msg):
    print(f"  ok: {msg}", file=sys.stderr)
def rel(path):
    return os.path.relpath(path, os.path.dirname(DEPLOY))

# ---------------------------------------------------------------- (a) parse
class Loader(yaml.SafeLoader):
    pass
def no_duplicates(loader, node, deep=False):
    seen = {}
    for k, _ in node.value:
        key = loader.construct_object(k, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line "
                f"{seen[key].line + 1})", k.start_mark)
        seen[key] = k.start_mark
    return yaml.SafeLoader.construct_mapping(loader, node, deep)
Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                       no_duplicates)

def load_all(path, text=None):
    try:
        if text is None:
            with open(path) as f:
                text = f.read()
        return [d for d in yaml.load_all(text, Loader=Loader) if d is not None]
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as e:
        bad(rel(path), "does not parse: " + " ".join(str(e).split()))
        return None

docs = {}
for top in (K8S, COMPOSE):
    for dirpath, dirnames, files in os.walk(top):
        dirnames.sort()
        for fn in sorted(files):
            if fn.endswith((".yaml", ".yml")):
                p = os.path.join(dirpath, fn)
                d = load_all(p)
                if d is not None:
                    docs[p] = d
                    if not d:
                        bad(rel(p), "holds no YAML document")
ok(f"{len(docs)} YAML files parse")

def check_config(where, text, name):
    """(c) check-config on a topology; returns the parsed topology."""
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([BLOCKRELAY, "check-config", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        bad(where, "blockrelay check-config refuses the topology: "
            + r.stderr.strip().replace(path, name))
        return None
    ok(f"{where}: check-config: {r.stdout.splitlines()[0].split(': ', 1)[1]}")
    topo = yaml.safe_load(text)
    topo["_nodes"] = {n["name"]: n for n in topo.get("nodes", [])}
    topo["_volumes"] = {v["name"] for v in topo.get("volumes", [])}
    topo["_runners"] = {}               # node -> [(where, role)]
    return topo

def under(path, root):
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root.rstrip("/") + "/")

def role_of(where, command, args, init=False):
    """The entrypoint's role, or None for a container that replaces the
    entrypoint (an application)."""
    command, args = list(command or []), list(args or [])
    if command:
        if posixpath.basename(str(command[0])) != "blockrelay-entrypoint":
            return None
        args = command[1:] + args
    if not args:
        bad(where, "runs the entrypoint without a role")
        return ""
    role = str(args[0])
    if role not in ROLES:
        bad(where, f"role '{role}' is not one the entrypoint knows "
            f"({', '.join(sorted(ROLES))})")
    elif not init and role not in SERVING:
        bad(where, f"role '{role}' exits at once: a container runs "
            "'primary' or 'replica' (use it in a probe or an init container)")
    return role

def image_ok(where, image):
    repo = re.sub(r"(@sha256:[0-9a-f]+|:[^/:]+)$", "", str(image or ""))
    if repo != IMAGE:
        bad(where, f"image '{image}' is not {IMAGE}:TAG")

URI_RE = re.compile(r"nbd\+unix://[^/\s'\"]*/([^?\s'\"]*)\?[^\s'\"]*?"
                    r"socket=(/[^&\s'\"]+)")
def nbd_uris(strings):
    """(export, socket) of every nbd+unix URI in STRINGS."""
    out = set()
    for s in strings:
        for m in URI_RE.finditer(str(s)):
            out.add((m.group(1), m.group(2)))
    return sorted(out)

def run_node(topo, where, node, role, nodes_hint):
    if topo is None:
        return None
    if node is None:
        bad(where, f"has no node name ({nodes_hint})")
        return None
    if node not in topo["_nodes"]:
        bad(where, f"runs node '{node}', which is not in the topology "
            f"(nodes: {', '.join(topo['_nodes'])})")
        return None
    topo["_runners"].setdefault(node, []).append((where, role))
    return topo["_nodes"][node]

def check_runners(where, topo):
    if topo is None:
        return
    for n in topo["_nodes"]:
        r = topo["_runners"].get(n, [])
        if not r:
            bad(where, f"node '{n}' of the topology is run by no container")
        elif len(r) > 1:
            bad(where, f"node '{n}' is run by {len(r)} containers: "
                + "; ".join(w for w, _ in r))
    prim = [(n, w) for n, rs in topo["_runners"].items() for w, ro in rs
            if ro == "primary"]
    if len(prim) != 1:
        bad(where, f"{len(prim)} containers run as primary, not 1"
            + "".join(("; " if i else ": ") + (w if n in w else f"{w} ({n})")
                      for i, (n, w) in enumerate(prim)))

def socket_shared(where, client_mount, served):
    """(d) the client's socket lies where a primary serves it; SERVED is
    [(where, volume, path in it, topology)]."""
    export, sock, vol, relp = client_mount
    if not served:
        bad(where, f"uses the NBD socket {sock} but no primary shares a "
            "volume with it")
        return
    if vol is None:
        bad(where, f"the NBD socket {sock} is on no volume it mounts, so "
            "no other container can have created it")
        return
    hits = [(w, t) for w, v, r, t in served if (v, r) == (vol, relp)]
    if not hits:
        bad(where, f"the NBD socket {sock} is '{relp}' on volume '{vol}', "
            "but the primary serves "
            + "; ".join(f"'{r}' on '{v}' ({w})" for w, v, r, _ in served))
        return
    topo = hits[0][1]
    if topo is not None and export not in topo["_volumes"]:
        bad(where, f"the NBD export '{export}' is not a volume of the "
            f"topology ({', '.join(sorted(topo['_volumes']))})")
        return
    ok(f"{where}: NBD socket {sock} (export {export}) is served by {hits[0][0]}")

# ---------------------------------------------------------- Kubernetes set
def check_kubernetes():
    objs = {}                           # (kind, name) -> (file, obj)
    for p, ds in docs.items():
        if not under(p, K8S) or os.path.basename(p) == "kustomization.yaml":
            continue
        for i, d in enumerate(ds):
            w = f"{rel(p)} document {i + 1}"
            if not isinstance(d, dict):
                bad(w, "is not a mapping")
                continue
            for k in ("apiVersion", "kind"):
                if not d.get(k):
                    bad(w, f"has no {k}")
            name = (d.get("metadata") or {}).get("name")
            if not name:
                bad(w, "has no metadata.name")
                continue
            key = (d.get("kind"), name)
            if key in objs:
                bad(w, f"{key[0]} '{name}' is also in {rel(objs[key][0])}")
            objs[key] = (p, d)
    def has(kind, name):
        return (kind, name) in objs
    def keys_of(kind, name):
        o = objs[(kind, name)][1]
        ks = set((o.get("data") or {}).keys())
        ks |= set((o.get("binaryData") or o.get("stringData") or {}).keys())
        return ks
    ok(f"kubernetes: {len(objs)} objects: "
       + ", ".join(f"{k}/{n}" for k, n in sorted(objs)))

    # kustomization.yaml: exactly the other YAML files of the directory.
    kp = os.path.join(K8S, "kustomization.yaml")
    if kp not in docs:
        bad(rel(K8S), "has no kustomization.yaml")
    else:
        k = docs[kp][0] if docs[kp] else {}
        res = [str(r) for r in (k.get("resources") or [])]
        for r in res:
            if not os.path.isfile(os.path.join(K8S, r)):
                bad(rel(kp), f"lists the resource '{r}', which does not exist")
        for fn in sorted(os.listdir(K8S)):
            if fn.endswith((".yaml", ".yml")) and fn != "kustomization.yaml" \
               and fn not in res:
                bad(rel(kp), f"does not list {fn}")
        ok(f"kustomization.yaml lists {', '.join(res)}")

    secrets = {}
    for (kind, name), (p, o) in objs.items():
        if kind == "Secret":
            vals = dict(o.get("stringData") or {})
            for key, v in (o.get("data") or {}).items():
                try:
                    vals[key] = base64.b64decode(str(v), validate=True).decode(
                        "latin-1")
                except ValueError:
                    bad(f"{rel(p)}: Secret {name}", f"data.{key} is not base64")
            secrets[name] = vals

    topos = {}                          # (configmap, key) -> topology
    def topology(cm, key):
        if (cm, key) not in topos:
            text = (objs[("ConfigMap", cm)][1].get("data") or {}).get(key)
            topos[(cm, key)] = None if text is None else check_config(
                f"ConfigMap {cm} key {key}", text, f"configmap-{cm}-{key}")
        return topos[(cm, key)]

    pods = []                           # (where, pod spec, names, owner obj)
    for (kind, name), (p, o) in sorted(objs.items()):
        spec = o.get("spec") or {}
        w = f"{rel(p)}: {kind} {name}"
        if kind == "Pod":
            pods.append((w, spec, [spec.get("hostname") or name], o, None))
        elif kind in ("StatefulSet", "Deployment", "DaemonSet", "ReplicaSet",
                      "Job"):
            t = spec.get("template") or {}
            names = [f"{name}-{i}" for i in range(int(spec.get("replicas", 1)))] \
                if kind == "StatefulSet" else []
            pods.append((w, t.get("spec") or {}, names, o, t))
            if kind == "StatefulSet":
                svc = spec.get("serviceName")
                if not svc or not has("Service", svc):
                    bad(w, f"serviceName '{svc}' is no Service of the set")
                else:
                    s = objs[("Service", svc)][1].get("spec") or {}
                    if s.get("clusterIP") != "None":
                        bad(w, f"Service {svc} is not headless (clusterIP: None)")
                    if s.get("publishNotReadyAddresses") is not True:
                        bad(w, f"Service {svc} lacks publishNotReadyAddresses: "
                            "true (a replica resolves its own name before it "
                            "is ready)")
                    labels = (t.get("metadata") or {}).get("labels") or {}
                    sel = s.get("selector") or {}
                    if not sel or any(labels.get(a) != b for a, b in sel.items()):
                        bad(w, f"Service {svc}'s selector {sel} does not "
                            f"select the pods (labels {labels})")
                sel = (spec.get("selector") or {}).get("matchLabels") or {}
                labels = (t.get("metadata") or {}).get("labels") or {}
                if any(labels.get(a) != b for a, b in sel.items()):
                    bad(w, "selector does not match the template's labels")

    for w, spec, podnames, owner, tmpl in pods:
        vols = {}
        for v in spec.get("volumes") or []:
            if v.get("name") in vols:
                bad(w, f"volume '{v.get('name')}' is declared twice")
            vols[v.get("name")] = v
        claims = {((c.get("metadata") or {}).get("name"))
                  for c in (owner.get("spec") or {}).get("volumeClaimTemplates") or []}
        sc = spec.get("securityContext") or {}
        # Volumes: what they name exists.
        for vn, v in vols.items():
            vw = f"{w}: volume {vn}"
            srcs = [v] + [s for s in ((v.get("projected") or {}).get("sources") or [])]
            for s in srcs:
                if "configMap" in s:
                    cm = s["configMap"].get("name")
                    if not has("ConfigMap", cm):
                        bad(vw, f"ConfigMap '{cm}' is not in the set")
                    else:
                        for it in s["configMap"].get("items") or []:
                            if it.get("key") not in keys_of("ConfigMap", cm):
                                bad(vw, f"ConfigMap '{cm}' has no key '{it.get('key')}'")
                if "secret" in s:
                    sn = s["secret"].get("secretName") or s["secret"].get("name")
                    if not has("Secret", sn):
                        bad(vw, f"Secret '{sn}' is not in the set")
                    else:
                        for it in s["secret"].get("items") or []:
                            if it.get("key") not in keys_of("Secret", sn):
                                bad(vw, f"Secret '{sn}' has no key '{it.get('key')}'")
            if "persistentVolumeClaim" in v:
                cn = v["persistentVolumeClaim"].get("claimName")
                if not has("PersistentVolumeClaim", cn):
                    bad(vw, f"PersistentVolumeClaim '{cn}' is not in the set")
            if "secret" in v:
                mode = v["secret"].get("defaultMode", 0o644)
                fsg = sc.get("fsGroup")
                if not isinstance(mode, int) or not (
                        mode & 0o004 or (mode & 0o040 and fsg == UID)):
                    bad(vw, f"uid {UID} cannot read the secret: defaultMode "
                        f"{oct(mode) if isinstance(mode, int) else mode!r} "
                        f"with the pod's fsGroup {fsg}")

        def resolve(c, path):
            """(volume name, path within it, mount) of PATH in container C."""
            best = None
            for m in c.get("volumeMounts") or []:
                mp = str(m.get("mountPath", ""))
                if under(path, mp) and (best is None or len(mp) > len(best[0])):
                    best = (mp, m)
            if best is None:
                return None, None, None
            mp, m = best
            r = path[len(mp.rstrip("/")):].lstrip("/")
            if m.get("subPath"):
                r = posixpath.join(m["subPath"], r) if r else m["subPath"]
            return m.get("name"), r, m
        def source_file(vn, r):
            """('ConfigMap'|'Secret', name, key) of file R of volume VN."""
            v = vols.get(vn) or {}
            for kind, field, namek in (("ConfigMap", "configMap", "name"),
                                       ("Secret", "secret", "secretName")):
                if field in v:
                    items = v[field].get("items")
                    key = r
                    if items:
                        key = next((it["key"] for it in items if it.get("path") == r), None)
                    return kind, v[field].get(namek), key
            return None, None, None

        served, clients = [], []        # socket mounts of primaries, clients
        for init, c in [(True, c) for c in spec.get("initContainers") or []] + \
                       [(False, c) for c in spec.get("containers") or []]:
            cw = f"{w}: container {c.get('name')}"
            image_ok(cw, c.get("image"))
            if c.get("imagePullPolicy") != "IfNotPresent":
                bad(cw, "imagePullPolicy is not IfNotPresent")
            # References from the environment and the mounts.
            for ef in c.get("envFrom") or []:
                for kind, f in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if f in ef and not has(kind, ef[f].get("name")) \
                       and not ef[f].get("optional"):
                        bad(cw, f"envFrom names {kind} '{ef[f].get('name')}', "
                            "which is not in the set")
            env = {}
            for e in c.get("env") or []:
                vf = e.get("valueFrom") or {}
                for kind, f in (("ConfigMap", "configMapKeyRef"),
                                ("Secret", "secretKeyRef")):
                    if f in vf and not vf[f].get("optional"):
                        n, key = vf[f].get("name"), vf[f].get("key")
                        if not has(kind, n):
                            bad(cw, f"env {e.get('name')} names {kind} '{n}', "
                                "which is not in the set")
                        elif key not in keys_of(kind, n):
                            bad(cw, f"env {e.get('name')}: {kind} '{n}' has no "
                                f"key '{key}'")
                if "value" in e:
                    env[e["name"]] = str(e["value"])
                elif (vf.get("fieldRef") or {}).get("fieldPath") == "metadata.name":
                    env[e["name"]] = "$(POD_NAME)"
            for m in c.get("volumeMounts") or []:
                mn = m.get("name")
                if mn not in vols and mn not in claims:
                    bad(cw, f"volumeMount '{mn}' names no volume of the pod "
                        f"(volumes: {', '.join(sorted(vols)) or 'none'}"
                        + (f"; claim templates: {', '.join(sorted(claims))}" if claims else "")
                        + ")")
                elif mn in vols and m.get("subPath"):
                    kind, n, key = source_file(mn, m["subPath"])
                    if kind and has(kind, n) and key not in keys_of(kind, n):
                        bad(cw, f"volumeMount '{mn}' subPath '{m['subPath']}' "
                            f"is no key of {kind} '{n}'")
            # Probes run the entrypoint with a role it knows.
            for pr in ("readinessProbe", "livenessProbe", "startupProbe"):
                ex = ((c.get(pr) or {}).get("exec") or {}).get("command")
                if ex:
                    role_of(f"{cw}: {pr}", ex, [], init=True)
            role = role_of(cw, c.get("command"), c.get("args"), init)
            if role is None:            # an application: an NBD client?
                strings = list(c.get("command") or []) + list(c.get("args") or []) \
                    + list(env.values())
                uris = nbd_uris(strings)
                if not uris:
                    bad(cw, f"replaces the entrypoint ({' '.join(map(str, c.get('command')))}) "
                        "and uses no nbd+unix URI: no role, and no client of the primary")
                for export, sock in uris:
                    vn, r, _ = resolve(c, sock)
                    if vn is not None and vn not in vols:
                        vn = None
                    clients.append((cw, (export, sock, vn, r)))
                continue
            if role not in SERVING:
                continue
            # A blockrelay node: its topology, node, secret, data, socket.
            cfg = env.get("BLOCKRELAY_CONFIG", DEFAULT_CONFIG)
            vn, r, _ = resolve(c, cfg)
            kind, cm, key = source_file(vn, r) if vn in vols else (None,) * 3
            if kind != "ConfigMap":
                bad(cw, f"its topology {cfg} is on no ConfigMap volume")
                topo = None
            elif not has("ConfigMap", cm) or key not in keys_of("ConfigMap", cm):
                topo = None             # reported with the volume
            else:
                topo = topology(cm, key)
            node = env.get("BLOCKRELAY_NODE")
            names = podnames if node in (None, "$(POD_NAME)") else [node]
            if not names:
                bad(cw, "node name cannot be known (set BLOCKRELAY_NODE)")
            for pn in names:
                n = run_node(topo, cw if len(names) == 1 else f"{cw} ({pn})",
                             pn, role, "set BLOCKRELAY_NODE")
                if n is None:
                    continue
                # Its data-dir is on a persistent volume.
                dvn, _, _ = resolve(c, n["data-dir"])
                if dvn is None:
                    bad(cw, f"node {pn}: data-dir {n['data-dir']} is on no volume")
                elif dvn not in claims and "persistentVolumeClaim" not in vols.get(dvn, {}):
                    bad(cw, f"node {pn}: data-dir {n['data-dir']} is on volume "
                        f"'{dvn}', which is not persistent")
                # A replica listens on its own pod's name and a port it exposes.
                if role == "replica":
                    host, _, port = n["address"].rpartition(":")
                    svc = (owner.get("spec") or {}).get("serviceName")
                    want = f"{pn}.{svc}" if svc else pn
                    if host != want and not host.startswith(want + "."):
                        bad(cw, f"node {pn}: address {n['address']} is not its "
                            f"pod's DNS name ({want}[.NAMESPACE.svc.cluster.local])")
                    cports = {str(p.get("containerPort")) for p in c.get("ports") or []}
                    if port not in cports:
                        bad(cw, f"node {pn}: port {port} is not a containerPort")
                    if svc and has("Service", svc):
                        sports = {str(p.get("port")) for p in
                                  (objs[("Service", svc)][1].get("spec") or {}).get("ports") or []}
                        if port not in sports:
                            bad(cw, f"node {pn}: port {port} is not a port of Service {svc}")
            # The secret file is the Secret's key.
            sf = ((topo or {}).get("settings") or {}).get("secret-file")
            if topo is not None and sf:
                svn, sr, _ = resolve(c, sf)
                kind, sn, key = source_file(svn, sr) if svn in vols else (None,) * 3
                if kind != "Secret":
                    bad(cw, f"the secret-file {sf} is on no Secret volume")
                elif sn in secrets and key not in secrets[sn]:
                    bad(cw, f"the secret-file {sf} is key '{key}', which "
                        f"Secret {sn} lacks")
                elif sn in secrets and len(secrets[sn][key].rstrip("\r\n")) < 16:
                    bad(cw, f"Secret {sn} key {key} is shorter than 16 bytes")
            if role == "primary" and env.get("BLOCKRELAY_NBD_PORT"):
                bad(cw, "sets BLOCKRELAY_NBD_PORT: it then serves TCP and "
                    "no unix socket")
            elif role == "primary":
                sock = env.get("BLOCKRELAY_NBD_SOCKET", DEFAULT_SOCKET)
                vn, r, m = resolve(c, sock)
                if vn is None or vn not in vols:
                    bad(cw, f"serves NBD on {sock}, which is on no volume of "
                        "the pod: no other container can reach it")
                else:
                    if m.get("readOnly"):
                        bad(cw, f"the volume '{vn}' of its socket is mounted read-only")
                    served.append((cw, vn, r, topo))
        for cw, cm in clients:
            socket_shared(cw, cm, served)
    for (cm, key), topo in topos.items():
        check_runners(f"ConfigMap {cm} key {key}", topo)
    if not topos:
        bad(rel(K8S), "no container reads a topology from a ConfigMap")

# ---------------------------------------------------------------- compose
def check_compose():
    cp = next((os.path.join(COMPOSE, f) for f in
               ("compose.yaml", "compose.yml", "docker-compose.yaml")
               if os.path.join(COMPOSE, f) in docs), None)
    if cp is None:
        bad(rel(COMPOSE), "has no compose.yaml (or it does not parse)")
        return
    c = docs[cp][0]
    W = rel(cp)
    with open(cp) as f:
        for i, line in enumerate(f, 1):
            if "$" in line.split("#", 1)[0].replace("$$", "") \
               and not line.lstrip().startswith("#"):
                bad(f"{W}:{i}", "a single '$' is interpolated by compose from "
                    "the host's environment; write '$$' for the shell")
    services = c.get("services") or {}
    named = set((c.get("volumes") or {}).keys())
    nets = set((c.get("networks") or {}).keys())
    topos = {}
    served, clients = [], []
    def mounts_of(s):
        out = []                        # (source, target, readonly, kind)
        for v in s.get("volumes") or []:
            if isinstance(v, str):
                parts = v.split(":")
                if len(parts) == 1:
                    out.append((None, parts[0], False, "anonymous"))
                    continue
                src, tgt = parts[0], parts[1]
                ro = len(parts) > 2 and "ro" in parts[2].split(",")
            else:
                src, tgt, ro = v.get("source"), v.get("target"), bool(v.get("read_only"))
            kind = "bind" if src and (src.startswith((".", "/", "~"))) else \
                "volume" if src else "anonymous"
            out.append((src, tgt, ro, kind))
        return out
    def resolve(ms, path):
        best = None
        for m in ms:
            if under(path, m[1]) and (best is None or len(m[1]) > len(best[1])):
                best = m
        if best is None:
            return None, None
        return best, path[len(best[1].rstrip("/")):].lstrip("/")
    def envdict(s):
        e = s.get("environment") or {}
        if isinstance(e, list):
            e = dict(x.split("=", 1) if "=" in x else (x, "") for x in e)
        return {k: str(v) for k, v in e.items()}
    for name, s in services.items():
        sw = f"{W}: service {name}"
        image_ok(sw, s.get("image"))
        ms = mounts_of(s)
        for src, tgt, ro, kind in ms:
            if kind == "volume" and src not in named:
                bad(sw, f"named volume '{src}' is not declared under volumes:")
            if kind == "bind" and not os.path.exists(os.path.join(COMPOSE, src)):
                bad(sw, f"bind-mounted '{src}' does not exist in {rel(COMPOSE)}")
        sn = s.get("networks") or []
        for n in (sn if isinstance(sn, list) else sn.keys()):
            if n not in nets:
                bad(sw, f"network '{n}' is not declared under networks:")
        dep = s.get("depends_on") or []
        for d in (dep if isinstance(dep, list) else dep.keys()):
            if d not in services:
                bad(sw, f"depends_on '{d}', which is no service")
        for ef in ([s["env_file"]] if isinstance(s.get("env_file"), str)
                   else s.get("env_file") or []):
            if not os.path.exists(os.path.join(COMPOSE, str(ef))):
                bad(sw, f"env_file '{ef}' does not exist")
        hc = (s.get("healthcheck") or {}).get("test")
        if isinstance(hc, list) and hc and hc[0] in ("CMD", "CMD-SHELL"):
            hc = hc[1:] if hc[0] == "CMD" else shlex.split(hc[1])
            role_of(f"{sw}: healthcheck", hc, [], init=True)
        ep, cmd = s.get("entrypoint"), s.get("command")
        ep = shlex.split(ep) if isinstance(ep, str) else ep
        cmd = shlex.split(cmd) if isinstance(cmd, str) else cmd
        env = envdict(s)
        role = role_of(sw, ep, cmd)
        if role is None:
            uris = nbd_uris(list(ep or []) + list(cmd or []) + list(env.values()))
            if not uris:
                bad(sw, "replaces the entrypoint and uses no nbd+unix URI")
            for export, sock in uris:
                m, r = resolve(ms, sock)
                vol = m[0] if m and m[3] == "volume" else None
                clients.append((sw, (export, sock, vol, r)))
            continue
        if role not in SERVING:
            continue
        cfg = env.get("BLOCKRELAY_CONFIG", DEFAULT_CONFIG)
        m, r = resolve(ms, cfg)
        topo = None
        if m is None or m[3] != "bind" or r:
            bad(sw, f"its topology {cfg} is no bind-mounted file")
        else:
            f = os.path.normpath(os.path.join(COMPOSE, m[0]))
            if f not in topos and os.path.isfile(f):
                with open(f) as fh:
                    topos[f] = check_config(rel(f), fh.read(),
                                            "compose-" + os.path.basename(f))
            topo = topos.get(f)
        node = env.get("BLOCKRELAY_NODE") or s.get("hostname")
        n = run_node(topo, sw, node, role,
                     "set BLOCKRELAY_NODE or hostname: the default host name "
                     "is the container's id")
        if n is not None:
            dm, _ = resolve(ms, n["data-dir"])
            if dm is None or dm[3] == "anonymous":
                bad(sw, f"data-dir {n['data-dir']} is on no named volume or bind mount")
            host, _, port = n["address"].rpartition(":")
            if role == "replica":
                if s.get("network_mode") == "host":
                    if host not in ("127.0.0.1", "localhost", "[::1]", "::1"):
                        bad(sw, f"address {n['address']}: with host networking "
                            "use the host's own address")
                else:
                    aliases = {name}
                    for nn, nv in (sn.items() if isinstance(sn, dict) else []):
                        aliases |= set((nv or {}).get("aliases") or [])
                    if s.get("container_name"):
                        aliases.add(s["container_name"])
                    if host not in aliases:
                        bad(sw, f"address {n['address']} is not a name other "
                            f"containers resolve ({', '.join(sorted(aliases))})")
            sf = ((topo or {}).get("settings") or {}).get("secret-file")
            if sf:
                sm, sr = resolve(ms, sf)
                if sm is None or sm[3] != "bind" or sr:
                    bad(sw, f"secret-file {sf} is no bind-mounted file")
                else:
                    sp = os.path.join(COMPOSE, sm[0])
                    if os.path.isfile(sp):
                        with open(sp, "rb") as fh:
                            if len(fh.read().rstrip(b"\r\n")) < 16:
                                bad(sw, f"the secret {sm[0]} is shorter than 16 bytes")
        if role == "primary" and env.get("BLOCKRELAY_NBD_PORT"):
            bad(sw, "sets BLOCKRELAY_NBD_PORT: it then serves TCP and no "
                "unix socket")
        elif role == "primary":
            sock = env.get("BLOCKRELAY_NBD_SOCKET", DEFAULT_SOCKET)
            m, r = resolve(ms, sock)
            if m is None or m[3] != "volume":
                bad(sw, f"serves NBD on {sock}, which is on no named volume: "
                    "no other container can reach it")
            else:
                if m[2]:
                    bad(sw, f"the volume '{m[0]}' of its socket is mounted read-only")
                served.append((sw, m[0], r, topo))
    for sw, cm in clients:
        socket_shared(sw, cm, served)
    for f, topo in topos.items():
        check_runners(rel(f), topo)
    if not topos:
        bad(W, "no service reads a topology file")

check_kubernetes()
check_compose()
if problems:
    print(f"{len(problems)} problem(s) in {rel(DEPLOY)}:", file=sys.stderr)
    for p in problems:
        print(f"  PROBLEM: {p}", file=sys.stderr)
    sys.exit(1)
PY
log "ok: the manifests are consistent"

if command -v kubectl >/dev/null 2>&1; then
  kubectl kustomize "$DEPLOY/kubernetes" > "$T/kustomized.yaml" 2>"$T/kustomize.err" ||
    { cat "$T/kustomize.err" >&2; fail "kubectl kustomize $DEPLOY/kubernetes fails"; }
  log "ok: kubectl kustomize builds $(grep -c '^kind:' "$T/kustomized.yaml") objects"
else
  log "kubectl is not installed: kustomize build not tried"
fi
log "ok"
