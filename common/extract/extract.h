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
inline constexpr int kAllowedResolutions[] = {1,   5,   10,  15,  20,   30,   60,
                                              120, 300, 600, 900, 1800, 3600};
bool IsAllowedResolution(int seconds);

/// Parses a drain URL query string (without '?'): `resolution`, `prefix`,
/// `source-prefix`, percent-decoded; other keys are ignored; an empty `prefix=` or
/// `source-prefix=` is absent. `default_resolution_seconds` applies when `resolution` is
/// absent. InvalidArgument (naming the option and value) for a resolution that is not
/// an allowed integer.
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

  /// Calls `sink` for every point of `frame`'s line, in order, all at `time_unix_nanos`,
  /// and counts bad_value and bad_name in `counters` (points are counted by the caller).
  void Extract(const logplex::Frame& frame, std::int64_t time_unix_nanos,
               telemetry::Counters& counters, Sink sink);

 private:
  DrainOptions options_;
  std::string scratch_;       // logfmt unquoting
  std::vector<logfmt::Pair> pairs_;
  std::string name_;
  std::string source_;
};

}  // namespace drainmet::extract
