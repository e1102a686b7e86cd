#include "common/store/watermark.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

namespace drainmet::store {
namespace {

std::int64_t SystemNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

InflightRegistry::InflightRegistry() : InflightRegistry(SystemNanos) {}

InflightRegistry::InflightRegistry(NowFn now) : now_(std::move(now)) {}

std::pair<InflightRegistry::Ticket, std::int64_t> InflightRegistry::Register() {
  std::lock_guard<std::mutex> lock(mu_);
  last_ = std::max(last_, now_());
  const Ticket ticket = next_++;
  // Tickets grow and receipt times never decrease, so the first entry holds the minimum.
  inflight_.emplace_hint(inflight_.end(), ticket, last_);
  return {ticket, last_};
}

void InflightRegistry::Release(Ticket ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  inflight_.erase(ticket);
}

std::int64_t InflightRegistry::Watermark() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!inflight_.empty()) return inflight_.begin()->second;
  last_ = std::max(last_, now_());
  return last_;
}

std::size_t InflightRegistry::InFlight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return inflight_.size();
}

std::string NewReceiverId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::random_device device;
  const std::uint64_t random = (static_cast<std::uint64_t>(device()) << 32) ^ device();
  char suffix[64];
  std::snprintf(suffix, sizeof(suffix), ":%d:%016llx", static_cast<int>(getpid()),
                static_cast<unsigned long long>(random));
  return std::string(host) + suffix;
}

}  // namespace drainmet::store
