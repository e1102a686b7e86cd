#!/usr/bin/env bash
# One receiver's CPU per line (issue "Performance"): starts the distributed topology
# (deploy/local/run.sh: 1 Redis, 1 receiver, 1 outlet) from BINARIES_DIR, sends SECONDS of
# `drainmet-loadgen send` at max rate (16 keep-alive connections, 800-line bodies of the
# default template, SOURCES sources x 3 series, 30-s windows; no tenant rate limit and a
# per-flush series bound of 2,000,000, as measure.sh's rows: with the default 100,000 a
# flush that grows past it while Redis is slow is merged on the spot, and may drop points),
# and prints one logfmt line:
#   lines lines_per_s recv_cpu_s lines_per_recv_cpu_s p99_ms non2xx
# recv_cpu_s is the receiver's utime + stime (/proc/PID/stat) over the send. For paired
# runs, alternate two BINARIES_DIRs (docs/performance.md).
#
# usage: tests/load/receiver_cpu.sh BINARIES_DIR SOURCES [SECONDS]
# Exit status 0, or 2 for a usage error; every process it starts is stopped on exit.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
binaries=$(cd "$1" && pwd)
sources=$2
seconds=${3:-10}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
loadgen="$binaries/loadgen/drainmet-loadgen"
export DRAINMET_TOKEN=loadtest
dir=$(mktemp -d "${TMPDIR:-/tmp}/receiver_cpu.XXXXXX")
topo_pid=""
cleanup() {
  [ -n "$topo_pid" ] && kill -TERM "$topo_pid" 2>/dev/null && wait "$topo_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
"$root/deploy/local/run.sh" --dir "$dir/topo" --binaries "$binaries" --receivers 1 --outlets 1 \
  --tenant-points-per-second 0 --max-series-per-tenant 2000000 \
  >"$dir/topo.out" 2>"$dir/topo.err" &
topo_pid=$!
for _ in $(seq 60); do
  grep -q '^msg=ready' "$dir/topo.out" 2>/dev/null && break
  sleep 1
done
grep -q '^msg=ready' "$dir/topo.out" || { echo "topology not ready: $dir/topo.err" >&2; exit 1; }
url=$(grep -m1 -o ' url=http://[^ ]*' "$dir/topo.out" | cut -d= -f2)
pid=$(grep -m1 '^component=receiver' "$dir/topo.out" | grep -o ' pid=[0-9]*' | cut -d= -f2)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
before=$(cpu)
"$loadgen" send --url "$url" --token "$DRAINMET_TOKEN" --connections 16 --duration "$seconds" \
  --lines-per-body 800 --series "$sources" --resolution 30 --retry-503 --json >"$dir/send.json" 2>"$dir/send.err"
after=$(cpu)
python3 - "$dir/send.json" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
cpu = (float(sys.argv[3]) - float(sys.argv[2])) / float(sys.argv[4])
print(f"lines={d['lines']} lines_per_s={d['lines_per_s']:.0f} recv_cpu_s={cpu:.2f} "
      f"lines_per_recv_cpu_s={d['lines'] / cpu:.0f} p99_ms={d['latency_ms']['p99']} "
      f"non2xx={d['attempts'] - d['2xx']}")
PY
