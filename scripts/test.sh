#!/usr/bin/env bash
# The whole test suite, as CI runs it (README command 2):
#   1. install what is missing (Debian packages),
#   2. build with -Wall -Wextra -Werror and run every unit and integration
#      test (ctest),
#   3. build with ASan+UBSan and run them all again,
#   4. build with TSan and run the threaded core's unit tests, and the
#      relay tests with TSan-built blockrelayd processes.
# Usage: scripts/test.sh [--quick]   (--quick: step 2 only)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
quick=false
[ "${1:-}" = --quick ] && quick=true

scripts/deps.sh
# Loop devices are used by the tests; make sure the module is there.
modprobe loop 2>/dev/null || true

run() {
  local dir=$1 label=$2; shift 2
  echo "=== $label"
  ctest --test-dir "$dir" --output-on-failure --timeout 900 "$@"
}

scripts/build.sh build
run build "default build: unit + integration"
$quick && exit 0

scripts/build.sh build-asan -DBR_SANITIZE=address
# The container test builds its own image from the sources, without
# sanitizers: the default build's run covers it.
run build-asan "ASan+UBSan build: unit + integration" -LE container

scripts/build.sh build-tsan -DBR_SANITIZE=thread
run build-tsan "TSan build: threaded core (unit)" -L unit
# The relay runs in blockrelayd (TSan-built); nbdkit is not instrumented, so
# the primary loads the default build's plugin.
BR_PLUGIN=$top/build/nbdkit-blockrelay-plugin.so \
  run build-tsan "TSan build: relays (integration)" \
  -R 'integration/(sync-chain|relay-resume|topo-chain|heartbeat|hello-hijack|tls)$'

# 5. The libFuzzer targets (clang), a minute each (scripts/fuzz.sh,
#    docs/fuzzing.md).
echo "=== fuzz"
scripts/fuzz.sh --time 60
