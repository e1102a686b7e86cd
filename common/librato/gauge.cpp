#include "common/librato/gauge.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "fmt/compile.h"
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

// A bucket as BuildGauges reads it: its key as views (into a ClosedBucket's strings or a
// BucketMap's encoded key) and the bucket itself (its distribution is sorted in place).
struct Input {
  bucket::RecordKeyView key;
  bucket::PartialBucket* bucket = nullptr;
};

// A gauge before the §7.6 conflict resolution: which bucket, which of its gauges, and what
// a Gauge needs that the bucket does not hold. The Gauge itself (its four strings) is made
// only for the candidates that are sent, in their final order.
struct Candidate {
  std::uint32_t input = 0;    // Index into the inputs; candidates of one input are adjacent.
  std::int32_t derived = -1;  // -1: the series' own gauge; else the index into kDerived.
  double value = 0;           // A derived gauge's percentile.
  std::string_view name;      // The key's name, or the derived name (in the arena).
};

// Appends the candidates of one bucket (SEMANTICS §7.1-7.3) to `out`. Derived names are
// appended to `arena`, whose capacity the caller reserved for every one of them.
void AppendBucketCandidates(const Input& in, std::uint32_t index, std::string& arena,
                            std::vector<Candidate>& out, telemetry::Counters& counters) {
  bucket::PartialBucket& b = *in.bucket;
  // An empty bucket has no value to send (its min/max are ±inf); buckets only exist once a
  // point reached them, so this guards against a corrupt or hand-made input only.
  if (b.count == 0) return;
  const extract::Kind kind = in.key.kind;

  // A count's value and a measure's sum that the API would refuse (kApiMagnitudeLimit):
  // that gauge is not sent, counted as bad_value; a measure's percentiles still are.
  if (kind != extract::Kind::kSample && !ApiAccepts(b.sum)) {
    ++counters.bad_value;
  } else {
    out.push_back(Candidate{index, -1, 0, in.key.name});
  }

  if (kind != extract::Kind::kMeasure) return;
  // A measure whose distribution did not survive (count() == 0) still sends its complex
  // gauge; it has no percentiles to send.
  if (b.values.count() == 0) return;
  for (std::size_t d = 0; d < kDerived.size(); ++d) {
    const Derived& derived = kDerived[d];
    if (in.key.name.size() + derived.suffix.size() > kMaxNameBytes) {
      // SEMANTICS §5.1 says such a derived gauge "is not sent" without naming a counter; we
      // count each one as bad_name, the counter of names Librato would refuse.
      ++counters.bad_name;
      continue;
    }
    const std::size_t at = arena.size();
    arena.append(in.key.name).append(derived.suffix);
    double value = b.values.Percentile(derived.percentile);
    // A sketch answers within 1% relative error, which may fall outside the observed range.
    if (!b.values.exact()) value = std::clamp(value, b.min, b.max);
    out.push_back(Candidate{index, static_cast<std::int32_t>(d), value,
                            std::string_view(arena).substr(at, arena.size() - at)});
  }
}

// The Gauge of a candidate that is sent.
void FillGauge(const Input& in, const Candidate& c, Gauge& gauge) {
  const bucket::PartialBucket& b = *in.bucket;
  gauge.name.assign(c.name);
  gauge.source.assign(in.key.source);
  gauge.measure_time = in.key.window_unix_seconds;
  gauge.period = in.key.resolution_seconds;
  gauge.units = b.units;
  gauge.tenant.assign(in.key.tenant);
  if (c.derived >= 0) {
    gauge.value = c.value;
    return;
  }
  switch (in.key.kind) {
    case extract::Kind::kMeasure:
      gauge.complex = true;
      gauge.count = b.count;
      gauge.sum = b.sum;
      gauge.min = b.min;
      gauge.max = b.max;
      gauge.sum_squares = b.sum_squares;
      break;
    case extract::Kind::kCount:
      gauge.value = b.sum;
      break;
    case extract::Kind::kSample:
      gauge.value = b.last;
      break;
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

// The sources of the candidates, for the keys whose first 16 bytes tie (see SortKey).
struct SourceOf {
  const std::vector<Input>& inputs;
  const std::vector<Candidate>& candidates;
  std::string_view operator()(std::uint32_t index) const {
    return inputs[candidates[index].input].key.source;
  }
};

// Three-way comparison of the sources of two keys (see SortKey).
int CompareSources(const SortKey& a, const SortKey& b, const SourceOf& source) {
  if (a.source_hi != b.source_hi) return a.source_hi < b.source_hi ? -1 : 1;
  if (a.source_lo != b.source_lo) return a.source_lo < b.source_lo ? -1 : 1;
  if (a.source_size <= 16 && b.source_size <= 16) {
    return a.source_size == b.source_size ? 0 : (a.source_size < b.source_size ? -1 : 1);
  }
  const int c = source(a.index).compare(source(b.index));
  return c == 0 ? 0 : (c < 0 ? -1 : 1);
}

// Same identity (SEMANTICS §7.6): tenant, name, source, measure_time.
bool SameIdentity(const SortKey& a, const SortKey& b, const SourceOf& source) {
  return a.tenant == b.tenant && a.name == b.name && a.measure_time == b.measure_time &&
         CompareSources(a, b, source) == 0;
}

bool KeyPrecedes(const SortKey& a, const SortKey& b, const SourceOf& source) {
  if (a.tenant != b.tenant) return a.tenant < b.tenant;
  if (a.name != b.name) return a.name < b.name;
  if (const int c = CompareSources(a, b, source); c != 0) return c < 0;
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

// BuildGauges over `inputs` (any order; an input's position breaks ties between rivals).
std::vector<Gauge> BuildFromInputs(const std::vector<Input>& inputs, telemetry::Counters& counters) {
  std::size_t most = 0;        // a measure yields up to 4 gauges, the others 1
  std::size_t name_bytes = 0;  // the derived names, at most
  for (const Input& in : inputs) {
    if (in.key.kind != extract::Kind::kMeasure) {
      ++most;
      continue;
    }
    most += 1 + kDerived.size();
    for (const Derived& derived : kDerived) name_bytes += in.key.name.size() + derived.suffix.size();
  }
  std::vector<Candidate> candidates;
  candidates.reserve(most);
  // Views into it are taken as it fills: reserved for every derived name, it never moves.
  std::string arena;
  arena.reserve(name_bytes);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    AppendBucketCandidates(inputs[i], static_cast<std::uint32_t>(i), arena, candidates, counters);
  }

  Ranker tenants, names;
  std::vector<SortKey> keys(candidates.size());
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const Candidate& c = candidates[i];
    const bucket::RecordKeyView& key = inputs[c.input].key;
    const std::string_view source = key.source;
    SortKey& k = keys[i];
    k.tenant = tenants.Id(key.tenant);
    k.name = names.Id(c.name);
    k.source_hi = LoadBigEndian(source.data(), source.size());
    k.source_lo = source.size() > 8 ? LoadBigEndian(source.data() + 8, source.size() - 8) : 0;
    k.source_size = static_cast<std::uint32_t>(std::min<std::size_t>(source.size(), UINT32_MAX));
    k.measure_time = key.window_unix_seconds;
    k.tie = (static_cast<std::uint64_t>(key.kind) << 33) |
            (static_cast<std::uint64_t>(c.derived >= 0) << 32) |
            static_cast<std::uint64_t>(static_cast<std::int64_t>(key.resolution_seconds) +
                                       (std::int64_t{1} << 31));
    k.index = static_cast<std::uint32_t>(i);
  }
  const std::vector<std::uint32_t> tenant_rank = tenants.Ranks();
  const std::vector<std::uint32_t> name_rank = names.Ranks();
  for (SortKey& k : keys) {
    k.tenant = tenant_rank[k.tenant];
    k.name = name_rank[k.name];
  }
  const SourceOf source{inputs, candidates};
  std::sort(keys.begin(), keys.end(),
            [&](const SortKey& a, const SortKey& b) { return KeyPrecedes(a, b, source); });

  // The first of each identity is sent; its Gauge is made in place, in the final order.
  std::size_t sent = keys.empty() ? 0 : 1;
  for (std::size_t i = 1; i < keys.size(); ++i) sent += SameIdentity(keys[i - 1], keys[i], source) ? 0 : 1;
  std::vector<Gauge> gauges(sent);
  std::size_t next = 0;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (i > 0 && SameIdentity(keys[i - 1], keys[i], source)) {
      ++counters.name_conflict;  // SEMANTICS §7.6: a preferred gauge already holds this identity.
      continue;
    }
    const Candidate& c = candidates[keys[i].index];
    FillGauge(inputs[c.input], c, gauges[next++]);
  }
  return gauges;
}

}  // namespace

std::vector<Gauge> BuildGauges(std::span<bucket::ClosedBucket> buckets, telemetry::Counters& counters) {
  std::vector<Input> inputs(buckets.size());
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    bucket::ClosedBucket& closed = buckets[i];
    inputs[i].key = bucket::RecordKeyView{closed.key.tenant,
                                          closed.key.name,
                                          closed.key.source,
                                          closed.key.kind,
                                          closed.key.resolution_seconds,
                                          closed.key.window_unix_seconds};
    inputs[i].bucket = &closed.bucket;
  }
  return BuildFromInputs(inputs, counters);
}

std::vector<Gauge> BuildGauges(bucket::BucketMap& buckets, telemetry::Counters& counters) {
  std::vector<Input> inputs;
  inputs.reserve(buckets.size());
  for (auto& [encoded, bucket] : buckets.map()) {
    Input in;
    // Keys come from EncodeBucketKey unless a caller passed garbage to MergeBucket; such a
    // bucket has no identity to emit under and is dropped (as BucketMap::TakeAll does).
    if (!bucket::KeyViewOf(encoded, &in.key)) continue;
    in.bucket = &bucket;
    inputs.push_back(in);
  }
  return BuildFromInputs(inputs, counters);
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
  // FMT_COMPILE: the format string is parsed at compile time (same output as "{}").
  char text[32];
  char* end = fmt::format_to(text, FMT_COMPILE("{}"), value);
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
