#pragma once
// Time source injected into everything that reads the time (store, outlet, drain
// handler), so tests run on a FakeClock and never read the wall clock.

#include <atomic>
#include <cstdint>

namespace drainmet::base {

inline constexpr std::int64_t kNanosPerSecond = 1'000'000'000;

/// Wall-clock time as Unix nanoseconds (UTC). Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  /// Current time, Unix epoch nanoseconds.
  virtual std::int64_t NowUnixNanos() const = 0;
  /// Current time, whole Unix seconds (floor).
  std::int64_t NowUnixSeconds() const;
};

/// The system's real-time clock (CLOCK_REALTIME).
class SystemClock final : public Clock {
 public:
  std::int64_t NowUnixNanos() const override;
  /// A process-wide instance.
  static const SystemClock& Get();
};

/// A clock that moves only when told. Thread-safe (atomic).
class FakeClock final : public Clock {
 public:
  explicit FakeClock(std::int64_t unix_nanos = 0) : now_(unix_nanos) {}
  std::int64_t NowUnixNanos() const override { return now_.load(std::memory_order_relaxed); }
  void SetUnixNanos(std::int64_t unix_nanos) { now_.store(unix_nanos, std::memory_order_relaxed); }
  void AdvanceNanos(std::int64_t nanos) { now_.fetch_add(nanos, std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> now_;
};

/// floor(a / b) for b > 0, also for negative a (C++ `/` truncates toward zero).
constexpr std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

}  // namespace drainmet::base
