#!/usr/bin/env bash
# Builds the libFuzzer targets (clang-14, ASan+UBSan) if needed and runs each for a bounded
# time, one after the other, at low priority (nice 19, one process each).
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 20 (CI); TARGET is a surface name (frame_reader rfc5424
# logfmt value extract config bucket; default: all). Environment: DRAINMET_FUZZ_BUILD_DIR
# (default <repo>/build-fuzz), CC/CXX (default clang-14/clang++-14), JOBS (ninja, default 2).
# Seeds are written from tests/fixtures (+ tests/fuzz/corpus/) into $BUILD/fuzz-seeds; what
# the fuzzer finds accumulates in $BUILD/fuzz-corpus/<target> across runs; logs go to
# $BUILD/fuzz-logs/<target>.log. Exits non-zero when any target crashes, leaks, hits UB or
# times out, naming the target and the reproducer (re-run: <binary> <reproducer>).
set -euo pipefail

seconds=${1:-20}
shift || true
case $seconds in '' | *[!0-9]*) echo "run.sh: SECONDS_PER_TARGET must be a number, got '$seconds'" >&2; exit 2 ;; esac
all_targets=(frame_reader rfc5424 logfmt value extract config bucket)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${DRAINMET_FUZZ_BUILD_DIR:-$repo/build-fuzz}
export CC=${CC:-clang-14} CXX=${CXX:-clang++-14}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDRAINMET_BUILD_FUZZERS=ON \
    -DDRAINMET_BUILD_TESTS=OFF -DDRAINMET_BUILD_BENCHMARKS=OFF
fi
ninja -C "$build" -j"${JOBS:-2}" drainmet_fuzzers

seeds=$build/fuzz-seeds
rm -rf "$seeds"
"$build/tests/fuzz/drainmet_fuzz_make_seeds" "$repo/tests/fixtures" "$repo/tests/fuzz/corpus" "$seeds"

# Longest input per surface: bodies a few frames long, one frame, one line, one value.
max_len() {
  case $1 in
    frame_reader | extract | config) echo 4096 ;;
    rfc5424 | logfmt | bucket) echo 2048 ;;
    value) echo 256 ;;
  esac
}

# Symbolised stack traces in crash reports (llvm-14 ships the symbolizer under this name).
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi

failed=0
printf '%-13s %12s %8s %14s %6s %7s\n' target executions exec/s corpus cov ft
for target in "${targets[@]}"; do
  binary=$build/tests/fuzz/drainmet_fuzz_$target
  [ -x "$binary" ] || { echo "run.sh: no fuzz target '$target' ($binary)" >&2; exit 2; }
  corpus=$build/fuzz-corpus/$target
  artifacts=$build/fuzz-artifacts/$target/
  log=$build/fuzz-logs/$target.log
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")" "$seeds/$target"
  status=0
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    nice -n 19 "$binary" "$corpus" "$seeds/$target" -max_total_time="$seconds" -max_len="$(max_len "$target")" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts" >"$log" 2>&1 || status=$?
  last=$(grep -E '^#[0-9]+' "$log" | tail -n1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(printf '%s' "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
  ft=$(printf '%s' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  corp=$(printf '%s' "$last" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
  printf '%-13s %12s %8s %14s %6s %7s\n' "$target" "${execs:-?}" "${rate:-?}" "${corp:-?}" "${cov:-?}" "${ft:-?}"
  if [ "$status" -ne 0 ]; then
    failed=1
    reproducer=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
    echo "FAIL: fuzz target $target exited $status; reproducer: ${reproducer:-none written}; log: $log" >&2
    grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|fuzz invariant broken' "$log" >&2 || true
    echo "  re-run: $binary ${reproducer:-<reproducer>}" >&2
  fi
done
exit $failed
