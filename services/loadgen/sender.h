#pragma once
// `drainmet-loadgen send`: drives a drain endpoint (drainmet run, drainmet-receiver) with
// Logplex-like POSTs (FORMATS.md §1.1-§1.2) over keep-alive connections, from bodies
// rendered once (services/loadgen/body.h), and measures what it got back.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace drainmet::loadgen {

/// Answer latencies, microseconds, in log-linear buckets (128 per power of two: each
/// bucket is within 0.8% of its values). Not thread-safe; merge per-thread copies.
class LatencyHistogram {
 public:
  LatencyHistogram();
  void Record(std::uint64_t micros);
  void Merge(const LatencyHistogram& other);
  std::uint64_t count() const { return count_; }
  std::uint64_t max() const { return max_; }
  /// Nearest-rank quantile (q in (0, 1]): the upper bound of the bucket holding it, capped
  /// at the largest value recorded; 0 when empty.
  std::uint64_t Quantile(double q) const;

 private:
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

/// Flags of `send` (docs/cli.md, "drainmet-loadgen").
struct SendOptions {
  std::string url;                        ///< http://HOST[:PORT]/PATH[?QUERY]; http only.
  std::vector<std::string> tokens;        ///< Drain tokens; Basic auth base64(TOKEN + ":").
  std::vector<std::string> tenant_names;  ///< Labels of the tokens in the record; default tenant-<i>.
  int tenants = 0;                        ///< Drains to simulate; 0: one per token. Tokens are cycled.
  int connections = 16;
  int threads = 1;         ///< io threads; connections are spread over them.
  double duration_s = 10;  ///< No request starts after this; requests in flight finish.
  double rate = 0;         ///< Lines per second over all connections; 0: as fast as answered.
  int lines_per_body = 800;
  int series = 10;                 ///< Sources web.0 .. web.(series-1), round-robin over lines.
  std::string line_template;       ///< Empty: kDefaultTemplate.
  std::vector<std::string> files;  ///< Captured bodies, used instead of the template.
  int resolution = 0;              ///< Appended as resolution=R to the query; 0: not sent.
  int ring = 64;                   ///< Distinct pre-rendered bodies (at least one per connection).
  bool retry = false;              ///< Retry 503/429/5xx/transport errors, same frame id, 3 tries.
  double timeout_s = 30;           ///< Bound of one attempt (connect + write + answer).
  std::uint64_t seed = 1;          ///< Values of {ms} {mb} {int}.
  std::string record_path;         ///< Where to write the acknowledged tallies; empty: nowhere.
};

/// What a run did. Counts are of final outcomes (after retries) unless named attempts.
struct SendSummary {
  std::uint64_t requests = 0;  ///< Requests with a final outcome.
  std::uint64_t attempts = 0;  ///< Requests sent, retries included.
  std::uint64_t ok_2xx = 0;
  std::map<unsigned, std::uint64_t> non_2xx;  ///< Final status -> requests.
  std::uint64_t transport_errors = 0;         ///< Final outcomes without an answer.
  std::uint64_t retries = 0;
  std::uint64_t lines = 0;       ///< Frames in 2xx-answered requests.
  std::uint64_t points = 0;      ///< Points drainmet's parser finds in them.
  std::uint64_t bytes = 0;       ///< Body bytes of 2xx-answered requests.
  std::uint64_t lines_sent = 0;  ///< Frames of every request with a final outcome.
  double wall_s = 0;             ///< First request to last answer.
  double cpu_user_s = 0;         ///< This process during the run (getrusage), user.
  double cpu_sys_s = 0;          ///< Same, system.
  LatencyHistogram latency;      ///< Per answered attempt, write start to answer header.
  std::string first_error;       ///< The first transport error, for the report.
};

/// Renders the bodies, runs the load, writes the record (if asked). InvalidArgument for a
/// bad option (named); Unavailable when the host does not resolve; IO errors for files.
absl::StatusOr<SendSummary> RunSend(const SendOptions& options);

/// The summary as logfmt lines (human output) and as one JSON object (--json).
std::string SummaryText(const SendOptions& options, const SendSummary& summary);
nlohmann::json SummaryJson(const SendOptions& options, const SendSummary& summary);

}  // namespace drainmet::loadgen
