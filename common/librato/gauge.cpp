#include "common/librato/gauge.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "fmt/format.h"

namespace drainmet::librato {
namespace {

// Librato's limit on a name (FORMATS.md §5.2, SEMANTICS §5.1).
constexpr std::size_t kMaxNameBytes = 255;

// The API refuses a whole request holding a number whose base-10 exponent passes 126
// (FORMATS.md §5.1 "Float limits"): points are at most 1e126 (SEMANTICS §3.3), but a sum of
// many of them, or a sum of squares (1e64 squared), may not be.
constexpr double kApiMagnitudeLimit = 1e127;

bool ApiAccepts(double value) { return std::isfinite(value) && std::fabs(value) < kApiMagnitudeLimit; }

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

// The series' own gauge of a bucket (SEMANTICS §7.1-7.3): complex for a measure, value =
// sum for a count, value = latest sample for a sample.
Candidate MakeOwnGauge(const bucket::ClosedBucket& closed, std::size_t order) {
  const bucket::PartialBucket& b = closed.bucket;
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
  return own;
}

// Appends the gauges of one bucket (SEMANTICS §7.1-7.3) to `out`.
void AppendBucketGauges(bucket::ClosedBucket& closed, std::size_t order, std::vector<Candidate>& out,
                        telemetry::Counters& counters) {
  bucket::PartialBucket& b = closed.bucket;
  // An empty bucket has no value to send (its min/max are ±inf); buckets only exist once a
  // point reached them, so this guards against a corrupt or hand-made input only.
  if (b.count == 0) return;
  const extract::Kind kind = closed.key.kind;

  // A count's value and a measure's sum that the API would refuse (kApiMagnitudeLimit):
  // that gauge is not sent, counted as bad_value; a measure's percentiles still are.
  if (kind != extract::Kind::kSample && !ApiAccepts(b.sum)) {
    ++counters.bad_value;
  } else {
    out.push_back(MakeOwnGauge(closed, order));
  }

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

// What the sort of BuildGauges compares, kept apart from the candidates so that a
// comparison reads two of these (48 bytes each, side by side) instead of two candidates
// (four strings each, anywhere in memory). The order it gives is that of
// (tenant, name, source, measure_time, kind, derived, period, order) in byte order, which
// is SEMANTICS §7.6's identity then preference:
// - tenant and name: their ranks among the distinct tenants and names of the call, sorted
//   in byte order (equal ranks <=> equal strings);
// - source: its first 16 bytes big-endian, zero-padded; prefixes that differ order the
//   sources as their bytes do (a zero pad only sorts a source before the longer sources it
//   is a prefix of), equal prefixes fall back to the lengths (both sources at most 16
//   bytes) or to the strings themselves;
// - kind, derived and period packed into `tie`; then the candidate's position, which
//   follows its bucket's position (candidates are made bucket after bucket, and one
//   bucket's candidates never share a name).
struct SortKey {
  std::uint32_t tenant = 0;
  std::uint32_t name = 0;
  std::uint64_t source_hi = 0;
  std::uint64_t source_lo = 0;
  std::int64_t measure_time = 0;
  std::uint64_t tie = 0;  // kind << 33 | derived << 32 | (period + 2^31)
  std::uint32_t source_size = 0;
  std::uint32_t index = 0;  // into the candidates
};

std::uint64_t LoadBigEndian(const char* bytes, std::size_t n) {
  unsigned char buffer[8] = {};
  std::memcpy(buffer, bytes, std::min<std::size_t>(n, 8));
  std::uint64_t value = 0;
  for (unsigned char byte : buffer) value = (value << 8) | byte;
  return value;
}

// Numbers the distinct strings it is given (Id: in first-seen order), then ranks them in
// byte order (Ranks: rank of each id). The strings must outlive it.
class Ranker {
 public:
  std::uint32_t Id(std::string_view value) {
    auto [it, inserted] = ids_.try_emplace(value, static_cast<std::uint32_t>(distinct_.size()));
    if (inserted) distinct_.push_back(value);
    return it->second;
  }
  // Rank of each id, by the byte order of its string.
  std::vector<std::uint32_t> Ranks() const {
    std::vector<std::uint32_t> order(distinct_.size());
    for (std::uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](std::uint32_t a, std::uint32_t b) { return distinct_[a] < distinct_[b]; });
    std::vector<std::uint32_t> rank(distinct_.size());
    for (std::uint32_t r = 0; r < order.size(); ++r) rank[order[r]] = r;
    return rank;
  }

 private:
  absl::flat_hash_map<std::string_view, std::uint32_t> ids_;
  std::vector<std::string_view> distinct_;
};

// Three-way comparison of the sources of two keys (see SortKey).
int CompareSources(const SortKey& a, const SortKey& b, const std::vector<Candidate>& candidates) {
  if (a.source_hi != b.source_hi) return a.source_hi < b.source_hi ? -1 : 1;
  if (a.source_lo != b.source_lo) return a.source_lo < b.source_lo ? -1 : 1;
  if (a.source_size <= 16 && b.source_size <= 16) {
    return a.source_size == b.source_size ? 0 : (a.source_size < b.source_size ? -1 : 1);
  }
  const int c = candidates[a.index].gauge.source.compare(candidates[b.index].gauge.source);
  return c == 0 ? 0 : (c < 0 ? -1 : 1);
}

// Same identity (SEMANTICS §7.6): tenant, name, source, measure_time.
bool SameIdentity(const SortKey& a, const SortKey& b, const std::vector<Candidate>& candidates) {
  return a.tenant == b.tenant && a.name == b.name && a.measure_time == b.measure_time &&
         CompareSources(a, b, candidates) == 0;
}

bool KeyPrecedes(const SortKey& a, const SortKey& b, const std::vector<Candidate>& candidates) {
  if (a.tenant != b.tenant) return a.tenant < b.tenant;
  if (a.name != b.name) return a.name < b.name;
  if (const int c = CompareSources(a, b, candidates); c != 0) return c < 0;
  if (a.measure_time != b.measure_time) return a.measure_time < b.measure_time;
  if (a.tie != b.tie) return a.tie < b.tie;
  return a.index < b.index;
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

// fmt::format_int writes into its own buffer without a format string to parse.
void AppendInteger(std::int64_t value, std::string& out) {
  const fmt::format_int text(value);
  out.append(text.data(), text.size());
}

}  // namespace

std::vector<Gauge> BuildGauges(std::span<bucket::ClosedBucket> buckets, telemetry::Counters& counters) {
  std::size_t most = 0;  // a measure yields up to 4 gauges, the others 1
  for (const bucket::ClosedBucket& closed : buckets)
    most += closed.key.kind == extract::Kind::kMeasure ? 1 + kDerived.size() : 1;
  std::vector<Candidate> candidates;
  candidates.reserve(most);
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    AppendBucketGauges(buckets[i], i, candidates, counters);
  }

  // The sort keys (SortKey); their string views point into `candidates`, which no longer
  // moves.
  Ranker tenants, names;
  std::vector<SortKey> keys(candidates.size());
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const Candidate& c = candidates[i];
    const Gauge& g = c.gauge;
    SortKey& k = keys[i];
    k.tenant = tenants.Id(g.tenant);
    k.name = names.Id(g.name);
    k.source_hi = LoadBigEndian(g.source.data(), g.source.size());
    k.source_lo = g.source.size() > 8 ? LoadBigEndian(g.source.data() + 8, g.source.size() - 8) : 0;
    k.source_size = static_cast<std::uint32_t>(std::min<std::size_t>(g.source.size(), UINT32_MAX));
    k.measure_time = g.measure_time;
    k.tie = (static_cast<std::uint64_t>(c.kind) << 33) | (static_cast<std::uint64_t>(c.derived) << 32) |
            static_cast<std::uint64_t>(static_cast<std::int64_t>(g.period) + (std::int64_t{1} << 31));
    k.index = static_cast<std::uint32_t>(i);
  }
  const std::vector<std::uint32_t> tenant_rank = tenants.Ranks();
  const std::vector<std::uint32_t> name_rank = names.Ranks();
  for (SortKey& k : keys) {
    k.tenant = tenant_rank[k.tenant];
    k.name = name_rank[k.name];
  }
  std::sort(keys.begin(), keys.end(),
            [&](const SortKey& a, const SortKey& b) { return KeyPrecedes(a, b, candidates); });

  // The first of each identity is sent. Decided before any gauge is moved out, as a long
  // source is compared through its candidate.
  std::vector<char> sent(keys.size(), 1);
  for (std::size_t i = 1; i < keys.size(); ++i) {
    if (SameIdentity(keys[i - 1], keys[i], candidates)) {
      sent[i] = 0;
      ++counters.name_conflict;  // SEMANTICS §7.6: a preferred gauge already holds this identity.
    }
  }
  std::vector<Gauge> gauges;
  gauges.reserve(candidates.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (sent[i]) gauges.push_back(std::move(candidates[keys[i].index].gauge));
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
  // Into a local buffer (a back_insert_iterator costs a call per character): the longest
  // shortest form, "-2.2250738585072014e-308", is 24 characters.
  char text[32];
  char* end = fmt::format_to(text, "{}", value);
  out.append(text, static_cast<std::size_t>(end - text));
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
    const fmt::format_int count(gauge.count);
    out.append(count.data(), count.size());
    out.append(",\"sum\":");
    AppendNumber(gauge.sum, out);
    out.append(",\"min\":");
    AppendNumber(gauge.min, out);
    out.append(",\"max\":");
    AppendNumber(gauge.max, out);
    if (ApiAccepts(gauge.sum_squares)) {  // Optional (FORMATS.md §5.2): left out rather than refused.
      out.append(",\"sum_squares\":");
      AppendNumber(gauge.sum_squares, out);
    }
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
