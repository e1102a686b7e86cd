#include "common/drain/processor.h"

#include <cstdint>

#include "common/logplex/frame_reader.h"
#include "common/telemetry/log.h"

namespace drainmet::drain {

std::uint64_t ProcessFrame(std::string_view tenant, int resolution_seconds, const logplex::Frame& frame,
                           const BodyTimes& times, extract::Extractor& extractor,
                           logplex::Rfc3339Cache& timestamps, bucket::BucketMap& partials,
                           telemetry::Counters& counters) {
  std::optional<std::int64_t> time = timestamps.Parse(frame.timestamp);
  if (!time) {
    ++counters.bad_timestamp;
    time = times.received_at_nanos;
    if (!time) return 0;  // Replay without --received-at: no points (§1.4).
  }
  // Without a clock (replay) nothing is future.
  const std::int64_t future_limit =
      times.now_nanos ? *times.now_nanos + times.future_tolerance_nanos : INT64_MAX;
  if (*time > future_limit) {
    // Count each point the frame would have yielded as future (§6.5).
    extractor.Extract(frame, *time, counters, [&](const extract::Point&) { ++counters.future; });
    return 0;
  }
  std::uint64_t points = 0;
  extractor.Extract(frame, *time, counters, [&](const extract::Point& point) {
    partials.Add(tenant, resolution_seconds, point);
    ++points;
  });
  return points;
}

BodySkips ProcessBody(std::string_view tenant, const extract::DrainOptions& options, std::string_view body,
                      const BodyTimes& times, bucket::BucketMap& partials, telemetry::Counters& counters,
                      const BodyBounds& bounds) {
  BodySkips skips;
  std::uint64_t frames = 0;
  // One extractor per thread, reset per body: its scratch buffers are reused across
  // frames and requests, so a warm thread allocates nothing here.
  thread_local extract::Extractor extractor{extract::DrainOptions{}};
  extractor.Reset(options);

  logplex::FrameReader reader(body);
  // Frames of one body mostly share their timestamp's second: parse it once.
  logplex::Rfc3339Cache timestamps;
  std::string_view frame_bytes;
  for (;;) {
    const logplex::FrameStatus status = reader.Next(&frame_bytes);
    if (status == logplex::FrameStatus::kEnd) break;
    if (status == logplex::FrameStatus::kBroken) {
      ++counters.bad_frame;
      telemetry::LogOnce("bad_frame_length", "drain body framing ended early; rest of body skipped",
                         {{"tenant", tenant}});
      break;
    }
    if (bounds.max_frames != 0 && frames >= bounds.max_frames) {
      ++skips.too_many_frames;
      continue;
    }
    ++frames;
    ++counters.frames;
    if (bounds.max_frame_bytes != 0 && frame_bytes.size() > bounds.max_frame_bytes) {
      ++skips.line_too_long;
      continue;
    }
    if (status == logplex::FrameStatus::kEmpty) {
      ++counters.bad_frame;
      continue;
    }
    const std::optional<logplex::Frame> frame = logplex::ParseFrame(frame_bytes);
    if (!frame) {
      ++counters.bad_frame;
      telemetry::LogOnce("bad_frame_header", "frame with a malformed RFC 5424 header skipped",
                         {{"tenant", tenant}});
      continue;
    }
    ProcessFrame(tenant, options.resolution_seconds, *frame, times, extractor, timestamps, partials,
                 counters);
  }
  return skips;
}

}  // namespace drainmet::drain
