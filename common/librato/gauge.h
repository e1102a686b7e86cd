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
  std::string source;             ///< Empty: no `source` field.
  std::int64_t measure_time = 0;  ///< The window, Unix seconds.
  std::int32_t period = 0;        ///< The resolution, seconds.
  bool complex = false;           ///< count/sum/min/max/sum_squares instead of value.
  double value = 0;
  std::uint64_t count = 0;
  double sum = 0, min = 0, max = 0, sum_squares = 0;
  std::string units;   ///< attributes.display_units_long when non-empty.
  std::string tenant;  ///< Whose credentials post it (not serialised).

  bool operator==(const Gauge& other) const = default;
};

/// Gauges of `buckets` (any tenants, any order): measure -> complex NAME +
/// NAME.median/.perc95/.perc99 (Distribution::Percentile 50/95/99, clamped to [min, max]
/// when the distribution is a sketch); count -> value = sum; sample -> value = latest
/// sample (SEMANTICS §7.1-7.3). Every gauge carries the bucket's units, if any.
/// Then one gauge per (tenant, name, source, measure_time) (§7.6): measure beats count
/// beats sample; between two gauges of the same kind a series' own name beats a derived
/// one, then the smaller period, then the bucket earlier in `buckets`; each gauge not sent
/// counts name_conflict. Each derived name over 255 bytes is not sent and counts bad_name
/// (§5.1). A gauge the API would refuse for a number whose base-10 exponent passes 126
/// (FORMATS.md §5.1 "Float limits"; values are at most 1e126, SEMANTICS §3.3, but a sum of
/// many is not) is not sent and counts bad_value: a count whose sum, a measure whose
/// complex gauge's sum, has |v| >= 1e127 (the measure's percentiles are still sent).
/// A bucket with count 0 yields nothing; a measure whose distribution is empty
/// yields only its complex gauge.
/// Result sorted by (tenant, name, source, measure_time), byte order, "no source" first.
/// Sorts distributions in place. Thread-compatible: `buckets` and `counters` are the
/// caller's.
std::vector<Gauge> BuildGauges(std::span<bucket::ClosedBucket> buckets, telemetry::Counters& counters);

/// The gauges of every bucket in `buckets`, equal to BuildGauges(buckets.TakeAll()) (its keys
/// are unique, so the order of the table decides nothing) without decoding, sorting or moving
/// the buckets: the keys are read as views (bucket::KeyViewOf) and each Gauge is made once, in
/// its final place. A key that does not decode is skipped, as TakeAll drops it. Leaves the
/// table's buckets in place (their distributions sorted); the caller clears or drops it.
/// Thread-compatible.
std::vector<Gauge> BuildGauges(bucket::BucketMap& buckets, telemetry::Counters& counters);

/// Writes a JSON number the SEMANTICS §3.4 way: integral values with magnitude below 2^53
/// as integers ("2500", "-0" as "0"), others in the shortest form that round-trips
/// ("0.1", "7.9341e-05", "1e+20"). `value` must be finite (validated upstream, §3.3);
/// should NaN or an infinity slip through, "0" is written so the body stays valid JSON.
void AppendNumber(double value, std::string& out);

/// Appends one gauge as a JSON object: name, source (if any), measure_time, period, then
/// value or count/sum/min/max/sum_squares, then attributes (if units). `sum_squares` is
/// optional to the API and left out when its magnitude is 1e127 or more (or not finite),
/// which the API would refuse (FORMATS.md §5.1, e.g. the squares of values near 1e64). Strings are
/// escaped per RFC 8259 §7 ('"', '\\', control bytes as \u00XX); invalid UTF-8 bytes in
/// them become U+FFFD.
void AppendGaugeJson(const Gauge& gauge, std::string& out);

/// The request body `{"gauges":[...]}` for `gauges` (one tenant, at most 300: the caller
/// splits).
std::string RenderRequestBody(std::span<const Gauge> gauges);

}  // namespace drainmet::librato
