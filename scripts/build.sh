#!/usr/bin/env bash
# Build blockrelay into DIR (default build/) with extra cmake arguments.
#   scripts/build.sh [DIR] [-DBR_SANITIZE=address|thread] ...
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-build}
shift || true
cmake -S "$top" -B "$top/$dir" -DBR_WERROR=ON "$@" >/dev/null
make -C "$top/$dir" -j"$(nproc)" --no-print-directory
