#include "services/standalone/replay.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>

#include "common/bucket/partial_bucket.h"
#include "common/drain/processor.h"
#include "common/emit/outlet.h"
#include "common/librato/gauge.h"
#include "common/logplex/frame_reader.h"
#include "fmt/format.h"

namespace drainmet::standalone {
namespace {

absl::Status ReadFile(const std::string& path, std::string& out) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(fmt::format("{}: {}", path, std::strerror(errno)));
  out.clear();
  char buffer[1 << 16];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0) out.append(buffer, n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return absl::InternalError(fmt::format("{}: read error", path));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::int64_t> ParseReceivedAt(std::string_view text) {
  if (std::optional<std::int64_t> t = logplex::ParseRfc3339Nanos(text)) return *t;
  double seconds = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (ec == std::errc() && ptr == text.data() + text.size() && std::isfinite(seconds) &&
      std::fabs(seconds) < 9e9) {
    return static_cast<std::int64_t>(std::llround(seconds * 1e9));
  }
  return absl::InvalidArgumentError(
      fmt::format("--received-at: want RFC 3339 or Unix seconds, got '{}'", text));
}

absl::Status Replay(const std::vector<std::string>& files, const ReplayOptions& options, std::FILE* out,
                    telemetry::Counters& counters) {
  drain::BodyTimes times;
  times.received_at_nanos = options.received_at_nanos;
  bucket::BucketMap all;
  bucket::BucketMap request;
  std::string body;
  for (const std::string& file : files) {
    if (absl::Status s = ReadFile(file, body); !s.ok()) return s;
    drain::ProcessBody(options.tenant, options.drain, body, times, request, counters);
    for (const auto& [key, partial] : request.map()) counters.points += partial.count;
    all.Merge(std::move(request));
    request.clear();
  }
  std::vector<bucket::ClosedBucket> closed = all.TakeAll();
  std::vector<librato::Gauge> gauges = librato::BuildGauges(closed, counters);
  emit::ForEachRequest(gauges, options.max_gauges_per_request, [&](std::span<const librato::Gauge> chunk) {
    std::string line = librato::RenderRequestBody(chunk);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), out);
  });
  std::fflush(out);
  return absl::OkStatus();
}

}  // namespace drainmet::standalone
