#!/usr/bin/env bash
# Build blockrelay into DIR (default build/) with extra cmake arguments.
#   scripts/build.sh [DIR] [-DBR_SANITIZE=address|thread] ...
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-build}
shift || true
case $dir in /*) ;; *) dir=$top/$dir ;; esac    # relative: to the top
cmake -S "$top" -B "$dir" -DBR_WERROR=ON "$@" >/dev/null
make -C "$dir" -j"$(nproc)" --no-print-directory
