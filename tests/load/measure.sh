#!/usr/bin/env bash
# The measurement of the issue "Performance" on one machine: runs the benchmarks and the
# distributed topology (deploy/local/run.sh) under drainmet-loadgen, and writes the tables
# of docs/performance.md (markdown) to --out.
#
# Sections (all by default; --only NAME runs one, or a comma-separated list):
#   replay       drainmet_replay_bench, 5 runs: min / median / max
#   stages       drainmet_stages_bench, 5 runs: min / median / max
#   receiver     run.sh --receivers N --outlets 1, outlet posting to `drainmet-loadgen sink`,
#                `drainmet-loadgen send` at max rate with 800-line bodies: rows at 1k, 10k,
#                100k, 150k, 1M live series (1 receiver) and at 10 sources on 1, 2, 4
#                receivers (one sender per receiver), then 70% of the peak for the latency
#   redis-bytes  bytes per single-value partial bucket in Redis (one window kept open)
#   memory-1m    the receiver's peak RSS (VmHWM) with 1M live series
#
# CPU is utime+stime of /proc/PID/stat at the start and end of the timed part (the senders'
# run), memory VmHWM / VmRSS of /proc/PID/status and Redis INFO memory. Every process the
# script starts is stopped at its end (SIGTERM, then SIGKILL past a timeout).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: tests/load/measure.sh --binaries DIR --out FILE [options]
  --binaries DIR     a Release build's services dir (e.g. build-release/services): it holds
                     loadgen/drainmet-loadgen, receiver/, outlet/, config/
  --out FILE         markdown written there (the tables of docs/performance.md)
  --bench DIR        dir of drainmet_replay_bench and drainmet_stages_bench
                     (default DIR/../tests/bench of --binaries)
  --duration S       seconds of each loaded run (default 20; 3 with --quick)
  --runs N           runs of each benchmark (default 5; 1 with --quick)
  --resolution R     resolution of the receiver runs (default 60, 15 with --quick: a run
                     stays inside one window, so Redis holds every record written during it)
  --flush-delay-ms MS, --max-series-in-memory N
                     passed to deploy/local/run.sh (receiver settings; default: the
                     config's defaults, 2 ms and 200000)
  --quick            short runs and fewer rows (a smoke test of the script, ~3-4 minutes)
  --only NAME[,...]  replay, stages, receiver, redis-bytes, memory-1m
  --series-rows N[,...]
                     the receiver section runs only the series rows of these source
                     counts (3 series each; e.g. 50000 = the 150k-series row), no
                     process rows (for paired runs of one row)
  --work-dir DIR     raw files (logs, JSON, samples) there (default: a new temp dir,
                     removed at the end unless --keep)
  --keep             keep the work dir (its path is printed)
  -h, --help
Needs: redis-server, redis-cli, curl, /usr/bin/python3 (standard library only).
EOF
}

usage_error() {
  printf 'measure.sh: %s\n' "$*" >&2
  usage >&2
  exit 2
}
note() { printf 'measure.sh: %s\n' "$*" >&2; }
die() {
  note "error: $*"
  exit 1
}
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
helper="$root/tests/load/measure/measure.py"
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3 || true)

binaries=""
out=""
bench_dir=""
duration=""
runs=""
resolution=""
quick=0
only=""
series_rows=""
work=""
keep=0
# Receiver settings passed to run.sh. One tenant holds every series of a row (up to 1M):
# its per-flush bound (limits.max_series_per_tenant, 100,000 by default) would drop points
# once a flush holds more distinct buckets than that (the 1M row at ~280 k lines/s does),
# and its rate limit (limits.tenant_points_per_second, 1,000,000 by default) would answer
# 429 to the 10-source rows (~1.1 M points/s), which then measured the limit.
run_extra=(--max-series-per-tenant 2000000 --tenant-points-per-second 0)
orig_args=("$@")

while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --quick) quick=1; shift; continue ;;
    --keep) keep=1; shift; continue ;;
    --flush-delay-ms | --max-series-in-memory)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      is_uint "$2" || usage_error "$1 must be a non-negative integer"
      run_extra+=("$1" "$2")
      shift 2
      ;;
    --binaries | --out | --bench | --duration | --runs | --resolution | --only | --work-dir | --series-rows)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case "$1" in
        --binaries) binaries=$2 ;;
        --out) out=$2 ;;
        --bench) bench_dir=$2 ;;
        --duration) duration=$2 ;;
        --runs) runs=$2 ;;
        --resolution) resolution=$2 ;;
        --only) only=$2 ;;
        --series-rows) series_rows=$2 ;;
        --work-dir) work=$2 ;;
      esac
      shift 2
      ;;
    *) usage_error "unknown option: $1" ;;
  esac
done

[ -n "$binaries" ] || usage_error "--binaries is required"
[ -n "$out" ] || usage_error "--out is required"
if [ -z "$duration" ]; then
  if [ "$quick" -eq 1 ]; then duration=3; else duration=20; fi
fi
if [ -z "$resolution" ]; then
  if [ "$quick" -eq 1 ]; then resolution=15; else resolution=60; fi
fi
if [ -z "$runs" ]; then
  if [ "$quick" -eq 1 ]; then runs=1; else runs=5; fi
fi
if ! is_uint "$duration" || [ "$duration" -lt 1 ]; then usage_error "--duration must be a positive integer"; fi
if ! is_uint "$runs" || [ "$runs" -lt 1 ]; then usage_error "--runs must be a positive integer"; fi
case "$resolution" in 1 | 5 | 10 | 15 | 20 | 30 | 60 | 120 | 300 | 600 | 900 | 1800 | 3600) ;;
  *) usage_error "--resolution: one of 1 5 10 15 20 30 60 120 300 600 900 1800 3600" ;;
esac
all_sections="replay stages receiver redis-bytes memory-1m"
sections=""
if [ -z "$only" ]; then
  sections=$all_sections
else
  for s in ${only//,/ }; do
    case " $all_sections " in *" $s "*) sections+="$s " ;; *) usage_error "--only: unknown section '$s' (one of: $all_sections)" ;; esac
  done
fi
want() { case " $sections " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

binaries=$(cd "$binaries" 2>/dev/null && pwd) || die "--binaries: no such dir"
[ -n "$bench_dir" ] || bench_dir="$binaries/../tests/bench"
if [ -z "$py" ] || [ ! -x "$py" ]; then die "python3 not found"; fi
for tool in redis-server redis-cli curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
find_bin() {  # find_bin NAME SUBDIR
  local c
  for c in "$binaries/$2/$1" "$binaries/$1"; do
    [ -x "$c" ] && { printf '%s' "$c"; return 0; }
  done
  die "$1 not found under $binaries"
}
if want receiver || want redis-bytes || want memory-1m; then
  LG=$(find_bin drainmet-loadgen loadgen)
  find_bin drainmet-receiver receiver >/dev/null
  find_bin drainmet-outlet outlet >/dev/null
  find_bin drainmet-config config >/dev/null
fi
if want replay; then [ -x "$bench_dir/drainmet_replay_bench" ] || die "$bench_dir/drainmet_replay_bench not found (build with -DDRAINMET_BUILD_BENCHMARKS=ON, or pass --bench DIR)"; fi
if want stages; then [ -x "$bench_dir/drainmet_stages_bench" ] || die "$bench_dir/drainmet_stages_bench not found (pass --bench DIR)"; fi
bench_dir=$(cd "$bench_dir" 2>/dev/null && pwd || printf '%s' "$bench_dir")
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")

if [ -z "$work" ]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/drainmet-measure.XXXXXX")
  own_work=1
else
  mkdir -p "$work"
  work=$(cd "$work" && pwd)
  own_work=0
fi
[ "${#work}" -lt 60 ] || die "work dir path too long for Redis's unix sockets: $work"
mkdir -p "$work/sections"
clk_tck=$(getconf CLK_TCK)
lines_per_body=800

# --- processes -------------------------------------------------------------------------
# Every background process we start is in bg_pids; the EXIT trap stops what is still alive:
# SIGTERM (run.sh then stops its topology in order), SIGKILL after 90 s.
bg_pids=()
alive() { kill -0 "$1" 2>/dev/null; }
forget_pid() {
  local p rest=()
  for p in "${bg_pids[@]}"; do [ "$p" = "$1" ] || rest+=("$p"); done
  bg_pids=("${rest[@]}")
}
stop_pid() {  # stop_pid PID TIMEOUT_S: SIGTERM, wait, SIGKILL past the timeout, reap
  local pid=$1 deadline=$((SECONDS + $2))
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if alive "$pid"; then
      note "pid $pid did not stop within $2 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}
cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  for ((i = ${#bg_pids[@]} - 1; i >= 0; i--)); do
    stop_pid "${bg_pids[i]}" 90
  done
  if [ "$own_work" -eq 1 ] && [ "$keep" -eq 0 ]; then
    rm -rf "$work"
  else
    note "raw files kept in $work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'note "interrupted"; exit 130' INT
trap 'note "terminated"; exit 143' TERM

# --- /proc and Redis probes --------------------------------------------------------------
cpu_ticks() {  # utime+stime of PID in clock ticks (fields 14 and 15 of /proc/PID/stat)
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { printf ''; return 0; }
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  printf '%s' $((${12} + ${13}))
}
status_kb() {  # status_kb PID FIELD: VmHWM, VmRSS ... in kB
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || true
}
metric() {  # metric BASE_URL NAME[{labels}]: the value of one Prometheus sample
  curl -s -m 5 "$1/metrics" 2>/dev/null | awk -v n="$2" '$1 == n { print $2; exit }' || true
}
redis_info() {  # redis_info SOCK FIELD
  redis-cli -s "$1" INFO memory 2>/dev/null | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }' || true
}
now_s() { date +%s.%N; }

# Topology of the current row (from run.sh's summary).
redis_pid=""
redis_sock=""
rcv_pids=()
rcv_urls=()
outlet_pid=""
token=""

snap() {  # snap FILE: CPU ticks, memory and counters of the row's processes
  local i
  {
    printf 't=%s\n' "$(now_s)"
    printf 'loadavg=%s\n' "$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
    for i in "${!rcv_pids[@]}"; do
      printf 'cpu_receiver_%d=%s\n' $((i + 1)) "$(cpu_ticks "${rcv_pids[i]}")"
      printf 'vmrss_receiver_%d=%s\n' $((i + 1)) "$(status_kb "${rcv_pids[i]}" VmRSS)"
      printf 'records_receiver_%d=%s\n' $((i + 1)) "$(metric "${rcv_urls[i]}" drainmet_receiver_records_written_total)"
      printf 'flushes_receiver_%d=%s\n' $((i + 1)) "$(metric "${rcv_urls[i]}" 'drainmet_receiver_flushes_total{result="ok"}')"
    done
    printf 'cpu_outlet_1=%s\n' "$(cpu_ticks "$outlet_pid")"
    printf 'cpu_redis_1=%s\n' "$(cpu_ticks "$redis_pid")"
    printf 'redis_used_memory=%s\n' "$(redis_info "$redis_sock" used_memory)"
    printf 'redis_used_memory_peak=%s\n' "$(redis_info "$redis_sock" used_memory_peak)"
  } >"$1"
}

# Counts the partial buckets (records) in the lists KEYS: an element is one record, or a
# batch (first byte 0x00, or 0x01 for a compact batch, then varint length + record,
# repeated), or a keyed batch (0x02, then its header framed alike, then the records framed
# alike; docs/redis-layout.md "List elements"). Returns {records, elements}. Run after
# the timed part only.
count_records_lua='
local records, elements = 0, 0
for _, key in ipairs(KEYS) do
  local len = redis.call("LLEN", key)
  for first = 0, len - 1, 1000 do
    for _, v in ipairs(redis.call("LRANGE", key, first, first + 999)) do
      elements = elements + 1
      local tag = string.byte(v, 1)
      if tag == 0 or tag == 1 or tag == 2 then
        if tag == 2 then records = records - 1 end  -- its header, framed as a record is
        local p, size = 2, #v
        while p <= size do
          local n, scale, b = 0, 1, 128
          while b >= 128 and p <= size do
            b = string.byte(v, p)
            p = p + 1
            n = n + (b % 128) * scale
            scale = scale * 128
          end
          p = p + n
          records = records + 1
        end
      else
        records = records + 1
      end
    end
  end
end
return {records, elements}'

pts_stats() {  # appends to FILE: records and elements held in dm:*:pts:* lists, their bytes, dedupe keys
  local file=$1 keys first counts
  keys=$(redis-cli -s "$redis_sock" --scan --pattern 'dm:*:pts:*' 2>/dev/null || true)
  if [ -n "$keys" ]; then
    printf '%s\n' "$keys" | awk '{ print "MEMORY USAGE " $0 " SAMPLES 0" }' |
      redis-cli -s "$redis_sock" 2>/dev/null |
      awk '{ b += $1 } END { printf "pts_bytes=%d\n", b }' >>"$file"
    # shellcheck disable=SC2086 # one argument per key (key names have no blanks)
    counts=$(redis-cli -s "$redis_sock" EVAL "$count_records_lua" "$(printf '%s\n' "$keys" | grep -c .)" $keys 2>/dev/null |
      tr '\n' ' ')
    printf 'pts_records=%s\npts_elements=%s\n' "$(printf '%s' "$counts" | awk '{ print $1 }')" \
      "$(printf '%s' "$counts" | awk '{ print $2 }')" >>"$file"
  else
    printf 'pts_records=0\npts_elements=0\npts_bytes=0\n' >>"$file"
  fi
  printf 'pts_keys=%s\n' "$(printf '%s' "$keys" | grep -c . || true)" >>"$file"
  first=""
  printf 'dedupe_keys=%s\n' "$(redis-cli -s "$redis_sock" --scan --pattern 'dm:*:dedupe:*' 2>/dev/null |
    tee "$work/.dedupe" | wc -l)" >>"$file"
  first=$(head -n1 "$work/.dedupe")
  rm -f "$work/.dedupe"
  if [ -n "$first" ]; then
    printf 'dedupe_key_bytes=%s\n' "$(redis-cli -s "$redis_sock" MEMORY USAGE "$first" SAMPLES 0 2>/dev/null || true)" >>"$file"
  fi
  printf 'dbsize=%s\n' "$(redis-cli -s "$redis_sock" DBSIZE 2>/dev/null || true)" >>"$file"
}

field() {  # field KEY LINE: logfmt value of KEY in LINE
  printf '%s\n' "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { sub(/^[^=]*=/, ""); print; exit }'
}

wait_file_re() {  # wait_file_re FILE REGEX TIMEOUT_S PID: waits for a line; fails if PID exits
  local deadline=$((SECONDS + $3))
  while ! grep -qE -- "$2" "$1" 2>/dev/null; do
    alive "$4" || return 1
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# Waits so that the run (render + duration + answers) stays inside one window and its points
# (stamped up to 1 s back) are not in the previous one: then Redis holds every record
# written during the run when the run ends, and nothing is sealed meanwhile.
align_window() {  # align_window RESOLUTION RUN_S
  local r=$1 d=$2 now pos
  [ "$r" -ge $((d + 12)) ] || return 0
  now=$(date +%s)
  pos=$((now % r))
  if [ "$pos" -lt 2 ]; then
    sleep $((2 - pos))
  elif [ $((pos + d + 10)) -gt "$r" ]; then
    note "waiting $((r - pos + 2)) s for the start of a ${r}-s window"
    sleep $((r - pos + 2))
  fi
}

# --- one loaded run ------------------------------------------------------------------------
# Parameters in row_* variables; raw files in ROWDIR (see measure.py for what each holds).
row_label=""
row_kind=""
row_receivers=1
row_sources=10
row_metrics=3        # points (series) per source: 3 for the default template
row_template=""
row_rate=max
row_resolution=60
row_connections=16
row_duration=20
row_send_duration="" # --duration of the senders when not row_duration (fractional)
row_check=1          # wait for the sink's conservation check
row_align=1

run_row() {  # run_row ROWDIR
  local d=$1 i ring series sink_pid run_pid port line url rc sampler_pid t_end close deadline
  local -a send_pids=() records=()
  mkdir -p "$d"
  ring=$(((row_sources + lines_per_body - 1) / lines_per_body))
  [ "$ring" -ge 64 ] || ring=64
  [ "$ring" -ge "$row_connections" ] || ring=$row_connections
  series=$((row_sources * row_metrics))
  {
    printf 'label=%s\nkind=%s\nreceivers=%s\noutlets=1\nsources=%s\nseries=%s\nrate=%s\nresolution=%s\n' \
      "$row_label" "$row_kind" "$row_receivers" "$row_sources" "$series" "$row_rate" "$row_resolution"
    printf 'connections=%s\nduration=%s\nring=%s\ntemplate=%s\nclk_tck=%s\n' \
      "$row_connections" "$row_duration" "$ring" "${row_template:-default}" "$clk_tck"
  } >"$d/meta.env"
  note "row '$row_label': $row_receivers receiver(s), $row_sources sources ($series series), rate $row_rate, ${row_duration}s, resolution $row_resolution"

  # The fake Librato API, checking against the senders' records.
  "$LG" sink --expect "$d/record.json" --threads 2 >"$d/sink.out" 2>"$d/sink.err" </dev/null &
  sink_pid=$!
  bg_pids+=("$sink_pid")
  wait_file_re "$d/sink.out" 'listening port=' 10 "$sink_pid" || { note "sink did not start: $(cat "$d/sink.err")"; stop_pid "$sink_pid" 10; return 1; }
  port=$(grep -oE 'port=[0-9]+' "$d/sink.out" | head -n1 | cut -d= -f2)

  # The topology: 1 Redis, config, N receivers, 1 outlet posting to the sink.
  "$root/deploy/local/run.sh" --binaries "$binaries" --receivers "$row_receivers" --outlets 1 --dir "$d/topo" \
    --librato-url "http://127.0.0.1:$port/v1/metrics" --ready-timeout 60 "${run_extra[@]}" >"$d/run.out" 2>"$d/run.err" </dev/null &
  run_pid=$!
  bg_pids+=("$run_pid")
  printf 'deploy/local/run.sh --binaries %s --receivers %s --outlets 1 --librato-url http://127.0.0.1:SINK_PORT/v1/metrics%s\n' \
    "$binaries" "$row_receivers" "${run_extra[*]:+ ${run_extra[*]}}" >"$d/commands.txt"
  printf '%s sink --expect record.json --threads 2\n' "$LG" >>"$d/commands.txt"
  if ! wait_file_re "$d/run.out" '^msg=ready' 90 "$run_pid"; then
    note "topology did not start (log: $d/run.err)"
    tail -n 5 "$d/run.err" >&2 || true
    stop_pid "$run_pid" 90
    stop_pid "$sink_pid" 10
    return 1
  fi
  line=$(grep -E '^component=redis ' "$d/run.out" | head -n1)
  redis_pid=$(field pid "$line")
  redis_sock=$(field unix "$line")
  rcv_pids=()
  rcv_urls=()
  while IFS= read -r line; do
    rcv_pids+=("$(field pid "$line")")
    url=$(field url "$line")
    rcv_urls+=("${url%/logs}")
  done < <(grep -E '^component=receiver ' "$d/run.out")
  outlet_pid=$(field pid "$(grep -E '^component=outlet ' "$d/run.out" | head -n1)")
  token=$(field token "$(grep -E '^msg=ready' "$d/run.out")")

  [ "$row_align" -eq 1 ] && align_window "$row_resolution" "$row_duration"

  # Samples each second during the run: the receivers' RSS and buffered buckets.
  (
    trap 'exit 0' TERM
    while :; do
      for i in "${!rcv_pids[@]}"; do
        printf '%s receiver=%d vmrss_kb=%s queued=%s merged=%s\n' "$(date +%s)" $((i + 1)) \
          "$(status_kb "${rcv_pids[i]}" VmRSS)" \
          "$(metric "${rcv_urls[i]}" 'drainmet_receiver_buffered_buckets{stage="queued"}')" \
          "$(metric "${rcv_urls[i]}" 'drainmet_receiver_buffered_buckets{stage="merged"}')"
      done
      sleep 1
    done
  ) >"$d/samples.txt" 2>/dev/null &
  sampler_pid=$!
  bg_pids+=("$sampler_pid")

  snap "$d/before.env"
  for i in "${!rcv_urls[@]}"; do
    local -a cmd=("$LG" send --url "${rcv_urls[i]}/logs" --token "$token" --connections "$row_connections"
      --duration "${row_send_duration:-$row_duration}" --rate "$row_rate" --lines-per-body "$lines_per_body" --series "$row_sources"
      --ring "$ring" --resolution "$row_resolution" --retry-503 --json --record "$d/record-$((i + 1)).json")
    [ -n "$row_template" ] && cmd+=(--template "$row_template")
    printf '%s\n' "${cmd[*]}" | sed "s|$token|\$TOKEN|; s|${rcv_urls[i]}|http://RECEIVER_$((i + 1))|" >>"$d/commands.txt"
    "${cmd[@]}" >"$d/send-$((i + 1)).json" 2>"$d/send-$((i + 1)).err" </dev/null &
    send_pids+=("$!")
    bg_pids+=("$!")
    records+=("$d/record-$((i + 1)).json")
  done
  rc=0
  for i in "${!send_pids[@]}"; do
    wait "${send_pids[i]}" || rc=$?
    forget_pid "${send_pids[i]}"
  done
  snap "$d/after.env"
  # drainmet_receiver_records_written_total is published about once a second (the
  # receiver's pinger): read it again until it holds still.
  local prev="" cur tries
  for ((tries = 0; tries < 10; tries++)); do
    sleep 1.2
    cur=""
    for i in "${!rcv_urls[@]}"; do cur+="$(metric "${rcv_urls[i]}" drainmet_receiver_records_written_total),"; done
    [ "$cur" = "$prev" ] && break
    prev=$cur
  done
  for i in "${!rcv_urls[@]}"; do
    printf 'records_receiver_%d=%s\n' $((i + 1)) "$(metric "${rcv_urls[i]}" drainmet_receiver_records_written_total)"
  done >>"$d/after.env"
  pts_stats "$d/after.env"
  stop_pid "$sampler_pid" 5
  if [ "$rc" -ne 0 ]; then
    note "a sender failed (status $rc): $(cat "$d"/send-*.err | head -n 3)"
  fi

  # The senders' records, summed, for the sink's check.
  local written
  written=$("$py" "$helper" merge-records "$d/record.json" "${records[@]}") || note "records not merged"
  printf 'series_written=%s\n' "$written" >>"$d/after.env"

  if [ "$row_check" -eq 1 ]; then
    # The last window closes at its end + grace (5 s); the outlet seals it 3 s later
    # (receiver write allowance), merges and posts it.
    t_end=$(date +%s)
    close=$(((t_end / row_resolution + 1) * row_resolution + 5))
    local recs
    recs=$(awk -F= '$1 ~ /^records_receiver_/ { s += $2 } END { printf "%d", s }' "$d/after.env")
    deadline=$((SECONDS + close - t_end + 3 + 30 + recs / 50000))
    while :; do
      curl -s -m 30 "http://127.0.0.1:$port/check" >"$d/check.json.tmp" 2>/dev/null || true
      if grep -q '"ok":true' "$d/check.json.tmp" 2>/dev/null; then break; fi
      [ "$SECONDS" -lt "$deadline" ] || break
      sleep 2
    done
    mv "$d/check.json.tmp" "$d/check.json"
    printf 'check_wait_s=%s\n' $(($(date +%s) - t_end)) >>"$d/after.env"
  fi
  {
    printf 't=%s\n' "$(now_s)"
    for i in "${!rcv_pids[@]}"; do
      printf 'vmhwm_receiver_%d=%s\n' $((i + 1)) "$(status_kb "${rcv_pids[i]}" VmHWM)"
    done
    printf 'vmhwm_outlet_1=%s\n' "$(status_kb "$outlet_pid" VmHWM)"
    printf 'cpu_outlet_1=%s\n' "$(cpu_ticks "$outlet_pid")"
    printf 'redis_used_memory_peak=%s\n' "$(redis_info "$redis_sock" used_memory_peak)"
    awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "queued" && kv[2] + 0 > q) q = kv[2] + 0;
           if (kv[1] == "merged" && kv[2] + 0 > m) m = kv[2] + 0 } } END { printf "max_queued=%d\nmax_merged=%d\n", q, m }' \
      "$d/samples.txt"
  } >"$d/final.env"

  stop_pid "$run_pid" 120
  grep -E 'level=error' "$d/run.err" >&2 || true
  stop_pid "$sink_pid" 30
  # Redis's AOF of a big run is gigabytes: keep the logs only.
  [ "$keep" -eq 1 ] || rm -rf "$d"/topo/redis*/ 2>/dev/null || true
  rm -f "$d"/record-*.json
  [ "$keep" -eq 1 ] || rm -f "$d/record.json"
  return 0
}

reset_row() {
  row_label=""
  row_kind=""
  row_receivers=1
  row_sources=10
  row_metrics=3
  row_template=""
  row_rate=max
  row_resolution=$resolution
  row_connections=16
  row_duration=$duration
  row_send_duration=""
  row_check=1
  row_align=1
}

# --- sections ------------------------------------------------------------------------------
machine_header() {
  local model mem cache cxx flags btype commit dirty
  model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  cache="$binaries/../CMakeCache.txt"
  btype=$(awk -F= '/^CMAKE_BUILD_TYPE:/ { print $2 }' "$cache" 2>/dev/null || true)
  cxx=$(awk -F= '/^CMAKE_CXX_COMPILER:/ { print $2 }' "$cache" 2>/dev/null || true)
  flags=$(awk -F= -v t="CMAKE_CXX_FLAGS_$(printf '%s' "$btype" | tr '[:lower:]' '[:upper:]'):" \
    'index($0, t) == 1 { sub(/^[^=]*=/, ""); print }' "$cache" 2>/dev/null || true)
  commit=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  dirty=""
  if [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    dirty=" (working tree with uncommitted changes)"
  fi
  cat <<EOF
# drainmet measurements

Written by \`tests/load/measure.sh ${orig_args[*]}\` on $(date -u +%Y-%m-%dT%H:%MZ).

- Machine: $(nproc) CPUs (\`nproc\`; $(grep -c '^processor' /proc/cpuinfo) in /proc/cpuinfo), ${model:-unknown CPU}, $mem, Linux $(uname -r)$( [ -r /etc/debian_version ] && printf ', Debian %s' "$(cat /etc/debian_version)")
- Build: \`CMAKE_BUILD_TYPE=${btype:-?}\` (\`${flags:-?}\`), $( [ -n "$cxx" ] && "$cxx" --version 2>/dev/null | head -n1 || echo "compiler unknown"), binaries $binaries
- Commit: $commit$dirty
- $(redis-server --version | cut -d' ' -f1-3)
- Load average at the start (1, 5, 15 min): $(cut -d' ' -f1-3 /proc/loadavg)
- Receiver settings: ${run_extra[*]:-the defaults (flush_delay_ms 2, max_series_in_memory 200000, flush_interval_ms 1000)}
EOF
}

bench_section() {  # bench_section NAME BINARY TITLE
  local name=$1 bin=$2 title=$3 d="$work/$1" i jsons=() extra=()
  mkdir -p "$d"
  [ "$quick" -eq 1 ] && extra=(--benchmark_min_time=0.01)
  for ((i = 1; i <= runs; i++)); do
    note "$name: run $i of $runs"
    if ! "$bin" --benchmark_out="$d/run$i.json" --benchmark_out_format=json "${extra[@]}" >"$d/run$i.txt" 2>&1; then
      note "$name run $i failed: $(tail -n 3 "$d/run$i.txt")"
      continue
    fi
    jsons+=("$d/run$i.json")
  done
  [ "${#jsons[@]}" -gt 0 ] || { printf '## %s\n\nEvery run failed.\n\n' "$title" >"$work/sections/$name.md"; return 0; }
  "$py" "$helper" bench-table "$name" "$d/table.md" "${jsons[@]}"
  {
    printf '## %s\n\n' "$title"
    printf 'Command (%d runs; load average before: %s):\n\n```\n' "$runs" "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'for i in $(seq %d); do\n  %s --benchmark_out=run$i.json --benchmark_out_format=json%s\ndone\n```\n\n' \
      "$runs" "$bin" "${extra[*]:+ ${extra[*]}}"
    cat "$d/table.md"
    printf '\n'
  } >"$work/sections/$name.md"
}

receiver_section() {
  local d="$work/receiver" rows=() peak rate70 n s
  mkdir -p "$d"
  # 10 sources (30 series) at 1, 2, 4 receivers; the first is the peak for the 70% row.
  local -a procs=(1 2 4)
  local -a series_sources=(334 3334 33334 50000 333334)
  local -a series_labels=("1k series" "10k series" "100k series" "150k series" "1M series")
  if [ "$quick" -eq 1 ]; then
    procs=(1 2)
    series_sources=(334 33334)
    series_labels=("1k series" "100k series")
  fi
  if [ -n "$series_rows" ]; then
    procs=()
    IFS=, read -r -a series_sources <<<"$series_rows"
    series_labels=()
    for s in "${series_sources[@]}"; do
      is_uint "$s" || die "--series-rows: not a number: $s"
      series_labels+=("$((3 * s / 1000))k series")
    done
  fi
  for n in "${procs[@]}"; do
    reset_row
    row_label="10 sources, $n receiver$([ "$n" -eq 1 ] || printf s)"
    row_kind=procs
    row_receivers=$n
    run_row "$d/procs-$n" || note "row '$row_label' failed"
    rows+=("$d/procs-$n")
    if [ "$n" -eq 1 ]; then
      peak=$("$py" "$helper" json-get "$d/procs-1/send-1.json" lines_per_s)
      if [ -n "$peak" ]; then
        rate70=$(awk -v p="$peak" 'BEGIN { printf "%d", p * 0.7 }')
        reset_row
        row_label="10 sources, 1 receiver, 70% of peak"
        row_kind=p70
        row_rate=$rate70
        run_row "$d/p70" || note "row '$row_label' failed"
        rows+=("$d/p70")
      fi
    fi
  done
  for i in "${!series_sources[@]}"; do
    s=${series_sources[i]}
    reset_row
    row_label=${series_labels[i]}
    row_kind=series
    row_sources=$s
    run_row "$d/series-$s" || note "row '$row_label' failed"
    rows+=("$d/series-$s")
  done
  "$py" "$helper" receiver-tables "$d/tables.md" "${rows[@]}"
  {
    printf '## Receiver into Redis: series and processes\n\n'
    cat <<EOF
\`deploy/local/run.sh --receivers N --outlets 1\` (1 Redis with AOF \`appendfsync always\`,
64 shards, receiver threads = one per core, flush delay 2 ms) with the outlet posting to
\`drainmet-loadgen sink\`; then ${duration} s of \`drainmet-loadgen send\` per receiver (one sender
per receiver URL: \`send --url\` takes one URL), 16 connections each, at max rate (and one row
at 70% of the 1-receiver peak), 800-line bodies of the default template
(\`measure#db.latency={ms}ms sample#mem={mb}MB count#req=1 source=web.K\`: 3 points and
3 series per source, so live series = 3 × sources), \`--resolution ${resolution}\`, \`--retry-503\`.
The ring of pre-rendered bodies holds at least one line per source (\`--ring\` ≥ sources / 800),
so every series is written in every window. Every process (receivers, Redis, outlet, config,
generator, sink) shares this machine's $(nproc) cores. A fresh topology per row, so VmHWM and
used_memory_peak are the row's.
EOF
    if [ "$resolution" -ge $((duration + 12)) ]; then
      cat <<EOF
Each run starts 2 s into a ${resolution}-s window and ends inside it: nothing is sealed during the
run, so the Redis used_memory delta over the run divided by the records written
(\`drainmet_receiver_records_written_total\`, summed over receivers) is the bytes per record,
all included (the \`dedupe:\` frame markers too); "in lists" is \`MEMORY USAGE\` of the
\`pts:<close>\` lists alone. Redis bytes per series in the window = delta / live series,
for the run's ${duration} s of the window (the window fills further at the same rate until it closes).
The outlet's CPU is from the start of the run until the sink saw every gauge (emission after
the close included).
EOF
    fi
    printf '\n'
    cat "$d/tables.md"
    printf 'Commands (the token and ports differ per run):\n\n```\n'
    for r in "${rows[@]}"; do
      [ -f "$r/commands.txt" ] || continue
      printf '# %s\n' "$(awk -F= '$1 == "label" { print $2 }' "$r/meta.env")"
      cat "$r/commands.txt"
    done
    printf '```\n\n'
  } >"$work/sections/receiver.md"
}

redis_bytes_section() {
  local d="$work/redis-bytes" n rate ring dur rows=()
  mkdir -p "$d"
  if [ "$quick" -eq 1 ]; then n=20000; rate=10000; else n=200000; rate=20000; fi
  ring=$(((n + lines_per_body - 1) / lines_per_body))
  # Requests start at k × 800 / rate while that is < duration: exactly `ring` of them, each
  # body (800 distinct sources) once when the connections keep up.
  dur=$(awk -v r="$ring" -v l="$lines_per_body" -v rate="$rate" 'BEGIN { printf "%.3f", (r - 0.5) * l / rate }')
  local t
  for t in "count#req=1" "measure#db.latency={ms}ms"; do
    reset_row
    row_label="\`$t\`, $n sources"
    row_kind=redis-bytes
    row_sources=$n
    row_metrics=1
    row_template=$t
    row_rate=$rate
    row_resolution=3600
    row_connections=4
    row_send_duration=$dur
    row_duration=$((${dur%.*} + 1))  # whole seconds, for align_window
    row_check=0                      # the hour's window stays open: nothing is emitted
    local name=${t%%#*}
    run_row "$d/$name" || note "redis-bytes $name failed"
    rows+=("$d/$name")
  done
  "$py" "$helper" redis-bytes-table "$d/table.md" "${rows[@]}"
  {
    printf '## Redis bytes per single-value partial bucket\n\n'
    cat <<EOF
$n single-point records for $n distinct series into one window: \`deploy/local/run.sh
--receivers 1 --outlets 1\`, then \`drainmet-loadgen send --template T --series $n --ring $ring
--connections 4 --rate $rate --resolution 3600\` (each line one point of its own source
\`web.K\`, each body sent once): the window (an hour) stays open, so the outlet seals nothing.
Bytes per record = Redis \`used_memory\` after − before / \`drainmet_receiver_records_written_total\`
(everything: the \`pts:<close>\` list elements and the \`dedupe:<tenant>:<frame>\` markers, one
per request and shard); "in pts lists" counts the records in the lists (an element is one
record or a batch of them, docs/redis-layout.md "Record encoding": a Lua script reads the
framing) and the elements, and its bytes are \`MEMORY USAGE key SAMPLES 0\` of the lists alone.
A one-point count record encodes to ~98 bytes (docs/redis-layout.md, \`drainmet_codec_bench\`);
name \`req\` / \`db.latency\`, source \`web.K\` (up to 9 bytes), tenant \`default\`.

With one record per series per window (a series written by one flush), bytes per series per
window = bytes per record. A series written by k flushes in a window holds k records
(the receiver merges only within a flush), so bytes per series per window = k × bytes per
record: see the receiver table's "records a series".

EOF
    cat "$d/table.md"
  } >"$work/sections/redis-bytes.md"
}

memory_section() {
  local d="$work/memory-1m"
  mkdir -p "$d"
  reset_row
  row_label="1M series, 64 connections"
  row_kind=memory
  row_sources=333334
  row_connections=64
  run_row "$d/run" || note "memory-1m failed"
  "$py" "$helper" memory-table "$d/table.md" "$d/run"
  {
    printf '## Receiver memory with 1M live series\n\n'
    cat <<EOF
As the "1M series" receiver row (333,334 sources × 3 series, 1 receiver, \`--resolution
$resolution\`, ${duration} s at max rate) with 64 connections (more requests in flight, bigger
batches). Receiver peak RSS = VmHWM of /proc/PID/status at the end; buffered buckets sampled
each second from \`drainmet_receiver_buffered_buckets\`.

EOF
    cat "$d/table.md"
    printf '```\n'
    cat "$d/run/commands.txt" 2>/dev/null || true
    printf '```\n\n'
  } >"$work/sections/memory-1m.md"
}

# --- main ----------------------------------------------------------------------------------
note "work dir $work; sections: $sections"
machine_header >"$work/header.md"
want replay && bench_section replay "$bench_dir/drainmet_replay_bench" "Replay (drainmet_replay_bench)"
want stages && bench_section stages "$bench_dir/drainmet_stages_bench" "Stages (drainmet_stages_bench)"
want receiver && receiver_section
want redis-bytes && redis_bytes_section
want memory-1m && memory_section
{
  cat "$work/header.md"
  printf -- '- Load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  [ "$quick" -eq 1 ] && printf -- '- `--quick`: short runs for a smoke test; the figures are not for publishing.\n'
  printf '\n'
  for s in $sections; do
    [ -f "$work/sections/$s.md" ] && cat "$work/sections/$s.md"
  done
} >"$out"
note "wrote $out"
