#!/usr/bin/env bash
# Install what blockrelay needs to build, run and test, from Debian 12's
# packages.  Installs only what is missing; safe to run again.
set -euo pipefail

PKGS=(
  # build
  build-essential cmake pkg-config
  libuv1-dev libyaml-dev libjansson-dev libsodium-dev libssl-dev libxxhash-dev libsystemd-dev
  nbdkit nbdkit-plugin-dev libnbd-dev check
  # run and test: NBD clients, filesystems, loop devices, namespaces
  libnbd-bin python3-libnbd qemu-utils fio fuse3 e2fsprogs util-linux iproute2 python3 python3-yaml
  # the kernel NBD client test: a VM under TCG with Debian's kernel
  qemu-system-x86 linux-image-amd64 busybox-static nbd-client cpio kmod xz-utils
  # packaging: man pages, systemd units, the container image
  perl groff-base man-db systemd podman runc debootstrap
  # fuzzing (scripts/fuzz.sh): clang and its libFuzzer runtime
  clang libclang-rt-14-dev
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
