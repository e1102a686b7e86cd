#pragma once
// drainmet-loadgen's drain bodies (application/logplex-1, FORMATS.md §1.3): rendered once,
// from a line template or from a captured body, then restamped in place (fixed-width
// timestamps, so lengths never change) whenever the second they carry is out of date.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/extract/extract.h"

namespace drainmet::loadgen {

/// Bytes of a stamp written by FormatStamp: "YYYY-MM-DDTHH:MM:SS.ffffff+00:00" (RFC 3339
/// with microseconds, the form Logplex relays, FORMATS.md §1.4).
inline constexpr std::size_t kStampBytes = 32;

/// Writes the kStampBytes-byte RFC 3339 UTC stamp of `unix_micros` (years 0000-9999; the
/// year is clamped to that range) to `out`. No terminating NUL. Pure; thread-safe.
void FormatStamp(std::int64_t unix_micros, char* out);

/// One series as drainmet sees it (SEMANTICS §6.1, without the tenant): final name and
/// source (empty: none), and kind.
struct SeriesKey {
  std::string name;
  std::string source;
  extract::Kind kind = extract::Kind::kMeasure;
};

/// Interns series keys into dense indexes. Not thread-safe; read-only use (at(), size())
/// from several threads is safe once filling is over.
class SeriesTable {
 public:
  /// The index of (name, source, kind), added when new.
  std::uint32_t Intern(std::string_view name, std::string_view source, extract::Kind kind);
  const SeriesKey& at(std::uint32_t index) const { return keys_[index]; }
  std::size_t size() const { return keys_.size(); }

 private:
  absl::flat_hash_map<std::string, std::uint32_t> index_;
  std::vector<SeriesKey> keys_;
  std::string scratch_;
};

/// What one body carries for one series: points (observations) and the sum of their values.
struct SeriesTally {
  std::uint32_t series = 0;  ///< Index in the SeriesTable the body was tallied with.
  std::uint64_t points = 0;
  double sum = 0;
};

/// One pre-rendered drain body. Owned and used by one thread at a time.
struct Body {
  std::string bytes;                 ///< The application/logplex-1 body.
  std::uint32_t frames = 0;          ///< Octet-counted frames: the Logplex-Msg-Count (lines).
  std::uint64_t points = 0;          ///< Points drainmet's own parser finds in it (set by TallyBody).
  std::vector<SeriesTally> tallies;  ///< Per series, sorted by series index (set by TallyBody).

  /// Where each restampable timestamp starts in `bytes` (kStampBytes each), and its time
  /// relative to the stamped second, microseconds (<= 0 for template bodies).
  std::vector<std::uint32_t> stamp_offsets;
  std::vector<std::int64_t> stamp_relative_micros;
  /// The second every stamp was last computed from (Unix seconds); min(): never.
  std::int64_t stamped_second = std::numeric_limits<std::int64_t>::min();

  /// Rewrites every timestamp to `unix_second` * 1e6 + its relative offset, unless the body
  /// already carries that second. Touches only the stamp bytes; the length is unchanged.
  void Restamp(std::int64_t unix_second);
};

/// A parsed line template: literal text with placeholders `{ms}` (an integer 1-500),
/// `{mb}` (100-999), `{int}` (0-999) and `{source}` (the line's series source, `web.K`).
struct Template {
  enum class Piece : std::uint8_t { kLiteral, kMs, kMb, kInt, kSource };
  std::vector<Piece> pieces;
  std::vector<std::string> literals;  ///< Text of each kLiteral piece, in order.
};

/// The default template, the line of the peer measurement (issue "Performance").
inline constexpr char kDefaultTemplate[] = "measure#db.latency={ms}ms sample#mem={mb}MB count#req=1";

/// Parses `text`. A template without `{source}` gets " source={source}" appended.
/// InvalidArgument for an unknown `{name}`, an unmatched brace, an empty template, or a
/// newline in it (a line is one frame).
absl::StatusOr<Template> ParseTemplate(std::string_view text);

/// Renders one body of `lines` frames (`<len> <190>1 TS host app web.1 - LINE\n`, FORMATS.md
/// §1.3, §1.5), line i carrying series source `web.((first_line + i) % series)` and values
/// drawn from a generator seeded with (`seed`, `first_line`). Timestamps rise through the
/// second before the stamped one: line i is at -1 s + i / lines s; the body is stamped
/// with `unix_second`. `lines` and `series` must be >= 1. Pure; thread-safe.
Body RenderTemplateBody(const Template& line_template, std::uint32_t lines, std::uint32_t series,
                        std::uint64_t first_line, std::uint64_t seed, std::int64_t unix_second);

/// Re-renders a captured body (e.g. tests/fixtures/data/heroku-sample/*.logplex) so that
/// it can be restamped: every frame whose TIMESTAMP parses gets a kStampBytes stamp and a
/// recomputed LEN; times keep their offsets relative to the latest frame, which lands on
/// the stamped second (as deploy/restamp.py does). Frames with "-" or an unparsable
/// timestamp, and a broken tail, are kept as they are. InvalidArgument when the body has
/// no frame at all.
absl::StatusOr<Body> RenderCapturedBody(std::string_view raw, std::int64_t unix_second);

/// Runs drainmet's own parser (drain::ProcessBody, default drain options) over the body
/// and fills `points` and `tallies`, interning series in `table`. Frames with "-" for a
/// timestamp count at `unix_second` (the receive time, SEMANTICS §1.4).
void TallyBody(Body& body, std::int64_t unix_second, SeriesTable& table);

}  // namespace drainmet::loadgen
