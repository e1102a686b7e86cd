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

jobs=$(nproc 2>/dev/null || echo 2)
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
    deploy/bootstrap.sh test
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    ctest --test-dir build --output-on-failure -j"$jobs" --timeout 300
    if [ "${DRAINMET_SKIP_SANITIZERS:-0}" != "1" ]; then
      # ASan + UBSan build of the same suite (DEVELOPERS' rule: keep one in CI).
      build build-asan -DCMAKE_BUILD_TYPE=Debug -DDRAINMET_SANITIZE=ON -DDRAINMET_BUILD_BENCHMARKS=OFF
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 600 -LE 'benchmark|long'
    fi
    # libFuzzer targets (clang, ASan+UBSan), 20 s each (docs/reliability.md "Fuzzing")
    tests/fuzz/run.sh 20
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
