#include "common/librato/gauge.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <string_view>
#include <tuple>
#include <utility>

#include "fmt/format.h"

namespace drainmet::librato {
namespace {

// Librato's limit on a name (FORMATS.md §5.2, SEMANTICS §5.1).
constexpr std::size_t kMaxNameBytes = 255;

// Integral doubles below this magnitude are exact int64 values (SEMANTICS §3.4).
constexpr double kTwoPow53 = 9007199254740992.0;

struct Derived {
  std::string_view suffix;
  int percentile;
};
// SEMANTICS §7.1: the three gauges derived from a measure, in the order they sort.
constexpr std::array<Derived, 3> kDerived = {{{".median", 50}, {".perc95", 95}, {".perc99", 99}}};

// A gauge before the §7.6 conflict resolution, with what decides between rivals.
struct Candidate {
  Gauge gauge;
  extract::Kind kind = extract::Kind::kMeasure;
  bool derived = false;   // NAME.median etc., not the series' own name.
  std::size_t order = 0;  // Position of its bucket in the input (key order).
};

Gauge BaseGauge(const bucket::ClosedBucket& closed, std::string name) {
  Gauge gauge;
  gauge.name = std::move(name);
  gauge.source = closed.key.source;
  gauge.measure_time = closed.key.window_unix_seconds;
  gauge.period = closed.key.resolution_seconds;
  gauge.units = closed.bucket.units;
  gauge.tenant = closed.key.tenant;
  return gauge;
}

// Appends the gauges of one bucket (SEMANTICS §7.1-7.3) to `out`.
void AppendBucketGauges(bucket::ClosedBucket& closed, std::size_t order, std::vector<Candidate>& out,
                        telemetry::Counters& counters) {
  bucket::PartialBucket& b = closed.bucket;
  // An empty bucket has no value to send (its min/max are ±inf); buckets only exist once a
  // point reached them, so this guards against a corrupt or hand-made input only.
  if (b.count == 0) return;
  const extract::Kind kind = closed.key.kind;

  Candidate own{BaseGauge(closed, closed.key.name), kind, false, order};
  switch (kind) {
    case extract::Kind::kMeasure:
      own.gauge.complex = true;
      own.gauge.count = b.count;
      own.gauge.sum = b.sum;
      own.gauge.min = b.min;
      own.gauge.max = b.max;
      own.gauge.sum_squares = b.sum_squares;
      break;
    case extract::Kind::kCount:
      own.gauge.value = b.sum;
      break;
    case extract::Kind::kSample:
      own.gauge.value = b.last;
      break;
  }
  out.push_back(std::move(own));

  if (kind != extract::Kind::kMeasure) return;
  // A measure whose distribution did not survive (count() == 0) still sends its complex
  // gauge; it has no percentiles to send.
  if (b.values.count() == 0) return;
  for (const Derived& derived : kDerived) {
    if (closed.key.name.size() + derived.suffix.size() > kMaxNameBytes) {
      // SEMANTICS §5.1 says such a derived gauge "is not sent" without naming a counter; we
      // count each one as bad_name, the counter of names Librato would refuse.
      ++counters.bad_name;
      continue;
    }
    std::string name;
    name.reserve(closed.key.name.size() + derived.suffix.size());
    name.append(closed.key.name).append(derived.suffix);
    Candidate candidate{BaseGauge(closed, std::move(name)), kind, true, order};
    double value = b.values.Percentile(derived.percentile);
    // A sketch answers within 1% relative error, which may fall outside the observed range.
    if (!b.values.exact()) value = std::clamp(value, b.min, b.max);
    candidate.gauge.value = value;
    out.push_back(std::move(candidate));
  }
}

// Identity of a posted gauge (SEMANTICS §7.6): tenant, name, source, measure_time.
auto Identity(const Gauge& g) { return std::tie(g.tenant, g.name, g.source, g.measure_time); }

// Lexicographic ordering of candidates: identity first, then the §7.6 preference, so the
// first candidate of each identity is the one sent.
bool Precedes(const Candidate& a, const Candidate& b) {
  if (auto c = Identity(a.gauge) <=> Identity(b.gauge); c != 0) return c < 0;
  if (a.kind != b.kind) return a.kind < b.kind;  // measure < count < sample
  if (a.derived != b.derived) return !a.derived;
  if (a.gauge.period != b.gauge.period) return a.gauge.period < b.gauge.period;
  return a.order < b.order;
}

void AppendHex2(unsigned char byte, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back(kHex[byte >> 4]);
  out.push_back(kHex[byte & 0xF]);
}

// Length of the well-formed UTF-8 sequence (RFC 3629 §4) at the start of `s`, or 0.
std::size_t Utf8SequenceLength(std::string_view s) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(0);
  std::size_t length;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) lo = 0xA0;  // overlong
    if (lead == 0xED) hi = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) lo = 0x90;  // overlong
    if (lead == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() < length) return 0;
  if (byte(1) < lo || byte(1) > hi) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

// Appends `s` as a JSON string (RFC 8259 §7): '"' and '\' escaped, control bytes (and DEL)
// as \u00XX, valid UTF-8 passed through, each byte of invalid UTF-8 replaced by U+FFFD.
void AppendJsonString(std::string_view s, std::string& out) {
  out.push_back('"');
  std::size_t i = 0;
  while (i < s.size()) {
    // Fast path: the run of bytes that need no attention (all of a sanitised name).
    std::size_t run = i;
    while (run < s.size()) {
      const auto c = static_cast<unsigned char>(s[run]);
      if (c < 0x20 || c == '"' || c == '\\' || c >= 0x7F) break;
      ++run;
    }
    out.append(s.data() + i, run - i);
    i = run;
    if (i == s.size()) break;
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (c < 0x80) {  // control byte or DEL
      out.append("\\u00");
      AppendHex2(c, out);
      ++i;
    } else if (std::size_t length = Utf8SequenceLength(s.substr(i)); length > 0) {
      out.append(s.data() + i, length);
      i += length;
    } else {
      out.append("\xEF\xBF\xBD");  // U+FFFD
      ++i;
    }
  }
  out.push_back('"');
}

void AppendInteger(std::int64_t value, std::string& out) {
  fmt::format_to(std::back_inserter(out), "{}", value);
}

}  // namespace

std::vector<Gauge> BuildGauges(std::span<bucket::ClosedBucket> buckets, telemetry::Counters& counters) {
  std::vector<Candidate> candidates;
  candidates.reserve(buckets.size() * 2);
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    AppendBucketGauges(buckets[i], i, candidates, counters);
  }

  // Sort positions rather than the candidates themselves: a Candidate holds four strings.
  std::vector<std::uint32_t> positions(candidates.size());
  for (std::uint32_t i = 0; i < positions.size(); ++i) positions[i] = i;
  std::sort(positions.begin(), positions.end(),
            [&](std::uint32_t a, std::uint32_t b) { return Precedes(candidates[a], candidates[b]); });

  std::vector<Gauge> gauges;
  gauges.reserve(candidates.size());
  for (std::uint32_t position : positions) {
    Candidate& candidate = candidates[position];
    if (!gauges.empty() && Identity(gauges.back()) == Identity(candidate.gauge)) {
      ++counters.name_conflict;  // SEMANTICS §7.6: a preferred gauge already holds this identity.
      continue;
    }
    gauges.push_back(std::move(candidate.gauge));
  }
  return gauges;
}

void AppendNumber(double value, std::string& out) {
  if (!std::isfinite(value)) {
    // Values are validated upstream (SEMANTICS §3.3), so this cannot happen; JSON has no
    // NaN or infinity, and a wrong 0 is better than a body the API refuses as a whole.
    out.push_back('0');
    return;
  }
  if (std::fabs(value) < kTwoPow53 && value == std::trunc(value)) {
    // Exact in int64; -0.0 converts to 0.
    AppendInteger(static_cast<std::int64_t>(value), out);
    return;
  }
  // fmt 9 prints the shortest representation that round-trips (Dragonbox), with an exponent
  // such as 1e+20 or 7.9341e-05 when that is shorter: both valid JSON numbers.
  fmt::format_to(std::back_inserter(out), "{}", value);
}

void AppendGaugeJson(const Gauge& gauge, std::string& out) {
  out.append("{\"name\":");
  AppendJsonString(gauge.name, out);
  if (!gauge.source.empty()) {
    out.append(",\"source\":");
    AppendJsonString(gauge.source, out);
  }
  out.append(",\"measure_time\":");
  AppendInteger(gauge.measure_time, out);
  out.append(",\"period\":");
  AppendInteger(gauge.period, out);
  if (gauge.complex) {
    out.append(",\"count\":");
    fmt::format_to(std::back_inserter(out), "{}", gauge.count);
    out.append(",\"sum\":");
    AppendNumber(gauge.sum, out);
    out.append(",\"min\":");
    AppendNumber(gauge.min, out);
    out.append(",\"max\":");
    AppendNumber(gauge.max, out);
    out.append(",\"sum_squares\":");
    AppendNumber(gauge.sum_squares, out);
  } else {
    out.append(",\"value\":");
    AppendNumber(gauge.value, out);
  }
  if (!gauge.units.empty()) {
    out.append(",\"attributes\":{\"display_units_long\":");
    AppendJsonString(gauge.units, out);
    out.push_back('}');
  }
  out.push_back('}');
}

std::string RenderRequestBody(std::span<const Gauge> gauges) {
  std::string body;
  body.reserve(16 + gauges.size() * 160);
  body.append("{\"gauges\":[");
  for (std::size_t i = 0; i < gauges.size(); ++i) {
    if (i > 0) body.push_back(',');
    AppendGaugeJson(gauges[i], body);
  }
  body.append("]}");
  return body;
}

}  // namespace drainmet::librato
