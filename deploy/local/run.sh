#!/usr/bin/env bash
# Starts the whole distributed topology of drainmet on one machine, on loopback only:
# K private redis-server processes (AOF, fsync always; shard s on server s % K),
# drainmet-config, N drainmet-receiver and M drainmet-outlet processes, each logging to its
# own file in the work dir.
# Waits until every process is ready, prints a summary (logfmt) on stdout, then stays in
# the foreground until SIGTERM or SIGINT and stops everything in order: receivers,
# outlets, config service, the redis servers. Exit status 0 after a clean stop; 1 when a process
# failed to start or exited non-zero (or had to be killed) at the stop, or, with
# --fail-on-exit, exited on its own meanwhile; 2 for a usage error.
# docs/operations.md "Local distributed topology" describes it.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: deploy/local/run.sh [options]
  --dir DIR              work dir (config, logs, redis data, pids); default: a new temp dir
  --receivers N          drainmet-receiver processes (default 2)
  --outlets M            drainmet-outlet processes (default 2)
  --outlet-threads N     each outlet's --threads, its worker threads (default 4)
  --redis-servers K      redis-server processes (default 1), all in redis.servers:
                         shard s lives on server s % K
  --binaries DIR         build tree's services dir (default build-release/services)
  --librato-url URL      post gauges to this Librato API endpoint (default: output stdout)
  --grace-seconds S      grace_seconds of the config (default 5)
  --shards S             redis.shards (default 64)
  --flush-interval-ms MS receiver.flush_interval_ms (default 1000)
  --flush-delay-ms MS    receiver.flush_delay_ms (default: not written, the config's default 2)
  --max-series-in-memory N
                         receiver.max_series_in_memory (default: not written, the config's
                         default 200000)
  --max-series-per-tenant N
                         limits.max_series_per_tenant (default: not written, the config's
                         default 100000; the receiver applies it per flush)
  --tenant-points-per-second N
                         limits.tenant_points_per_second (default: not written, the
                         config's default 1000000; 0 = no rate limit, as the load tests use)
  --lease-ttl-ms MS      outlet.lease_ttl_ms (default 15000)
  --lease-renew-ms MS    outlet.lease_renew_ms (default 5000)
  --log-level L          debug, info, warn or error (default info)
  --ready-timeout S      seconds to wait for every process to be ready (default 30)
  --redis-server PATH    redis-server executable (default: from PATH)
  --fail-on-exit         a process exiting on its own stops everything, exit status 1
                         (default: it is logged and the others keep running)
environment: DRAINMET_TOKEN (the drain token; default a generated one),
  LIBRATO_EMAIL and LIBRATO_TOKEN (credentials for --librato-url; default placeholders)
EOF
}

say() { printf '%s\n' "$*"; }                        # summary lines: stdout
note() { printf 'ts=%s component=run.sh %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() {
  note "level=error msg=\"$*\""
  exit 1
}
usage_error() {
  printf 'run.sh: %s\n' "$*" >&2
  usage >&2
  exit 2
}
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=""
receivers=2
outlets=2
redis_servers=1
binaries="$root/build-release/services"
librato_url=""
grace_seconds=5
shards=64
flush_interval_ms=1000
flush_delay_ms=""
max_series_in_memory=""
max_series_per_tenant=""
tenant_points_per_second=""
lease_ttl_ms=15000
lease_renew_ms=5000
outlet_threads=4
log_level=info
ready_timeout=30
redis_server=redis-server
fail_on_exit=0

while [ $# -gt 0 ]; do
  opt=$1
  case "$opt" in
    -h | --help) usage; exit 0 ;;
    --fail-on-exit)
      fail_on_exit=1
      shift
      continue
      ;;
    --dir | --receivers | --outlets | --redis-servers | --binaries | --librato-url | --grace-seconds | --shards | \
      --flush-interval-ms | --lease-ttl-ms | --lease-renew-ms | --log-level | --ready-timeout | --redis-server | \
      --flush-delay-ms | --max-series-in-memory | --max-series-per-tenant | --outlet-threads | \
      --tenant-points-per-second)
      [ $# -ge 2 ] || usage_error "$opt needs a value"
      val=$2
      shift 2
      ;;
    *) usage_error "unknown option: $opt" ;;
  esac
  case "$opt" in
    --dir) dir=$val ;;
    --receivers) receivers=$val ;;
    --outlets) outlets=$val ;;
    --outlet-threads) outlet_threads=$val ;;
    --redis-servers) redis_servers=$val ;;
    --binaries) binaries=$val ;;
    --librato-url) librato_url=$val ;;
    --grace-seconds) grace_seconds=$val ;;
    --shards) shards=$val ;;
    --flush-interval-ms) flush_interval_ms=$val ;;
    --flush-delay-ms) flush_delay_ms=$val ;;
    --max-series-in-memory) max_series_in_memory=$val ;;
    --max-series-per-tenant) max_series_per_tenant=$val ;;
    --tenant-points-per-second) tenant_points_per_second=$val ;;
    --lease-ttl-ms) lease_ttl_ms=$val ;;
    --lease-renew-ms) lease_renew_ms=$val ;;
    --log-level) log_level=$val ;;
    --ready-timeout) ready_timeout=$val ;;
    --redis-server) redis_server=$val ;;
  esac
done

for n in receivers outlets redis_servers grace_seconds shards flush_interval_ms lease_ttl_ms lease_renew_ms ready_timeout; do
  is_uint "${!n}" || usage_error "--${n//_/-} must be a non-negative integer, got '${!n}'"
done
if [ -n "$flush_delay_ms" ]; then
  is_uint "$flush_delay_ms" || usage_error "--flush-delay-ms must be a non-negative integer, got '$flush_delay_ms'"
fi
if [ -n "$max_series_in_memory" ]; then
  if ! is_uint "$max_series_in_memory" || [ "$max_series_in_memory" -lt 1 ]; then
    usage_error "--max-series-in-memory must be a positive integer, got '$max_series_in_memory'"
  fi
fi
if [ -n "$tenant_points_per_second" ] && ! is_uint "$tenant_points_per_second"; then
  usage_error "--tenant-points-per-second must be a non-negative integer, got '$tenant_points_per_second'"
fi
if [ -n "$max_series_per_tenant" ]; then
  if ! is_uint "$max_series_per_tenant" || [ "$max_series_per_tenant" -lt 1 ]; then
    usage_error "--max-series-per-tenant must be a positive integer, got '$max_series_per_tenant'"
  fi
fi
[ "$receivers" -ge 1 ] || usage_error "--receivers must be >= 1"
[ "$outlets" -ge 1 ] || usage_error "--outlets must be >= 1"
{ is_uint "$outlet_threads" && [ "$outlet_threads" -ge 1 ]; } || usage_error "--outlet-threads must be >= 1"
[ "$redis_servers" -ge 1 ] || usage_error "--redis-servers must be >= 1"
[ "$redis_servers" -le "$shards" ] || usage_error "--redis-servers must be <= --shards ($shards)"
[ "$ready_timeout" -ge 1 ] || usage_error "--ready-timeout must be >= 1"
case "$log_level" in debug | info | warn | error) ;; *) usage_error "--log-level: debug, info, warn or error" ;; esac
if [ -n "$librato_url" ] && ! [[ $librato_url =~ ^https?://[^/]+ ]]; then
  usage_error "--librato-url must be an http:// or https:// URL"
fi

# --- executables -------------------------------------------------------------------
find_binary() {  # find_binary NAME SUBDIR: DIR/SUBDIR/NAME or DIR/NAME
  local c
  for c in "$binaries/$2/$1" "$binaries/$1"; do
    if [ -x "$c" ]; then
      printf '%s' "$c"
      return 0
    fi
  done
  die "$1 not found under $binaries (build it, or pass --binaries DIR)"
}
bin_config=$(find_binary drainmet-config config)
bin_receiver=$(find_binary drainmet-receiver receiver)
bin_outlet=$(find_binary drainmet-outlet outlet)
command -v "$redis_server" >/dev/null 2>&1 || die "redis-server not found (install it: apt-get install redis-server)"
redis_server=$(command -v "$redis_server")
for tool in curl sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done

# --- work dir ------------------------------------------------------------------------
if [ -z "$dir" ]; then
  dir=$(mktemp -d "${TMPDIR:-/tmp}/drainmet-local.XXXXXX")
else
  mkdir -p "$dir"
fi
dir=$(cd "$dir" && pwd)
[ -e "$dir/pids" ] && die "$dir/pids exists: is a topology already running in $dir? (remove the file if not)"
chmod 700 "$dir"
# Redis server k (1-based; shard s lives on server s % K, i.e. k = s % K + 1): process name
# redis_names[k-1], data dir (AOF, unix socket) $dir/<name>/, log $dir/<name>.log. With one
# server the name is plain "redis" (the layout before --redis-servers); else redis-1..redis-K.
redis_names=()
redis_socks=()
redis_ports=()
for ((k = 1; k <= redis_servers; k++)); do
  if [ "$redis_servers" -eq 1 ]; then name=redis; else name="redis-$k"; fi
  mkdir -p "$dir/$name"
  sock="$dir/$name/redis.sock"
  [ "${#sock}" -lt 100 ] || die "work dir path too long for a unix socket: $sock"
  redis_names+=("$name")
  redis_socks+=("$sock")
done

# --- process bookkeeping -----------------------------------------------------------
names=()  # parallel arrays: process name, pid
pids=()
stopping=0
failed=0

write_pids() {
  local i tmp="$dir/pids.tmp"
  : >"$tmp"
  for i in "${!names[@]}"; do
    case "${names[i]}" in *-exited) continue ;; esac
    printf '%s %s\n' "${names[i]}" "${pids[i]}" >>"$tmp"
  done
  mv "$tmp" "$dir/pids"
}

keep_previous() {  # keep_previous FILE...: a non-empty FILE of an earlier run becomes FILE.1
  local f
  for f in "$@"; do
    if [ -s "$f" ]; then mv -f -- "$f" "$f.1"; fi
  done
}

start() {  # start NAME LOGFILE OUTFILE CMD...: in its own session, so a terminal's ^C reaches only us
  local name=$1 log=$2 out=$3
  shift 3
  keep_previous "$log" "$out"
  setsid "$@" >"$out" 2>"$log" </dev/null &
  names+=("$name")
  pids+=("$!")
  write_pids
}

pid_of() {
  local i
  for i in "${!names[@]}"; do
    if [ "${names[$i]}" = "$1" ]; then
      printf '%s' "${pids[$i]}"
      return 0
    fi
  done
  return 1
}

alive() { kill -0 "$1" 2>/dev/null; }

stop_one() {  # stop_one NAME TIMEOUT_S: SIGTERM, wait, SIGKILL past the timeout; records the status
  local name=$1 timeout=$2 pid status deadline
  pid=$(pid_of "$name") || return 0
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + timeout))
    while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if alive "$pid"; then
      note "level=error msg=\"did not stop in time; killing\" process=$name pid=$pid timeout_s=$timeout"
      kill -KILL "$pid" 2>/dev/null || true
      failed=1
    fi
  fi
  status=0
  wait "$pid" 2>/dev/null || status=$?
  if [ "$status" -ne 0 ]; then
    note "level=error msg=\"exited non-zero\" process=$name pid=$pid status=$status log=$dir/$name.log"
    failed=1
  else
    note "level=info msg=stopped process=$name pid=$pid"
  fi
}

stop_all() {
  local i
  [ "$stopping" -eq 1 ] && return 0
  stopping=1
  # Receivers first (no new points), then outlets (post what is closed), config, the redis
  # servers last.
  for ((i = 1; i <= receivers; i++)); do stop_one "receiver-$i" 15; done
  for ((i = 1; i <= outlets; i++)); do stop_one "outlet-$i" 30; done
  stop_one config 10
  for ((i = 0; i < redis_servers; i++)); do stop_one "${redis_names[i]}" 15; done
  rm -f "$dir/pids"
}

on_signal() {
  [ "$stopping" -eq 1 ] && return 0  # a second ^C while stopping: keep stopping in order
  note "level=info msg=\"signal received: stopping\" signal=$1"
  stop_all
  if [ "$failed" -ne 0 ]; then exit 1; fi
  exit 0
}

on_exit() {
  local rc=$?
  # Also after a failed start with nothing left running: stop_all removes DIR/pids.
  if [ "$stopping" -eq 0 ]; then
    stop_all
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT
trap 'on_signal HUP' HUP

# --- waits ---------------------------------------------------------------------------
deadline=$((SECONDS + ready_timeout))
check_alive() {  # check_alive NAME: dies with the log's tail when the process is gone
  local pid
  pid=$(pid_of "$1")
  if ! alive "$pid"; then
    note "level=error msg=\"exited during start-up\" process=$1 log=$dir/$1.log"
    tail -n 20 "$dir/$1.log" >&2 || true
    die "$1 failed to start"
  fi
}
wait_log() {  # wait_log NAME REGEX: prints the first matching line of NAME's log
  local name=$1 re=$2 line
  while :; do
    line=$(grep -E -m1 -- "$re" "$dir/$name.log" 2>/dev/null || true)
    if [ -n "$line" ]; then
      printf '%s' "$line"
      return 0
    fi
    check_alive "$name"
    [ "$SECONDS" -lt "$deadline" ] || die "$name not ready within ${ready_timeout}s (log: $dir/$name.log)"
    sleep 0.05
  done
}
wait_ready() {  # wait_ready NAME BASE_URL: /readyz answers 200
  local name=$1 url=$2 code
  while :; do
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url/readyz" || true)
    [ "$code" = 200 ] && return 0
    check_alive "$name"
    [ "$SECONDS" -lt "$deadline" ] || die "$name: $url/readyz not 200 within ${ready_timeout}s (last: $code)"
    sleep 0.1
  done
}
grpc_of() {  # grpc_of LOGLINE: the grpc=HOST:PORT value (grpc.health.v1)
  local v
  v=$(printf '%s' "$1" | grep -oE ' grpc="?[^" ]+' | head -n1)
  v=${v# grpc=}
  printf '%s' "${v#\"}"
}
listen_of() {  # listen_of LOGLINE: the listen=HOST:PORT value
  local v
  v=$(printf '%s' "$1" | grep -oE 'listen="?[^" ]+' | head -n1)
  v=${v#listen=}
  printf '%s' "${v#\"}"
}

# --- redis ---------------------------------------------------------------------------
forget_last() {  # drops the last started process from the bookkeeping (a failed start)
  local n=$((${#names[@]} - 1))
  unset 'names[n]' 'pids[n]'
  names=("${names[@]}")
  pids=("${pids[@]}")
  write_pids
}
port_taken() {  # port_taken PORT: one of our redis servers already listens on PORT
  local p
  for p in "${redis_ports[@]}"; do [ "$p" = "$1" ] && return 0; done
  return 1
}
# Redis TCP ports are drawn below the kernel's ephemeral range, so that while a Redis
# server is down (a fault test restarts it on the same port) no outgoing connection can
# take its port.
ephemeral_low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
port_span=$((ephemeral_low - 20000))
[ "$port_span" -ge 1000 ] || port_span=10000
start_redis() {  # start_redis INDEX (0-based): on a random free loopback port, retried 5 times
  local k=$1 name=${redis_names[$1]} sock=${redis_socks[$1]} attempt port pid
  keep_previous "$dir/$name.log"
  for attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % port_span))
    port_taken "$port" && continue
    : >"$dir/$name.log"
    start "$name" "$dir/$name.log" "$dir/$name.out" "$redis_server" --port "$port" --bind 127.0.0.1 \
      --unixsocket "$sock" --unixsocketperm 700 --dir "$dir/$name" \
      --appendonly yes --appendfsync always --save "" --daemonize no --protected-mode yes \
      --logfile "$dir/$name.log"
    pid=$(pid_of "$name")
    while alive "$pid" && ! grep -q 'Ready to accept connections' "$dir/$name.log" 2>/dev/null; do
      [ "$SECONDS" -lt "$deadline" ] || die "$name not ready within ${ready_timeout}s (log: $dir/$name.log)"
      sleep 0.05
    done
    if alive "$pid"; then
      redis_ports[k]=$port
      return 0
    fi
    wait "$pid" 2>/dev/null || true
    note "level=warn msg=\"redis-server did not start; retrying on another port\" process=$name port=$port attempt=$attempt"
    forget_last
  done
  die "redis-server $name failed to start (log: $dir/$name.log)"
}
for ((k = 0; k < redis_servers; k++)); do start_redis "$k"; done
servers_yaml=""
for ((k = 0; k < redis_servers; k++)); do
  servers_yaml+="${servers_yaml:+, }\"unix:${redis_socks[k]}\""
done

# --- config file ---------------------------------------------------------------------
if [ -n "${DRAINMET_TOKEN:-}" ]; then
  token=$DRAINMET_TOKEN
else
  token=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
fi
token_hash="sha256:$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)"
export DRAINMET_LOCAL_LIBRATO_TOKEN="${LIBRATO_TOKEN:-local-placeholder-token}"
if [ -n "$librato_url" ]; then
  output_block=$(printf '    output: librato\n    librato:\n      url: "%s"\n      email: "%s"\n      api_token_env: DRAINMET_LOCAL_LIBRATO_TOKEN' \
    "$librato_url" "${LIBRATO_EMAIL:-local@drainmet.invalid}")
else
  output_block="    output: stdout"
fi
limits_block=""
if [ -n "$max_series_per_tenant$tenant_points_per_second" ]; then
  limits_block="limits:${max_series_per_tenant:+
  max_series_per_tenant: $max_series_per_tenant}${tenant_points_per_second:+
  tenant_points_per_second: $tenant_points_per_second}"
fi
cat >"$dir/config.yaml" <<EOF
# Written by deploy/local/run.sh: the local distributed topology.
listen: "127.0.0.1:0"
log_level: $log_level
grace_seconds: $grace_seconds
receiver:
  flush_interval_ms: $flush_interval_ms${flush_delay_ms:+
  flush_delay_ms: $flush_delay_ms}${max_series_in_memory:+
  max_series_in_memory: $max_series_in_memory}
$limits_block
outlet:
  lease_ttl_ms: $lease_ttl_ms
  lease_renew_ms: $lease_renew_ms
redis:
  shards: $shards
  servers: [$servers_yaml]
tenants:
  - id: default
    token_hashes: ["$token_hash"]
$output_block
EOF
chmod 600 "$dir/config.yaml"

# --- config service, receivers, outlets -------------------------------------------
start config "$dir/config.log" "$dir/config.out" "$bin_config" --config "$dir/config.yaml" \
  --listen 127.0.0.1:0 --log-level "$log_level"
line=$(wait_log config 'msg="config service listening"')
config_port=$(printf '%s' "$line" | grep -oE 'port=[0-9]+' | head -n1 | cut -d= -f2)
[ -n "$config_port" ] || die "config service: no port in its log line: $line"

for ((i = 1; i <= receivers; i++)); do
  start "receiver-$i" "$dir/receiver-$i.log" "$dir/receiver-$i.out" "$bin_receiver" \
    --config "$dir/config.yaml" --listen 127.0.0.1:0 --grpc-listen 127.0.0.1:0 --log-level "$log_level"
done
for ((i = 1; i <= outlets; i++)); do
  start "outlet-$i" "$dir/outlet-$i.log" "$dir/outlet-$i.out" "$bin_outlet" \
    --config "$dir/config.yaml" --listen 127.0.0.1:0 --grpc-listen 127.0.0.1:0 --threads "$outlet_threads" \
    --log-level "$log_level"
done

receiver_urls=()
receiver_grpc=()
for ((i = 1; i <= receivers; i++)); do
  line=$(wait_log "receiver-$i" 'msg="?drainmet-receiver listening')
  addr=$(listen_of "$line")
  [ -n "$addr" ] || die "receiver-$i: no listen address in its log"
  wait_ready "receiver-$i" "http://$addr"
  receiver_urls+=("http://$addr")
  receiver_grpc+=("$(grpc_of "$line")")
done
outlet_urls=()
outlet_grpc=()
for ((i = 1; i <= outlets; i++)); do
  line=$(wait_log "outlet-$i" 'msg="?drainmet-outlet listening')
  addr=$(listen_of "$line")
  [ -n "$addr" ] || die "outlet-$i: no listen address in its log"
  wait_ready "outlet-$i" "http://$addr"
  outlet_urls+=("http://$addr")
  outlet_grpc+=("$(grpc_of "$line")")
done

# --- summary -------------------------------------------------------------------------
{
  for ((k = 0; k < redis_servers; k++)); do
    name=${redis_names[k]}
    say "component=redis index=$((k + 1)) process=$name pid=$(pid_of "$name") unix=${redis_socks[k]} addr=127.0.0.1:${redis_ports[k]} log=$dir/$name.log"
  done
  say "component=config pid=$(pid_of config) grpc=127.0.0.1:$config_port log=$dir/config.log"
  for ((i = 1; i <= receivers; i++)); do
    u=${receiver_urls[$((i - 1))]}
    say "component=receiver index=$i pid=$(pid_of "receiver-$i") url=$u/logs drain_url=${u/http:\/\//http://$token@}/logs grpc=${receiver_grpc[$((i - 1))]} log=$dir/receiver-$i.log"
  done
  for ((i = 1; i <= outlets; i++)); do
    u=${outlet_urls[$((i - 1))]}
    out=""
    [ -z "$librato_url" ] && out=" gauges=$dir/outlet-$i.out"
    say "component=outlet index=$i pid=$(pid_of "outlet-$i") metrics_url=$u/metrics grpc=${outlet_grpc[$((i - 1))]} log=$dir/outlet-$i.log$out"
  done
  say "msg=ready dir=$dir token=$token config=$dir/config.yaml pids=$dir/pids output=${librato_url:-stdout} redis_servers=$redis_servers shards=$shards"
} | tee "$dir/summary"

# --- foreground ----------------------------------------------------------------------
# Sleep in short pieces so a signal's trap runs at once. A process that exits on its own
# (a test's kill -9, a crash) is logged and left dead; with --fail-on-exit it stops the
# whole topology with status 1 instead.
while :; do
  for i in "${!names[@]}"; do
    case "${names[i]}" in *-exited) continue ;; esac
    if ! alive "${pids[i]}"; then
      status=0
      wait "${pids[i]}" 2>/dev/null || status=$?
      name=${names[i]}
      names[i]="$name-exited"
      write_pids
      if [ "$fail_on_exit" -eq 1 ]; then
        note "level=error msg=\"process exited on its own; stopping the topology\" process=$name status=$status log=$dir/$name.log"
        failed=1
        stop_all
        exit 1
      fi
      note "level=warn msg=\"process exited on its own\" process=$name status=$status log=$dir/$name.log"
    fi
  done
  sleep 0.5 &
  wait $! || true
done
