#include "common/extract/extract.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <iterator>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_join.h"
#include "common/extract/value.h"

namespace drainmet::extract {
namespace {

constexpr std::size_t kMaxNameBytes = 255;  // SEMANTICS §5.1, names and sources.

constexpr bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// SEMANTICS §5.1: A-Z a-z 0-9 . : _ -
constexpr bool IsNameByte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigit(c) || c == '.' || c == ':' || c == '_' ||
         c == '-';
}

// Every byte value -> itself when IsNameByte, else '_': Sanitise (once per point) maps
// each byte without a branch.
constexpr auto kSanitised = [] {
  std::array<char, 256> table{};
  for (int c = 0; c < 256; ++c) table[c] = IsNameByte(static_cast<char>(c)) ? static_cast<char>(c) : '_';
  return table;
}();

void Sanitise(std::string& s) {
  for (char& c : s) c = kSanitised[static_cast<unsigned char>(c)];
}

// Writes `prefix.head tail` (or `head tail`) sanitised into `out`. False, with `out`
// cleared, when head and tail are empty or the result would pass 255 bytes; the length
// is checked first, so an oversized name never grows `out`.
bool BuildName(std::string_view prefix, std::string_view head, std::string_view tail, std::string& out) {
  out.clear();
  if (head.empty() && tail.empty()) return false;
  const std::size_t size = (prefix.empty() ? 0 : prefix.size() + 1) + head.size() + tail.size();
  if (size > kMaxNameBytes) return false;
  if (!prefix.empty()) {
    out.append(prefix);
    out.push_back('.');
  }
  out.append(head);
  out.append(tail);
  Sanitise(out);
  return true;
}

bool IsAll(std::string_view s) {
  return s.size() == 3 && (s[0] | 0x20) == 'a' && (s[1] | 0x20) == 'l' && (s[2] | 0x20) == 'l';
}

// `s` starts with the literal `prefix` (a fixed-size compare the compiler inlines).
template <std::size_t N>
bool HasPrefix(std::string_view s, const char (&prefix)[N]) {
  return s.size() >= N - 1 && std::memcmp(s.data(), prefix, N - 1) == 0;
}

// `s` is the literal `word`.
template <std::size_t N>
bool Is(std::string_view s, const char (&word)[N]) {
  return s.size() == N - 1 && std::memcmp(s.data(), word, N - 1) == 0;
}

// l2met conventions, SEMANTICS §4.1: `measure#`, `count#`, `sample#`, `measure.` (no
// key starts with two of them). The kind and the prefix's length, or false.
bool MatchL2metPrefix(std::string_view key, Kind* kind, std::size_t* prefix_size) {
  switch (key.empty() ? '\0' : key[0]) {
    case 'm':
      if (HasPrefix(key, "measure#") || HasPrefix(key, "measure.")) {
        *kind = Kind::kMeasure;
        *prefix_size = 8;
        return true;
      }
      return false;
    case 'c':
      if (HasPrefix(key, "count#")) {
        *kind = Kind::kCount;
        *prefix_size = 6;
        return true;
      }
      return false;
    case 's':
      if (HasPrefix(key, "sample#")) {
        *kind = Kind::kSample;
        *prefix_size = 7;
        return true;
      }
      return false;
    default:
      return false;
  }
}

// SEMANTICS §4.6. `count` is the decimal digits of N.
struct LossNotice {
  std::string_view name;
  std::string_view count;
};

// Consumes `prefix` from the front of `s`.
bool Consume(std::string_view& s, std::string_view prefix) {
  if (!s.starts_with(prefix)) return false;
  s.remove_prefix(prefix.size());
  return true;
}

// Consumes 1*DIGIT from the front of `s`.
std::string_view ConsumeDigits(std::string_view& s) {
  std::size_t n = 0;
  while (n < s.size() && IsDigit(s[n])) ++n;
  const std::string_view digits = s.substr(0, n);
  s.remove_prefix(n);
  return digits;
}

// `Error L10 (...): N messages dropped ...`, `Error L10 (...): drain '...' dropped N
// messages ...`, `Error L12: N messages dropped ...`, `Error L13: N messages lost ...`.
std::optional<LossNotice> MatchLossNotice(std::string_view line) {
  std::string_view s = line;
  if (!Consume(s, "Error L1")) return std::nullopt;
  if (Consume(s, "0 (")) {
    const std::size_t close = s.find("): ");
    if (close == std::string_view::npos) return std::nullopt;
    s.remove_prefix(close + 3);
    if (Consume(s, "drain '")) {
      const std::size_t dropped = s.find("' dropped ");
      if (dropped == std::string_view::npos) return std::nullopt;
      s.remove_prefix(dropped + 10);
      const std::string_view n = ConsumeDigits(s);
      if (n.empty() || !s.starts_with(" messages")) return std::nullopt;
      return LossNotice{"logplex.l10", n};
    }
    const std::string_view n = ConsumeDigits(s);
    if (n.empty() || !s.starts_with(" messages dropped")) return std::nullopt;
    return LossNotice{"logplex.l10", n};
  }
  if (Consume(s, "2: ")) {
    const std::string_view n = ConsumeDigits(s);
    if (n.empty() || !s.starts_with(" messages dropped")) return std::nullopt;
    return LossNotice{"logplex.l12", n};
  }
  if (Consume(s, "3: ")) {
    const std::string_view n = ConsumeDigits(s);
    if (n.empty() || !s.starts_with(" messages lost")) return std::nullopt;
    return LossNotice{"logplex.l13", n};
  }
  return std::nullopt;
}

// SEMANTICS §4.4: `heroku.<digits>.<role>.<last>` -> `<role>` (everything between the
// second and the last dot); any other source is returned as is.
std::string_view DynoRole(std::string_view source) {
  constexpr std::string_view kHeroku = "heroku.";
  if (!source.starts_with(kHeroku)) return source;
  const std::size_t second_dot = source.find('.', kHeroku.size());
  if (second_dot == std::string_view::npos || second_dot == kHeroku.size()) return source;
  const std::string_view app_id = source.substr(kHeroku.size(), second_dot - kHeroku.size());
  if (!std::all_of(app_id.begin(), app_id.end(), IsDigit)) return source;
  const std::size_t last_dot = source.rfind('.');
  if (last_dot <= second_dot + 1 || last_dot + 1 == source.size()) return source;
  return source.substr(second_dot + 1, last_dot - second_dot - 1);
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded decoding: %XX and '+' for a space.
bool PercentDecode(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out.push_back(' ');
    } else if (in[i] != '%') {
      out.push_back(in[i]);
    } else {
      if (i + 2 >= in.size()) return false;
      const int hi = HexDigit(in[i + 1]);
      const int lo = HexDigit(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    }
  }
  return true;
}

}  // namespace

std::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kMeasure:
      return "measure";
    case Kind::kCount:
      return "count";
    case Kind::kSample:
      return "sample";
  }
  return "unknown";
}

bool IsAllowedResolution(int seconds) {
  return std::find(std::begin(kAllowedResolutions), std::end(kAllowedResolutions), seconds) !=
         std::end(kAllowedResolutions);
}

absl::StatusOr<DrainOptions> ParseDrainQuery(std::string_view query, int default_resolution_seconds) {
  DrainOptions options;
  options.resolution_seconds = default_resolution_seconds;
  std::optional<std::string> resolution;
  std::string key;
  std::string value;
  // absl::string_view is not std::string_view in this Abseil build, so no absl::StrSplit
  // or absl::StrCat on our views.
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view piece = query.substr(0, amp);
    query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    if (piece.empty()) continue;
    const std::size_t eq = piece.find('=');
    const std::string_view raw_key = piece.substr(0, eq);
    const std::string_view raw_value = eq == std::string_view::npos ? "" : piece.substr(eq + 1);
    if (!PercentDecode(raw_key, key)) {
      return absl::InvalidArgumentError("query: malformed percent-escape in key '" + std::string(raw_key) +
                                        "'");
    }
    std::string* target = nullptr;
    if (key == "prefix") {
      target = &options.prefix;
    } else if (key == "source-prefix") {
      target = &options.source_prefix;
    } else if (key == "resolution") {
      target = &resolution.emplace();
    } else {
      continue;  // Unknown keys are ignored.
    }
    if (!PercentDecode(raw_value, value)) {
      return absl::InvalidArgumentError(key + ": malformed percent-escape in '" + std::string(raw_value) +
                                        "'");
    }
    *target = value;  // A repeated key: the last one wins.
  }
  if (resolution.has_value()) {
    const std::string& text = *resolution;
    int seconds = 0;
    bool ok = !text.empty() && text.size() <= 9 && std::all_of(text.begin(), text.end(), IsDigit);
    if (ok) {
      for (char c : text) seconds = seconds * 10 + (c - '0');
      ok = IsAllowedResolution(seconds);
    }
    if (!ok) {
      return absl::InvalidArgumentError("resolution: must be one of " +
                                        absl::StrJoin(kAllowedResolutions, ", ") + ", got '" + text + "'");
    }
    options.resolution_seconds = seconds;
  }
  return options;
}

bool FinalName(std::string_view prefix, std::string_view raw, std::string& out) {
  return BuildName(prefix, raw, {}, out);
}

bool FinalSource(std::string_view source_prefix, std::string_view raw, std::string& out) {
  out.clear();
  if (source_prefix.empty() && raw.empty()) return true;  // No source.
  const bool both = !source_prefix.empty() && !raw.empty();
  if (source_prefix.size() + (both ? 1 : 0) + raw.size() > kMaxNameBytes) return false;
  out.append(source_prefix);
  if (both) out.push_back('.');
  out.append(raw);
  Sanitise(out);
  if (IsAll(out)) out = "all_";
  return true;
}

Extractor::Extractor(const DrainOptions& options) : options_(options) {}

void Extractor::Emit(Kind kind, std::string_view name_head, std::string_view name_tail, SourceSlot& source,
                     std::string_view raw_source, std::string_view value_text, bool empty_is_one,
                     std::string_view units, std::int64_t time_unix_nanos, telemetry::Counters& counters,
                     Sink sink) {
  if (value_text.empty() && !empty_is_one) return;  // No observation (SEMANTICS §3.2).
  if (!BuildName(options_.prefix, name_head, name_tail, name_)) {
    ++counters.bad_name;
    return;
  }
  if (source.state == SourceSlot::State::kUnset) {
    source.state = FinalSource(options_.source_prefix, raw_source, source.text) ? SourceSlot::State::kOk
                                                                                : SourceSlot::State::kBad;
  }
  if (source.state == SourceSlot::State::kBad) {
    ++counters.bad_name;
    return;
  }
  ParsedValue parsed{1.0, {}};
  if (!value_text.empty() && !ParseValue(value_text, &parsed)) {
    ++counters.bad_value;
    return;
  }
  Point point;
  point.kind = kind;
  point.name = name_;
  point.source = source.text;
  point.units = units.empty() ? parsed.units : units;
  point.value = parsed.value;
  point.time_unix_nanos = time_unix_nanos;
  sink(point);
}

void Extractor::Extract(const logplex::Frame& frame, std::int64_t time_unix_nanos,
                        telemetry::Counters& counters, Sink sink) {
  line_source_.state = SourceSlot::State::kUnset;
  no_source_.state = SourceSlot::State::kUnset;
  legacy_source_.state = SourceSlot::State::kUnset;

  if (const std::optional<LossNotice> notice = MatchLossNotice(frame.line)) {
    Emit(Kind::kCount, notice->name, {}, no_source_, {}, notice->count, false, {}, time_unix_nanos, counters,
         sink);
    return;
  }

  const bool router = frame.app_name == "heroku" && frame.proc_id == "router";
  // Points come only from keys with an l2met prefix (all contain '#' or "measure"), the
  // legacy `measure=` form, router lines and loss notices (above). A line with none of
  // those yields nothing and counts nothing: skip the scan (about 40% of app lines).
  if (!router && frame.line.find('#') == std::string_view::npos &&
      frame.line.find("measure") == std::string_view::npos) {
    return;
  }

  // One pass of the scanner; the first `source`, `measure`, `val` and `units` pairs are
  // noted on the way (indices: pairs_ may grow).
  constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::size_t source = kNone;
  std::size_t legacy_name = kNone;
  std::size_t legacy_val = kNone;
  std::size_t legacy_units = kNone;
  pairs_.clear();
  logfmt::Scanner scanner(frame.line, scratch_);
  for (logfmt::Pair pair; scanner.Next(&pair);) {
    const std::size_t index = pairs_.size();
    pairs_.push_back(pair);
    switch (pair.key.size()) {
      case 3:
        if (legacy_val == kNone && Is(pair.key, "val")) legacy_val = index;
        break;
      case 5:
        if (legacy_units == kNone && Is(pair.key, "units")) legacy_units = index;
        break;
      case 6:
        if (source == kNone && Is(pair.key, "source")) source = index;
        break;
      case 7:
        if (legacy_name == kNone && Is(pair.key, "measure")) legacy_name = index;
        break;
      default:
        break;
    }
  }
  // A malformed quoted value ended the scan: the pairs before it stand (SEMANTICS §2.1).
  const std::string_view line_source = source != kNone ? pairs_[source].value : std::string_view();

  for (std::size_t index = 0; index < pairs_.size(); ++index) {
    const logfmt::Pair& pair = pairs_[index];
    const std::string_view key = pair.key;
    Kind kind;
    std::size_t prefix_size;
    if (MatchL2metPrefix(key, &kind, &prefix_size)) {
      // An empty NAME fails in BuildName: bad_name (§4.1).
      Emit(kind, key.substr(prefix_size), {}, line_source_, line_source, pair.value, true, {},
           time_unix_nanos, counters, sink);
    }
    if (router) {
      if (Is(key, "connect") || Is(key, "service") || Is(key, "bytes")) {
        Emit(Kind::kMeasure, "router.", key, no_source_, {}, pair.value, false, {}, time_unix_nanos, counters,
             sink);
      } else if (Is(key, "status") && !pair.value.empty()) {
        if (!IsDigit(pair.value[0])) {
          ++counters.bad_value;
        } else {
          const char status_class[] = {pair.value[0], 'x', 'x'};
          Emit(Kind::kCount, "router.status.", std::string_view(status_class, 3), no_source_, {}, {}, true,
               {}, time_unix_nanos, counters, sink);
        }
      } else if (Is(key, "code") && !pair.value.empty()) {
        Emit(Kind::kCount, "router.error.", pair.value, no_source_, {}, {}, true, {}, time_unix_nanos,
             counters, sink);
      }
    }
    if (index == legacy_val && legacy_name != kNone) {
      const std::string_view units = legacy_units != kNone ? pairs_[legacy_units].value : std::string_view();
      Emit(Kind::kSample, pairs_[legacy_name].value, {}, legacy_source_, DynoRole(line_source), pair.value,
           false, units, time_unix_nanos, counters, sink);
    }
  }
}

}  // namespace drainmet::extract
