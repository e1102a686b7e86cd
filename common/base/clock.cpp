#include "common/base/clock.h"

#include <chrono>

namespace drainmet::base {

std::int64_t Clock::NowUnixSeconds() const { return FloorDiv(NowUnixNanos(), kNanosPerSecond); }

std::int64_t SystemClock::NowUnixNanos() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const SystemClock& SystemClock::Get() {
  static const SystemClock clock;
  return clock;
}

}  // namespace drainmet::base
