#pragma once
// Third stage: one frame's line -> points, by the conventions of SEMANTICS.md §4
// (l2met prefixes, router lines, legacy runtime metrics, Logplex loss notices) and the
// name rules of §5. Drain options (§4.7) are applied here.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "common/logfmt/scanner.h"
#include "common/logplex/frame_reader.h"
#include "common/telemetry/counters.h"

namespace drainmet::extract {

/// DESIGN.md "kind". The numeric order is the §7.6 precedence (measure wins).
enum class Kind : std::uint8_t { kMeasure = 0, kCount = 1, kSample = 2 };

/// "measure", "count", "sample".
std::string_view KindName(Kind kind);

/// Options of one drain, from its URL query (SEMANTICS §4.7).
struct DrainOptions {
  int resolution_seconds = 60;  ///< One of kAllowedResolutions.
  std::string prefix;           ///< Name prefix without the dot; empty = none.
  std::string source_prefix;    ///< Source prefix without the dot; empty = none.
};

/// Resolutions a drain may ask for, in seconds (SEMANTICS §4.7).
inline constexpr int kAllowedResolutions[] = {1, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600};
bool IsAllowedResolution(int seconds);

/// Parses a drain URL query string (without '?'): `&`-separated `key=value` pieces,
/// keys and values percent-decoded (`%XX`, and `+` is a space as in form encoding).
/// Reads `resolution`, `prefix`, `source-prefix`; other keys (and their values) are
/// ignored; when a key repeats, the last occurrence wins. An empty `prefix=` or
/// `source-prefix=` is absent. `default_resolution_seconds` applies when `resolution` is
/// absent (it is not checked). InvalidArgument, naming the option and the value, for a
/// `resolution` that is not one of kAllowedResolutions written in decimal digits (an
/// empty `resolution=` included) and for a malformed percent-escape in a key or in the
/// value of one of the three options. Pure; thread-safe.
absl::StatusOr<DrainOptions> ParseDrainQuery(std::string_view query, int default_resolution_seconds);

/// One observation (DESIGN.md "point"). Views are valid only during the sink call.
struct Point {
  Kind kind = Kind::kMeasure;
  std::string_view name;    ///< Final name: prefix applied, bytes outside [A-Za-z0-9.:_-] -> '_'.
  std::string_view source;  ///< Final source (prefix applied, sanitised, "all" -> "all_"); empty = none.
  std::string_view units;   ///< Units of the value (may be empty).
  double value = 0;
  std::int64_t time_unix_nanos = 0;  ///< The frame's time (as given to Extract).
};

/// Applies SEMANTICS §5.1 to a name: `prefix.raw` (or raw), each byte outside
/// [A-Za-z0-9.:_-] replaced by '_'. Writes into `out`; false when `raw` is empty or the
/// result passes 255 bytes (bad_name).
bool FinalName(std::string_view prefix, std::string_view raw, std::string& out);

/// Applies SEMANTICS §4.7 and §5.1 to a source: `sp.raw`, `sp` when raw is empty, or raw;
/// sanitised like names; "all" in any case becomes "all_". `out` is empty for no source.
/// False when the result passes 255 bytes (bad_name).
bool FinalSource(std::string_view source_prefix, std::string_view raw, std::string& out);

/// Turns frames of one drain into points. Holds scratch buffers reused across calls, so
/// extraction allocates nothing once warm. Not thread-safe: one per thread.
class Extractor {
 public:
  using Sink = absl::FunctionRef<void(const Point&)>;

  explicit Extractor(const DrainOptions& options);

  /// Serves another drain's `options` from now on, keeping the scratch buffers (one
  /// extractor per thread serves request after request without allocating). Copies
  /// `options` (prefixes of at most a few bytes; no allocation once warm unless longer).
  void Reset(const DrainOptions& options) { options_ = options; }

  /// Calls `sink` for every point of `frame`'s line, in order, all at `time_unix_nanos`,
  /// and counts bad_value and bad_name in `counters` (points are counted by the caller).
  ///
  /// - A Logplex/log-shuttle loss notice at the start of the line (SEMANTICS §4.6, any
  ///   APP-NAME and PROCID) yields one count `logplex.l10|l12|l13` = N without source
  ///   and nothing else.
  /// - Otherwise the line's logfmt pairs (SEMANTICS §2; a malformed quoted value ends
  ///   the line, the pairs before it stand) are visited in order:
  ///   `measure#`, `count#`, `sample#`, `measure.` keys (§4.1; bare or empty = 1) with
  ///   the line's source (§4.2); on router lines (APP-NAME `heroku`, PROCID `router`,
  ///   §4.3) `connect=`, `service=`, `bytes=` (measures, empty = nothing), `status=`
  ///   (count `router.status.Nxx`) and `code=` (count `router.error.CODE`), without
  ///   source; every occurrence of a repeated field counts (§2.2). The legacy runtime
  ///   sample of §4.4 (first `measure=` and first `val=` pair) is emitted at the
  ///   position of that `val=` pair; its source is the dyno role when the line's
  ///   source is `heroku.<digits>.<role>.<last>` (role non-empty), else the source.
  /// - Drain options (§4.7) and §5.1 are applied to every point. A dropped observation
  ///   counts once: bad_name when its name or source is invalid (checked first), else
  ///   bad_value.
  void Extract(const logplex::Frame& frame, std::int64_t time_unix_nanos, telemetry::Counters& counters,
               Sink sink);

 private:
  // A final source computed at most once per line (lazily: most lines have no points).
  struct SourceSlot {
    enum class State : std::uint8_t { kUnset, kOk, kBad };
    State state = State::kUnset;
    std::string text;
  };

  // One observation: builds name and source, parses the value, calls the sink.
  // `value_text` empty means 1 when `empty_is_one`, else no observation (§3.2).
  // `units` non-empty overrides the value's own suffix.
  void Emit(Kind kind, std::string_view name_head, std::string_view name_tail, SourceSlot& source,
            std::string_view raw_source, std::string_view value_text, bool empty_is_one,
            std::string_view units, std::int64_t time_unix_nanos, telemetry::Counters& counters, Sink sink);

  DrainOptions options_;
  std::string scratch_;  // logfmt unquoting
  std::vector<logfmt::Pair> pairs_;
  std::string name_;
  SourceSlot line_source_;    // §4.2: the first source= pair.
  SourceSlot no_source_;      // Router points and loss notices: only the source-prefix.
  SourceSlot legacy_source_;  // §4.4: the dyno role.
};

}  // namespace drainmet::extract
