// Overload (issue 5, "Limits and overload"): when the store cannot keep up, drainmet-receiver
// answers 503 with Retry-After quickly instead of queuing without bound, and what it holds
// in memory stays under receiver.max_series_in_memory (docs/configuration.md `receiver`).
//
// Redis is stalled: a Unix socket that accepts connections (backlog) and never answers, as
// PreAggregatorTest.FullQueueRefusesAtOnce uses. The first request's write hangs until
// redis.command_timeout_ms; meanwhile many concurrent drain requests arrive.

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "common/config/auth.h"
#include "gtest/gtest.h"
#include "services/receiver/service.h"
#include "tests/support/drain_text.h"
#include "tests/support/http_client.h"

namespace drainmet::receiver {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

/// A drain body of `series` distinct count series stamped now.
std::string BodyOf(int series, int request) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char ts[64];
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
  std::string body;
  for (int i = 0; i < series; ++i) {
    body += support::Framed(std::string("<190>1 ") + ts + " host app web.1 - count#r" +
                            std::to_string(request) + "_s" + std::to_string(i) + "=1");
  }
  return body;
}

/// Resident set size of this process, KiB (Linux /proc/self/status VmRSS); 0 if unknown.
long RssKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

struct Answer {
  unsigned status = 0;
  bool retry_after = false;
  milliseconds latency{0};
};

TEST(OverloadTest, StalledRedisAnswers503QuicklyAndHoldsNoMoreThanItsCap) {
  const std::string path = ::testing::TempDir() + "/overload-stalled-redis.sock";
  ::unlink(path.c_str());
  const int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof(address.sun_path));
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(listener, 64), 0);

  constexpr std::uint64_t kCap = 100;       // receiver.max_series_in_memory
  constexpr int kSeriesPerRequest = 20;     // so at most 5 requests fit the queue
  constexpr int kClients = 60;              // 1,200 series: twelve times the cap
  constexpr std::int64_t kStallMs = 10000;  // redis.command_timeout_ms: the stalled write's bound
  config::Config c;
  c.listen = "127.0.0.1:0";
  c.threads = 2;
  c.receiver.flush_interval_ms = 50;
  c.receiver.flush_delay_ms = 2;
  c.receiver.max_series_in_memory = kCap;
  c.redis.shards = 4;
  c.redis.servers = {"unix:" + path};
  c.redis.connect_timeout_ms = 500;
  c.redis.command_timeout_ms = kStallMs;
  config::Tenant t;
  t.id = "acme";
  t.token_hashes.push_back(config::HashToken("tok"));
  t.output = config::OutputKind::kStdout;
  c.tenants.push_back(t);
  auto started = Service::Start(c, base::SystemClock::Get());
  ASSERT_TRUE(started.ok()) << started.status();
  std::unique_ptr<Service> service = *std::move(started);
  const long rss_before = RssKib();

  const support::Headers headers = {{"Authorization", "Basic " + absl::Base64Escape(std::string("tok:"))},
                                    {"Content-Type", "application/logplex-1"}};
  // The first request: taken by the flusher, whose write then hangs on the stalled server.
  std::thread first([&] {
    auto connection = support::HttpConnection::Open(service->port(), std::chrono::seconds(60));
    if (connection.ok()) (*connection)->Send("POST", "/logs", headers, BodyOf(kSeriesPerRequest, 0));
  });
  const auto taken_deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < taken_deadline && service->merged_buckets() == 0 &&
         service->aggregation_stats().queued_buckets == 0) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  std::this_thread::sleep_for(milliseconds(200));  // the flush has started its write

  // Sample what is held while the load runs.
  std::atomic<bool> sampling{true};
  std::atomic<std::uint64_t> max_queued{0};
  std::atomic<std::uint64_t> max_merged{0};
  std::thread sampler([&] {
    while (sampling.load()) {
      const std::uint64_t queued = service->aggregation_stats().queued_buckets;
      const std::uint64_t merged = service->merged_buckets();
      if (queued > max_queued.load()) max_queued = queued;
      if (merged > max_merged.load()) max_merged = merged;
      std::this_thread::sleep_for(milliseconds(2));
    }
  });

  std::vector<Answer> answers(kClients);
  std::vector<std::thread> clients;
  const auto load_start = Clock::now();
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      const std::string body = BodyOf(kSeriesPerRequest, i + 1);
      auto connection = support::HttpConnection::Open(service->port(), std::chrono::seconds(60));
      if (!connection.ok()) return;
      const auto sent = Clock::now();
      const support::HttpReply reply = (*connection)->Send("POST", "/logs", headers, body);
      answers[i].latency = std::chrono::duration_cast<milliseconds>(Clock::now() - sent);
      answers[i].status = reply.status;
      answers[i].retry_after = reply.Header("Retry-After").has_value();
    });
  }
  for (std::thread& client : clients) client.join();
  const auto load_time = std::chrono::duration_cast<milliseconds>(Clock::now() - load_start);
  sampling = false;
  sampler.join();
  const long rss_after = RssKib();

  int refused = 0;
  int refused_quickly = 0;
  int other = 0;
  for (const Answer& a : answers) {
    if (a.status == 503u) {
      ++refused;
      EXPECT_TRUE(a.retry_after) << "503 without Retry-After";
      // Refused at once, not after the stalled write: well under the stall.
      if (a.latency < milliseconds(kStallMs / 2)) ++refused_quickly;
    } else {
      ++other;
    }
  }
  std::printf(
      "overload: %d clients, %d refused 503 (%d within %lld ms), %d other; load %lld ms; "
      "max queued %llu, max merged %llu buckets (cap %llu); RSS %ld -> %ld KiB\n",
      kClients, refused, refused_quickly, static_cast<long long>(kStallMs / 2), other,
      static_cast<long long>(load_time.count()), static_cast<unsigned long long>(max_queued.load()),
      static_cast<unsigned long long>(max_merged.load()), static_cast<unsigned long long>(kCap), rss_before,
      rss_after);
  // A request waits for a stalled write (and is answered 503 when it times out) only while
  // it is held in the flusher's batch or in the queue, each bounded by kCap buckets
  // (asserted below); every other one is refused at once (a request that waited would take
  // kStallMs). On a slow machine (sanitizers, load) the batch may take a few requests
  // before its write stalls, and the load may span more than one stalled write: the bound
  // is what the batch and the queue held, once per stalled write the load spanned.
  const int stalls = 1 + static_cast<int>(load_time.count() / kStallMs);
  const int may_wait = stalls * static_cast<int>((max_merged.load() + max_queued.load()) / kSeriesPerRequest);
  EXPECT_GE(refused_quickly, kClients - may_wait) << "stalled writes " << stalls;
  EXPECT_LE(max_queued.load(), kCap);
  EXPECT_LE(max_merged.load(), kCap);
  // Memory: the refused bodies are not kept (a loose bound: 60 small bodies, the machine's
  // allocator and thread stacks included).
  if (rss_before > 0 && rss_after > 0) {
    EXPECT_LT(rss_after - rss_before, 64 * 1024) << "KiB";
  }

  service->Stop();
  first.join();
  service.reset();
  ::close(listener);
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace drainmet::receiver
