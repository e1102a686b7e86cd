#!/usr/bin/env bash
# Outlet throughput on one window (issue "Performance"): fills window W of the real
# distributed topology (deploy/local/run.sh: 1 Redis, 1 receiver, 1 outlet) with SERIES
# sources x 3 metrics through drainmet-loadgen send, lets the outlet post it to
# drainmet-loadgen sink (the fake Librato API), and times the emission from the sink's
# side. Prints one logfmt line:
#
#   buckets          buckets in the window(s) (the series of the send record x windows)
#   gauges requests  what the sink received (gauges, POSTs)
#   close_to_last_post_s  last window's close (end + grace) -> the sink holds its last gauge
#   close_to_seal_s       last window's close -> the outlet sealed its last shard of it: the
#                         time drainmet_outlet_windows_sealed_total (the outlet's /metrics,
#                         polled 20 times a second, so +-0.05 s) reached its final value
#                         (close + ReceiverWriteAllowance, 3 s, without receivers' watermarks)
#   seal_to_last_post_s   same from that seal
#   seal_to_first_post_s  first window's seal (as above, its first shard) -> the first post:
#                         the outlet's pick-up delay (read, merge, build)
#   sealed_by_watermark sealed_by_allowance  windows x shards sealed by each rule
#   buckets_per_s    buckets / (last post - first post of the run)
#   outlet_cpu_s     outlet user+system CPU from 1 s before the first close to the end of
#                    the watch (the last post + ~2 s of idle passes)
#   buckets_per_outlet_cpu_s
#   sink_cpu_s       the fake API's CPU over the same span (it shares the machine's cores):
#                    receiving and storing the bodies only
#   sink_account_cpu_s  the sink's CPU afterwards, parsing and accounting the bodies (/stats)
#   check            the sink's /check against the send record: ok | failed
#
# The first and last posts are the sink's own arrival times of the first and last POST
# (GET /arrivals, which parses nothing); the watch polls /arrivals 20 times a second
# (one keep-alive curl) until the request count has not moved for 2 s past the last seal
# (or past close + allowance when the seal was not seen).
#
# usage: tests/load/outlet_window.sh BINARIES_DIR SERIES RESOLUTION [WINDOWS]
#   BINARIES_DIR  a build tree's services dir (e.g. build-release/services)
#   SERIES        sources of the one tenant; 3 metrics each (measure, sample, count)
#   RESOLUTION    seconds per window
#   WINDOWS       consecutive windows filled (default 1; > 1 checks that the outlet keeps up:
#                 zero loss, and the last window's close -> last post)
# environment: GRACE_SECONDS (default 5), SHARDS (64), OUTLET_THREADS (the outlet's
#   --threads, default 4), RATE (lines/s of the fill; default max for one window, two passes
#   over the ring per window for several), KEEP_DIR=1 keeps the work dir.
# Exit status 0 when the check is ok, 1 otherwise, 2 for a usage error. Every process it
# starts is stopped on exit (SIGTERM, then SIGKILL after a timeout).
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[ $# -ge 3 ] && [ $# -le 4 ] || usage
binaries=$(cd "$1" && pwd)
series=$2
resolution=$3
windows=${4:-1}
[[ $series =~ ^[0-9]+$ && $series -ge 1 ]] || usage
[[ $resolution =~ ^[0-9]+$ && $resolution -ge 1 ]] || usage
[[ $windows =~ ^[0-9]+$ && $windows -ge 1 ]] || usage
grace=${GRACE_SECONDS:-5}
shards=${SHARDS:-64}
allowance=3 # config::ReceiverWriteAllowance: flush_interval_ms 1000 + command_timeout_ms 2000

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
loadgen="$binaries/loadgen/drainmet-loadgen"
[ -x "$loadgen" ] || {
  echo "outlet_window.sh: $loadgen not found (ninja drainmet-loadgen)" >&2
  exit 2
}
dir=$(mktemp -d "${TMPDIR:-/tmp}/outlet-window.XXXXXX")

log() { printf 'ts=%s component=outlet_window %s\n' "$(date -u +%H:%M:%S.%N)" "$*" >&2; }

# --- cleanup: every process started here, by pid ----------------------------------
sink_pid=""
topo_pid=""
poll_pid=""
seal_poll_pid=""
stop_pid() { # stop_pid PID TIMEOUT_S [GROUP]: with GROUP, the process group PID (setsid)
  local pid=$1 deadline=$((SECONDS + $2)) target=$1
  [ -n "$pid" ] || return 0
  [ -n "${3:-}" ] && target="-$pid"
  kill -TERM -- "$target" 2>/dev/null || return 0
  while kill -0 -- "$target" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  kill -KILL -- "$target" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  stop_pid "$poll_pid" 5 group
  stop_pid "$seal_poll_pid" 5 group
  stop_pid "$topo_pid" 90 # run.sh stops receiver, outlet, config and Redis in order
  stop_pid "$sink_pid" 10
  if [ "${KEEP_DIR:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
    log "msg=\"work dir kept\" dir=$dir"
  else
    rm -rf "$dir"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- sink and topology -------------------------------------------------------------
"$loadgen" sink --threads 2 --expect "$dir/record.json" >"$dir/sink.out" 2>"$dir/sink.log" &
sink_pid=$!
for _ in $(seq 100); do
  grep -q 'listening port=' "$dir/sink.out" 2>/dev/null && break
  sleep 0.05
done
sink_port=$(grep -oE 'port=[0-9]+' "$dir/sink.out" | cut -d= -f2)
[ -n "$sink_port" ] || {
  log "level=error msg=\"sink did not start\""
  exit 1
}
stats_url="http://127.0.0.1:$sink_port/stats"
arrivals_url="http://127.0.0.1:$sink_port/arrivals"

"$root/deploy/local/run.sh" --dir "$dir/topo" --binaries "$binaries" --receivers 1 --outlets 1 \
  --outlet-threads "${OUTLET_THREADS:-4}" --grace-seconds "$grace" --shards "$shards" \
  --librato-url "http://127.0.0.1:$sink_port/v1/metrics" >"$dir/topo.out" 2>"$dir/topo.log" &
topo_pid=$!
for _ in $(seq 600); do
  grep -q '^msg=ready' "$dir/topo.out" 2>/dev/null && break
  kill -0 "$topo_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q '^msg=ready' "$dir/topo.out" || {
  log "level=error msg=\"topology did not start\" log=$dir/topo.log"
  exit 1
}
outlet_pid=$(grep '^component=outlet' "$dir/topo.out" | grep -oE ' pid=[0-9]+' | cut -d= -f2)
outlet_metrics=$(grep '^component=outlet' "$dir/topo.out" | grep -oE ' metrics_url=[^ ]+' | cut -d= -f2)
drain_url=$(grep '^component=receiver' "$dir/topo.out" | grep -oE ' url=[^ ]+' | cut -d= -f2)
token=$(grep '^msg=ready' "$dir/topo.out" | grep -oE ' token=[^ ]+' | cut -d= -f2)

# --- fill windows W .. W+windows-1 ---------------------------------------------------
now() { printf '%s' "$EPOCHREALTIME"; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
sleep_until() { # sleep_until UNIX_SECONDS (fractional)
  local d
  d=$(fsub "$1" "$(now)")
  awk -v d="$d" 'BEGIN { exit !(d > 0) }' && sleep "$d"
  return 0
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

ring=$(((series + 799) / 800))
[ "$ring" -ge 64 ] || ring=64
t=$(now)
w=$(((${t%.*} / resolution + 1) * resolution))
# At least half a second before the sender starts (at W+1).
if awk -v d="$(fsub "$((w + 1))" "$t")" 'BEGIN { exit !(d < 0.5) }'; then w=$((w + resolution)); fi
# A template body stamped second S holds lines spread over [S-1, S): the requests must start
# in seconds W+1 .. W+n*R. The sender renders its bodies (~0.5 s) before its first request:
# it starts at W+1 and stops starting requests half a second before W+n*R+1.
duration=$(awk -v r="$resolution" -v n="$windows" 'BEGIN { printf "%.2f", r * n - 0.5 }')
rate=max
# Several windows: a steady rate of two passes over the ring per window, as a drain would.
[ "$windows" -gt 1 ] && rate=$((2 * ring * 800 / resolution))
# RATE=N: lines/s for every run (at max rate the records a bucket gets, one a flush that
# saw its series, grow with the machine's speed; a fixed rate makes runs comparable).
[ -n "${RATE:-}" ] && rate=$RATE
sleep_until "$((w + 1))"
log "msg=filling window=$w windows=$windows series=$series resolution=$resolution rate=$rate"
"$loadgen" send --url "$drain_url" --token "$token" --connections 16 --series "$series" \
  --resolution "$resolution" --ring "$ring" --duration "$duration" --rate "$rate" --retry-503 \
  --record "$dir/record.json" >"$dir/send.out" 2>"$dir/send.log"
sent_end=$(now)
last_window=$((w + (windows - 1) * resolution))
first_close=$((w + resolution + grace))
close=$((last_window + resolution + grace))
seal=$((close + allowance))
awk -v a="$sent_end" -v c="$first_close" 'BEGIN { exit !(a < c) }' ||
  log "level=warn msg=\"filling ran past the first close: late points\""

# --- watch the sink and the outlet's seals -----------------------------------------
# Receivers' watermarks may seal a window right after its close: start before it.
sleep_until "$(fsub "$first_close" 1)"
cpu_before=$(cpu_ticks "$outlet_pid")
sink_cpu_before=$(cpu_ticks "$sink_pid")
polls=$(((seal - first_close + 60) * 20))
# One line per poll of the outlet's /metrics: time, windows sealed by watermark, by allowance.
# shellcheck disable=SC2016
setsid bash -c 'curl -sN --rate 20/s -w "\n@@end\n" "$1?[1-$2]" 2>/dev/null |
  while IFS= read -r line; do
    case $line in
      "drainmet_outlet_windows_sealed_total{by=\"watermark\"}"*) wm=${line##* } ;;
      "drainmet_outlet_windows_sealed_total{by=\"allowance\"}"*) al=${line##* } ;;
      @@end) printf "%s %s %s\n" "$EPOCHREALTIME" "${wm:-0}" "${al:-0}"; wm=0; al=0 ;;
    esac
  done' seal_poller "$outlet_metrics" "$polls" >"$dir/seals" &
seal_poll_pid=$!
# In its own process group (setsid: same pid, not a group leader here), so that stopping
# it stops curl and the reader too.
# shellcheck disable=SC2016
setsid bash -c 'curl -sN --rate 20/s -w "\n" "$1?[1-$2]" 2>/dev/null |
  while IFS= read -r line; do
    r=${line#*\"requests\":}
    f=${line#*\"first_post_unix_s\":}
    l=${line#*\"last_post_unix_s\":}
    printf "%s %s %s %s\n" "$EPOCHREALTIME" "${r%%[,\}]*}" "${f%%[,\}]*}" "${l%%[,\}]*}"
  done' poller "$arrivals_url" "$polls" >"$dir/polls" &
poll_pid=$!
# Done when the request count has not moved for 2 s, past the last seal.
last_change=""
last_requests=-1
deadline=$((SECONDS + seal - first_close + 60))
seal_seen() { # the time the sealed count reached its final value (so far), or nothing
  awk '{ n = $2 + $3; if (n != last) { last = n; t = $1 } } END { if (last > 0) print t }' "$dir/seals" 2>/dev/null
}
while [ "$SECONDS" -lt "$deadline" ]; do
  sleep 0.2
  line=$(tail -n 1 "$dir/polls" 2>/dev/null || true)
  [ -n "$line" ] || continue
  read -r ts requests _ <<<"$line"
  if [ "$requests" != "$last_requests" ]; then
    last_requests=$requests
    last_change=$ts
  fi
  # The last seal seen (or close + allowance) + 1 s, and 2 s without a new request.
  seen=$(seal_seen)
  bound=$seal
  [ -n "$seen" ] && awk -v a="$seen" -v c="$close" 'BEGIN { exit !(a > c) }' && bound=$seen
  if [ "$requests" -gt 0 ] && awk -v n="$ts" -v s="$bound" -v l="$last_change" 'BEGIN { exit !(n > s + 1 && n - l > 2) }'; then
    break
  fi
done
cpu_after=$(cpu_ticks "$outlet_pid")
sink_cpu_after=$(cpu_ticks "$sink_pid")
stop_pid "$poll_pid" 5 group
poll_pid=""
stop_pid "$seal_poll_pid" 5 group
seal_poll_pid=""
# The seal times: the first poll with a sealed window (first seal) and the poll at which
# the count reached its final value (the last window's last shard).
read -r first_seal_seen last_seal_seen sealed_wm sealed_al < <(awk '
  { n = $2 + $3; if (n > 0 && first == "") first = $1; if (n != last) { last = n; t = $1 }; wm = $2; al = $3 }
  END { printf "%s %s %d %d\n", (first == "" ? "nan" : first), (t == "" ? "nan" : t), wm, al }' "$dir/seals")

# The sink's arrival times of the first and last POST (the last poll holds both).
read -r _ final_requests first_post last_post < <(tail -n 1 "$dir/polls")
awk -v f="$first_post" -v s="$first_close" 'BEGIN { exit !(f < s - 1) }' &&
  log "level=warn msg=\"posts began before the watch\""
buckets_per_window=$(grep -o '"kind"' "$dir/record.json" | wc -l)
buckets=$((buckets_per_window * windows))
# /stats parses and accounts the stored bodies (the sink's CPU for that: sink_account_cpu_s).
stats=$(curl -s "$stats_url")
sink_cpu_accounted=$(cpu_ticks "$sink_pid")
final_gauges=${stats#*\"gauges\":}
final_gauges=${final_gauges%%[,\}]*}
stats_requests=${stats#*\"requests\":}
stats_requests=${stats_requests%%[,\}]*}
[ "$stats_requests" = "$final_requests" ] || {
  log "level=warn msg=\"posts arrived after the watch (a re-post?): requests and gauges are those of /stats\"" \
    requests_watched="$final_requests" requests="$stats_requests"
  final_requests=$stats_requests
}
complex=${stats#*\"complex_gauges\":}
complex=${complex%%[,\}]*}
measures=$(grep -o '"kind": *"measure"' "$dir/record.json" | wc -l)
[ "$complex" = $((measures * windows)) ] ||
  log "level=warn msg=\"the points fell in other windows than planned\" complex_gauges=$complex measure_series=$measures windows=$windows"
check=$(curl -s "http://127.0.0.1:$sink_port/check")
ok=failed
[[ $check == *'"ok":true'* ]] && ok=ok
hz=$(getconf CLK_TCK)
awk -v b="$buckets" -v gauges="$final_gauges" -v req="$final_requests" -v closed="$close" -v seal="$seal" \
  -v first_seal="$first_seal_seen" -v last_seal="$last_seal_seen" -v swm="$sealed_wm" -v sal="$sealed_al" \
  -v first="$first_post" -v last="$last_post" \
  -v c0="$cpu_before" -v c1="$cpu_after" -v s0="$sink_cpu_before" -v s1="$sink_cpu_after" -v s2="$sink_cpu_accounted" \
  -v hz="$hz" -v ok="$ok" -v w="$w" -v n="$windows" \
  -v series="$series" -v res="$resolution" 'BEGIN {
    cpu = (c1 - c0) / hz
    span = last - first
    printf "series=%d resolution=%d windows=%d window=%d buckets=%d gauges=%d requests=%d", series, res, n, w, b, gauges, req
    printf " close_to_last_post_s=%.3f close_to_seal_s=%.3f seal_to_last_post_s=%.3f seal_to_first_post_s=%.3f sealed_by_watermark=%d sealed_by_allowance=%d", last - closed, last_seal - closed, last - last_seal, first - first_seal, swm, sal
    printf " buckets_per_s=%.0f outlet_cpu_s=%.2f buckets_per_outlet_cpu_s=%.0f sink_cpu_s=%.2f sink_account_cpu_s=%.2f check=%s\n", (span > 0 ? b / span : 0), cpu, (cpu > 0 ? b / cpu : 0), (s1 - s0) / hz, (s2 - s1) / hz, ok
  }'
[ "$ok" = ok ] || {
  log "level=error msg=\"check failed\" check=${check:0:2000}"
  exit 1
}
