#pragma once
// Waiting for a condition in tests that watch another thread or process. Header-only,
// test-only.

#include <chrono>
#include <thread>

namespace drainmet::support {

/// Calls `done` every `poll` until it returns true or `timeout` has passed; the last
/// result (so a condition that turns true at the deadline still counts).
template <typename F>
bool Eventually(F done, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll = std::chrono::milliseconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(poll);
  }
  return done();
}

}  // namespace drainmet::support
