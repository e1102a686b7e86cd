#pragma once
// Structured logging in logfmt (one line per event on stderr), used by every library
// and service: `ts=... level=info msg="..." key=value ...`.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace drainmet::telemetry {

enum class Level : std::uint8_t { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

/// One logfmt field. Values are quoted and escaped when needed.
using Field = std::pair<std::string_view, std::string_view>;

/// Sets the minimum level written (default kInfo). Thread-safe.
void SetLogLevel(Level level);
/// Parses "debug", "info", "warn", "error"; false when unknown.
bool ParseLogLevel(std::string_view text, Level* level);

/// Writes one logfmt line to stderr when `level` is enabled. Thread-safe (one write(2)).
void Log(Level level, std::string_view msg, std::initializer_list<Field> fields = {});

/// Like Log(kWarn, ...) the first time `reason` is seen in this process, then at debug
/// level: "log it once with a reason". `reason` should be a short constant string.
void LogOnce(std::string_view reason, std::string_view msg, std::initializer_list<Field> fields = {});

/// Formats `value` as a logfmt value: bare when it holds only safe bytes, else quoted
/// with `"` and `\` escaped and control bytes as \n, \t or \xHH.
std::string LogfmtValue(std::string_view value);

}  // namespace drainmet::telemetry
