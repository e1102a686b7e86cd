#pragma once
// One drain body -> partial buckets: framing (logplex), header, timestamps, extraction
// (extract) and pre-aggregation (bucket), counting every problem (SEMANTICS §1-§6).
// Shared by `drainmet replay`, the standalone service and the receiver.

#include <cstdint>
#include <optional>
#include <string_view>

#include "common/bucket/partial_bucket.h"
#include "common/extract/extract.h"
#include "common/logplex/frame_reader.h"
#include "common/telemetry/counters.h"

namespace drainmet::drain {

/// The clock side of processing one body.
struct BodyTimes {
  /// The time the request was received (Unix ns): the time of frames whose timestamp is
  /// "-" or unparsable (SEMANTICS §1.4). std::nullopt (replay without --received-at):
  /// such frames yield no points.
  std::optional<std::int64_t> received_at_nanos;
  /// The receiver's clock (Unix ns) for the future check of SEMANTICS §6.5; std::nullopt
  /// (replay): nothing is future.
  std::optional<std::int64_t> now_nanos;
  std::int64_t future_tolerance_nanos = 60'000'000'000;  ///< 60 s (§6.5).
};

/// Bounds of one HTTP drain body (docs/configuration.md `limits`). 0: unbounded.
struct BodyBounds {
  std::uint64_t max_frames = 0;       ///< limits.max_frames_per_request.
  std::uint64_t max_frame_bytes = 0;  ///< limits.max_line_bytes: longest MSG-LEN (SEMANTICS §1.1).
};

/// Frames of a body skipped for its BodyBounds (drainmet_input_rejected_total reasons).
struct BodySkips {
  std::uint64_t too_many_frames = 0;  ///< Frames after the first max_frames (not parsed).
  std::uint64_t line_too_long = 0;    ///< Frames longer than max_frame_bytes (counted in frames too).
};

/// Parses `body` (application/logplex-1) of a drain of `tenant` with `options` and adds
/// its points to `partials` (as one request: on equal timestamps the later sample wins).
/// Counts frames, bad_frame, bad_timestamp, bad_value, bad_name and future in `counters`;
/// points are counted when the partials reach the store. Never fails: bad input is
/// counted and skipped, the rest of the body is used. Thread-compatible (no shared state).
///
/// `bounds`: the frames after the first `max_frames` are only delimited (to count them) and
/// skipped; a frame longer than `max_frame_bytes` is skipped whole; either way the rest of
/// the body is used (SEMANTICS §1.2: only whole-request bounds may answer 4xx). Returns what
/// was skipped for `bounds`.
BodySkips ProcessBody(std::string_view tenant, const extract::DrainOptions& options, std::string_view body,
                      const BodyTimes& times, bucket::BucketMap& partials, telemetry::Counters& counters,
                      const BodyBounds& bounds = {});

/// The per-frame step of ProcessBody, for callers that delimit and parse frames
/// themselves (syslog streams, FORMATS.md §2): the frame's time (its timestamp, else
/// `times.received_at_nanos`, counting bad_timestamp; none: no points), the future check
/// (§6.5), and extraction with `extractor` (already Reset to the drain's options) into
/// `partials` under `tenant` at `resolution_seconds`. Counts bad_timestamp, bad_value,
/// bad_name and future; the caller counts frames and bad_frame. Returns the number of
/// points added to `partials`. No allocation once `extractor` and `partials` are warm.
/// Thread-compatible.
std::uint64_t ProcessFrame(std::string_view tenant, int resolution_seconds, const logplex::Frame& frame,
                           const BodyTimes& times, extract::Extractor& extractor,
                           logplex::Rfc3339Cache& timestamps, bucket::BucketMap& partials,
                           telemetry::Counters& counters);

}  // namespace drainmet::drain
