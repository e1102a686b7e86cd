#pragma once
// `drainmet replay`: raw drain bodies -> the Librato request bodies they would produce,
// with no clock and no network (SEMANTICS §1.4, §6.5: every window closes at the end).

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/extract/extract.h"
#include "common/telemetry/counters.h"

namespace drainmet::standalone {

struct ReplayOptions {
  extract::DrainOptions drain;                    ///< --resolution, --prefix, --source-prefix.
  std::optional<std::int64_t> received_at_nanos;  ///< --received-at: time of frames with a bad timestamp.
  std::string tenant = "default";
  std::size_t max_gauges_per_request = 300;
};

/// Processes each file as one drain request, in order, then writes every request body
/// (`{"gauges":[...]}`, at most max_gauges_per_request gauges) as one line to `out`.
/// Adds the SEMANTICS §8 counters to `counters`. NotFound / Internal naming the file when
/// one cannot be read (nothing is written then).
absl::Status Replay(const std::vector<std::string>& files, const ReplayOptions& options, std::FILE* out,
                    telemetry::Counters& counters);

/// Parses --received-at: RFC 3339 or Unix seconds (optionally fractional). InvalidArgument.
absl::StatusOr<std::int64_t> ParseReceivedAt(std::string_view text);

}  // namespace drainmet::standalone
