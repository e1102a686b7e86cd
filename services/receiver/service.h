#pragma once
// drainmet-receiver: the stateless drain endpoint of the distributed mode. The same HTTP
// face and request logic as standalone (drain::Frontend, DrainHandler), on the Redis store:
// a request is answered 2xx only once its partial buckets are in their Redis shards, 503
// with Retry-After when Redis is down or slow (FORMATS.md §1.6). grpc.health.v1 on its own
// gRPC port says whether Redis answers.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/clock.h"
#include "common/config/config.h"
#include "common/config/watcher.h"
#include "common/drain/frontend.h"
#include "common/drain/syslog.h"
#include "common/health/health_server.h"
#include "common/store/pre_aggregator.h"
#include "common/store/redis_store.h"
#include "common/store/watermark.h"
#include "common/telemetry/metrics.h"

namespace drainmet::receiver {

/// The grpc.health.v1 service name of a receiver (besides "").
inline constexpr char kHealthServiceName[] = "drainmet.v1.Receiver";

/// What a receiver takes from the command line rather than the config file.
struct ServiceOptions {
  /// gRPC listen address of grpc.health.v1, "HOST:PORT" or "[IPv6]:PORT"; port 0 picks a
  /// free port (Service::grpc_port()). The binary's --grpc-listen defaults to 0.0.0.0:9090;
  /// this default keeps in-process receivers (tests) off fixed ports.
  std::string grpc_listen = "127.0.0.1:0";
};

/// How a receiver follows drainmet-config (issue "Distributed drainmet": receivers keep the
/// last good copy while the service is unreachable).
struct FollowOptions {
  /// gRPC target of drainmet-config ("HOST:PORT", "dns:///name:port"). Required.
  std::string target;
  /// Optional config file served until the service answers (ConfigWatcherOptions
  /// initial_file); with it the receiver starts at once even if the service is down.
  std::string initial_file;
  /// Bound of the wait for the first configuration (when there is no initial file).
  std::chrono::milliseconds first_config_timeout{10000};
  /// Applied to every copy before use (command-line overrides: --listen, --threads,
  /// --log-level). Optional.
  std::function<void(config::Config&)> adjust;
  /// Reconnection backoff of the watcher (ConfigWatcherOptions).
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{5000};
};

/// The running receiver. Thread-safe: Stop() may be called from any thread.
class Service {
 public:
  /// Validates `config`, binds options.grpc_listen (grpc.health.v1) and config.listen and
  /// serves. InvalidArgument for a bad config (a Redis address included) or a malformed
  /// grpc_listen; Unavailable when an address cannot be bound ("cannot listen for gRPC on
  /// HOST:PORT" for the gRPC one). Redis need not be up: requests are answered 503 until it
  /// is, and /readyz and grpc.health.v1 say so.
  ///
  /// grpc.health.v1, for "" and kHealthServiceName: SERVING while the last Redis ping (one
  /// a second) succeeded and Stop() has not begun; NOT_SERVING otherwise, and for good from
  /// Stop() on. Any other name answers NOT_FOUND.
  static absl::StatusOr<std::unique_ptr<Service>> Start(config::Config config, const base::Clock& clock,
                                                        ServiceOptions options = {});

  /// Follows the config service: starts a config::ConfigWatcher, waits up to
  /// `first_config_timeout` for a configuration (DeadlineExceeded "no configuration from
  /// the config service TARGET within N ms: LAST_ERROR" otherwise), then serves it as
  /// Start() does. Each later change of content is applied with ApplyConfig; while the
  /// service is unreachable the last good copy stays in use.
  static absl::StatusOr<std::unique_ptr<Service>> StartFollowing(FollowOptions options,
                                                                 const base::Clock& clock,
                                                                 ServiceOptions service_options = {});
  ~Service();

  /// The bound HTTP port.
  std::uint16_t port() const { return frontend_->port(); }
  /// The pre-aggregation's counters now (queued_buckets: requests queued, not yet merged;
  /// tests and tools). Thread-safe.
  store::PreAggregatorStats aggregation_stats() const { return aggregator_->stats(); }
  /// Buckets merged in memory, not yet written.
  std::size_t merged_buckets() const { return aggregator_->OpenBuckets(); }
  /// Bound port of the syslog TCP listener (config syslog.listen); 0 when off.
  std::uint16_t syslog_port() const { return syslog_ == nullptr ? 0 : syslog_->tcp_port(); }
  /// Bound port of the syslog TLS listener (config syslog.tls_listen); 0 when off.
  std::uint16_t syslog_tls_port() const { return syslog_ == nullptr ? 0 : syslog_->tls_port(); }
  /// The bound gRPC (grpc.health.v1) port.
  std::uint16_t grpc_port() const { return health_->port(); }
  telemetry::Metrics& metrics() { return metrics_; }

  /// Applies a new configuration to the requests that start afterwards: tenants, tokens,
  /// default resolutions, limits.future_tolerance_seconds, limits.max_inflated_body_bytes,
  /// syslog.drains, log_level. What is fixed at start (config::ReceiverRestartOnlyChanges:
  /// listen and its TLS files, threads, the server's size and time limits, grace_seconds,
  /// the de-dup window, the per-tenant series bound, the receiver and redis sections, the
  /// syslog listeners and their bounds) keeps its first value; a change there is logged
  /// once per copy as "needs restart" and otherwise ignored. InvalidArgument (and nothing applied)
  /// when `config` does not validate. Thread-safe.
  absl::Status ApplyConfig(config::Config config);

  /// SIGHUP: re-reads the TLS certificate and key of the drain listener (tls_cert_file,
  /// tls_key_file) and of the syslog TLS listener, each when on. New connections use the
  /// new pair; open ones keep theirs; a pair that does not load is logged and counted
  /// (drainmet_tls_reloads_total{result="error"}) and the old one stays. Returns the first
  /// error. Thread-safe.
  absl::Status ReloadTls();

  /// The directory requests resolve against now (never null).
  std::shared_ptr<const drain::TenantDirectory> directory() const { return holder_->Get(); }

  /// The config service's version of the copy in use; 0 for a local file.
  std::uint64_t config_version() const { return config_version_.load(); }

  /// grpc.health.v1 NOT_SERVING for good, marks not ready, stops the config watcher, stops
  /// accepting, lets requests in flight finish, stores every complete syslog message
  /// already read (written to Redis before the pre-aggregator stops), then stops the gRPC
  /// server (health RPCs in flight get up to 1 s). After the last write it removes its
  /// watermark from every Redis server (docs/redis-layout.md "Receivers' watermarks").
  /// Idempotent.
  void Stop();
  /// This receiver's id in dm:wm ("<host>:<pid>:<random>").
  const std::string& receiver_id() const { return receiver_id_; }
  /// The watermark now, unix ns of this host's clock (tests).
  std::int64_t watermark() { return registry_.Watermark(); }

 private:
  Service(std::shared_ptr<const drain::TenantDirectory> directory, store::RedisStoreOptions store_options);
  /// Adds the pre-aggregator's counts since the last call to metrics_ (pinger thread).
  void ReportPreAggregation();
  /// on_change of the watcher: adjust, ApplyConfig, remember the version (log on error).
  void OnServed(const config::ServedConfig& served);
  /// Publishes the watermark (registry_, converted to server `server`'s clock; 0 while its
  /// offset is unknown) on that server; counts the result. True on success.
  bool PublishWatermark(std::size_t server);
  /// Sets grpc.health.v1 from redis_ok_, started_ and stopped_ (the pinger, the end of
  /// Start). Serialised by health_mu_, so a stale reading never overwrites a newer one.
  void UpdateHealth();

  std::shared_ptr<drain::DirectoryHolder> holder_;
  std::function<void(config::Config&)> adjust_;
  std::mutex apply_mu_;  // Serialises ApplyConfig.
  std::atomic<std::uint64_t> config_version_{0};
  std::string applied_hash_;  // guarded by apply_mu_: content hash of the served copy in use
  std::unique_ptr<config::ConfigWatcher> watcher_;
  telemetry::Metrics metrics_;
  /// Requests accepted and not yet written and answered (or failed): the watermark.
  store::InflightRegistry registry_;
  /// This process's field in dm:wm (store::NewReceiverId).
  const std::string receiver_id_;
  store::RedisStore store_;
  /// The requests' store: merges a flush interval of requests, then writes to store_.
  /// Stopped (every waiting request answered) before frontend_ is destroyed.
  std::unique_ptr<store::PreAggregator> aggregator_;
  store::PreAggregatorStats reported_;  // pinger thread only: stats already in metrics_
  std::unique_ptr<drain::Frontend> frontend_;
  /// Syslog drains (TCP/TLS) into the same pre-aggregator; null when not configured.
  std::unique_ptr<drain::SyslogListener> syslog_;
  /// grpc.health.v1; started before the pinger, so the pinger may use it.
  std::unique_ptr<health::HealthServer> health_;
  std::mutex health_mu_;  // Serialises UpdateHealth.
  /// Pings Redis every second; /readyz is 200 (and health SERVING) only while the last ping
  /// succeeded.
  std::atomic<bool> redis_ok_{false};
  std::jthread pinger_;
  /// One per Redis server: publishes the watermark every receiver.watermark_interval_ms
  /// (one thread each, so a server that does not answer delays no other).
  std::vector<std::jthread> publishers_;
  std::atomic<bool> started_{false};  // Start() finished: every listener is up
  std::atomic<bool> stopped_{false};
};

/// The Redis store's options from a config: shard count, servers (ParseRedisAddress),
/// timeouts, grace, and the de-dup window (limits.dedupe_window_seconds).
absl::StatusOr<store::RedisStoreOptions> RedisStoreOptionsFrom(const config::Config& config);

}  // namespace drainmet::receiver
