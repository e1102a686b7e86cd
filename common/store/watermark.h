#pragma once
// A receiver's watermark (docs/redis-layout.md "Receivers' watermarks"): the receipt time
// before which every request it accepted has been written to Redis or has failed. Outlets
// seal a window as soon as every live receiver's watermark has passed its close
// (seal.lua), instead of waiting for the write allowance.

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace drainmet::store {

/// The receipt times of the requests a receiver holds (accepted, not yet written and
/// answered, nor failed), and the watermark they give.
///
/// Invariant: a request registered after a call to Watermark() that returned W has a
/// receipt time >= W, and every request with a receipt time < W had been released when
/// Watermark() returned. Receipt times never go below an earlier watermark or receipt time,
/// even if the clock steps back, so both are non-decreasing.
///
/// Thread-safety: every method may be called from any thread; each takes one short mutex
/// section.
class InflightRegistry {
 public:
  using Ticket = std::uint64_t;
  /// Reads the clock: unix nanoseconds (the system clock by default).
  using NowFn = std::function<std::int64_t()>;

  InflightRegistry();
  explicit InflightRegistry(NowFn now);
  InflightRegistry(const InflightRegistry&) = delete;
  InflightRegistry& operator=(const InflightRegistry&) = delete;

  /// Registers a request received now: its ticket (for Release) and its receipt time, unix
  /// ns: max(now, the last receipt time or watermark given out). The caller must judge the
  /// request's lateness (SEMANTICS §6.5) at that receipt time.
  std::pair<Ticket, std::int64_t> Register();
  /// The request of `ticket` is no longer in flight (written and answered, or failed).
  /// Releasing an unknown or released ticket does nothing.
  void Release(Ticket ticket);
  /// The smallest receipt time of a request in flight, or now (as Register would give it)
  /// when none is; unix ns. Non-decreasing.
  std::int64_t Watermark();
  /// Requests in flight now.
  std::size_t InFlight() const;

 private:
  NowFn now_;
  mutable std::mutex mu_;
  Ticket next_ = 0;                          // guarded by mu_
  std::int64_t last_ = INT64_MIN;            // guarded by mu_: the largest time given out
  std::map<Ticket, std::int64_t> inflight_;  // guarded by mu_: ticket order = receipt order
};

/// "<hostname>:<pid>:<16 random hex digits>": a receiver id unique per process
/// incarnation, the field of its watermark in dm:wm.
std::string NewReceiverId();

}  // namespace drainmet::store
