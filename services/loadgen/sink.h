#pragma once
// `drainmet-loadgen sink`: a fake Librato API (POST /v1/metrics, FORMATS.md §5.2) that counts
// what drainmet emits and checks it against what `send --record` says was acknowledged:
// every acknowledged point must be in exactly one emitted gauge (SEMANTICS §7.1-§7.4).

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/http/server.h"
#include "nlohmann/json.hpp"

namespace drainmet::loadgen {

/// Totals of the gauges received, per (tenant, name, source), with duplicates set apart.
/// Bodies may be accounted at once (Add) or stored and accounted lazily (Enqueue: the
/// request path then costs a copy of the body; Stats, Check and Flush account every stored
/// body first, in arrival order). Thread-safe: arrivals under one mutex, the ledger under
/// another, so storing a body never waits for an accounting in progress.
class GaugeLedger {
 public:
  /// `per_tenant`: series are keyed by the Basic-auth user of the request (the tenant's
  /// Librato email); otherwise every user's gauges add up per (name, source).
  /// `max_pending_bytes`: once the stored bodies exceed it, the Enqueue that crossed it
  /// accounts them all before it returns (bounds the memory of lazy accounting).
  explicit GaugeLedger(bool per_tenant, std::size_t max_pending_bytes = std::size_t{256} << 20)
      : per_tenant_(per_tenant), max_pending_bytes_(max_pending_bytes) {}

  /// Adds one request body of `user` now (after any stored ones). False (nothing added)
  /// when it is not a JSON object with a "gauges" array. A gauge whose identity (user,
  /// name, source, measure_time) was already received is not added again: counted as an
  /// identical or a conflicting duplicate (SEMANTICS §7.4: a window may be posted again,
  /// with identical values).
  bool Add(std::string_view user, std::string_view body);

  /// Stores one request body of `user` to be accounted later, as Add would have. Only a
  /// quick look here: false (counted as a bad request, nothing stored) unless the body,
  /// blanks aside, starts with '{' and ends with '}'; a stored body that then does not
  /// parse as a JSON object with a "gauges" array is counted in bad_requests when it is
  /// accounted.
  bool Enqueue(std::string_view user, std::string_view body);

  /// Accounts every stored body now.
  void Flush() const;

  /// What arrived, without accounting anything (cheap; for polling).
  struct Arrivals {
    std::uint64_t requests = 0;          ///< Add and Enqueue calls, bad ones included.
    std::uint64_t bytes = 0;             ///< Their bodies' bytes.
    std::uint64_t pending_requests = 0;  ///< Stored, not yet accounted.
    std::uint64_t pending_bytes = 0;
    std::int64_t first_unix_nanos = 0;  ///< Arrival of the first body taken (0: none yet).
    std::int64_t last_unix_nanos = 0;   ///< Arrival of the last body taken (0: none yet).
  };
  Arrivals Received() const;

  /// Accounts the stored bodies, then the totals as JSON: requests, bad_requests, bytes,
  /// gauges, complex_gauges, series, count_sum (sum of the complex gauges' "count"),
  /// duplicates_identical, duplicates_conflicting, users, first_post_unix_s,
  /// last_post_unix_s. Counters kept as bodies are accounted: no walk of the series.
  nlohmann::json Stats() const;

  /// Accounts the stored bodies, then compares with a `send --record` document (format
  /// drainmet-loadgen-record/1):
  /// - measure series: the sum of "count" of its complex gauges = the points acknowledged
  ///   (exact), and the sum of "sum" = the acknowledged sum (relative 1e-9);
  /// - count series: the sum of "value" of its gauges = the acknowledged sum (SEMANTICS
  ///   §7.2; exact for integers: relative 1e-12);
  /// - sample series: at least one gauge (a sample gauge does not show its points).
  /// Gauges of series not in the record (other than NAME.median/perc95/perc99 of a
  /// recorded measure) are extra. Result: {"ok", "series_expected", "series_ok",
  /// "measure_points_expected", "measure_points_emitted", "count_sum_expected",
  /// "count_sum_emitted", "missing_total", "extra_total", "missing": [...], "extra": [...],
  /// "sum_mismatch": [...], "duplicates_identical", "duplicates_conflicting",
  /// "unacknowledged_requests"}, each list holding at most 100 entries. ok requires no
  /// missing, extra, sum mismatch or conflicting duplicate. InvalidArgument when `record`
  /// is not such a document.
  absl::StatusOr<nlohmann::json> Check(const nlohmann::json& record) const;

 private:
  struct Totals {
    std::uint64_t gauges = 0;
    std::uint64_t complex_gauges = 0;
    std::uint64_t count_sum = 0;  // sum of complex gauges' "count"
    double sum_sum = 0;           // sum of complex gauges' "sum"
    double value_sum = 0;         // sum of simple gauges' "value"
  };
  using SeriesKey = std::tuple<std::string, std::string, std::string>;  // tenant, name, source
  struct Pending {
    std::string user;
    std::string body;
  };

  /// Counts one arrival of `bytes` bytes from `user` at `unix_nanos`; arrival_mu_ held.
  void CountArrival(std::string_view user, std::size_t bytes, std::int64_t unix_nanos) const;
  /// Accounts the stored bodies; ledger_mu_ held.
  void AccountPending() const;
  /// Parses and accounts one body; ledger_mu_ held. False when it is not gauges JSON.
  bool Account(std::string_view user, std::string_view body) const;

  const bool per_tenant_;
  const std::size_t max_pending_bytes_;

  mutable std::mutex arrival_mu_;
  mutable std::deque<Pending> pending_;                              // guarded by arrival_mu_
  mutable std::uint64_t pending_bytes_ = 0;                          // guarded by arrival_mu_
  mutable std::uint64_t requests_ = 0;                               // guarded by arrival_mu_
  mutable std::uint64_t bytes_ = 0;                                  // guarded by arrival_mu_
  mutable std::uint64_t refused_at_arrival_ = 0;                     // guarded by arrival_mu_
  mutable std::int64_t first_unix_nanos_ = 0;                        // guarded by arrival_mu_
  mutable std::int64_t last_unix_nanos_ = 0;                         // guarded by arrival_mu_
  mutable std::map<std::string, std::uint64_t, std::less<>> users_;  // guarded by arrival_mu_; -> requests

  // Lock order: ledger_mu_, then arrival_mu_.
  mutable std::mutex ledger_mu_;
  mutable std::uint64_t bad_requests_ = 0;            // guarded by ledger_mu_ (accounted ones)
  mutable std::uint64_t gauges_ = 0;                  // guarded by ledger_mu_
  mutable std::uint64_t complex_gauges_ = 0;          // guarded by ledger_mu_ (first copies)
  mutable std::uint64_t count_sum_ = 0;               // guarded by ledger_mu_ (first copies)
  mutable std::uint64_t duplicates_identical_ = 0;    // guarded by ledger_mu_
  mutable std::uint64_t duplicates_conflicting_ = 0;  // guarded by ledger_mu_
  mutable std::map<SeriesKey, Totals> series_;        // guarded by ledger_mu_
  mutable absl::flat_hash_map<std::string, std::uint64_t>
      identities_;  // guarded by ledger_mu_; -> gauge hash
};

struct SinkOptions {
  std::string listen = "127.0.0.1:0";  ///< HOST:PORT (IP literal); port 0: any free port.
  int threads = 2;
  bool per_tenant = false;  ///< See GaugeLedger.
  /// Bodies stored before they are accounted (see GaugeLedger), bytes.
  std::size_t max_pending_bytes = std::size_t{256} << 20;
  std::string expect_path;  ///< The `send --record` file, read at each check; empty: none.
};

/// The HTTP face of a GaugeLedger on common/http's server: POST /v1/metrics stores the body
/// (GaugeLedger::Enqueue: 200 `{}`, 400 for a body that is not `{...}`; Basic auth read,
/// not checked), GET /arrivals (GaugeLedger::Received, accounts nothing), GET /stats
/// (Stats()), GET /check (CheckFile() on expect_path: 200 with the result, 500 when the
/// file cannot be read). Other paths 404. Thread-safe.
class Sink {
 public:
  static absl::StatusOr<std::unique_ptr<Sink>> Start(const SinkOptions& options);
  ~Sink();
  std::uint16_t port() const { return server_->port(); }
  const GaugeLedger& ledger() const { return ledger_; }
  /// Reads `path` (a `send --record` file) and runs GaugeLedger::Check.
  absl::StatusOr<nlohmann::json> CheckFile(const std::string& path) const;
  /// Stops the server (requests in flight are answered). Idempotent.
  void Stop();

 private:
  explicit Sink(const SinkOptions& options)
      : options_(options), ledger_(options.per_tenant, options.max_pending_bytes) {}
  http::Response Handle(const http::Request& request);

  SinkOptions options_;
  GaugeLedger ledger_;
  std::unique_ptr<http::Server> server_;
};

}  // namespace drainmet::loadgen
