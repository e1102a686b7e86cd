#include "common/drain/encoding.h"

#include <zlib.h>

#include <algorithm>
#include <limits>

#include "common/base/strings.h"

namespace drainmet::drain {

BodyEncoding ParseContentEncoding(std::optional<std::string_view> header_value) {
  if (!header_value) return BodyEncoding::kIdentity;
  const std::string_view value = base::StripBlanks(*header_value);
  if (value.empty() || base::EqualsIgnoreCase(value, "identity")) return BodyEncoding::kIdentity;
  if (base::EqualsIgnoreCase(value, "gzip") || base::EqualsIgnoreCase(value, "x-gzip")) {
    return BodyEncoding::kGzip;
  }
  return BodyEncoding::kUnsupported;
}

absl::Status InflateGzip(std::string_view compressed, std::uint64_t max_bytes, std::string& out) {
  out.clear();
  if (compressed.empty()) return absl::InvalidArgumentError("gzip: empty body");
  z_stream stream{};
  // 15 + 16: a gzip wrapper (RFC 1952) with the largest window, header and trailer checked.
  if (inflateInit2(&stream, 15 + 16) != Z_OK) return absl::InternalError("gzip: inflateInit2 failed");
  const auto* next = reinterpret_cast<const Bytef*>(compressed.data());
  std::size_t left = compressed.size();
  // Start near the usual ratio of log text (about 5-10x), grow by doubling up to the bound.
  const std::uint64_t first = std::min<std::uint64_t>(max_bytes, std::max<std::size_t>(4096, left * 4));
  out.resize(static_cast<std::size_t>(first));
  std::size_t produced = 0;
  absl::Status status;
  for (;;) {
    if (produced == out.size()) {
      if (out.size() >= max_bytes) {
        // Full at the bound: one more byte of output means the body is too large.
        unsigned char probe = 0;
        stream.next_out = &probe;
        stream.avail_out = 1;
        stream.next_in = const_cast<Bytef*>(next);
        stream.avail_in = static_cast<uInt>(std::min<std::size_t>(left, std::numeric_limits<uInt>::max()));
        const std::size_t before = stream.avail_in;
        const int rc = inflate(&stream, Z_NO_FLUSH);
        next += before - stream.avail_in;
        left -= before - stream.avail_in;
        if (stream.avail_out == 0) {
          status = absl::ResourceExhaustedError("gzip: inflated body over the limit");
          break;
        }
        if (rc == Z_STREAM_END && left == 0) break;
        if (rc == Z_STREAM_END) {
          // Another member follows; it must inflate to nothing to fit.
          inflateReset(&stream);
          continue;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
          status = absl::InvalidArgumentError("gzip: corrupt body");
          break;
        }
        if (left == 0) {
          status = absl::InvalidArgumentError("gzip: truncated body");
          break;
        }
        continue;
      }
      out.resize(static_cast<std::size_t>(std::min<std::uint64_t>(max_bytes, out.size() * 2)));
    }
    stream.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    stream.avail_out =
        static_cast<uInt>(std::min<std::size_t>(out.size() - produced, std::numeric_limits<uInt>::max()));
    stream.next_in = const_cast<Bytef*>(next);
    stream.avail_in = static_cast<uInt>(std::min<std::size_t>(left, std::numeric_limits<uInt>::max()));
    const std::size_t in_before = stream.avail_in;
    const std::size_t out_before = stream.avail_out;
    const int rc = inflate(&stream, Z_NO_FLUSH);
    next += in_before - stream.avail_in;
    left -= in_before - stream.avail_in;
    produced += out_before - stream.avail_out;
    if (rc == Z_STREAM_END) {
      if (left == 0) break;
      inflateReset(&stream);  // concatenated members (RFC 1952 §2.2)
      continue;
    }
    if (rc == Z_BUF_ERROR && stream.avail_out == 0) continue;  // needs more room
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      status = absl::InvalidArgumentError(std::string("gzip: corrupt body") +
                                          (stream.msg != nullptr ? std::string(": ") + stream.msg : ""));
      break;
    }
    if (left == 0 && stream.avail_out != 0) {
      status = absl::InvalidArgumentError("gzip: truncated body");
      break;
    }
  }
  inflateEnd(&stream);
  out.resize(status.ok() ? produced : 0);
  return status;
}

}  // namespace drainmet::drain
