#!/usr/bin/env bash
# Installs the Debian 12 packages drainmet builds and runs with (`bootstrap.sh run`), and
# those its test suite needs too (`bootstrap.sh test`, the default).
# Idempotent and fast when everything is present (one dpkg query, no apt call).
set -euo pipefail
mode=${1:-test}

PACKAGES=(
  # toolchain
  g++ cmake ninja-build pkg-config
  # libraries (DESIGN.md "Libraries"; spec/TOOLCHAIN.md)
  libboost-dev libboost-system-dev       # Asio + Beast: the HTTP server
  libcurl4-openssl-dev                   # Librato client
  libssl-dev                             # SHA-256 token hashes, random tokens
  prometheus-cpp-dev                     # /metrics
  libabsl-dev                            # Status, flat_hash_map, strings
  libfmt-dev                             # shortest round-trip number formatting
  nlohmann-json3-dev                     # JSON (stats, tests)
  libyaml-cpp-dev                        # config files (YAML and JSON)
  libcli11-dev                           # command-line flags
  protobuf-compiler libprotobuf-dev      # partial buckets on the wire (proto/drainmet/v1)
  libhiredis-dev                         # Redis store (distributed mode)
  zlib1g-dev                             # gzip drain bodies (log-shuttle)
  libgrpc++-dev protobuf-compiler-grpc grpc-proto  # config service (gRPC, grpc.health.v1)
  curl python3                           # README's quick start (curl, deploy/restamp.py)
)
if [ "$mode" = test ]; then
  # tests, benchmarks, format check; a private redis-server per integration test binary
  PACKAGES+=(libgtest-dev libgmock-dev libbenchmark-dev clang-format redis-server)
  # self-signed certificate pairs for the TLS tests (syslog over TLS)
  PACKAGES+=(openssl)
  # libFuzzer targets (tests/fuzz/run.sh): clang with its sanitizer and fuzzer runtimes,
  # llvm-symbolizer for readable crash reports
  PACKAGES+=(clang-14 libclang-rt-14-dev llvm-14)
  # offline checks of k8s/ and deploy/docker/ (tests/k8s/validate.sh; npm packages from its lock file)
  PACKAGES+=(yamllint)
  # Commands a machine may already have from elsewhere (a cloud SDK's kubectl, NodeSource's
  # node and npm, whose packages conflict with Debian's): Debian's package only when missing.
  for tool in kubectl:kubernetes-client node:nodejs npm:npm; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || PACKAGES+=("${tool#*:}")
  done
elif [ "$mode" != run ]; then
  echo "usage: deploy/bootstrap.sh [run|test]" >&2
  exit 2
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "bootstrap: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
