// RedisStore + DrainHandler + ShardProtocol against a private redis-server: a drain
// request's points reach the Redis shards, and what an outlet reads back and merges gives
// exactly the gauges the in-memory path gives (issue "Distributed drainmet": one store
// interface, two implementations). De-dup per frame id, late windows, and 503 when Redis
// is down.

#include "common/store/redis_store.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <thread>

#include "absl/strings/escaping.h"
#include "common/bucket/codec.h"
#include "common/bucket/shard.h"
#include "common/config/auth.h"
#include "common/drain/handler.h"
#include "common/drain/processor.h"
#include "common/librato/gauge.h"
#include "gtest/gtest.h"
#include "tests/support/drain_text.h"
#include "tests/support/redis_server.h"

namespace drainmet::store {
namespace {

constexpr std::uint32_t kShards = 8;

using support::Framed;

/// A body of `lines` frames stamped `t` with measures, counts and samples over 3 sources.
std::string Body(std::int64_t t, int lines) {
  std::string body;
  for (int i = 0; i < lines; ++i) {
    body += Framed("<190>1 " + support::Rfc3339Micros(t) + " host app web.1 - source=web." +
                   std::to_string(i % 3) + " measure#db.latency=" + std::to_string(i) +
                   "ms count#hits sample#queue=" + std::to_string(i));
  }
  return body;
}

class RedisStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = support::RedisServer::Start(); }
  static void TearDownTestSuite() { server_ = absl::UnknownError("stopped"); }

  void SetUp() override {
    if (absl::IsNotFound(server_.status()))
      GTEST_SKIP() << "no redis-server; deploy/bootstrap.sh installs it";
    ASSERT_TRUE(server_.ok()) << server_.status();
    const std::string_view flush[] = {"FLUSHALL"};
    RedisClient client(ClientOptions());
    ASSERT_TRUE(client.Command(flush).ok());

    config::Config c;
    config::Tenant t;
    t.id = "acme";
    t.token_hashes.push_back(config::HashToken("tok"));
    t.output = config::OutputKind::kStdout;
    c.tenants.push_back(t);
    directory_ = std::make_shared<const drain::TenantDirectory>(std::move(c));
    RedisStoreOptions options;
    options.shards = kShards;
    options.servers = {ClientOptions()};
    options.grace_seconds = 1;
    store_ = std::make_unique<RedisStore>(options);
    handler_ = std::make_unique<drain::DrainHandler>(directory_, *store_, base::SystemClock::Get(), metrics_);
  }

  static RedisClient::Options ClientOptions() {
    RedisClient::Options o;
    o.unix_socket = (*server_)->socket_path();
    o.command_timeout = std::chrono::milliseconds(2000);
    return o;
  }

  http::Request Drain(std::string body, std::string frame_id = "") {
    http::Request r;
    r.method = "POST";
    r.target = "/logs?resolution=1";
    r.headers.emplace_back("Authorization", "Basic " + absl::Base64Escape(std::string("tok:")));
    if (!frame_id.empty()) r.headers.emplace_back("Logplex-Frame-Id", frame_id);
    r.body = std::move(body);
    return r;
  }

  /// What an outlet does: lease every shard, seal what closed, read, decode and merge.
  bucket::BucketMap ReadBackAll() {
    RedisClient client(ClientOptions());
    ShardProtocol protocol;
    bucket::BucketMap merged;
    for (std::uint32_t shard = 0; shard < kShards; ++shard) {
      auto lease = protocol.AcquireLease(client, shard, "test-outlet", std::chrono::milliseconds(5000));
      EXPECT_TRUE(lease.ok() && lease->has_value()) << shard;
      if (!lease.ok() || !lease->has_value()) continue;
      auto sealed = protocol.Seal(client, shard, **lease);
      EXPECT_TRUE(sealed.ok()) << sealed.status();
      if (!sealed.ok()) continue;
      for (std::int64_t close : sealed->ready) {
        auto records = protocol.ReadWindow(client, shard, close, 0, 100000);
        EXPECT_TRUE(records.ok());
        for (const std::string& bytes : *records) {
          auto record = bucket::DecodeRecord(bytes);
          EXPECT_TRUE(record.ok()) << record.status();
          EXPECT_EQ(bucket::ShardOf(record->key.tenant, record->key.name, record->key.source, kShards),
                    shard);
          std::string key;
          bucket::EncodeBucketKey(record->key.tenant, record->key.name, record->key.source, record->key.kind,
                                  record->key.resolution_seconds, record->key.window_unix_seconds, key);
          merged.MergeBucket(key, std::move(record->bucket));
        }
        EXPECT_TRUE(protocol.Ack(client, shard, **lease, close).ok());
      }
      EXPECT_TRUE(protocol.ReleaseLease(client, shard, **lease).ok());
    }
    return merged;
  }

  static std::vector<librato::Gauge> Gauges(bucket::BucketMap& map) {
    std::vector<bucket::ClosedBucket> closed = map.TakeAll();
    telemetry::Counters counters;
    return librato::BuildGauges(closed, counters);
  }

  static inline absl::StatusOr<std::unique_ptr<support::RedisServer>> server_ =
      absl::UnknownError("not started");
  std::shared_ptr<const drain::TenantDirectory> directory_;
  telemetry::Metrics metrics_;
  std::unique_ptr<RedisStore> store_;
  std::unique_ptr<drain::DrainHandler> handler_;
};

TEST_F(RedisStoreTest, PointsReadBackGiveTheSameGaugesAsTheMemoryPath) {
  const std::int64_t now = base::SystemClock::Get().NowUnixNanos();
  const std::string first = Body(now, 30);
  const std::string second = Body(now, 7);
  ASSERT_EQ(handler_->Handle(Drain(first, "F1")).status, 204u);
  ASSERT_EQ(handler_->Handle(Drain(second, "F2")).status, 204u);
  EXPECT_EQ(metrics_.Snapshot().points, 3u * 37);

  // The same two requests through the in-memory path.
  extract::DrainOptions options;
  options.resolution_seconds = 1;
  bucket::BucketMap expected;
  for (const std::string* body : {&first, &second}) {
    bucket::BucketMap request;
    telemetry::Counters counters;
    drain::ProcessBody("acme", options, *body, {}, request, counters);
    expected.Merge(std::move(request));
  }

  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // window + 1 s + 1 s grace
  bucket::BucketMap merged = ReadBackAll();
  const std::vector<librato::Gauge> got = Gauges(merged);
  const std::vector<librato::Gauge> want = Gauges(expected);
  ASSERT_FALSE(want.empty());
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(want[i].name + " " + want[i].source);
    EXPECT_EQ(got[i].name, want[i].name);
    EXPECT_EQ(got[i].source, want[i].source);
    EXPECT_EQ(got[i].measure_time, want[i].measure_time);
    EXPECT_EQ(got[i].count, want[i].count);
    EXPECT_EQ(got[i].value, want[i].value);
    EXPECT_EQ(got[i].min, want[i].min);
    EXPECT_EQ(got[i].max, want[i].max);
    EXPECT_NEAR(got[i].sum, want[i].sum, 1e-9 * std::abs(want[i].sum));
  }
}

TEST_F(RedisStoreTest, RetriedFrameIdIsCountedOnceAcrossShards) {
  const std::string body = Body(base::SystemClock::Get().NowUnixNanos(), 12);
  ASSERT_EQ(handler_->Handle(Drain(body, "RETRY1")).status, 204u);
  ASSERT_EQ(handler_->Handle(Drain(body, "RETRY1")).status, 204u);
  const telemetry::Counters c = metrics_.Snapshot();
  EXPECT_EQ(c.duplicate_request, 1u);
  EXPECT_EQ(c.points, 36u);
}

TEST_F(RedisStoreTest, PointsOfClosedWindowsAreLate) {
  // 10 minutes ago: far past window + resolution + grace on Redis's clock.
  const std::int64_t old = base::SystemClock::Get().NowUnixNanos() - 600LL * 1'000'000'000;
  ASSERT_EQ(handler_->Handle(Drain(Body(old, 4))).status, 204u);
  const telemetry::Counters c = metrics_.Snapshot();
  EXPECT_EQ(c.late, 12u);
  EXPECT_EQ(c.points, 0u);
}

TEST_F(RedisStoreTest, RedisDownAnswers503WithRetryAfter) {
  RedisStoreOptions options;
  options.shards = kShards;
  RedisClient::Options dead;
  dead.unix_socket = "/nonexistent/redis.sock";
  dead.connect_timeout = std::chrono::milliseconds(200);
  options.servers = {dead};
  RedisStore store(options);
  drain::DrainHandler handler(directory_, store, base::SystemClock::Get(), metrics_);
  const http::Response r = handler.Handle(Drain(Body(base::SystemClock::Get().NowUnixNanos(), 2)));
  EXPECT_EQ(r.status, 503u);
  bool retry_after = false;
  for (const auto& [k, v] : r.headers) retry_after |= k == "Retry-After";
  EXPECT_TRUE(retry_after);
  EXPECT_EQ(metrics_.Snapshot().points, 0u) << "nothing is counted for a request answered 503";
  EXPECT_FALSE(store.Ping().ok());
  EXPECT_TRUE(store_->Ping().ok());
}

}  // namespace
}  // namespace drainmet::store
