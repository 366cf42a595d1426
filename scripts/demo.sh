#!/usr/bin/env bash
# The main job (README command 1): a primary and a replica on sparse
# loopback files on 127.0.0.1, an ext4 filesystem made and mounted on the
# replicated volume through nbdfuse + a loop device, files written, then
# `blockrelay status` and proof that both copies are identical.
#
#   scripts/demo.sh [--keep]      (--keep: leave the work directory)
#
# Uses config/pair-sync.yaml as shipped; its data directories are created
# next to a copy of it in a fresh work directory.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
keep=false
[ "${1:-}" = --keep ] && keep=true

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "installing what is missing and building"
"$top/scripts/deps.sh"
"$top/scripts/build.sh" build
B=$top/build
modprobe loop 2>/dev/null || true

W=$(mktemp -d /tmp/blockrelay-demo.XXXXXX)
cp "$top/config/pair-sync.yaml" "$W/"
CFG=$W/pair-sync.yaml
NBD_PORT=$(for p in $(seq 10809 10899); do ss -Hltn "sport = :$p" | grep -q . || { echo $p; break; }; done)
loopdev= ; pids=()
cleanup() {
  set +e
  mountpoint -q "$W/fs" && umount "$W/fs"
  [ -n "$loopdev" ] && losetup -d "$loopdev"
  mountpoint -q "$W/nbd" && fusermount3 -u "$W/nbd"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  $keep || rm -rf "$W"
}
trap cleanup EXIT

say "checking the topology ($CFG)"
"$B/blockrelay" check-config "$CFG"

say "starting the replica (site-b) and the primary (site-a, nbdkit on port $NBD_PORT)"
"$B/blockrelayd" --config "$CFG" --node site-b --pidfile "$W/b.pid" 2>"$W/site-b.log" &
pids+=($!)
while [ ! -s "$W/b.pid" ]; do kill -0 "${pids[0]}" || { cat "$W/site-b.log"; exit 1; }; sleep 0.05; done
nbdkit -f -P "$W/a.pid" -p "$NBD_PORT" -i 127.0.0.1 "$B/nbdkit-blockrelay-plugin.so" \
  config="$CFG" node=site-a 2>"$W/site-a.log" &
pids+=($!)
while [ ! -s "$W/a.pid" ]; do kill -0 "${pids[1]}" || { cat "$W/site-a.log"; exit 1; }; sleep 0.05; done
"$B/blockrelay" status --config "$CFG" --node site-a --wait replicating --timeout 30

say "attaching the export with nbdfuse + a loop device, making ext4"
mkdir -p "$W/nbd" "$W/fs"
nbdfuse "$W/nbd/vol0" "nbd://127.0.0.1:$NBD_PORT/vol0" &
pids+=($!)
while [ ! -e "$W/nbd/vol0" ]; do kill -0 "${pids[2]}" || exit 1; sleep 0.05; done
loopdev=$(losetup --find --show "$W/nbd/vol0")
mkfs.ext4 -q -F "$loopdev"
mount "$loopdev" "$W/fs"

say "writing files"
cp -r /usr/share/doc/nbdkit "$W/fs/nbdkit-doc" 2>/dev/null || true
for i in $(seq 1 8); do head -c $((i * 1024 * 1024)) /dev/urandom > "$W/fs/file$i.bin"; done
(cd "$W/fs" && find . -type f -name '*.bin' | sort | xargs sha256sum) > "$W/sums"
df -h "$W/fs" | tail -1
umount "$W/fs"
losetup -d "$loopdev"; loopdev=
fusermount3 -u "$W/nbd"
wait "${pids[2]}" 2>/dev/null || true

say "blockrelay status (primary, then replica)"
"$B/blockrelay" status --config "$CFG" --node site-a --wait replicating --timeout 60
echo
"$B/blockrelay" status --config "$CFG" --node site-b

say "stopping both nodes"
kill "${pids[1]}"; wait "${pids[1]}" || true
kill "${pids[0]}"; wait "${pids[0]}" || true

say "comparing the copies"
ls -ls "$W/data/site-a/vol0.img" "$W/data/site-b/vol0.img"
cmp "$W/data/site-a/vol0.img" "$W/data/site-b/vol0.img"
sha256sum "$W/data/site-a/vol0.img" "$W/data/site-b/vol0.img"
e2fsck -fn "$W/data/site-b/vol0.img" >/dev/null && echo "e2fsck -fn on the replica: clean"
mount -o loop,ro "$W/data/site-b/vol0.img" "$W/fs"
(cd "$W/fs" && sha256sum -c --quiet "$W/sums") && echo "files on the replica: all checksums match"
umount "$W/fs"
say "replica identical to the primary"
if $keep; then echo "work directory kept: $W"; fi
