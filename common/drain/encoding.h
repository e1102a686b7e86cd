#pragma once
// Request bodies of HTTP senders other than Logplex (FORMATS.md §1.8): log-shuttle may send
// `Content-Encoding: gzip`. Undoes it with zlib, bounded by the inflated size.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace drainmet::drain {

/// A request body's Content-Encoding (RFC 9110 §8.4).
enum class BodyEncoding : std::uint8_t {
  kIdentity,     ///< No header, empty, or "identity".
  kGzip,         ///< "gzip" or "x-gzip" (RFC 9110 §8.4.1.3), any case.
  kUnsupported,  ///< Anything else (deflate, br, a list of codings): answered 415.
};

/// Classifies a Content-Encoding header value (std::nullopt: no header). Blanks around
/// the value are ignored. Pure; thread-safe.
BodyEncoding ParseContentEncoding(std::optional<std::string_view> header_value);

/// Inflates `compressed`, one or more gzip members (RFC 1952) back to back, into `out`
/// (replaced; its capacity is reused). ResourceExhausted as soon as the output would
/// exceed `max_bytes` (inflation stops there: a small "gzip bomb" never takes more than
/// `max_bytes` of memory); InvalidArgument for a body that is not gzip, is corrupt
/// (CRC or length check included) or is truncated. Never throws except std::bad_alloc.
/// Thread-safe (no shared state).
absl::Status InflateGzip(std::string_view compressed, std::uint64_t max_bytes, std::string& out);

}  // namespace drainmet::drain
