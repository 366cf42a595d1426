#!/usr/bin/env bash
# Run the libFuzzer targets (fuzz/, docs/fuzzing.md).
#
#   scripts/fuzz.sh [--time SECONDS] [TARGET...]
#
# TARGETs are frame, config and control (default: all three), each run for
# SECONDS (default 60) with one job, one after the other.  The build is
# build-fuzz/ (BR_FUZZ_BUILD overrides), configured with clang and
# -DBR_FUZZ=ON if it is not yet, and brought up to date.
#
# Each target runs over a scratch copy of fuzz/corpus/TARGET (what it
# finds there is thrown away: the committed corpus only grows by hand) and
# reads fuzz/regressions/TARGET too.  One line per target says how it
# went; a crash, a leak, a sanitizer report or a timeout prints the path of
# the input that caused it (kept under build-fuzz/artifacts/) and of the
# log, and the script exits 1 once every target has run.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

usage() {
  echo "usage: $0 [--time SECONDS] [frame|config|control]..." >&2
  exit 2
}

time=60
while [ $# -gt 0 ]; do
  case $1 in
    --time) [ $# -ge 2 ] || usage; time=$2; shift 2 ;;
    --time=*) time=${1#--time=}; shift ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) break ;;
  esac
done
case $time in ''|*[!0-9]*) usage ;; esac
[ "$time" -gt 0 ] || usage
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame config control)
for t in "${targets[@]}"; do
  case $t in frame|config|control) ;; *) echo "$0: unknown target '$t'" >&2; usage ;; esac
done

# The longest input worth trying, per target: two handshakes and some
# stream; a topology far beyond any real one; a request past REQUEST_MAX.
max_len() {
  case $1 in frame) echo 40000 ;; config) echo 16384 ;; control) echo 8192 ;; esac
}

build=${BR_FUZZ_BUILD:-$top/build-fuzz}
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=${CC:-clang}
  cmake -S "$top" -B "$build" -DCMAKE_C_COMPILER="$CC" -DBR_FUZZ=ON >/dev/null
fi
make -C "$build" -j"$(nproc)" --no-print-directory \
  $(printf 'fuzz-%s ' "${targets[@]}") >/dev/null

scratch=$(mktemp -d "${TMPDIR:-/tmp}/blockrelay-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
artifacts=$build/artifacts
mkdir -p "$artifacts"

failed=0
for t in "${targets[@]}"; do
  corpus=$scratch/$t
  log=$build/fuzz-$t.log
  mkdir -p "$corpus"
  cp "$top/fuzz/corpus/$t/." "$corpus/" -R
  seeds=$(find "$corpus" -type f | wc -l)
  rc=0
  # -timeout: one input taking longer is a hang.  The outer timeout only
  # guards against libFuzzer itself not stopping.
  (cd "$corpus" && timeout $((time + 300)) "$build/fuzz-$t" \
     -max_total_time="$time" -max_len="$(max_len "$t")" -timeout=25 \
     -rss_limit_mb=2048 -print_final_stats=1 \
     -artifact_prefix="$artifacts/$t-" \
     "$corpus" "$top/fuzz/regressions/$t") >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
  found=$(find "$corpus" -type f | wc -l)
  if [ $rc -eq 0 ]; then
    echo "fuzz $t: ok: ${time}s, ${runs:-?} runs (${speed:-?}/s), cov ${cov:-?}, corpus $seeds -> $found (not kept)"
  else
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    what=$(grep -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)[^(]*|runtime error: .*|Assertion .* failed' "$log" || true)
    echo "fuzz $t: FAILED (exit $rc): ${what:-see the log}; input: ${crash:-none written}; log: $log"
    failed=1
  fi
done
exit $failed
