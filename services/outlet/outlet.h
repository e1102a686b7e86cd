#pragma once
// The outlet of distributed drainmet (issue "Distributed drainmet"; RELIABILITY.md §3.3
// "Outlet worker"; docs/redis-layout.md "Shard protocol"; docs/architecture.md "Outlet"):
// leases shards in Redis, seals their due windows, merges the partial buckets, posts the
// gauges through the same Librato code as standalone, marks tenants sent and acks.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/base/clock.h"
#include "common/config/config.h"
#include "common/emit/sink.h"
#include "common/store/redis_client.h"
#include "common/store/redis_scripts.h"
#include "common/telemetry/metrics.h"
#include "prometheus/counter.h"

namespace drainmet::outlet {

/// "<hostname>:<pid>:<16 random hex digits>": an owner id unique per process incarnation
/// (docs/redis-layout.md "Leases and fencing"). Each call gives a new random part.
std::string NewOwnerId();

/// The key of the outlets' heartbeat sorted set on server 0: member = owner id, score =
/// the owner's last heartbeat, Redis TIME in milliseconds.
inline constexpr std::string_view kOutletsKey = "dm:outlets";

struct OutletOptions {
  /// Worker threads; shard s is worked by thread s % threads. At least 1.
  int threads = 4;
  /// The owner id of the leases; empty: NewOwnerId().
  std::string owner;
  /// Makes each worker thread's sink (one per thread, used by that thread only). Null:
  /// emit::TenantSink over the config (Librato or stdout per tenant).
  std::function<std::unique_ptr<emit::Sink>(const config::Config&)> make_sink;
  /// Bound of Stop(): how long the windows in progress may still take (retries included)
  /// before they are abandoned to the next holder, ms.
  std::int64_t shutdown_timeout_ms = 20000;
  /// Windows per Seal call (sealed and reported ready), per shard and pass.
  std::int64_t seal_limit = 32;
  /// List elements per ReadWindow call (LRANGE) at most. An element is one record or a
  /// batch of records of up to bucket::kMaxElementBytes (docs/redis-layout.md "Record
  /// encoding"), so each call reads min(read_chunk, read_bytes / kMaxElementBytes)
  /// elements: 2,097 by default.
  std::int64_t read_chunk = 4096;
  /// Bound of one ReadWindow reply's element bytes (the reply and its copy are held at
  /// once, per worker thread): the elements per call are cut so that elements of the
  /// writers' maximum size fit. Exceeded only by single records larger than
  /// kMaxElementBytes (a widely spread measure's sketch, ~1 MiB at most each).
  std::int64_t read_bytes = std::int64_t{16} << 20;
  /// Seeds the jitter and the shard walk's random offset; 0: std::random_device.
  std::uint64_t seed = 0;
};

/// One outlet process's work on the Redis shards.
///
/// Lease manager (one thread): every `outlet.lease_renew_ms` it (1) renews every held
/// lease (Aborted: the shard is dropped at once and its worker stops; a lease not renewed
/// for a whole lease_ttl because Redis did not answer is dropped too; every renewal is
/// counted in drainmet_outlet_lease_renewals_total{result="ok"|"refused"|"failed"}:
/// refused = the store fenced it, the lease expired or was taken over, logged once as the
/// shard lease lost; failed = Redis did not answer), (2) registers a
/// heartbeat in kOutletsKey (removing members older than max(3 x lease_renew, lease_ttl)), (3) claims
/// free shards up to its fair share ceil(S / live outlets), walking the shards from a
/// random offset, plus any shard it has seen free for longer than one lease_ttl (so no
/// shard is orphaned when the count is off), and (4) when it holds more than its share
/// while no shard is free (an outlet joined), marks the excess for release: the worker
/// releases each after finishing the window in progress, so shards rebalance.
///
/// Workers (`threads` threads, each with its own RedisClient per server and its own Sink):
/// for each held shard: Seal (fenced) -> for each ready window, oldest first: ReadWindow
/// in chunks, DecodeRecord (a record that does not decode is counted, logged once and
/// skipped), merge in list order, BuildGauges (name_conflict, bad_name counted), one
/// request per tenant and <= max_gauges_per_request gauges (emit::ForEachRequest),
/// skipping tenants already in SentTenants; up to outlet.max_inflight_requests requests of
/// a tenant are in flight at once (Sink::Start / Poll: libcurl multi, keep-alive
/// connections), and each request is posted with the standalone
/// outlet's rules (SEMANTICS §7.5: 2xx accepted; 429/5xx/transport retried with full-jitter
/// exponential backoff and at least Retry-After; other statuses rejected for good and
/// logged with the API's body; a retry that would fall past retry_horizon_seconds after the
/// window's end expires the request). Once every request of a tenant is accepted, rejected
/// or expired: MarkSent(tenant) (fenced); once every tenant is: Ack (fenced). Retry waits
/// are short sleeps that watch the lease: a lease lost (Aborted anywhere, or the manager's
/// renewal failed) abandons the window at once for the next holder, which re-posts only
/// the tenants not marked sent (identical bodies). A Redis error abandons the window for
/// the next pass. Windows of a holder that died (ready but not sealed by this pass) count
/// their posts as `retried`. SealResult.expired windows are counted lost and logged.
///
/// Windows close by Redis TIME (inside the scripts); this class reads `clock` only for the
/// retry horizon and the emission delay.
///
/// Thread-safety: Start/Stop from one thread; the accessors from any thread.
class ShardOutlet {
 public:
  /// `config` must be valid (config::Validate). `clock` and `metrics` must outlive this.
  ShardOutlet(config::Config config, OutletOptions options, const base::Clock& clock,
              telemetry::Metrics& metrics);
  ~ShardOutlet();  ///< Stop().
  ShardOutlet(const ShardOutlet&) = delete;
  ShardOutlet& operator=(const ShardOutlet&) = delete;

  /// Starts the lease manager and the workers. InvalidArgument for a bad server address.
  absl::Status Start();

  /// A new configuration from the config service: the windows whose emission starts
  /// afterwards use its tenants (ids, credentials, API URLs, outputs), max_gauges_per_request,
  /// retry backoffs and retry_horizon_seconds; each worker rebuilds its sink (make_sink) at
  /// its next window. A window in progress finishes with the copy it started with. What
  /// the lease manager and the Redis clients use (the redis section, lease_ttl_ms,
  /// lease_renew_ms, seal_interval_ms) keeps its first value: a change there is logged as
  /// "needs restart" and ignored. InvalidArgument (nothing applied) for an invalid config.
  /// Thread-safe; may be called before or after Start.
  absl::Status UpdateConfig(config::Config config);

  /// The configuration the next window will use (the latest UpdateConfig, else the one given
  /// at construction).
  std::shared_ptr<const config::Config> CurrentConfig() const;

  /// SIGTERM: stops taking new windows, lets each window in progress finish (bounded by
  /// shutdown_timeout_ms, then abandoned), releases every lease (ReleaseLease) and removes
  /// the heartbeat, so other outlets take the shards at once. Idempotent.
  void Stop();

  const std::string& owner() const { return owner_; }
  /// Shards whose lease this outlet holds now, ascending.
  std::vector<std::uint32_t> HeldShards() const;
  /// True when Redis answered one of this outlet's calls within the last
  /// max(3 s, 2 x lease_renew_ms) (for /readyz).
  bool RedisHealthy() const;
  /// Test hook: a paused lease manager neither renews, nor heartbeats, nor acquires (as if
  /// the process were stalled), so its leases expire after lease_ttl.
  void PauseLeaseManagerForTest(bool paused) { manager_paused_.store(paused); }

 private:
  struct ShardState {
    std::optional<store::Lease> lease;  // Held lease, if any.
    std::chrono::steady_clock::time_point renewed;
    bool release_wanted = false;  // Manager asks the worker to give it up between windows.
    std::optional<std::chrono::steady_clock::time_point> seen_free_since;
  };
  struct Worker;
  enum class WindowOutcome { kAcked, kAbandoned };
  /// What one window's emission reads; swapped whole by UpdateConfig.
  struct TenantView {
    std::shared_ptr<const config::Config> config;
    absl::flat_hash_map<std::string, std::size_t> tenant_index;  // id -> index in config->tenants
    std::uint64_t generation = 0;
  };
  static std::shared_ptr<const TenantView> MakeView(std::shared_ptr<const config::Config> config,
                                                    std::uint64_t generation);
  std::shared_ptr<const TenantView> View() const;
  /// Rebuilds `worker`'s sink when the view changed since it was made.
  void RefreshSink(Worker& worker, std::shared_ptr<const TenantView> view) const;

  absl::StatusOr<std::vector<store::RedisClient>> MakeClients() const;
  store::RedisClient& ClientFor(std::vector<store::RedisClient>& clients, std::uint32_t shard) const;
  void NoteRedisOk();

  void ManagerLoop();
  void ManagerTick(std::vector<store::RedisClient>& clients, std::mt19937_64& rng);
  /// Writes this outlet's heartbeat to dm:outlets on server 0 (`c0`), prunes dead members
  /// and returns how many outlets are live; nullopt (logged) when server 0 fails.
  std::optional<std::int64_t> Heartbeat(store::RedisClient& c0);
  /// Drops `shard`'s lease locally when it still holds `token`.
  void DropLease(std::uint32_t shard, std::int64_t token, std::string_view why);
  /// Whether `shard`'s lease is still held locally with `token`.
  bool StillHeld(std::uint32_t shard, std::int64_t token) const;
  void PublishLeaseCount();

  void WorkerLoop(Worker& worker);
  /// Works the ready windows of `sealed` (this pass's seal.lua result for the shard).
  /// False when the seal failed, nothing was ready or a window was abandoned (the worker
  /// then idles one interval).
  bool WorkShard(Worker& worker, std::uint32_t shard, const store::Lease& lease,
                 absl::StatusOr<store::SealResult> sealed);
  /// Counts `sealed`'s windows in drainmet_outlet_windows_sealed_total{by} (and logs them at
  /// debug), right after the seal call.
  void CountSealed(std::uint32_t shard, const store::SealResult& sealed);
  WindowOutcome WorkWindow(Worker& worker, std::uint32_t shard, const store::Lease& lease, std::int64_t close,
                           bool takeover);

  const config::Config config_;
  const OutletOptions options_;
  const base::Clock& clock_;
  telemetry::Metrics& metrics_;
  const std::string owner_;
  const store::ShardProtocol protocol_;
  const std::uint32_t shards_;
  mutable std::mutex view_mu_;
  std::shared_ptr<const TenantView> view_;  // guarded by view_mu_, never null

  mutable std::mutex mu_;
  std::vector<ShardState> states_;  // guarded by mu_, one per shard
  std::int64_t last_live_ = 1;      // manager thread only: the last outlet count heard

  std::atomic<bool> stopping_{false};      // workers: take no new windows
  std::atomic<bool> manager_stop_{false};  // manager: exit
  std::atomic<bool> manager_paused_{false};
  std::atomic<std::int64_t> shutdown_deadline_ns_{INT64_MAX};  // steady clock, ns
  std::atomic<std::int64_t> redis_ok_ns_{0};                   // steady clock, ns
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};
  // drainmet_outlet_lease_renewals_total{result}: registered on metrics_'s registry.
  prometheus::Counter* renewals_ok_;
  prometheus::Counter* renewals_refused_;
  prometheus::Counter* renewals_failed_;
  std::thread manager_;
  std::vector<std::thread> workers_;
};

}  // namespace drainmet::outlet
