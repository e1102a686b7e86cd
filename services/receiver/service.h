#pragma once
// drainmet-receiver: the stateless drain endpoint of the distributed mode. The same HTTP
// face and request logic as standalone (drain::Frontend, DrainHandler), on the Redis store:
// a request is answered 2xx only once its partial buckets are in their Redis shards, 503
// with Retry-After when Redis is down or slow (FORMATS.md §1.6).

#include <atomic>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "common/base/clock.h"
#include "common/config/config.h"
#include "common/drain/frontend.h"
#include "common/store/redis_store.h"
#include "common/telemetry/metrics.h"

namespace drainmet::receiver {

/// The running receiver. Thread-safe: Stop() may be called from any thread.
class Service {
 public:
  /// Validates `config`, binds config.listen and serves. InvalidArgument for a bad config
  /// (a Redis address included), Unavailable when the address cannot be bound. Redis need
  /// not be up: requests are answered 503 until it is, and /readyz says so.
  static absl::StatusOr<std::unique_ptr<Service>> Start(config::Config config, const base::Clock& clock);
  ~Service();

  std::uint16_t port() const { return frontend_->port(); }
  telemetry::Metrics& metrics() { return metrics_; }

  /// Marks not ready, stops accepting, lets requests in flight finish. Idempotent.
  void Stop();

 private:
  Service(std::shared_ptr<const drain::TenantDirectory> directory, store::RedisStoreOptions store_options);

  std::shared_ptr<const drain::TenantDirectory> directory_;
  telemetry::Metrics metrics_;
  store::RedisStore store_;
  std::unique_ptr<drain::Frontend> frontend_;
  /// Pings Redis every second; /readyz is 200 only while the last ping succeeded.
  std::atomic<bool> redis_ok_{false};
  std::jthread pinger_;
  std::atomic<bool> stopped_{false};
};

/// The Redis store's options from a config: shard count, servers (ParseRedisAddress),
/// timeouts, grace, and the de-dup window (limits.dedupe_window_seconds).
absl::StatusOr<store::RedisStoreOptions> RedisStoreOptionsFrom(const config::Config& config);

}  // namespace drainmet::receiver
