#pragma once
// The drain endpoint's request logic (POST /logs), shared by the standalone service and
// the receiver: method and path, tenant from Basic or Bearer credentials, drain options
// from the query, gzip bodies, de-duplication by Logplex-Frame-Id (or X-Request-Id),
// parsing, and the store's answer.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <variant>

#include "absl/container/flat_hash_map.h"
#include "common/base/clock.h"
#include "common/config/auth.h"
#include "common/config/config.h"
#include "common/drain/intake_metrics.h"
#include "common/drain/syslog.h"
#include "common/http/server.h"
#include "common/store/store.h"
#include "common/telemetry/metrics.h"

namespace drainmet::drain {

/// The configuration a handler (and the syslog listener) serves: immutable, shared.
struct TenantDirectory {
  explicit TenantDirectory(config::Config c) : config(std::move(c)), tokens(config), syslog_drains(config) {}
  const config::Config config;
  const config::TokenIndex tokens;
  const SyslogDrainIndex syslog_drains;  ///< config.syslog.drains by token.
};

/// The directory in use, swappable at run time (a receiver following the config service):
/// readers take one snapshot per request and keep it for the whole request, so a request
/// never sees half of an old and half of a new configuration.
///
/// Thread-safety: Get and Set may run concurrently from any threads (a mutex around a
/// shared_ptr copy: cheap next to a request).
class DirectoryHolder {
 public:
  /// `initial` must not be null.
  explicit DirectoryHolder(std::shared_ptr<const TenantDirectory> initial) : current_(std::move(initial)) {}

  /// The directory now; never null. Requests that started earlier keep theirs.
  std::shared_ptr<const TenantDirectory> Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return current_;
  }

  /// Replaces the directory for the requests that resolve after this returns. A null
  /// `next` is ignored (the holder never becomes empty).
  void Set(std::shared_ptr<const TenantDirectory> next) {
    if (next == nullptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    current_.swap(next);
    // The old directory is released outside the lock, by `next`'s destructor.
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const TenantDirectory> current_;  // guarded by mu_, never null
};

/// Per-tenant token buckets for limits.tenant_points_per_second (issue 5, "Per-tenant rate
/// limit"): each tenant's bucket holds at most one second's worth of points and refills at
/// `rate` points per second. A request of `n` points is admitted when the bucket holds at
/// least min(n, capacity) and then takes all `n` (the bucket may go negative: a request
/// larger than one second's worth passes when the bucket is full, and the next ones wait
/// for the debt to be paid back).
///
/// Memory: one entry per tenant seen; the table is cleared when it holds more than
/// `max_tenants` entries (tenants removed from a reloaded configuration), so it is bounded
/// by the configured tenants. Thread-safe (one mutex around a few arithmetic operations).
class TenantRateLimiter {
 public:
  explicit TenantRateLimiter(const base::Clock& clock) : clock_(clock) {}

  /// Takes `points` from `tenant`'s bucket at `rate` points per second (0: unlimited,
  /// always admitted). Returns 0 when admitted, else the whole seconds (>= 1) after which
  /// a retry would be admitted (the Retry-After of the 429, FORMATS.md §1.6).
  std::int64_t Acquire(std::string_view tenant, std::uint64_t points, std::uint64_t rate,
                       std::size_t max_tenants);

 private:
  struct Bucket {
    double tokens = 0;
    std::int64_t updated_nanos = 0;
  };
  const base::Clock& clock_;
  std::mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_;  // guarded by mu_
};

/// Counts failed drain authentications per remote address (issue 5, Security: repeated
/// auth failures from one address are slowed down). An address whose failures reached
/// `failures` within `window_nanos` (counted from its first failure of the window) is
/// penalized until the window ends: its next 401s are answered late. Successes do not
/// reset the count (a valid token is no excuse for guessing others).
///
/// Memory: at most `max_addresses` entries; a new address in a full table first evicts
/// the entries whose window has ended, then, if still full, an arbitrary one. Thread-safe
/// (one mutex).
class AuthThrottle {
 public:
  static constexpr std::size_t kDefaultMaxAddresses = 10000;
  explicit AuthThrottle(const base::Clock& clock, std::size_t max_addresses = kDefaultMaxAddresses)
      : clock_(clock), max_addresses_(max_addresses) {}

  /// Whether `address` already has `failures` failures in its current window.
  bool Penalized(std::string_view address, std::uint32_t failures, std::int64_t window_nanos) const;
  /// Records one failure of `address`; true when this failure is beyond `failures` in the
  /// window (its 401 is to be delayed).
  bool RecordFailure(std::string_view address, std::uint32_t failures, std::int64_t window_nanos);
  /// Addresses tracked now.
  std::size_t size() const;

  /// The address part of "1.2.3.4:5678" / "[::1]:5678" (http::Request::remote_address).
  static std::string_view HostOf(std::string_view remote_address);

 private:
  struct Entry {
    std::uint32_t count = 0;
    std::int64_t window_start_nanos = 0;
  };
  const base::Clock& clock_;
  const std::size_t max_addresses_;
  mutable std::mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_;  // guarded by mu_
};

/// Runs callbacks after a delay on one thread of its own (started at the first Schedule),
/// so a delayed answer holds no server thread. At most `max_pending` callbacks wait; beyond
/// it Schedule refuses (the caller answers at once). The destructor runs every waiting
/// callback at once and joins the thread. Thread-safe.
class DelayedCalls {
 public:
  explicit DelayedCalls(std::size_t max_pending = 10000) : max_pending_(max_pending) {}
  ~DelayedCalls();
  DelayedCalls(const DelayedCalls&) = delete;
  DelayedCalls& operator=(const DelayedCalls&) = delete;

  /// Runs `call` once `delay` has passed (steady clock), on the delay thread. False (and
  /// `call` not kept) when max_pending callbacks already wait.
  bool Schedule(std::chrono::milliseconds delay, std::function<void()> call);

 private:
  void Run();
  using Deadline = std::chrono::steady_clock::time_point;
  const std::size_t max_pending_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<Deadline, std::function<void()>> pending_;  // guarded by mu_
  bool stopping_ = false;                                   // guarded by mu_
  std::thread thread_;                                      // started under mu_
};

/// Answers drain requests. Thread-safe: Handle may run on many server threads at once
/// (the store, metrics and the directory holder are thread-safe; each request resolves
/// its tenant and options against one directory snapshot).
class DrainHandler {
 public:
  /// A fixed directory (standalone): never changes for the handler's life.
  DrainHandler(std::shared_ptr<const TenantDirectory> directory, store::Store& store,
               const base::Clock& clock, telemetry::Metrics& metrics);
  /// A swappable directory (receiver following the config service): `holder` is shared
  /// with whoever calls Set; must not be null.
  DrainHandler(std::shared_ptr<DirectoryHolder> holder, store::Store& store, const base::Clock& clock,
               telemetry::Metrics& metrics);

  /// The holder this handler reads (for Set from outside).
  const std::shared_ptr<DirectoryHolder>& directory_holder() const { return holder_; }

  /// Checks what the headers decide, before the body is read (a 401 for an address over
  /// limits.auth_failures_before_delay is left to HandleAsync, which answers it late): 405 for a method other
  /// than POST, 401 (with WWW-Authenticate) for missing or unknown credentials, 400 naming the option for a
  /// bad drain option (FORMATS.md §1.6: only auth failures may be final, and a bad option is a configuration
  /// error the operator must see), 415 for a Content-Encoding other than gzip/x-gzip/identity (counted
  /// unsupported_encoding). std::nullopt: go on.
  ///
  /// Credentials (FORMATS.md §1.2, §1.8): `Basic` as TOKEN or TENANT:TOKEN, or
  /// `Bearer TOKEN` (log-shuttle); the same token -> tenant map serves both.
  std::optional<http::Response> CheckHeaders(const http::Request& request) const;

  /// Processes a whole request: 204 when its points are in the store (or it is a retried
  /// frame id), 503 with Retry-After when the store is unavailable, 429 with Retry-After
  /// when the tenant is over limits.tenant_points_per_second (counted
  /// input_rejected{reason="rate_limited"}; the points are not stored and the frame id is
  /// not remembered, so Logplex's retry is processed whole), else as CheckHeaders.
  /// Malformed frames inside a good request still answer 204 (SEMANTICS §1.2). Blocks until
  /// the store has answered (see HandleAsync).
  ///
  /// De-duplication key: `Logplex-Frame-Id`, else `X-Request-Id` (log-shuttle, FORMATS.md
  /// §1.8; ignored when over 128 bytes); neither: no de-duplication. Missing Logplex-*
  /// headers are fine. A `Content-Encoding: gzip` body is inflated first (zlib, at most
  /// limits.max_inflated_body_bytes: over it 413, counted inflated_too_large; a body that
  /// does not inflate: 400, counted bad_gzip).
  http::Response Handle(const http::Request& request);

  /// Auth failures (issue 5, Security): every 401 is the same status, headers and body
  /// whatever was wrong (no header, unknown tenant, wrong token). Once an address (without
  /// its port) had limits.auth_failures_before_delay failures within
  /// limits.auth_failure_window_seconds, its next 401s are answered after
  /// limits.auth_failure_delay_ms by a timer thread (no server thread is held; counted
  /// input_rejected{reason="auth_delayed"}).
  ///
  /// As Handle, without waiting for the store: parses the body on the calling thread, then
  /// `respond` gets the answer once the store has taken the points, on the store's thread
  /// (a batching store answers at its flush) or on this one. `respond` is called once.
  void HandleAsync(const http::Request& request, const std::function<void(http::Response)>& respond);

 private:
  struct Resolved {
    std::size_t tenant_index = 0;
    extract::DrainOptions options;
    bool gzip = false;  ///< The body is gzip (Content-Encoding).
  };
  /// The answer to a request whose points went to the store with `ingested` as result.
  http::Response Answer(const std::string& tenant, telemetry::Counters counters,
                        absl::StatusOr<store::IngestResult> ingested);
  /// Auth + options + encoding against `directory`; a response when the request must be
  /// refused.
  std::variant<Resolved, http::Response> Resolve(const TenantDirectory& directory,
                                                 const http::Request& request) const;

  std::shared_ptr<DirectoryHolder> holder_;  // never null
  store::Store& store_;
  const base::Clock& clock_;
  telemetry::Metrics& metrics_;
  IntakeMetrics intake_;
  TenantRateLimiter rate_limiter_;
  mutable AuthThrottle auth_throttle_;
  DelayedCalls delayed_;  // destroyed first: answers what still waits
};

/// The path drains POST to.
inline constexpr std::string_view kDrainPath = "/logs";

}  // namespace drainmet::drain
