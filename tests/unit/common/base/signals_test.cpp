// base::WaitForStopSignal with SIGHUP reloads: the signals are sent to the waiting thread
// only (pthread_kill), so the test process itself is never stopped.

#include "common/base/signals.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace drainmet::base {
namespace {

bool WaitUntil(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

TEST(SignalsTest, HangupsCallOnReloadAndTermEndsTheWait) {
  std::atomic<bool> ready{false};
  std::atomic<int> reloads{0};
  std::string stopped_by;
  pthread_t waiter_id{};
  std::thread waiter([&] {
    BlockStopAndReloadSignals();  // this thread only: the test process keeps its mask
    waiter_id = pthread_self();
    ready = true;
    stopped_by = WaitForStopSignal([&] { ++reloads; });
  });
  ASSERT_TRUE(WaitUntil([&] { return ready.load(); }));
  ASSERT_EQ(pthread_kill(waiter_id, SIGHUP), 0);
  ASSERT_TRUE(WaitUntil([&] { return reloads.load() == 1; }));
  ASSERT_EQ(pthread_kill(waiter_id, SIGHUP), 0);
  ASSERT_TRUE(WaitUntil([&] { return reloads.load() == 2; }));
  ASSERT_EQ(pthread_kill(waiter_id, SIGTERM), 0);
  waiter.join();
  EXPECT_EQ(stopped_by, "SIGTERM");
  EXPECT_EQ(reloads.load(), 2);
}

TEST(SignalsTest, InterruptEndsTheWaitWithoutAReload) {
  std::atomic<bool> ready{false};
  std::atomic<int> reloads{0};
  std::string stopped_by;
  pthread_t waiter_id{};
  std::thread waiter([&] {
    BlockStopAndReloadSignals();
    waiter_id = pthread_self();
    ready = true;
    stopped_by = WaitForStopSignal([&] { ++reloads; });
  });
  ASSERT_TRUE(WaitUntil([&] { return ready.load(); }));
  ASSERT_EQ(pthread_kill(waiter_id, SIGINT), 0);
  waiter.join();
  EXPECT_EQ(stopped_by, "SIGINT");
  EXPECT_EQ(reloads.load(), 0);
}

TEST(SignalsTest, StopOnlyWaitStillWorks) {
  std::atomic<bool> ready{false};
  std::string stopped_by;
  pthread_t waiter_id{};
  std::thread waiter([&] {
    BlockStopSignals();
    waiter_id = pthread_self();
    ready = true;
    stopped_by = WaitForStopSignal();
  });
  ASSERT_TRUE(WaitUntil([&] { return ready.load(); }));
  ASSERT_EQ(pthread_kill(waiter_id, SIGTERM), 0);
  waiter.join();
  EXPECT_EQ(stopped_by, "SIGTERM");
}

}  // namespace
}  // namespace drainmet::base
