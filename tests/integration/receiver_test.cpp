// drainmet-receiver's service against a private redis-server: 204 once the points are in
// Redis, 503 with Retry-After (and /readyz 503) while Redis is down, recovery by itself
// when it is back (issue "Distributed drainmet").

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "common/config/auth.h"
#include "common/store/redis_scripts.h"
#include "gtest/gtest.h"
#include "services/receiver/service.h"
#include "tests/support/drain_text.h"
#include "tests/support/eventually.h"
#include "tests/support/http_client.h"
#include "tests/support/redis_server.h"

namespace drainmet::receiver {
namespace {

using std::chrono::milliseconds;

using support::Framed;

std::string BodyAt(std::time_t now) {
  std::tm tm{};
  gmtime_r(&now, &tm);
  char ts[64];
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
  return Framed(std::string("<190>1 ") + ts + " host app web.1 - count#hits=2 measure#db=4ms source=web.1");
}

std::string NowBody() { return BodyAt(std::time(nullptr)); }

support::Headers DrainHeaders(std::string frame_id = "") {
  support::Headers h = {{"Authorization", "Basic " + absl::Base64Escape(std::string("tok:"))},
                        {"Content-Type", "application/logplex-1"}};
  if (!frame_id.empty()) h.emplace_back("Logplex-Frame-Id", frame_id);
  return h;
}

using support::Eventually;

class ReceiverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = support::RedisServer::Start();
    if (absl::IsNotFound(server.status())) GTEST_SKIP() << "no redis-server; deploy/bootstrap.sh installs it";
    ASSERT_TRUE(server.ok()) << server.status();
    redis_ = *std::move(server);
    StartService(300);
  }

  /// (Re)starts the receiver with `flush_interval_ms`.
  void StartService(std::int64_t flush_interval_ms, std::int64_t grace_seconds = 5) {
    service_.reset();
    config::Config c;
    c.grace_seconds = grace_seconds;
    c.receiver.flush_interval_ms = flush_interval_ms;
    c.receiver.flush_delay_ms = flush_interval_ms;  // batches collect for the whole interval
    c.listen = "127.0.0.1:0";
    c.threads = 2;
    c.redis.shards = 4;
    c.redis.servers = {"unix:" + redis_->socket_path()};
    c.redis.connect_timeout_ms = 200;
    c.redis.command_timeout_ms = 500;
    config::Tenant t;
    t.id = "acme";
    t.token_hashes.push_back(config::HashToken("tok"));
    t.output = config::OutputKind::kStdout;
    c.tenants.push_back(t);
    auto service = Service::Start(c, base::SystemClock::Get());
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);
  }

  std::size_t PendingWindows() {
    store::RedisClient::Options o;
    o.unix_socket = redis_->socket_path();
    store::RedisClient client(o);
    store::ShardProtocol protocol;
    std::size_t n = 0;
    for (std::uint32_t shard = 0; shard < 4; ++shard) {
      auto closes = protocol.PendingCloses(client, shard);
      if (closes.ok()) n += closes->size();
    }
    return n;
  }

  std::unique_ptr<support::RedisServer> redis_;
  std::unique_ptr<Service> service_;
};

TEST_F(ReceiverTest, AnswersOnlyOncePointsAreInRedis) {
  ASSERT_TRUE(Eventually([&] { return support::HttpGet(service_->port(), "/readyz").status == 200; },
                         milliseconds(3000)));
  // A retry resends the same bytes, and both copies arrive in the body's window: past its
  // close the retry would be judged late at receipt (SEMANTICS §6.5) before the pre-check
  // (docs/semantics-choices.md 12), so the test keeps away from a minute boundary.
  while (std::time(nullptr) % 60 >= 55) std::this_thread::sleep_for(milliseconds(200));
  const std::string body = NowBody();
  const support::HttpReply reply =
      support::HttpPost(service_->port(), "/logs?resolution=60", DrainHeaders("F1"), body);
  EXPECT_EQ(reply.status, 204u) << reply.body;
  EXPECT_GE(PendingWindows(), 1u);
  EXPECT_EQ(service_->metrics().Snapshot().points, 2u);
  // The retry of the same frame is recognised in Redis.
  EXPECT_EQ(support::HttpPost(service_->port(), "/logs?resolution=60", DrainHeaders("F1"), body).status,
            204u);
  EXPECT_EQ(service_->metrics().Snapshot().duplicate_request, 1u);
}

TEST_F(ReceiverTest, RedisDownIs503ThenRecoversByItself) {
  ASSERT_TRUE(redis_->Stop().ok());
  const support::HttpReply down = support::HttpPost(service_->port(), "/logs", DrainHeaders("F2"), NowBody());
  EXPECT_EQ(down.status, 503u);
  EXPECT_TRUE(down.Header("Retry-After").has_value());
  EXPECT_TRUE(Eventually([&] { return support::HttpGet(service_->port(), "/readyz").status == 503; },
                         milliseconds(3000)));
  ASSERT_TRUE(redis_->Restart().ok());
  EXPECT_TRUE(Eventually(
      [&] {
        return support::HttpPost(service_->port(), "/logs", DrainHeaders("F2"), NowBody()).status == 204;
      },
      milliseconds(5000)));
  EXPECT_TRUE(Eventually([&] { return support::HttpGet(service_->port(), "/readyz").status == 200; },
                         milliseconds(3000)));
  EXPECT_EQ(service_->metrics().Snapshot().points, 2u) << "the 503 answer counted nothing";
}

// The receiver pre-aggregates: requests of one flush interval become one record per
// (series, window) in Redis, and each is answered after that write.
TEST_F(ReceiverTest, ConcurrentRequestsOfOneIntervalAreWrittenAsOneRecordPerSeries) {
  ASSERT_TRUE(Eventually([&] { return support::HttpGet(service_->port(), "/readyz").status == 200; },
                         milliseconds(3000)));
  const std::uint16_t port = service_->port();
  std::vector<std::future<support::HttpReply>> replies;
  for (int i = 0; i < 10; ++i) {
    replies.push_back(std::async(std::launch::async, [port, i] {
      return support::HttpPost(port, "/logs?resolution=60", DrainHeaders("C" + std::to_string(i)), NowBody());
    }));
  }
  for (auto& reply : replies) EXPECT_EQ(reply.get().status, 204u);
  EXPECT_EQ(service_->metrics().Snapshot().points, 20u);
  // Two series (hits, db); a flush or minute boundary between requests may split them.
  auto written = [&] {
    const std::string text = support::HttpGet(port, "/metrics").body;
    const std::string name = "\ndrainmet_receiver_records_written_total ";  // the sample, not # HELP
    const std::size_t at = text.find(name);
    return at == std::string::npos ? -1.0 : std::strtod(text.c_str() + at + name.size(), nullptr);
  };
  ASSERT_TRUE(Eventually([&] { return written() > 0; }, milliseconds(3000)));  // reported each second
  EXPECT_GE(written(), 2.0);
  EXPECT_LE(written(), 6.0) << "per-request writes would give 20 records";
}

// SIGTERM (Stop) writes what waits at once: a request does not wait out the interval.
TEST_F(ReceiverTest, StopAnswersWaitingRequestsAfterWritingThem) {
  StartService(30'000);
  ASSERT_TRUE(Eventually([&] { return support::HttpGet(service_->port(), "/readyz").status == 200; },
                         milliseconds(3000)));
  const std::uint16_t port = service_->port();
  auto reply = std::async(std::launch::async, [port] {
    return support::HttpPost(port, "/logs?resolution=60", DrainHeaders("S1"), NowBody());
  });
  // Merged and waiting (the gauge is refreshed every second).
  ASSERT_TRUE(Eventually(
      [&] {
        return support::HttpGet(port, "/metrics")
                   .body.find("drainmet_receiver_buffered_buckets{stage=\"merged\"} 2") != std::string::npos;
      },
      milliseconds(5000)));
  const auto stop_started = std::chrono::steady_clock::now();
  service_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - stop_started, std::chrono::seconds(10));
  EXPECT_EQ(reply.get().status, 204u);
  EXPECT_EQ(service_->metrics().Snapshot().points, 2u);
  EXPECT_GE(PendingWindows(), 1u);
}

// Receivers' watermarks (docs/redis-layout.md): a request accepted before its window's close
// and still waiting for its write holds the window open past the close, however long the
// write takes within the allowance; once it is written (and answered) the window is sealed
// at once, before close + allowance, with the request's points in it (not late). A clean
// stop withdraws the receiver's entry.
TEST_F(ReceiverTest, AHeldRequestKeepsItsWindowUnsealedUntilWrittenThenItIsSealedEarly) {
  StartService(/*flush_interval_ms=*/3000, /*grace_seconds=*/1);  // allowance: 3 + 0.5 -> 4 s
  ASSERT_TRUE(Eventually([&] { return support::HttpGet(service_->port(), "/readyz").status == 200; },
                         milliseconds(3000)));
  store::RedisClient::Options o;
  o.unix_socket = redis_->socket_path();
  store::RedisClient client(o);
  ASSERT_TRUE(Eventually(
      [&] {
        auto r = client.Command({"HEXISTS", store::kWatermarksKey, service_->receiver_id()});
        return r.ok() && r->integer == 1;
      },
      milliseconds(2000)))
      << "published before the first request";
  store::ShardProtocolOptions protocol_options;
  protocol_options.write_allowance = std::chrono::seconds(4);
  const store::ShardProtocol protocol(protocol_options);
  std::vector<store::Lease> leases;
  for (std::uint32_t shard = 0; shard < 4; ++shard) {
    auto lease = protocol.AcquireLease(client, shard, "test-outlet", milliseconds(60000));
    ASSERT_TRUE(lease.ok() && lease->has_value()) << lease.status();
    leases.push_back(**lease);
  }
  const auto server_ms = [&] {
    auto t = store::ShardProtocol::ServerTime(client);
    return t.ok() ? static_cast<std::int64_t>(t->count() / 1000) : 0;
  };
  // Early in a second: the window (1 s, grace 1 s) closes 1.7-2 s after the request.
  while (server_ms() % 1000 > 300) std::this_thread::sleep_for(milliseconds(20));
  const std::time_t second = std::time(nullptr);
  const std::int64_t close = static_cast<std::int64_t>(second) + 2;
  const std::string body = BodyAt(second);
  const std::uint16_t port = service_->port();
  std::atomic<std::int64_t> answered_at_ns{0};
  auto reply = std::async(std::launch::async, [port, &answered_at_ns, &body] {
    support::HttpReply r = support::HttpPost(port, "/logs?resolution=1", DrainHeaders("W1"), body);
    answered_at_ns = std::chrono::steady_clock::now().time_since_epoch().count();
    return r;
  });
  std::int64_t sealed_at_ms = 0;
  std::int64_t sealed_at_ns = 0;
  std::int64_t sealed_early = 0;
  std::int64_t shards_sealed = 0;  // shards whose part of the window was sealed
  // One outlet pass: seals every shard, notes when the window was first sealed.
  const auto seal_pass = [&] {
    for (std::uint32_t shard = 0; shard < 4; ++shard) {
      auto sealed = protocol.Seal(client, shard, leases[shard]);
      ASSERT_TRUE(sealed.ok()) << sealed.status();
      for (std::int64_t c : sealed->sealed) {
        if (c != close) continue;
        if (sealed_at_ms == 0) {
          sealed_at_ms = server_ms();
          sealed_at_ns = std::chrono::steady_clock::now().time_since_epoch().count();
        }
        sealed_early += sealed->sealed_early;
        ++shards_sealed;
      }
    }
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (sealed_at_ms == 0 && std::chrono::steady_clock::now() < deadline) {
    seal_pass();
    std::this_thread::sleep_for(milliseconds(20));
  }
  // The window's other shards, if a publication came between two of the pass's calls.
  EXPECT_TRUE(Eventually(
      [&] {
        seal_pass();
        for (std::uint32_t shard = 0; shard < 4; ++shard) {
          auto pending = protocol.PendingCloses(client, shard);
          if (!pending.ok() || std::find(pending->begin(), pending->end(), close) != pending->end())
            return false;
        }
        return true;
      },
      milliseconds(3000)));
  ASSERT_NE(sealed_at_ms, 0) << "window " << close << " never sealed";
  EXPECT_EQ(reply.get().status, 204u);
  // The receiver releases a request after answering it; the client reads the answer a
  // moment later, so the seal may precede that read by a few ms, never by the hold.
  EXPECT_GT(sealed_at_ns, answered_at_ns.load() - 50'000'000)
      << "sealed while a request received before its close was not written";
  EXPECT_GE(sealed_at_ms, close * 1000 + 500) << "the write waited ~3 s from a request ~2 s before the close";
  EXPECT_LT(sealed_at_ms, (close + 4) * 1000) << "sealed by the watermark, before close + allowance";
  EXPECT_GE(shards_sealed, 1);
  EXPECT_EQ(sealed_early, shards_sealed) << "every shard's part sealed by the watermark";
  const telemetry::Counters counters = service_->metrics().Snapshot();
  EXPECT_EQ(counters.points, 2u);
  EXPECT_EQ(counters.late, 0u);
  // Both points are in the sealed window.
  std::int64_t records = 0;
  for (std::uint32_t shard = 0; shard < 4; ++shard) {
    auto r = client.Command({"LLEN", store::ShardProtocol::Key(shard, "proc:" + std::to_string(close))});
    ASSERT_TRUE(r.ok()) << r.status();
    records += r->integer;
  }
  EXPECT_EQ(records, 2) << "one record per series (count#hits, measure#db)";

  service_->Stop();
  auto left = client.Command({"HLEN", store::kWatermarksKey});
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_EQ(left->integer, 0) << "a clean stop withdraws the watermark";
  auto expiries = client.Command({"ZCARD", store::kWatermarkExpiryKey});
  ASSERT_TRUE(expiries.ok()) << expiries.status();
  EXPECT_EQ(expiries->integer, 0);
}

}  // namespace
}  // namespace drainmet::receiver
