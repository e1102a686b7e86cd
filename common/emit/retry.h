#pragma once
// The retry rules of SEMANTICS §7.5, shared by the standalone outlet and the distributed
// one: how long to wait before a retry, and how a result reads in metrics and logs.

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "common/config/config.h"
#include "common/librato/client.h"

namespace drainmet::emit {

/// Delay before retry number `retry` (0 = the first retry) after `result`: full jitter,
/// uniform in [0, min(retry_max_backoff, retry_initial_backoff * 2^retry)] (RELIABILITY.md
/// §3.1), plus a floor of a tenth of the initial backoff so a failing endpoint is not
/// hammered, and never less than the answer's Retry-After. Nanoseconds. Uses `rng`; not
/// thread-safe for a shared rng.
std::int64_t RetryDelayNanos(const config::Outlet& outlet, int retry, const librato::PostResult& result,
                             std::mt19937_64& rng);

/// The `result` label of drainmet_output_requests_total: "2xx", "429", "4xx", "5xx" or
/// "transport" (no answer).
std::string_view ResultLabel(const librato::PostResult& result);

/// The HTTP status for a log line; "none" when no answer arrived.
std::string StatusText(const librato::PostResult& result);

/// What went wrong, for a log line: curl's message, else the API's answer body (at most
/// 4 KiB, as the client keeps it), else the status.
std::string FailureText(const librato::PostResult& result);

}  // namespace drainmet::emit
