#include "services/loadgen/body.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "common/bucket/partial_bucket.h"
#include "common/drain/processor.h"
#include "common/logplex/frame_reader.h"
#include "common/telemetry/counters.h"
#include "fmt/format.h"

namespace drainmet::loadgen {
namespace {

constexpr std::int64_t kMicrosPerSecond = 1'000'000;
constexpr std::size_t kSecondsBytes = 19;  // "YYYY-MM-DDTHH:MM:SS"

std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

void Put2(char* out, unsigned v) {
  out[0] = static_cast<char>('0' + v / 10);
  out[1] = static_cast<char>('0' + v % 10);
}

/// "YYYY-MM-DDTHH:MM:SS" of Unix second `t` (UTC), proleptic Gregorian (days-to-civil as in
/// H. Hinnant's "chrono-compatible low-level date algorithms").
void FormatSeconds(std::int64_t t, char* out) {
  // Clamp to 0000-01-01T00:00:00 .. 9999-12-31T23:59:59 so the width never changes.
  t = std::clamp<std::int64_t>(t, -62167219200, 253402300799);
  const std::int64_t days = FloorDiv(t, 86400);
  const std::int64_t secs = t - days * 86400;
  const std::int64_t z = days + 719468;
  const std::int64_t era = FloorDiv(z, 146097);
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const unsigned day = static_cast<unsigned>(doy - (153 * mp + 2) / 5 + 1);
  const unsigned month = static_cast<unsigned>(mp < 10 ? mp + 3 : mp - 9);
  const unsigned year = static_cast<unsigned>(yoe + era * 400 + (month <= 2 ? 1 : 0));
  Put2(out, year / 100);
  Put2(out + 2, year % 100);
  out[4] = '-';
  Put2(out + 5, month);
  out[7] = '-';
  Put2(out + 8, day);
  out[10] = 'T';
  Put2(out + 11, static_cast<unsigned>(secs / 3600));
  out[13] = ':';
  Put2(out + 14, static_cast<unsigned>(secs / 60 % 60));
  out[16] = ':';
  Put2(out + 17, static_cast<unsigned>(secs % 60));
}

void WriteFraction(std::int64_t micros, char* out) {
  out[0] = '.';
  for (int i = 6; i >= 1; --i) {
    out[i] = static_cast<char>('0' + micros % 10);
    micros /= 10;
  }
  std::memcpy(out + 7, "+00:00", 6);
}

/// splitmix64 (S. Vigna): a small, good-enough generator for synthetic values.
struct Rng {
  std::uint64_t state;
  std::uint64_t Next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};

/// Appends one frame: LEN SP, then `head`, a placeholder stamp, `tail`; records the stamp.
void AppendFrame(Body& body, std::string_view head, std::string_view tail, std::int64_t relative_micros) {
  const std::size_t len = head.size() + kStampBytes + tail.size();
  fmt::format_to(std::back_inserter(body.bytes), "{} ", len);
  body.bytes.append(head);
  body.stamp_offsets.push_back(static_cast<std::uint32_t>(body.bytes.size()));
  body.stamp_relative_micros.push_back(relative_micros);
  body.bytes.append(kStampBytes, '0');
  body.bytes.append(tail);
  ++body.frames;
}

}  // namespace

void FormatStamp(std::int64_t unix_micros, char* out) {
  const std::int64_t second = FloorDiv(unix_micros, kMicrosPerSecond);
  FormatSeconds(second, out);
  WriteFraction(unix_micros - second * kMicrosPerSecond, out + kSecondsBytes);
}

std::uint32_t SeriesTable::Intern(std::string_view name, std::string_view source, extract::Kind kind) {
  scratch_.clear();
  scratch_.append(name);
  scratch_.push_back('\0');
  scratch_.append(source);
  scratch_.push_back('\0');
  scratch_.push_back(static_cast<char>('0' + static_cast<int>(kind)));
  auto [it, inserted] = index_.try_emplace(scratch_, static_cast<std::uint32_t>(keys_.size()));
  if (inserted) keys_.push_back(SeriesKey{std::string(name), std::string(source), kind});
  return it->second;
}

void Body::Restamp(std::int64_t unix_second) {
  if (unix_second == stamped_second) return;
  stamped_second = unix_second;
  // Neighbouring frames share their second: format it once per run of them.
  char seconds[kSecondsBytes];
  std::int64_t formatted = std::numeric_limits<std::int64_t>::min();
  for (std::size_t i = 0; i < stamp_offsets.size(); ++i) {
    const std::int64_t t = unix_second * kMicrosPerSecond + stamp_relative_micros[i];
    const std::int64_t second = FloorDiv(t, kMicrosPerSecond);
    if (second != formatted) {
      FormatSeconds(second, seconds);
      formatted = second;
    }
    char* out = bytes.data() + stamp_offsets[i];
    std::memcpy(out, seconds, kSecondsBytes);
    WriteFraction(t - second * kMicrosPerSecond, out + kSecondsBytes);
  }
}

absl::StatusOr<Template> ParseTemplate(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("--template: empty");
  if (text.find_first_of("\r\n") != std::string_view::npos) {
    return absl::InvalidArgumentError("--template: must be one line (no CR or LF)");
  }
  Template t;
  std::string literal;
  bool has_source = false;
  auto flush = [&] {
    if (literal.empty()) return;
    t.pieces.push_back(Template::Piece::kLiteral);
    t.literals.push_back(literal);
    literal.clear();
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '}') return absl::InvalidArgumentError("--template: '}' without '{'");
    if (c != '{') {
      literal.push_back(c);
      continue;
    }
    const std::size_t close = text.find('}', i);
    if (close == std::string_view::npos) return absl::InvalidArgumentError("--template: '{' without '}'");
    const std::string_view name = text.substr(i + 1, close - i - 1);
    Template::Piece piece;
    if (name == "ms") {
      piece = Template::Piece::kMs;
    } else if (name == "mb") {
      piece = Template::Piece::kMb;
    } else if (name == "int") {
      piece = Template::Piece::kInt;
    } else if (name == "source") {
      piece = Template::Piece::kSource;
      has_source = true;
    } else {
      std::string message = "--template: unknown placeholder {";
      message.append(name);
      message.append("} (known: {ms} {mb} {int} {source})");
      return absl::InvalidArgumentError(message);
    }
    flush();
    t.pieces.push_back(piece);
    i = close;
  }
  if (!has_source) {
    literal.append(" source=");
    flush();
    t.pieces.push_back(Template::Piece::kSource);
  }
  flush();
  return t;
}

Body RenderTemplateBody(const Template& line_template, std::uint32_t lines, std::uint32_t series,
                        std::uint64_t first_line, std::uint64_t seed, std::int64_t unix_second) {
  Body body;
  Rng rng{seed * 0x9E3779B97F4A7C15ull + first_line};
  body.bytes.reserve(static_cast<std::size_t>(lines) * 140);
  body.stamp_offsets.reserve(lines);
  body.stamp_relative_micros.reserve(lines);
  static constexpr std::string_view kHead = "<190>1 ";
  std::string tail;
  for (std::uint32_t i = 0; i < lines; ++i) {
    tail.assign(" host app web.1 - ");
    std::size_t literal = 0;
    for (const Template::Piece piece : line_template.pieces) {
      switch (piece) {
        case Template::Piece::kLiteral:
          tail.append(line_template.literals[literal++]);
          break;
        case Template::Piece::kMs:
          fmt::format_to(std::back_inserter(tail), "{}", 1 + rng.Next() % 500);
          break;
        case Template::Piece::kMb:
          fmt::format_to(std::back_inserter(tail), "{}", 100 + rng.Next() % 900);
          break;
        case Template::Piece::kInt:
          fmt::format_to(std::back_inserter(tail), "{}", rng.Next() % 1000);
          break;
        case Template::Piece::kSource:
          fmt::format_to(std::back_inserter(tail), "web.{}", (first_line + i) % series);
          break;
      }
    }
    tail.push_back('\n');
    const std::int64_t relative = -kMicrosPerSecond + static_cast<std::int64_t>(i) * kMicrosPerSecond / lines;
    AppendFrame(body, kHead, tail, relative);
  }
  body.Restamp(unix_second);
  return body;
}

absl::StatusOr<Body> RenderCapturedBody(std::string_view raw, std::int64_t unix_second) {
  Body body;
  body.bytes.reserve(raw.size() + raw.size() / 8);
  logplex::FrameReader reader(raw);
  std::string_view frame;
  std::int64_t latest = std::numeric_limits<std::int64_t>::min();
  for (;;) {
    const logplex::FrameStatus status = reader.Next(&frame);
    if (status == logplex::FrameStatus::kEnd) break;
    if (status == logplex::FrameStatus::kBroken) {
      body.bytes.append(reader.rest());  // kept as sent: drainmet counts it bad_frame
      break;
    }
    if (status == logplex::FrameStatus::kEmpty) {
      body.bytes.append("0 ");
      ++body.frames;
      continue;
    }
    const std::optional<logplex::Frame> parsed = logplex::ParseFrame(frame);
    std::optional<std::int64_t> nanos;
    if (parsed) nanos = logplex::ParseRfc3339Nanos(parsed->timestamp);
    if (!nanos) {
      fmt::format_to(std::back_inserter(body.bytes), "{} ", frame.size());
      body.bytes.append(frame);
      ++body.frames;
      continue;
    }
    const std::size_t at = static_cast<std::size_t>(parsed->timestamp.data() - frame.data());
    const std::int64_t micros = FloorDiv(*nanos, 1000);
    latest = std::max(latest, micros);
    AppendFrame(body, frame.substr(0, at), frame.substr(at + parsed->timestamp.size()), micros);
  }
  if (body.frames == 0) return absl::InvalidArgumentError("no octet-counted frame in the body");
  for (std::int64_t& relative : body.stamp_relative_micros) relative -= latest;
  body.Restamp(unix_second);
  return body;
}

void TallyBody(Body& body, std::int64_t unix_second, SeriesTable& table) {
  bucket::BucketMap partials;
  telemetry::Counters counters;
  drain::BodyTimes times;
  times.received_at_nanos = unix_second * 1'000'000'000;
  drain::ProcessBody("loadgen", extract::DrainOptions{}, body.bytes, times, partials, counters);
  absl::flat_hash_map<std::uint32_t, SeriesTally> by_series;
  body.points = 0;
  for (const bucket::ClosedBucket& closed : partials.TakeAll()) {
    const std::uint32_t index = table.Intern(closed.key.name, closed.key.source, closed.key.kind);
    SeriesTally& tally = by_series[index];
    tally.series = index;
    tally.points += closed.bucket.count;
    tally.sum += closed.bucket.sum;
    body.points += closed.bucket.count;
  }
  body.tallies.clear();
  for (const auto& [index, tally] : by_series) body.tallies.push_back(tally);
  std::sort(body.tallies.begin(), body.tallies.end(),
            [](const SeriesTally& a, const SeriesTally& b) { return a.series < b.series; });
}

}  // namespace drainmet::loadgen
