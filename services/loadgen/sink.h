#pragma once
// `drainmet-loadgen sink`: a fake Librato API (POST /v1/metrics, FORMATS.md §5.2) that counts
// what drainmet emits and checks it against what `send --record` says was acknowledged:
// every acknowledged point must be in exactly one emitted gauge (SEMANTICS §7.1-§7.4).

#include <cstdint>
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
/// Thread-safe (one mutex).
class GaugeLedger {
 public:
  /// `per_tenant`: series are keyed by the Basic-auth user of the request (the tenant's
  /// Librato email); otherwise every user's gauges add up per (name, source).
  explicit GaugeLedger(bool per_tenant) : per_tenant_(per_tenant) {}

  /// Adds one request body of `user`. False (nothing added) when it is not a JSON object
  /// with a "gauges" array. A gauge whose identity (user, name, source, measure_time) was
  /// already received is not added again: counted as an identical or a conflicting
  /// duplicate (SEMANTICS §7.4: a window may be posted again, with identical values).
  bool Add(std::string_view user, std::string_view body);

  /// Totals as JSON: requests, bad_requests, bytes, gauges, complex_gauges, series,
  /// count_sum (sum of the complex gauges' "count"), duplicates_identical,
  /// duplicates_conflicting, users.
  nlohmann::json Stats() const;

  /// Compares with a `send --record` document (format drainmet-loadgen-record/1):
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

  const bool per_tenant_;
  mutable std::mutex mu_;
  std::uint64_t requests_ = 0;                                  // guarded by mu_
  std::uint64_t bad_requests_ = 0;                              // guarded by mu_
  std::uint64_t bytes_ = 0;                                     // guarded by mu_
  std::uint64_t gauges_ = 0;                                    // guarded by mu_
  std::uint64_t duplicates_identical_ = 0;                      // guarded by mu_
  std::uint64_t duplicates_conflicting_ = 0;                    // guarded by mu_
  std::map<SeriesKey, Totals> series_;                          // guarded by mu_
  absl::flat_hash_map<std::string, std::uint64_t> identities_;  // guarded by mu_; -> gauge hash
  std::map<std::string, std::uint64_t> users_;                  // guarded by mu_; -> requests
};

struct SinkOptions {
  std::string listen = "127.0.0.1:0";  ///< HOST:PORT (IP literal); port 0: any free port.
  int threads = 2;
  bool per_tenant = false;  ///< See GaugeLedger.
  std::string expect_path;  ///< The `send --record` file, read at each check; empty: none.
};

/// The HTTP face of a GaugeLedger on common/http's server: POST /v1/metrics (200 `{}`, 400
/// for a body that is not gauges JSON; Basic auth read, not checked), GET /stats
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
  explicit Sink(const SinkOptions& options) : options_(options), ledger_(options.per_tenant) {}
  http::Response Handle(const http::Request& request);

  SinkOptions options_;
  GaugeLedger ledger_;
  std::unique_ptr<http::Server> server_;
};

}  // namespace drainmet::loadgen
