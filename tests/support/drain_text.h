#pragma once
// Building drain bodies in tests: octet framing (RFC 6587 §3.4.1) and RFC 3339 stamps, so
// no test counts bytes or formats times by hand. Header-only, test-only.

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

namespace drainmet::support {

/// `msg` as one frame: "<byte length> <msg>".
inline std::string Framed(std::string_view msg) {
  return std::to_string(msg.size()) + " " + std::string(msg);
}

/// `unix_nanos` as RFC 3339 UTC with microseconds, as Logplex stamps frames:
/// "2024-03-05T10:15:01.000000+00:00".
inline std::string Rfc3339Micros(std::int64_t unix_nanos) {
  const std::time_t seconds = unix_nanos / 1'000'000'000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &tm);
  return std::string(buffer) + "." + std::to_string(1'000'000 + (unix_nanos / 1000) % 1'000'000).substr(1) +
         "+00:00";
}

}  // namespace drainmet::support
