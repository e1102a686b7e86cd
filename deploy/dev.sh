#!/usr/bin/env bash
# The README's two set-up commands:
#   deploy/dev.sh run    install what is missing, build, start `drainmet run` (embedded default)
#   deploy/dev.sh test   install what is missing, build, run the whole test suite
# Extra arguments after `run` go to `drainmet run` (e.g. --listen 127.0.0.1:9090).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cmd=${1:-}
shift || true

# Parallel build and test jobs: DRAINMET_JOBS, else one per core.
jobs=${DRAINMET_JOBS:-$(nproc 2>/dev/null || echo 2)}
case $jobs in '' | *[!0-9]* | 0) echo "dev.sh: DRAINMET_JOBS must be a positive number, got '$jobs'" >&2; exit 2 ;; esac
build() {  # build <dir> [cmake args...]
  local dir=$1; shift
  cmake -S "$root" -B "$dir" -G Ninja "$@" >/dev/null
  ninja -C "$dir" -j"$jobs"
}

case "$cmd" in
  run)
    # Build output goes to stderr: stdout carries the gauges (one JSON line per request body).
    deploy/bootstrap.sh run >&2
    build build-release -DCMAKE_BUILD_TYPE=Release -DDRAINMET_BUILD_TESTS=OFF >&2
    exec build-release/services/standalone/drainmet run "$@"
    ;;
  test)
    # Each stage builds its own tree (1.0-1.3 GB each; more without DRAINMET_COMPRESS_DEBUG).
    # On a disk with less than DRAINMET_PRUNE_BELOW_GB (default 20) GB free at the start, or
    # with DRAINMET_PRUNE_BUILDS=1, a stage's tree is removed once the stage has passed (its
    # test logs with it; a failing stage stops here and keeps its tree). DRAINMET_PRUNE_BUILDS=0
    # keeps every tree.
    free_gb=$(df -Pk "$root" | awk 'NR == 2 {print int($4 / 1048576)}')
    prune=${DRAINMET_PRUNE_BUILDS:-}
    if [ -z "$prune" ]; then
      prune=0
      [ "$free_gb" -lt "${DRAINMET_PRUNE_BELOW_GB:-20}" ] && prune=1
    fi
    echo "dev.sh: ${free_gb} GB free; passed stages' build trees are $([ "$prune" = 1 ] && echo removed || echo kept)"
    passed() { if [ "$prune" = 1 ]; then rm -rf "$@"; fi; }
    deploy/bootstrap.sh test
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    ctest --test-dir build --output-on-failure -j"$jobs" --timeout 300
    passed build
    if [ "${DRAINMET_SKIP_SANITIZERS:-0}" != "1" ]; then
      # ASan + UBSan build of the same suite (DEVELOPERS' rule: keep one in CI). Its libraries
      # are shared: linked statically, each of the 34 instrumented executables carried its own
      # ~145 MB copy of them (a 3.9 GB tree; 1.3 GB shared).
      build build-asan -DCMAKE_BUILD_TYPE=Debug -DDRAINMET_SANITIZE=ON -DDRAINMET_BUILD_BENCHMARKS=OFF \
        -DBUILD_SHARED_LIBS=ON -DCMAKE_POSITION_INDEPENDENT_CODE=ON
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 600 -LE 'benchmark|long'
      passed build-asan
    fi
    # libFuzzer targets (clang, ASan+UBSan), 20 s each (docs/reliability.md "Fuzzing")
    JOBS=$jobs tests/fuzz/run.sh 20
    passed build-fuzz
    # The Release build `run` makes (-O3 warns differently): it must build too.
    build build-release -DCMAKE_BUILD_TYPE=Release -DDRAINMET_BUILD_TESTS=OFF
    tests/check-format.sh
    # Kubernetes manifests and container files, offline (docs/operations.md "Kubernetes")
    tests/k8s/validate.sh
    ;;
  -h | --help | help)
    echo "usage: deploy/dev.sh run [drainmet run flags...] | deploy/dev.sh test"
    ;;
  *)
    echo "usage: deploy/dev.sh run [drainmet run flags...] | deploy/dev.sh test" >&2
    exit 2
    ;;
esac
