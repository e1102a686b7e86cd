// store::InflightRegistry: the receiver's watermark is the smallest receipt time of a
// request still in flight, or now when none is, and never goes back.

#include "common/store/watermark.h"

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace drainmet::store {
namespace {

TEST(InflightRegistryTest, WatermarkIsNowWhenNothingIsInFlight) {
  std::int64_t now = 1000;
  InflightRegistry registry([&] { return now; });
  EXPECT_EQ(registry.Watermark(), 1000);
  now = 2500;
  EXPECT_EQ(registry.Watermark(), 2500);
  EXPECT_EQ(registry.InFlight(), 0u);
}

TEST(InflightRegistryTest, WatermarkIsTheOldestReceiptInFlight) {
  std::int64_t now = 100;
  InflightRegistry registry([&] { return now; });
  const auto [a, receipt_a] = registry.Register();
  now = 200;
  const auto [b, receipt_b] = registry.Register();
  now = 300;
  const auto [c, receipt_c] = registry.Register();
  EXPECT_EQ(receipt_a, 100);
  EXPECT_EQ(receipt_b, 200);
  EXPECT_EQ(receipt_c, 300);
  now = 400;
  EXPECT_EQ(registry.Watermark(), 100);
  registry.Release(b);  // a newer request done first: the oldest still holds it
  EXPECT_EQ(registry.Watermark(), 100);
  registry.Release(a);
  EXPECT_EQ(registry.Watermark(), 300);
  registry.Release(c);
  EXPECT_EQ(registry.Watermark(), 400);
  registry.Release(c);  // twice: nothing
  EXPECT_EQ(registry.InFlight(), 0u);
}

TEST(InflightRegistryTest, ReceiptTimesAndWatermarkNeverGoBackWhenTheClockDoes) {
  std::int64_t now = 5000;
  InflightRegistry registry([&] { return now; });
  EXPECT_EQ(registry.Watermark(), 5000);
  now = 4000;  // the clock stepped back
  const auto [ticket, receipt] = registry.Register();
  EXPECT_EQ(receipt, 5000) << "a request is never received before a published watermark";
  EXPECT_EQ(registry.Watermark(), 5000);
  registry.Release(ticket);
  EXPECT_EQ(registry.Watermark(), 5000);
  now = 6000;
  EXPECT_EQ(registry.Watermark(), 6000);
}

// Many threads register and release while one reads: every watermark read is >= the one
// before, and no request in flight at a read was received before it.
TEST(InflightRegistryTest, MonotonicAndNeverPastARequestInFlightUnderConcurrency) {
  InflightRegistry registry;  // the system clock
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> violations{0};
  // Per worker: the receipt time of its request in flight, or INT64_MAX.
  constexpr int kWorkers = 4;
  std::vector<std::atomic<std::int64_t>> holding(kWorkers);
  for (auto& h : holding) h.store(INT64_MAX);
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      while (!stop.load()) {
        const auto [ticket, receipt] = registry.Register();
        holding[w].store(receipt);
        std::this_thread::yield();
        holding[w].store(INT64_MAX);
        registry.Release(ticket);
      }
    });
  }
  std::int64_t last = INT64_MIN;
  for (int i = 0; i < 20000; ++i) {
    // Receipts held before the read and still held after it were in flight during it.
    std::vector<std::int64_t> before(kWorkers);
    for (int w = 0; w < kWorkers; ++w) before[w] = holding[w].load();
    const std::int64_t watermark = registry.Watermark();
    for (int w = 0; w < kWorkers; ++w) {
      if (before[w] != INT64_MAX && holding[w].load() == before[w] && before[w] < watermark) ++violations;
    }
    if (watermark < last) ++violations;
    last = watermark;
  }
  stop = true;
  for (std::thread& t : workers) t.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(registry.InFlight(), 0u);
}

TEST(NewReceiverIdTest, HostPidAndRandomPartDifferPerCall) {
  const std::string a = NewReceiverId();
  const std::string b = NewReceiverId();
  EXPECT_NE(a, b);
  EXPECT_NE(a.find(":" + std::to_string(getpid()) + ":"), std::string::npos) << a;
  EXPECT_EQ(a.size() - a.rfind(':') - 1, 16u) << a;
}

}  // namespace
}  // namespace drainmet::store
