#include "common/emit/retry.h"

#include <algorithm>

#include "common/base/clock.h"

namespace drainmet::emit {

std::int64_t RetryDelayNanos(const config::Outlet& outlet, int retry, const librato::PostResult& result,
                             std::mt19937_64& rng) {
  constexpr std::int64_t kNanosPerMilli = 1'000'000;
  const std::int64_t base = outlet.retry_initial_backoff_ms * kNanosPerMilli;
  const std::int64_t cap = outlet.retry_max_backoff_ms * kNanosPerMilli;
  std::int64_t ceiling = base;
  for (int i = 0; i < retry && ceiling < cap; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, cap);
  std::uniform_int_distribution<std::int64_t> jitter(0, ceiling);
  std::int64_t wait = base / 10 + jitter(rng);
  if (result.retry_after_seconds) wait = std::max(wait, *result.retry_after_seconds * base::kNanosPerSecond);
  return wait;
}

std::string_view ResultLabel(const librato::PostResult& result) {
  if (result.http_status == 0) return "transport";
  if (result.http_status == 429) return "429";
  if (result.http_status >= 200 && result.http_status < 300) return "2xx";
  if (result.http_status >= 500) return "5xx";
  return "4xx";
}

std::string StatusText(const librato::PostResult& result) {
  return result.http_status == 0 ? "none" : std::to_string(result.http_status);
}

std::string FailureText(const librato::PostResult& result) {
  if (!result.error.empty()) return result.error;
  if (!result.body.empty()) return result.body;
  return "HTTP " + std::to_string(result.http_status);
}

}  // namespace drainmet::emit
