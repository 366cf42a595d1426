#!/usr/bin/env bash
# The container image, built and run here with no registry:
#  1. a Debian bookworm base made by debootstrap --variant=minbase and
#     imported into a private podman store, tagged as both bases the
#     Containerfile names (debian:bookworm, debian:bookworm-slim);
#  2. the image built from deploy/container/Containerfile (--network=host
#     for apt): the build stage compiles and `cmake --install`s, the runtime
#     stage gets only the runtime libraries;
#  3. a replica container (role replica) and a primary container (role
#     primary: nbdkit loads the plugin by its short name from the plugindir
#     the install put it in) on the host network, with an authenticated
#     sync link, each as the unprivileged user 10001; the image's
#     healthcheck says healthy once each answers;
#  4. a third container, with no network at all, writes through the
#     primary's NBD unix socket on a shared volume (nbdcopy);
#  5. both stopped with SIGTERM (exit status 0, clean shutdown), then the
#     two images on the host are byte-identical and hold what was written.
# Everything lives in this test's directory: a private containers.conf and
# storage (runc, cgroupfs; crun fails on this host's cgroup layout), reset
# and removed at the end with the containers and images.
# BR_DEBIAN_MIRROR overrides the mirror debootstrap uses.
. "$(dirname "$0")/lib.sh"
need podman runc debootstrap nbdcopy
[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, podman's rootful store)"

MIRROR=${BR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
IMAGE=localhost/blockrelay:test-$$
P=$T/podman
mkdir -p "$P"
cat > "$P/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
cat > "$P/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$P/storage"
runroot = "$P/run"
CONF
export CONTAINERS_CONF=$P/containers.conf CONTAINERS_STORAGE_CONF=$P/storage.conf
on_exit "podman rm -a -f -t 0; podman system reset --force; rm -rf '$P'"

# ---- 1. the base image ----
t0=$SECONDS
debootstrap --variant=minbase bookworm "$T/rootfs" "$MIRROR" >"$T/debootstrap.log" 2>&1 ||
  { tail -20 "$T/debootstrap.log" >&2; fail "debootstrap failed"; }
tar -C "$T/rootfs" --exclude='./var/cache/apt/archives/*.deb' -c . |
  podman import - docker.io/library/debian:bookworm >"$T/import.log" 2>&1 ||
  { cat "$T/import.log" >&2; fail "podman import failed"; }
rm -rf "$T/rootfs"
podman tag docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim
log "ok: base image in $((SECONDS - t0)) s"

# ---- 2. the image ----
t0=$SECONDS
podman build --network=host --format docker -f "$SRCDIR/deploy/container/Containerfile" \
  -t "$IMAGE" "$SRCDIR" >"$T/build.log" 2>&1 ||
  { tail -40 "$T/build.log" >&2; fail "podman build failed"; }
log "ok: image built in $((SECONDS - t0)) s"
# The runtime stage has no compiler and no headers.
podman run --rm --entrypoint sh "$IMAGE" -c \
  'command -v cc gcc cmake; ls /usr/include/uv.h 2>/dev/null; true' >"$T/devtools.txt"
[ -s "$T/devtools.txt" ] && fail "build tools in the runtime image: $(cat "$T/devtools.txt")"
[ "$(podman run --rm --entrypoint id "$IMAGE" -u)" = 10001 ] || fail "the image does not run as uid 10001"
rc=0
podman run --rm "$IMAGE" no-such-role >/dev/null 2>"$T/role.err" || rc=$?
[ $rc -eq 2 ] && grep -q "unknown role 'no-such-role'" "$T/role.err" ||
  fail "an unknown role: exit $rc, $(cat "$T/role.err")"

# ---- 3. replica and primary containers ----
PA=$(free_port); PB=$(free_port)
while [ "$PB" = "$PA" ]; do PB=$(free_port); done
mkdir -p "$T/etc" "$T/data-a" "$T/data-b" "$T/sock" "$T/src"
head -c 32 /dev/urandom | base64 > "$T/etc/secret"
cat > "$T/etc/blockrelay.yaml" <<CONF
settings: {secret-file: /etc/blockrelay/secret, reconnect-max: 500ms}
volumes:
  - {name: vol0, size: 64M}
nodes:
  - {name: site-a, address: 127.0.0.1:$PA, data-dir: /var/lib/blockrelay/site-a}
  - {name: site-b, address: 127.0.0.1:$PB, data-dir: /var/lib/blockrelay/site-b}
links:
  - {between: [site-a, site-b], mode: sync}
CONF
chown -R 10001:10001 "$T/etc" "$T/data-a" "$T/data-b" "$T/sock"
chmod 0400 "$T/etc/secret"
chmod 0755 "$T/src"
podman run --rm -v "$T/etc:/etc/blockrelay:ro" "$IMAGE" check-config >"$T/check.log" 2>&1 ||
  { cat "$T/check.log" >&2; fail "check-config in the image refused the topology"; }

# healthy NAME: the image's healthcheck passes (polling it: it is the
# control-socket query the image offers as readiness).  The containers run
# with --health-interval=disable: podman's timers need systemd, and
# `podman healthcheck run` runs the image's check on demand.
healthy() {
  local i
  for ((i = 0; i < 300; i++)); do
    podman healthcheck run "$1" >/dev/null 2>&1 && return 0
    [ "$(podman inspect -f '{{.State.Running}}' "$1")" = true ] ||
      { podman logs "$1" >&2; fail "container $1 exited"; }
    sleep 0.1
  done
  podman logs "$1" >&2
  fail "container $1 never became healthy"
}

podman run -d --name br-site-b --network=host --health-interval=disable -e BLOCKRELAY_NODE=site-b \
  -v "$T/etc:/etc/blockrelay:ro" -v "$T/data-b:/var/lib/blockrelay" \
  "$IMAGE" replica >/dev/null
healthy br-site-b
podman run -d --name br-site-a --network=host --health-interval=disable -e BLOCKRELAY_NODE=site-a \
  -v "$T/etc:/etc/blockrelay:ro" -v "$T/data-a:/var/lib/blockrelay" \
  -v "$T/sock:/run/blockrelay" "$IMAGE" primary >/dev/null
healthy br-site-a
podman exec br-site-a blockrelay-entrypoint blockrelay status \
  --config /etc/blockrelay/blockrelay.yaml --node site-a --wait replicating \
  --timeout 60 >/dev/null || { podman logs br-site-a >&2; fail "the primary never replicated"; }
for c in br-site-a br-site-b; do
  users=$(podman top "$c" huser | tail -n +2 | sort -u)
  [ "$users" = 10001 ] || fail "$c runs as '$users', not 10001"
done
[ -S "$T/sock/nbd.sock" ] || fail "no NBD socket on the shared volume"
log "ok: replica and primary healthy, replicating, as uid 10001"

# ---- 4. a client container writes through the socket ----
head -c 24M /dev/urandom > "$T/src/data.bin"
chmod 0644 "$T/src/data.bin"
podman run --rm --network=none -v "$T/sock:/run/blockrelay" -v "$T/src:/src:ro" \
  --entrypoint nbdcopy "$IMAGE" --flush /src/data.bin \
  'nbd+unix:///vol0?socket=/run/blockrelay/nbd.sock' >"$T/nbdcopy.log" 2>&1 ||
  { cat "$T/nbdcopy.log" >&2; fail "nbdcopy from the client container failed"; }
podman exec br-site-a blockrelay-entrypoint blockrelay status \
  --config /etc/blockrelay/blockrelay.yaml --node site-a --wait replicating \
  --timeout 60 >/dev/null || fail "the primary did not get in sync"
podman exec br-site-a blockrelay-entrypoint blockrelay status \
  --config /etc/blockrelay/blockrelay.yaml --node site-a >&2

# ---- 5. stop, compare ----
podman stop -t 60 br-site-a br-site-b >/dev/null
for c in br-site-a br-site-b; do
  rc=$(podman inspect -f '{{.State.ExitCode}}' "$c")
  [ "$rc" = 0 ] || { podman logs "$c" >&2; fail "$c exited with status $rc"; }
done
same_images "$T/data-a/site-a/vol0.img" "$T/data-b/site-b/vol0.img"
cmp -n $((24 << 20)) "$T/src/data.bin" "$T/data-b/site-b/vol0.img" ||
  fail "the replica lacks what the client wrote"
log "ok: containers stopped cleanly; copies identical"
