#pragma once
// Closed buckets -> Librato gauges (SEMANTICS.md §7.1-7.3, §7.6) and the JSON request
// body of POST /v1/metrics (FORMATS.md §5.2). Used by replay, standalone and the outlet.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/bucket/partial_bucket.h"
#include "common/telemetry/counters.h"

namespace drainmet::librato {

/// One entry of the `gauges` array.
struct Gauge {
  std::string name;
  std::string source;  ///< Empty: no `source` field.
  std::int64_t measure_time = 0;  ///< The window, Unix seconds.
  std::int32_t period = 0;        ///< The resolution, seconds.
  bool complex = false;           ///< count/sum/min/max/sum_squares instead of value.
  double value = 0;
  std::uint64_t count = 0;
  double sum = 0, min = 0, max = 0, sum_squares = 0;
  std::string units;  ///< attributes.display_units_long when non-empty.
  std::string tenant;  ///< Whose credentials post it (not serialised).

  bool operator==(const Gauge& other) const = default;
};

/// Gauges of `buckets` (any tenants): measure -> complex NAME + NAME.median/.perc95/.perc99
/// (percentiles of a sketched distribution clamped to [min, max]); count -> value = sum;
/// sample -> value = latest sample. Then one gauge per (tenant, name, source,
/// measure_time): measure beats count beats sample; between two gauges of the same kind
/// a series' own name beats a derived one, then the smaller period; each gauge not sent
/// counts name_conflict. A derived name over 255 bytes is not sent and counts bad_name.
/// Result sorted by (tenant, name, source, measure_time). Sorts distributions in place.
std::vector<Gauge> BuildGauges(std::span<bucket::ClosedBucket> buckets, telemetry::Counters& counters);

/// Writes a JSON number the SEMANTICS §3.4 way: integral values with magnitude below 2^53
/// as integers, others in the shortest form that round-trips. `value` must be finite.
void AppendNumber(double value, std::string& out);

/// Appends one gauge as a JSON object: name, source (if any), measure_time, period, then
/// value or count/sum/min/max/sum_squares, then attributes (if units).
void AppendGaugeJson(const Gauge& gauge, std::string& out);

/// The request body `{"gauges":[...]}` for `gauges` (one tenant, at most 300: the caller
/// splits).
std::string RenderRequestBody(std::span<const Gauge> gauges);

}  // namespace drainmet::librato
