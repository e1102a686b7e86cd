#pragma once
// The configuration of `drainmet run` and of the distributed services: listener, limits,
// the outlet's pacing and retries, and the tenants with their tokens and Librato accounts.
// Read from one YAML or JSON file (docs/configuration.md is the reference of every key).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace drainmet::config {

/// Where and as whom a tenant's gauges are posted (FORMATS.md §5.1: Basic auth with the
/// account email as user and the API token as password).
struct LibratoOutput {
  /// POST /v1/metrics endpoint; http:// or https://.
  std::string url = "https://metrics-api.librato.com/v1/metrics";
  std::string email;  ///< Basic-auth user.
  /// Basic-auth password, already resolved from `api_token` or `api_token_env`. A secret:
  /// never log it.
  std::string api_token;

  bool operator==(const LibratoOutput&) const = default;
};

/// Where a tenant's gauges go.
enum class OutputKind : std::uint8_t {
  kLibrato,  ///< POST to the Librato API (SEMANTICS §7.4).
  kStdout,   ///< One JSON gauge per line on stdout (local runs and tests).
};

/// One tenant: who may drain into drainmet (DESIGN rule 6) and where its gauges go.
struct Tenant {
  /// Unique, non-empty, [A-Za-z0-9._-]. Also the Basic-auth user of the
  /// https://TENANT:TOKEN@host drain URL form.
  std::string id;
  /// SHA-256 of each drain token this tenant accepts, "sha256:" + 64 lowercase hex digits
  /// (HashToken in auth.h). A hash belongs to one tenant only.
  std::vector<std::string> token_hashes;
  /// Resolution of drains that give no `resolution` option, seconds; one of SEMANTICS
  /// §4.7's values.
  int default_resolution_seconds = 60;
  OutputKind output = OutputKind::kLibrato;
  LibratoOutput librato;  ///< Used when output == kLibrato.

  bool operator==(const Tenant&) const = default;
};

/// Bounds on what one process accepts and keeps (DESIGN rule 5). All must be > 0.
struct Limits {
  std::uint64_t max_body_bytes = 1 << 20;        ///< Largest drain request body, bytes.
  std::uint32_t max_header_bytes = 16384;        ///< Largest request line + headers, bytes.
  std::uint64_t max_open_buckets = 1'000'000;    ///< Open buckets kept; beyond: series_limit.
  std::int64_t dedupe_window_seconds = 600;      ///< How long a Logplex-Frame-Id is remembered.
  std::uint64_t dedupe_max_entries = 1'000'000;  ///< Frame ids remembered at most.
  std::int64_t read_timeout_seconds = 30;        ///< Idle time allowed while reading a request.
  std::int64_t future_tolerance_seconds = 60;    ///< SEMANTICS §6.5: points further ahead: future.
  /// Largest drain request body after `Content-Encoding: gzip` is undone, bytes (log-shuttle,
  /// FORMATS.md §1.8); a body that inflates beyond it is answered 413.
  std::uint64_t max_inflated_body_bytes = 8 << 20;
  /// Points per second one tenant may send to one process (token bucket holding one
  /// second's worth); a drain request beyond it is answered 429 with Retry-After and its
  /// points are not stored (FORMATS.md §1.6: Logplex retries 429). 0: no rate limit.
  std::uint64_t tenant_points_per_second = 1'000'000;
  /// Header fields per request at most (HTTP listener); more is answered 431 (a
  /// whole-request bound: the only kind that may answer 4xx, SEMANTICS §1.2). > 0.
  std::uint32_t max_header_count = 100;
  /// Frames used per HTTP drain request at most; later frames are counted
  /// input_rejected{reason="too_many_frames"} and skipped, the first ones still used. > 0.
  std::uint64_t max_frames_per_request = 100'000;
  /// Longest frame (its MSG-LEN, SEMANTICS §1.1) of an HTTP drain, bytes: a longer frame
  /// is skipped whole, counted input_rejected{reason="line_too_long"} (as
  /// syslog.max_line_bytes for syslog drains). 1..999999 (Logplex's MSG-LEN has 6 digits).
  std::uint64_t max_line_bytes = 65536;
  /// Series (buckets) of one tenant in one window and resolution at most; points of new
  /// series beyond it are dropped and counted points_dropped{reason="series_limit"}, points
  /// of series already open are always kept. > 0.
  std::uint64_t max_series_per_tenant = 100'000;
  /// Failed drain authentications (401) one remote address may have within
  /// auth_failure_window_seconds before its next 401s are delayed by auth_failure_delay_ms
  /// (issue 5, Security). > 0.
  std::uint32_t auth_failures_before_delay = 10;
  std::int64_t auth_failure_window_seconds = 60;  ///< The counting window, seconds. > 0.
  std::int64_t auth_failure_delay_ms = 2000;      ///< The delay of a slowed-down 401, ms. > 0.

  bool operator==(const Limits&) const = default;
};

/// Pacing and retries of the emission to Librato (SEMANTICS §7.4, §7.5).
struct Outlet {
  /// `drainmet run`: how often closed buckets are looked for, ms. > 0.
  std::int64_t interval_ms = 500;
  std::int64_t connect_timeout_ms = 3000;   ///< TCP + TLS connect to the API.
  std::int64_t request_timeout_ms = 10000;  ///< Whole POST, connect included.
  int max_gauges_per_request = 300;         ///< 1..300 (SEMANTICS §7.4).
  /// Requests of one tenant in flight at once (each on its own keep-alive connection),
  /// distributed outlet. 1..64.
  int max_inflight_requests = 8;
  std::int64_t retry_initial_backoff_ms = 500;  ///< First retry delay, then doubled (with jitter).
  std::int64_t retry_max_backoff_ms = 60000;    ///< Cap of the delay; >= the initial backoff.
  /// `drainmet run`: request bodies waiting for a retry kept at most, bytes (issue 5,
  /// pending retries bounded); beyond, those of the oldest windows are dropped and counted
  /// expired. Every body gets its first attempt. > 0.
  std::uint64_t max_pending_retry_bytes = 64ULL << 20;
  /// Distributed mode: how long a shard lease lasts without renewal, ms. > 0.
  std::int64_t lease_ttl_ms = 15000;
  /// Distributed mode: how often a held lease is renewed, ms. > 0 and < lease_ttl_ms.
  std::int64_t lease_renew_ms = 5000;
  /// Distributed mode: how often an idle outlet worker seals its shards' due windows, ms
  /// (one pipelined seal.lua round trip per Redis server). > 0.
  std::int64_t seal_interval_ms = 100;

  bool operator==(const Outlet&) const = default;
};

/// Distributed mode: the receivers' pre-aggregation before a flush to Redis.
struct Receiver {
  /// The longest a request's points wait in a receiver before their write to Redis
  /// starts, ms: the bound of the pre-aggregation window. > 0.
  std::int64_t flush_interval_ms = 1000;
  /// How long a batch collects after its first request before its write starts while
  /// Redis is idle, ms (group commit: under load, batches also grow while the previous
  /// write runs). 0..flush_interval_ms. Logplex sends one request at a time per
  /// connection (FORMATS.md §1.1), so this is about each drain's added latency.
  std::int64_t flush_delay_ms = 2;
  /// Series a worker keeps in memory at most; reaching it flushes early. > 0.
  std::uint64_t max_series_in_memory = 200'000;
  /// How often the receiver publishes its watermark to every Redis server, ms
  /// (docs/redis-layout.md "Receivers' watermarks"). > 0.
  std::int64_t watermark_interval_ms = 100;
  /// How long a published watermark stays live without a refresh, ms: a receiver stalled
  /// (or gone) for longer no longer holds sealing back. > watermark_interval_ms.
  std::int64_t watermark_ttl_ms = 1000;

  bool operator==(const Receiver&) const = default;
};

/// Distributed mode: the Redis servers and the logical shards mapped onto them
/// (docs/configuration.md "redis"; ServerOfShard).
struct Redis {
  /// Logical shard count S: a series goes to shard hash(series) mod S. 1..4096.
  std::uint32_t shards = 64;
  /// Redis servers, each "HOST:PORT", "[IPv6]:PORT" (port 1..65535) or "unix:/absolute/path"
  /// (ParseRedisAddress). Non-empty, no duplicates. Shard s lives on servers[s % size].
  std::vector<std::string> servers = {"127.0.0.1:6379"};
  std::int64_t connect_timeout_ms = 1000;  ///< Bound of one connection attempt, ms. > 0.
  std::int64_t command_timeout_ms = 2000;  ///< Bound of each command's write and read, ms. > 0.

  bool operator==(const Redis&) const = default;
};

/// One syslog drain (FORMATS.md §2): the drain token Logplex writes in the HOSTNAME field of
/// every message, the tenant it belongs to, and the options an HTTPS drain would carry in
/// its query (SEMANTICS §4.7).
struct SyslogDrain {
  /// The drain token as sent, "d." + UUID (`heroku drains --json`). 1..255 printable
  /// US-ASCII bytes without blanks (an RFC 5424 HOSTNAME); unique among drains.
  std::string token;
  std::string tenant;          ///< Id of an existing tenant.
  int resolution_seconds = 0;  ///< One of SEMANTICS §4.7's values; 0 = the tenant's default.
  std::string prefix;          ///< Metric names become PREFIX.NAME; empty = none.
  std::string source_prefix;   ///< Sources become SP.SOURCE (or SP); empty = none.

  bool operator==(const SyslogDrain&) const = default;
};

/// Syslog drains over TCP and TLS (FORMATS.md §2): listeners, bounds, and the drain map.
/// Both listeners are off unless given.
struct Syslog {
  std::string listen;         ///< HOST:PORT of the plain TCP listener (`syslog://`); empty = off.
  std::string tls_listen;     ///< HOST:PORT of the TLS listener (`syslog+tls://`); empty = off.
  std::string tls_cert_file;  ///< PEM certificate chain; required with tls_listen.
  std::string tls_key_file;   ///< PEM private key; required with tls_listen.
  /// Longest message accepted, bytes (octet count or line); longer ones are skipped and
  /// counted (reason line_too_long). 1..999999 (the octet count has at most 6 digits).
  std::uint64_t max_line_bytes = 65536;
  std::uint64_t max_connections = 1024;     ///< Open syslog connections at most; more are closed. > 0.
  std::int64_t idle_timeout_seconds = 600;  ///< A connection silent this long is closed. > 0.
  std::vector<SyslogDrain> drains;          ///< Known drain tokens; others are dropped and counted.

  bool operator==(const Syslog&) const = default;
};

/// The whole configuration. A value returned by ParseConfig or LoadConfigFile is valid
/// (Validate passed). Immutable once built; share it as shared_ptr<const Config>.
struct Config {
  std::string listen = "0.0.0.0:8080";  ///< HOST:PORT or [IPv6]:PORT of the drain endpoint.
  /// TLS on the drain endpoint (`listen`): PEM certificate chain and PEM private key. Both
  /// empty (the default): plain HTTP; both set: HTTPS only, TLS 1.2 or later, the pair
  /// re-read on SIGHUP. Paths are local to the process (never taken from drainmet-config).
  std::string tls_cert_file;
  std::string tls_key_file;
  int threads = 0;                           ///< Worker threads; 0 = number of cores.
  std::int64_t grace_seconds = 5;            ///< SEMANTICS §6.5 grace, 0..3600.
  std::int64_t retry_horizon_seconds = 900;  ///< SEMANTICS §7.5: then expired.
  std::string log_level = "info";            ///< debug | info | warn | error.
  Limits limits;
  Outlet outlet;
  Receiver receiver;  ///< Distributed mode only.
  Redis redis;        ///< Distributed mode only.
  Syslog syslog;      ///< Syslog drains (off by default).
  std::vector<Tenant> tenants;

  bool operator==(const Config&) const = default;
};

/// A listen address split into its parts.
struct HostPort {
  std::string host;        ///< Name or IPv4 address, or an IPv6 address without its brackets.
  std::uint16_t port = 0;  ///< 0 lets the system pick a free port (tests).
};

/// Parses "HOST:PORT" or "[IPv6]:PORT": HOST non-empty, of [A-Za-z0-9.-] (or, inside the
/// brackets, [0-9A-Fa-f:.]); PORT 0..65535 in decimal. InvalidArgument otherwise.
absl::StatusOr<HostPort> ParseHostPort(std::string_view text);

/// A Redis server address (an element of Redis::servers) split into its parts.
struct RedisAddress {
  std::string unix_socket;  ///< Socket path for "unix:/path"; empty for TCP.
  std::string host;         ///< TCP only: name or address (IPv6 without its brackets).
  std::uint16_t port = 0;   ///< TCP only: 1..65535.

  bool operator==(const RedisAddress&) const = default;
};

/// Parses "unix:/absolute/path" (the path non-empty, starting with '/') or "HOST:PORT" /
/// "[IPv6]:PORT" as ParseHostPort does, with PORT 1..65535. InvalidArgument otherwise.
absl::StatusOr<RedisAddress> ParseRedisAddress(std::string_view text);

/// The index in `config.redis.servers` of the server holding `shard`: shard % servers.size()
/// (the shard map, docs/configuration.md "redis"). `config` must be valid (servers
/// non-empty); `shard` should be < config.redis.shards. Pure.
std::size_t ServerOfShard(const Config& config, std::uint32_t shard);

/// How long after a window's close (window + resolution + grace, SEMANTICS §6.5) a
/// receiver's write of points it received before the close may still arrive in Redis: one
/// flush interval plus one Redis command timeout, rounded up to whole seconds. Outlets seal
/// a window only this long after its close, and ingest.lua refuses records only after it
/// (or once sealed); receivers judge lateness at receipt (docs/semantics-choices.md, 12).
/// Pure.
std::chrono::seconds ReceiverWriteAllowance(const Config& config);

/// Looks up an environment variable; std::nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

/// Parses a configuration file's text, YAML 1.2 or JSON (a JSON document is YAML), and
/// validates it. Keys absent take the defaults above; `librato.api_token_env` is resolved
/// through `env`. Errors are InvalidArgument with a message that starts with the path of
/// the culprit, e.g. "tenants[1].librato.emial: unknown key", "limits.max_body_bytes:
/// must be a non-negative integer", or "line 3, column 7: ..." for a syntax error.
/// Numbers must be plain (unquoted) decimal integers. An empty document is an empty
/// mapping (and then fails validation: no tenants). Never throws. Thread-safe if `env` is.
absl::StatusOr<Config> ParseConfig(std::string_view text, const EnvLookup& env);

/// Reads `path` and parses it with ParseConfig. NotFound when the file does not exist,
/// PermissionDenied / InvalidArgument otherwise; every message starts with `path`. The
/// files the config names are not read here (the outlets and drainmet-config load the
/// same file without serving the drain listener): the processes that do call CheckFiles.
absl::StatusOr<Config> LoadConfigFile(const std::string& path, const EnvLookup& env);

/// Checks what Validate cannot check without reading files: when tls_cert_file and
/// tls_key_file are set, both are readable and the pair loads (a PEM chain, a PEM key that
/// matches it; http::CheckTlsFiles). InvalidArgument starting with the key at fault, e.g.
/// "tls_key_file: cannot read /etc/drainmet/key.pem: Permission denied". OK when TLS is
/// off. Called at load by the processes that serve the drain listener (`drainmet run`,
/// drainmet-receiver). Thread-safe.
absl::Status CheckFiles(const Config& config);

/// Checks the rules of docs/configuration.md ("Validation"): at least one tenant; ids
/// unique, non-empty, [A-Za-z0-9._-]; token hashes well-formed and not shared between
/// tenants; resolutions one of SEMANTICS §4.7's; a librato output has an email, an API
/// token and an http(s) URL; limits and timeouts positive; 1 <= max_gauges_per_request
/// <= 300; 0 <= grace_seconds <= 3600; listen is HOST:PORT; tls_cert_file and
/// tls_key_file both set or both empty; log_level known;
/// lease_renew_ms < lease_ttl_ms; 1 <= redis.shards <= 4096; redis.servers non-empty,
/// each a ParseRedisAddress form, no duplicates; syslog listeners HOST:PORT when given,
/// TLS with a certificate and a key, drain tokens well-formed and unique, each drain's
/// tenant known and resolution allowed (or 0).
/// InvalidArgument naming the first offending field path. Pure.
absl::Status Validate(const Config& config);

/// What a drainmet-receiver that follows drainmet-config cannot change without a restart
/// (it is fixed when the listener, the store and the pre-aggregator start): listen, the
/// TLS files (tls_cert_file, tls_key_file: their content is re-read on SIGHUP, not their
/// paths), threads, grace_seconds, limits.max_body_bytes, limits.max_header_bytes,
/// limits.max_header_count, limits.read_timeout_seconds (the HTTP server's options),
/// limits.dedupe_window_seconds, limits.max_series_per_tenant (the pre-aggregator's
/// bound), the receiver and redis sections, and the syslog listeners and bounds (not
/// syslog.drains). Returns the differing keys, comma-separated, in that order; empty when
/// none. Every other key applies to requests that start after the change. Pure.
std::string ReceiverRestartOnlyChanges(const Config& now, const Config& next);

/// Sets in `next` every value ReceiverRestartOnlyChanges compares to that of `now`, so that
/// the applied copy describes what runs (syslog.drains of `next` are kept). Pure.
void KeepReceiverRestartOnly(const Config& now, Config& next);

/// The process environment (getenv). getenv is not safe against concurrent setenv: use it
/// at startup.
EnvLookup ProcessEnv();

/// The values allowed for a resolution (SEMANTICS §4.7), seconds, ascending.
inline constexpr int kResolutions[] = {1, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600};

/// True when `seconds` is one of kResolutions.
bool IsValidResolution(std::int64_t seconds);

}  // namespace drainmet::config
