#pragma once
// The counters of SEMANTICS.md §8 as plain integers. One Counters value is filled per
// request (or per replay) on one thread, then added to the process-wide Metrics.

#include <cstdint>
#include <string>

namespace drainmet::telemetry {

/// SEMANTICS.md §8. Not thread-safe: owned by one thread at a time.
struct Counters {
  std::uint64_t frames = 0;             ///< Frames delimited by a valid LEN (§1.2).
  std::uint64_t bad_frame = 0;          ///< §1.2, §1.5.
  std::uint64_t bad_timestamp = 0;      ///< §1.4.
  std::uint64_t bad_value = 0;          ///< §3.3.
  std::uint64_t bad_name = 0;           ///< §4.1, §5.1.
  std::uint64_t name_conflict = 0;      ///< §7.6: gauges not sent.
  std::uint64_t points = 0;             ///< Points that reached a bucket.
  std::uint64_t late = 0;               ///< §6.5: point for a closed bucket.
  std::uint64_t future = 0;             ///< §6.5: point > 60 s ahead of the clock.
  std::uint64_t series_limit = 0;       ///< Points dropped: open-bucket limit reached (drainmet's bound).
  std::uint64_t duplicate_request = 0;  ///< A retried Logplex-Frame-Id.
  std::uint64_t posted = 0;             ///< Gauges accepted by the API (2xx).
  std::uint64_t rejected = 0;           ///< Gauges in a request refused for good (4xx but 429).
  std::uint64_t expired = 0;            ///< Gauges dropped after the retry horizon.
  std::uint64_t retried = 0;            ///< Gauges sent again after a retryable failure.

  Counters& operator+=(const Counters& other);
  bool operator==(const Counters& other) const = default;

  /// One JSON object with every counter above, keys as the field names
  /// (the `drainmet replay --stats` output, SEMANTICS.md §8).
  std::string ToJson() const;
};

}  // namespace drainmet::telemetry
