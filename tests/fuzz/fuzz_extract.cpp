// libFuzzer target: extraction, the whole path from a drain body to the Librato request
// body: framing, header, timestamp (SEMANTICS §1), logfmt (§2), values (§3), points (§4),
// names and sources (§5.1), buckets (§6) and gauges (§7, FORMATS.md §5.1).
// Input: the drain URL query (drain options, §4.7) up to the first LF, then the body.
// Invariants: every point's name and source are ones the Librato API accepts and its
// value is admissible (§3.3); so is every gauge built from them, and the request body is
// valid JSON with those names and sources and only numbers the API accepts (finite,
// base-10 exponent at most 126: FORMATS.md §5.1 "Float limits").

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/bucket/partial_bucket.h"
#include "common/extract/extract.h"
#include "common/librato/gauge.h"
#include "common/logplex/frame_reader.h"
#include "common/telemetry/counters.h"
#include "nlohmann/json.hpp"
#include "tests/fuzz/fuzz_check.h"

namespace {

constexpr std::int64_t kReceivedAtNanos = 1'709'647'337'000'000'000;  // 2024-03-05T14:02:17Z

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t lf = input.find('\n');
  const std::string_view query = lf == std::string_view::npos ? std::string_view() : input.substr(0, lf);
  const std::string_view body = lf == std::string_view::npos ? input : input.substr(lf + 1);
  drainmet::extract::DrainOptions options;
  if (absl::StatusOr<drainmet::extract::DrainOptions> parsed = drainmet::extract::ParseDrainQuery(query, 60);
      parsed.ok()) {
    options = *std::move(parsed);
    FUZZ_CHECK(drainmet::extract::IsAllowedResolution(options.resolution_seconds));
  }

  drainmet::extract::Extractor extractor(options);
  drainmet::telemetry::Counters counters;
  drainmet::bucket::BucketMap buckets;
  drainmet::logplex::FrameReader reader(body);
  drainmet::logplex::Rfc3339Cache timestamps;
  std::string_view frame_bytes;
  std::size_t points = 0;
  while (reader.Next(&frame_bytes) == drainmet::logplex::FrameStatus::kFrame) {
    const std::optional<drainmet::logplex::Frame> frame = drainmet::logplex::ParseFrame(frame_bytes);
    if (!frame) continue;
    const std::int64_t time = timestamps.Parse(frame->timestamp).value_or(kReceivedAtNanos);
    extractor.Extract(*frame, time, counters, [&](const drainmet::extract::Point& point) {
      FUZZ_CHECK(drainmet::fuzz::IsLibratoName(point.name));
      FUZZ_CHECK(drainmet::fuzz::IsLibratoSource(point.source));
      FUZZ_CHECK(drainmet::fuzz::IsAdmissibleValue(point.value));
      FUZZ_CHECK(point.time_unix_nanos == time);
      if (!options.prefix.empty()) FUZZ_CHECK(point.name.size() > options.prefix.size() + 1);
      ++points;
      buckets.Add("tenant", options.resolution_seconds, point);
    });
  }

  std::vector<drainmet::bucket::ClosedBucket> closed = buckets.TakeAll();
  std::uint64_t bucketed = 0;
  for (const drainmet::bucket::ClosedBucket& b : closed) bucketed += b.bucket.count;
  FUZZ_CHECK(bucketed == points);
  const std::vector<drainmet::librato::Gauge> gauges = drainmet::librato::BuildGauges(closed, counters);
  for (const drainmet::librato::Gauge& gauge : gauges) {
    FUZZ_CHECK(drainmet::fuzz::IsLibratoName(gauge.name));
    FUZZ_CHECK(drainmet::fuzz::IsLibratoSource(gauge.source));
    FUZZ_CHECK(gauge.period == options.resolution_seconds);
    FUZZ_CHECK(gauge.measure_time % gauge.period == 0);
    if (gauge.complex) {
      FUZZ_CHECK(gauge.count >= 1);
      FUZZ_CHECK(drainmet::fuzz::IsApiNumber(gauge.sum));
      FUZZ_CHECK(drainmet::fuzz::IsAdmissibleValue(gauge.min));
      FUZZ_CHECK(drainmet::fuzz::IsAdmissibleValue(gauge.max));
      FUZZ_CHECK(gauge.min <= gauge.max);
    } else {
      FUZZ_CHECK(drainmet::fuzz::IsApiNumber(gauge.value));
    }
  }
  if (gauges.empty()) return 0;
  const std::vector<drainmet::librato::Gauge> first(
      gauges.begin(), gauges.begin() + std::min<std::size_t>(gauges.size(), 300));
  const std::string request = drainmet::librato::RenderRequestBody(first);
  const nlohmann::json json = nlohmann::json::parse(request, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(!json.is_discarded());
  FUZZ_CHECK(json.contains("gauges") && json["gauges"].size() == first.size());
  for (const nlohmann::json& gauge : json["gauges"]) {
    FUZZ_CHECK(gauge.contains("name") && gauge["name"].is_string());
    FUZZ_CHECK(drainmet::fuzz::IsLibratoName(gauge["name"].get<std::string>()));
    if (gauge.contains("source")) {
      const std::string source = gauge["source"].get<std::string>();
      FUZZ_CHECK(!source.empty() && drainmet::fuzz::IsLibratoSource(source));
    }
    for (const char* field : {"value", "sum", "min", "max", "sum_squares"}) {
      if (gauge.contains(field)) {
        FUZZ_CHECK(gauge[field].is_number());
        FUZZ_CHECK(drainmet::fuzz::IsApiNumber(gauge[field].get<double>()));
      }
    }
  }
  return 0;
}
