// RedisStore + DrainHandler + ShardProtocol against a private redis-server: a drain
// request's points reach the Redis shards, and what an outlet reads back and merges gives
// exactly the gauges the in-memory path gives (issue "Distributed drainmet": one store
// interface, two implementations). De-dup per frame id, late windows, and 503 when Redis
// is down.

#include "common/store/redis_store.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/escaping.h"
#include "common/bucket/codec.h"
#include "common/bucket/shard.h"
#include "common/config/auth.h"
#include "common/drain/handler.h"
#include "common/drain/processor.h"
#include "common/librato/gauge.h"
#include "common/store/pre_aggregator.h"
#include "gtest/gtest.h"
#include "tests/support/drain_text.h"
#include "tests/support/eventually.h"
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
        bucket::ElementReader reader;  // elements: one record (RedisStore) or a batch (PreAggregator)
        for (const std::string& bytes : *records) {
          reader.Reset(bytes);
          for (absl::StatusOr<bool> next = reader.Next();; next = reader.Next()) {
            EXPECT_TRUE(next.ok()) << next.status();
            if (!next.ok() || !*next) break;
            const bucket::RecordKeyView& k = reader.key();
            EXPECT_EQ(bucket::ShardOf(k.tenant, k.name, k.source, kShards), shard);
            std::string key;
            bucket::EncodeBucketKey(k.tenant, k.name, k.source, k.kind, k.resolution_seconds,
                                    k.window_unix_seconds, key);
            merged.MergeBucket(key, std::move(reader.bucket()));
          }
        }
        EXPECT_TRUE(protocol.Ack(client, shard, **lease, close).ok());
      }
      EXPECT_TRUE(protocol.ReleaseLease(client, shard, **lease).ok());
    }
    return merged;
  }

  /// The partial buckets `bodies` give through the in-memory path (resolution 1 s).
  static bucket::BucketMap Expected(const std::vector<const std::string*>& bodies) {
    extract::DrainOptions options;
    options.resolution_seconds = 1;
    bucket::BucketMap expected;
    for (const std::string* body : bodies) {
      bucket::BucketMap request;
      telemetry::Counters counters;
      drain::ProcessBody("acme", options, *body, {}, request, counters);
      expected.Merge(std::move(request));
    }
    return expected;
  }

  /// Waits for the windows to close, reads every shard back and compares the gauges.
  void ExpectReadBackEquals(bucket::BucketMap& expected) {
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

  /// ExpectReadBackEquals of what `bodies` give through the in-memory path.
  void ExpectReadBackEqualsBodies(const std::vector<std::string>& bodies) {
    std::vector<const std::string*> views;
    for (const std::string& b : bodies) views.push_back(&b);
    bucket::BucketMap expected = Expected(views);
    ExpectReadBackEquals(expected);
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
  bucket::BucketMap expected = Expected({&first, &second});
  ExpectReadBackEquals(expected);
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

// A retry of an applied frame is a duplicate whenever it comes, also once its window has
// closed (it would otherwise be judged late at receipt: nothing is written either way).
TEST_F(RedisStoreTest, RetryAfterTheWindowClosedIsADuplicateNotLate) {
  ASSERT_TRUE(store_->Ping().ok());  // the receipt check needs the server's clock
  const std::string body = Body(base::SystemClock::Get().NowUnixNanos(), 4);
  ASSERT_EQ(handler_->Handle(Drain(body, "AFTERCLOSE")).status, 204u);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // window + 1 s + 1 s grace
  ASSERT_EQ(handler_->Handle(Drain(body, "AFTERCLOSE")).status, 204u);
  const telemetry::Counters c = metrics_.Snapshot();
  EXPECT_EQ(c.duplicate_request, 1u);
  EXPECT_EQ(c.late, 0u);
  EXPECT_EQ(c.points, 12u);
  // Another frame with the same points, after the close: late.
  ASSERT_EQ(handler_->Handle(Drain(body, "OTHER")).status, 204u);
  EXPECT_EQ(metrics_.Snapshot().late, 12u);
  EXPECT_EQ(metrics_.Snapshot().duplicate_request, 1u);
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

// ---- PreAggregator: requests merged for a flush interval, answered after the write ----

/// A body of `lines` frames stamped `t` over the 3 sources `prefix`.0-2 (as Body).
std::string BodyOf(std::int64_t t, int lines, const std::string& prefix) {
  std::string body;
  for (int i = 0; i < lines; ++i) {
    body += Framed("<190>1 " + support::Rfc3339Micros(t) + " host app web.1 - source=" + prefix + "." +
                   std::to_string(i % 3) + " measure#db.latency=" + std::to_string(i) +
                   "ms count#hits sample#queue=" + std::to_string(i));
  }
  return body;
}

/// Collects asynchronous answers of a DrainHandler.
class Answers {
 public:
  std::function<void(http::Response)> Slot(std::size_t i) {
    return [this, i](http::Response r) {
      std::lock_guard<std::mutex> lock(mu_);
      status_[i] = r.status;
      cv_.notify_all();
    };
  }
  /// The statuses of answers 0..n-1, waiting up to 10 s for all of them (0: none yet).
  std::vector<unsigned> Wait(std::size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] {
      for (std::size_t i = 0; i < n; ++i)
        if (!status_.contains(i)) return false;
      return true;
    });
    std::vector<unsigned> out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(status_.contains(i) ? status_[i] : 0);
    return out;
  }
  std::size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return status_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::size_t, unsigned> status_;
};

/// Options whose batches collect for `interval` (flush_delay = flush_interval).
PreAggregatorOptions AggregatorOptions(std::chrono::milliseconds interval, std::uint64_t max_series) {
  PreAggregatorOptions options;
  options.flush_interval = interval;
  options.flush_delay = interval;
  options.max_series = max_series;
  return options;
}

class PreAggregatorTest : public RedisStoreTest {
 protected:
  void StartAggregator(std::chrono::milliseconds interval, std::uint64_t max_series = 200'000) {
    aggregator_ = std::make_unique<PreAggregator>(*store_, AggregatorOptions(interval, max_series));
    async_handler_ =
        std::make_unique<drain::DrainHandler>(directory_, *aggregator_, base::SystemClock::Get(), metrics_);
  }
  void TearDown() override {
    async_handler_.reset();
    aggregator_.reset();
  }

  /// An aggregator with a 100-ms interval and max_series_per_tenant 5, past two flushes of
  /// one request each (3 series of its own each: 6 records): flush 1 folded nothing away,
  /// so flush 2 was not merged, nor is the next, and requests are encoded ahead.
  void StartUnmergedWithTenantBound5() {
    PreAggregatorOptions options = AggregatorOptions(std::chrono::milliseconds(100), 200'000);
    options.max_series_per_tenant = 5;
    aggregator_ = std::make_unique<PreAggregator>(*store_, options);
    async_handler_ =
        std::make_unique<drain::DrainHandler>(directory_, *aggregator_, base::SystemClock::Get(), metrics_);
    for (int n = 0; n < 2; ++n) {
      Answers answers;
      async_handler_->HandleAsync(
          Drain(BodyOf(base::SystemClock::Get().NowUnixNanos(), 1, "w" + std::to_string(n)),
                "L" + std::to_string(n)),
          answers.Slot(0));
      ASSERT_EQ(answers.Wait(1), (std::vector<unsigned>{204}));
    }
    ASSERT_EQ(aggregator_->stats().flushes_unmerged, 1u);
    ASSERT_EQ(aggregator_->stats().records_written, 6u);
  }

  /// Flush n + 1 (0-based n) of a test that sends two requests a flush: sends `first` and
  /// `second` (frame ids <id><2n>, <id><2n+1>) at once, expects both answered 204 in one
  /// flush, keeps the bodies in `bodies` and returns the stats after it.
  PreAggregatorStats FlushPair(int n, const std::string& first, const std::string& second,
                               const std::string& id, std::vector<std::string>& bodies) {
    SCOPED_TRACE("flush " + std::to_string(n + 1));
    Answers answers;
    async_handler_->HandleAsync(Drain(first, id + std::to_string(2 * n)), answers.Slot(0));
    async_handler_->HandleAsync(Drain(second, id + std::to_string(2 * n + 1)), answers.Slot(1));
    EXPECT_EQ(answers.Wait(2), (std::vector<unsigned>{204, 204}));
    const PreAggregatorStats stats = aggregator_->stats();
    EXPECT_EQ(stats.flushes, static_cast<std::uint64_t>(n + 1));
    bodies.push_back(first);
    bodies.push_back(second);
    return stats;
  }

  /// Waits until `done()` holds (5 s at most).
  static bool WaitFor(const std::function<bool()>& done) {
    return support::Eventually(done, std::chrono::milliseconds(5000));
  }

  std::unique_ptr<PreAggregator> aggregator_;
  std::unique_ptr<drain::DrainHandler> async_handler_;
};

// The receiver: requests of one flush interval are merged into one partial bucket
// per (series, window), written once, and each request is answered after that write.
TEST_F(PreAggregatorTest, RequestsOfOneIntervalAreMergedWrittenOnceAndGiveTheSameGauges) {
  StartAggregator(std::chrono::milliseconds(400));
  const std::int64_t now = base::SystemClock::Get().NowUnixNanos();
  std::vector<std::string> bodies;
  for (int i = 0; i < 20; ++i) bodies.push_back(Body(now, 5 + i));
  Answers answers;
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    async_handler_->HandleAsync(Drain(bodies[i], "M" + std::to_string(i)), answers.Slot(i));
  }
  EXPECT_LT(answers.count(), bodies.size()) << "answers wait for the flush";
  for (unsigned status : answers.Wait(bodies.size())) EXPECT_EQ(status, 204u);

  const PreAggregatorStats stats = aggregator_->stats();
  EXPECT_EQ(stats.requests_merged, 20u);
  EXPECT_LE(stats.flushes, 2u);  // all 20 in one interval (two if the clock ticked a window)
  // 3 sources × 3 series, 1 window (2 if the second changed between bodies): merged.
  EXPECT_LE(stats.records_written, 2u * 9);
  EXPECT_GE(stats.records_written, 9u);
  std::uint64_t lines = 0;
  for (int i = 0; i < 20; ++i) lines += 5 + i;
  EXPECT_EQ(metrics_.Snapshot().points, 3 * lines);

  ExpectReadBackEqualsBodies(bodies);
}

// Batches (docs/redis-layout.md "Record encoding"): a flush writes one list element per
// (shard, window) holding all its records; the stats count both; read back element by
// element, the gauges are those of the in-memory path.
TEST_F(PreAggregatorTest, AFlushWritesOneBatchElementPerShardWindow) {
  StartAggregator(std::chrono::milliseconds(60'000));  // flushed by hand below
  const std::int64_t now = base::SystemClock::Get().NowUnixNanos();
  // 60 sources x (measure, count, sample), one timestamp: 180 series in one window.
  std::string body;
  for (int i = 0; i < 60; ++i) {
    body += Framed("<190>1 " + support::Rfc3339Micros(now) + " host app web.1 - source=web." +
                   std::to_string(i) + " measure#db.latency=" + std::to_string(i) +
                   "ms count#hits sample#queue=" + std::to_string(i));
  }
  Answers answers;
  async_handler_->HandleAsync(Drain(body, "BATCH"), answers.Slot(0));
  ASSERT_TRUE(WaitFor([&] { return aggregator_->stats().requests_merged == 1; }));
  aggregator_->FlushSoon();
  EXPECT_EQ(answers.Wait(1), std::vector<unsigned>{204});

  bucket::BucketMap expected = Expected({&body});
  std::set<std::pair<std::uint32_t, std::int64_t>> groups;  // (shard, window)
  std::map<std::uint32_t, std::size_t> per_shard;
  bucket::BucketKey key;
  for (const auto& [encoded, partial] : expected.map()) {
    ASSERT_TRUE(bucket::DecodeBucketKey(encoded, &key));
    const std::uint32_t shard = bucket::ShardOf(key.tenant, key.name, key.source, kShards);
    groups.emplace(shard, key.window_unix_seconds);
    ++per_shard[shard];
  }
  ASSERT_EQ(expected.size(), 180u);
  const PreAggregatorStats stats = aggregator_->stats();
  EXPECT_EQ(stats.records_written, 180u);
  EXPECT_EQ(stats.elements_written, groups.size());
  EXPECT_EQ(metrics_.Snapshot().points, 180u);

  // In Redis: the lists hold exactly those elements, each a keyed batch (first byte 0x02:
  // the request's tenant, resolution and window once, in its header), one record or more.
  RedisClient client(ClientOptions());
  const std::string_view keys_command[] = {"KEYS", "dm:*:pts:*"};
  absl::StatusOr<Reply> keys = client.Command(keys_command);
  ASSERT_TRUE(keys.ok()) << keys.status();
  std::size_t elements = 0;
  std::size_t records = 0;
  bucket::ElementReader reader;
  for (const Reply& list : keys->elements) {
    const std::string_view range[] = {"LRANGE", list.str, "0", "-1"};
    absl::StatusOr<Reply> got = client.Command(range);
    ASSERT_TRUE(got.ok()) << got.status();
    for (const Reply& element : got->elements) {
      ++elements;
      std::size_t in_element = 0;
      reader.Reset(element.str);
      for (absl::StatusOr<bool> next = reader.Next(); next.ok() && *next; next = reader.Next()) ++in_element;
      const std::uint32_t shard =
          bucket::ShardOf(reader.key().tenant, reader.key().name, reader.key().source, kShards);
      EXPECT_EQ(in_element, per_shard[shard]) << "one element per (shard, window), holding all its records";
      EXPECT_EQ(element.str.front(), bucket::kKeyedBatchElementTag);
      EXPECT_GE(in_element, 1u);
      EXPECT_EQ(reader.key().tenant, "acme");
      EXPECT_EQ(reader.key().resolution_seconds, 1);
      records += in_element;
    }
  }
  EXPECT_EQ(elements, groups.size());
  EXPECT_EQ(records, 180u);
  ExpectReadBackEquals(expected);
}

// A retry whose first copy got through on some shards only (a receiver killed mid-write):
// the pre-check skips the (shard, window) parts already applied; every point lands once.
TEST_F(PreAggregatorTest, RetryAfterAPartialWriteAppliesOnlyTheMissingParts) {
  StartAggregator(std::chrono::milliseconds(100));
  const std::string body = Body(base::SystemClock::Get().NowUnixNanos(), 30);
  // The first copy: only the series of even shards reached Redis.
  extract::DrainOptions options;
  options.resolution_seconds = 1;
  bucket::BucketMap all;
  telemetry::Counters counters;
  drain::ProcessBody("acme", options, body, {}, all, counters);
  bucket::BucketMap part;
  bucket::BucketKey key;
  std::size_t odd = 0;
  for (const auto& [encoded, partial] : all.map()) {
    ASSERT_TRUE(bucket::DecodeBucketKey(encoded, &key));
    if (ShardWindowOf(key, store_->options()).shard % 2 == 0) {
      part.MergeBucket(encoded, bucket::PartialBucket(partial));
    } else {
      ++odd;
    }
  }
  ASSERT_GT(odd, 0u);
  ASSERT_GT(part.size(), 0u);
  ASSERT_TRUE(store_->Ingest("acme", "PARTIAL", part).ok());

  const http::Response retry = async_handler_->Handle(Drain(body, "PARTIAL"));
  EXPECT_EQ(retry.status, 204u);
  const http::Response again = async_handler_->Handle(Drain(body, "PARTIAL"));
  EXPECT_EQ(again.status, 204u);
  EXPECT_EQ(metrics_.Snapshot().duplicate_request, 1u);

  bucket::BucketMap expected = Expected({&body});
  ExpectReadBackEquals(expected);
}

// Two copies of one frame in flight at once on two receivers: the write that comes second
// is refused whole (503 for its requests, counted as a conflict); the retries then apply
// exactly what is missing.
TEST_F(PreAggregatorTest, FrameAppliedMeanwhileByAnotherReceiverFailsTheBatchAndRetriesConverge) {
  StartAggregator(std::chrono::milliseconds(60'000));  // flushed by hand below
  const std::int64_t now = base::SystemClock::Get().NowUnixNanos();
  const std::string mine = Body(now, 9);
  const std::string other = Body(now, 4);
  Answers answers;
  async_handler_->HandleAsync(Drain(mine, "RACE"), answers.Slot(0));
  async_handler_->HandleAsync(Drain(other, "BYSTANDER"), answers.Slot(1));
  ASSERT_TRUE(WaitFor([&] { return aggregator_->stats().requests_merged == 2; }));
  // Meanwhile the other receiver writes its copy of RACE.
  ASSERT_EQ(handler_->Handle(Drain(mine, "RACE")).status, 204u);
  aggregator_->FlushSoon();
  EXPECT_EQ(answers.Wait(2), (std::vector<unsigned>{503, 503}));
  EXPECT_GE(aggregator_->stats().conflicts, 1u);

  // Logplex retries both.
  EXPECT_EQ(async_handler_->Handle(Drain(mine, "RACE")).status, 204u);
  EXPECT_EQ(async_handler_->Handle(Drain(other, "BYSTANDER")).status, 204u);
  bucket::BucketMap expected = Expected({&mine, &other});
  ExpectReadBackEquals(expected);
}

// A second copy of a frame that still waits for its flush here is refused at once.
TEST_F(PreAggregatorTest, SecondCopyOfAWaitingFrameIsRefusedAndTheFirstCounts) {
  StartAggregator(std::chrono::milliseconds(500));
  const std::string body = Body(base::SystemClock::Get().NowUnixNanos(), 6);
  Answers answers;
  async_handler_->HandleAsync(Drain(body, "TWICE"), answers.Slot(0));
  async_handler_->HandleAsync(Drain(body, "TWICE"), answers.Slot(1));
  EXPECT_EQ(answers.Wait(2), (std::vector<unsigned>{204, 503}));
  EXPECT_EQ(metrics_.Snapshot().points, 18u);
  EXPECT_EQ(async_handler_->Handle(Drain(body, "TWICE")).status, 204u);  // now a duplicate
  EXPECT_EQ(metrics_.Snapshot().points, 18u);
  EXPECT_EQ(metrics_.Snapshot().duplicate_request, 1u);
}

TEST_F(PreAggregatorTest, LateWindowsAreCountedLate) {
  StartAggregator(std::chrono::milliseconds(50));
  const std::int64_t old = base::SystemClock::Get().NowUnixNanos() - 600LL * 1'000'000'000;
  EXPECT_EQ(async_handler_->Handle(Drain(Body(old, 4), "OLD")).status, 204u);
  EXPECT_EQ(metrics_.Snapshot().late, 12u);
  EXPECT_EQ(metrics_.Snapshot().points, 0u);
}

TEST_F(PreAggregatorTest, StopWritesWhatWaitsThenRefuses) {
  StartAggregator(std::chrono::milliseconds(60'000));
  const std::string body = Body(base::SystemClock::Get().NowUnixNanos(), 3);
  Answers answers;
  async_handler_->HandleAsync(Drain(body, "S1"), answers.Slot(0));
  aggregator_->Stop();
  EXPECT_EQ(answers.Wait(1), (std::vector<unsigned>{204}));
  EXPECT_EQ(metrics_.Snapshot().points, 9u);
  EXPECT_EQ(async_handler_->Handle(Drain(body, "S2")).status, 503u);
}

TEST_F(PreAggregatorTest, RedisDownAnswers503) {
  RedisStoreOptions options;
  options.shards = kShards;
  RedisClient::Options dead;
  dead.unix_socket = "/nonexistent/redis.sock";
  dead.connect_timeout = std::chrono::milliseconds(200);
  options.servers = {dead};
  RedisStore store(options);
  PreAggregator aggregator(store, AggregatorOptions(std::chrono::milliseconds(50), 1000));
  drain::DrainHandler handler(directory_, aggregator, base::SystemClock::Get(), metrics_);
  const std::string body = Body(base::SystemClock::Get().NowUnixNanos(), 2);
  EXPECT_EQ(handler.Handle(Drain(body, "DOWN")).status, 503u);  // the pre-check fails
  EXPECT_EQ(handler.Handle(Drain(body)).status, 503u);          // no frame id: the write fails
  EXPECT_EQ(metrics_.Snapshot().points, 0u);
  EXPECT_GE(aggregator.stats().flush_errors, 1u);
}

// While the flusher waits on a stalled Redis, the queue fills up to max_series buckets;
// beyond that requests are refused at once (503) instead of queuing without bound.
TEST_F(PreAggregatorTest, FullQueueRefusesAtOnce) {
  // A Unix socket that accepts connections (backlog) and never answers.
  const std::string path = ::testing::TempDir() + "/stalled-redis.sock";
  ::unlink(path.c_str());
  const int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof(address.sun_path));
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(listener, 16), 0);

  RedisStoreOptions options;
  options.shards = kShards;
  RedisClient::Options stalled;
  stalled.unix_socket = path;
  stalled.command_timeout = std::chrono::milliseconds(1500);
  options.servers = {stalled};
  RedisStore store(options);
  PreAggregator aggregator(store, AggregatorOptions(std::chrono::milliseconds(10), 10));
  drain::DrainHandler handler(directory_, aggregator, base::SystemClock::Get(), metrics_);
  const std::int64_t now = base::SystemClock::Get().NowUnixNanos();
  Answers answers;
  handler.HandleAsync(Drain(Body(now, 3), "Q0"), answers.Slot(0));               // 9 buckets: taken, stalls
  ASSERT_TRUE(WaitFor([&] { return aggregator.stats().queued_buckets == 0; }));  // the flusher took Q0
  handler.HandleAsync(Drain(Body(now, 3), "Q1"), answers.Slot(1));               // 9 buckets: queued
  handler.HandleAsync(Drain(Body(now, 3), "Q2"), answers.Slot(2));               // 18 > 10: refused now
  EXPECT_TRUE(WaitFor([&] { return answers.count() >= 1; }));
  EXPECT_EQ(answers.Wait(3)[2], 503u);
  EXPECT_GE(aggregator.stats().requests_refused, 1u);
  aggregator.Stop();
  ::close(listener);
  ::unlink(path.c_str());
}

// SEMANTICS §6.5 is judged when a request arrives, not when its flush reaches Redis: a
// point received before its window closed is applied even if the write comes after the
// close (within the write allowance); one received after the close is late at once.
TEST_F(PreAggregatorTest, LatenessIsJudgedAtReceiptNotAtTheFlush) {
  RedisStoreOptions options = store_->options();
  options.protocol.write_allowance = std::chrono::seconds(4);
  RedisStore store(options);
  ASSERT_TRUE(store.Ping().ok());  // measures the server's clock offset
  ASSERT_TRUE(store.ClockOffsetNanos(0).has_value());
  EXPECT_LT(std::abs(*store.ClockOffsetNanos(0)), 1'000'000'000) << "same host: offset well under 1 s";
  PreAggregator aggregator(store, AggregatorOptions(std::chrono::milliseconds(2500), 1000));
  drain::DrainHandler handler(directory_, aggregator, base::SystemClock::Get(), metrics_);

  // Stamped now: resolution 1 s + grace 1 s closes it within 2 s, before the 2.5 s flush.
  const std::int64_t now = base::SystemClock::Get().NowUnixNanos();
  const std::string fresh = Body(now, 5);
  const auto sent = std::chrono::steady_clock::now();
  EXPECT_EQ(handler.Handle(Drain(fresh, "FRESH")).status, 204u);
  EXPECT_GE(std::chrono::steady_clock::now() - sent, std::chrono::seconds(2)) << "written after the close";
  EXPECT_EQ(metrics_.Snapshot().points, 15u);
  EXPECT_EQ(metrics_.Snapshot().late, 0u);

  // Stamped 3 s ago: closed on arrival (still inside the allowance, so only the receipt
  // check can tell).
  const std::string stale = Body(now - 3'000'000'000LL, 4);
  EXPECT_EQ(handler.Handle(Drain(stale, "STALE")).status, 204u);
  EXPECT_EQ(metrics_.Snapshot().late, 12u);
  EXPECT_EQ(metrics_.Snapshot().points, 15u);

  // Read back: exactly the fresh request.
  bucket::BucketMap expected = Expected({&fresh});
  ExpectReadBackEquals(expected);
}

// The flusher keeps its tables from flush to flush (their storage is reused, not rebuilt):
// a series written by one flush and again by the next gives one record per flush, and
// what an outlet reads back is what the in-memory path gives for all the requests.
TEST_F(PreAggregatorTest, TablesReusedAcrossFlushesGiveTheSameRecords) {
  StartAggregator(std::chrono::milliseconds(300));
  const std::int64_t now = base::SystemClock::Get().NowUnixNanos();
  std::vector<std::string> bodies;
  for (int i = 0; i < 6; ++i) bodies.push_back(Body(now, 4 + i));
  std::uint64_t records = 0;
  for (int flush = 0; flush < 3; ++flush) {
    Answers answers;
    for (int r = 0; r < 2; ++r) {
      async_handler_->HandleAsync(Drain(bodies[2 * flush + r], "T" + std::to_string(2 * flush + r)),
                                  answers.Slot(r));
    }
    EXPECT_EQ(answers.Wait(2), (std::vector<unsigned>{204, 204}));
    const PreAggregatorStats stats = aggregator_->stats();
    EXPECT_EQ(stats.flushes, static_cast<std::uint64_t>(flush + 1));
    // 3 sources x 3 series (one window: the bodies share `now`), merged across the
    // flush's two requests.
    EXPECT_EQ(stats.records_written - records, 9u);
    records = stats.records_written;
    EXPECT_EQ(aggregator_->OpenBuckets(), 0u);
  }
  std::uint64_t lines = 0;
  for (int i = 0; i < 6; ++i) lines += 4 + i;
  EXPECT_EQ(metrics_.Snapshot().points, 3 * lines);
  ExpectReadBackEqualsBodies(bodies);
}

// A request whose parts are partly late at receipt (a window closed on its shard's clock)
// writes the others and counts the late ones, with a frame id or without.
TEST_F(PreAggregatorTest, PartsLateAtReceiptAreCountedAndTheRestWritten) {
  ASSERT_TRUE(store_->Ping().ok());  // the receipt check needs the server's clock
  StartAggregator(std::chrono::milliseconds(50));
  const std::int64_t now = base::SystemClock::Get().NowUnixNanos();
  const std::string fresh = Body(now, 5);
  const std::string old = Body(now - 600LL * 1'000'000'000, 3);
  EXPECT_EQ(async_handler_->Handle(Drain(fresh + old, "MIXED")).status, 204u);
  EXPECT_EQ(metrics_.Snapshot().points, 15u);
  EXPECT_EQ(metrics_.Snapshot().late, 9u);
  // All late: answered without a write; a retry of it is late again, not a duplicate.
  EXPECT_EQ(async_handler_->Handle(Drain(old, "OLDONLY")).status, 204u);
  EXPECT_EQ(async_handler_->Handle(Drain(old, "OLDONLY")).status, 204u);
  EXPECT_EQ(metrics_.Snapshot().late, 27u);
  EXPECT_EQ(metrics_.Snapshot().duplicate_request, 0u);
  EXPECT_EQ(async_handler_->Handle(Drain(fresh + old, "MIXED")).status, 204u);  // a retry
  EXPECT_EQ(metrics_.Snapshot().duplicate_request, 1u);
  EXPECT_EQ(metrics_.Snapshot().points, 15u);
  bucket::BucketMap expected = Expected({&fresh});
  ExpectReadBackEquals(expected);
}

// As RedisStoreTest.RetryAfterTheWindowClosedIsADuplicateNotLate, through the flusher: the
// pre-check covers the parts late at receipt too.
TEST_F(PreAggregatorTest, RetryAfterTheWindowClosedIsADuplicateNotLate) {
  ASSERT_TRUE(store_->Ping().ok());
  StartAggregator(std::chrono::milliseconds(50));
  const std::string body = Body(base::SystemClock::Get().NowUnixNanos(), 4);
  ASSERT_EQ(async_handler_->Handle(Drain(body, "AFTERCLOSE")).status, 204u);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // window + 1 s + 1 s grace
  ASSERT_EQ(async_handler_->Handle(Drain(body, "AFTERCLOSE")).status, 204u);
  EXPECT_EQ(metrics_.Snapshot().duplicate_request, 1u);
  EXPECT_EQ(metrics_.Snapshot().late, 0u);
  EXPECT_EQ(metrics_.Snapshot().points, 12u);
  ASSERT_EQ(async_handler_->Handle(Drain(body, "OTHER")).status, 204u);
  EXPECT_EQ(metrics_.Snapshot().late, 12u);
  EXPECT_EQ(metrics_.Snapshot().duplicate_request, 1u);
  bucket::BucketMap expected = Expected({&body});
  ExpectReadBackEquals(expected);
}

// Memory bound: while a write stalls, buckets queued never exceed max_series (the requests
// beyond it are refused at once), and merged buckets are the distinct series of the batch.
TEST_F(PreAggregatorTest, QueuedBucketsStayWithinTheBound) {
  StartAggregator(std::chrono::milliseconds(60'000), /*max_series=*/40);
  const std::int64_t now = base::SystemClock::Get().NowUnixNanos();
  Answers answers;
  // 9 buckets each (3 sources x 3 series), the same 9 series: merged, they stay 9.
  for (int i = 0; i < 8; ++i)
    async_handler_->HandleAsync(Drain(Body(now, 3), "B" + std::to_string(i)), answers.Slot(i));
  ASSERT_TRUE(WaitFor(
      [&] { return aggregator_->stats().requests_merged + aggregator_->stats().requests_refused == 8; }));
  EXPECT_LE(aggregator_->stats().queued_buckets, 40u);
  EXPECT_EQ(aggregator_->OpenBuckets(), 9u) << "one bucket per series and window, however many requests";
  aggregator_->FlushSoon();
  for (unsigned status : answers.Wait(8)) EXPECT_TRUE(status == 204 || status == 503) << status;
  EXPECT_EQ(aggregator_->stats().records_written, 9u);
}

// limits.max_series_per_tenant in the receiver (issue 5, "Limits"): beyond the bound the
// points of series new to the flush are dropped and counted series_limit; the series
// already in the flush keep taking every point, from any request.
TEST_F(PreAggregatorTest, SeriesBeyondTheTenantBoundAreDroppedAndCountedExistingOnesKept) {
  PreAggregatorOptions options = AggregatorOptions(std::chrono::milliseconds(60'000), 200'000);
  options.max_series_per_tenant = 5;
  aggregator_ = std::make_unique<PreAggregator>(*store_, options);
  async_handler_ =
      std::make_unique<drain::DrainHandler>(directory_, *aggregator_, base::SystemClock::Get(), metrics_);
  const std::int64_t now = base::SystemClock::Get().NowUnixNanos();
  // 9 series (3 sources x 3 metrics), 3 points each, all in one window; sent twice.
  const std::string body = Body(now, 9);
  Answers answers;
  async_handler_->HandleAsync(Drain(body, "T1"), answers.Slot(0));
  async_handler_->HandleAsync(Drain(body, "T2"), answers.Slot(1));
  ASSERT_TRUE(WaitFor([&] { return aggregator_->stats().requests_merged == 2; }));
  EXPECT_EQ(aggregator_->OpenBuckets(), 5u);
  aggregator_->FlushSoon();
  EXPECT_EQ(answers.Wait(2), (std::vector<unsigned>{204, 204}));
  EXPECT_EQ(aggregator_->stats().records_written, 5u);
  // The first request opened 5 series (15 points kept, 12 dropped); the second added its
  // points to the same 5 (15 kept) and dropped the 4 others again (12).
  EXPECT_EQ(metrics_.Snapshot().points, 30u);
  EXPECT_EQ(metrics_.Snapshot().series_limit, 24u);

  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // window + 1 s + 1 s grace
  bucket::BucketMap merged = ReadBackAll();
  const std::vector<librato::Gauge> gauges = Gauges(merged);
  std::set<std::pair<std::string, std::string>> series;
  for (const librato::Gauge& g : gauges) {
    // Every kept series has both requests' 3 points each (measures: count; counts: sum).
    if (g.name == "db.latency") {
      EXPECT_EQ(g.count, 6u) << g.source;
    }
    if (g.name == "hits") {
      EXPECT_EQ(g.value, 6.0) << g.source;
    }
    // A measure gives its percentile gauges too: count the series by (name root, source).
    if (g.name == "db.latency" || g.name == "hits" || g.name == "queue") series.emplace(g.name, g.source);
  }
  EXPECT_EQ(series.size(), 5u);
}

// The flush-level merge only while it pays (docs/architecture.md "Receiver"): after a
// flush whose requests shared no bucket, flushes are written unmerged (a series of two
// requests is two records), every 16th flush merges again to measure and, when it folds
// buckets away, merging resumes. The gauges are the in-memory path's throughout.
TEST_F(PreAggregatorTest, FlushesSkipTheMergeWhileItDoesNotPayAndMeasureAgainEvery16th) {
  StartAggregator(std::chrono::milliseconds(100));
  std::vector<std::string> bodies;
  std::uint64_t records = 0;
  std::uint64_t elements = 0;
  std::uint64_t last_elements = 0;  // of the last flush
  // The (shard, window) groups the 9 series of BodyOf(t, 9, "c") fall in: one window.
  std::set<std::uint32_t> shards;
  for (const char* name : {"db.latency", "hits", "queue"}) {
    for (int i = 0; i < 3; ++i)
      shards.insert(bucket::ShardOf("acme", name, "c." + std::to_string(i), kShards));
  }
  const auto flush = [&](int n, const std::string& first, const std::string& second) {
    const PreAggregatorStats stats = FlushPair(n, first, second, "U", bodies);
    const std::uint64_t written = stats.records_written - records;
    records = stats.records_written;
    last_elements = stats.elements_written - elements;
    elements = stats.elements_written;
    return std::make_pair(written, stats.flushes_unmerged);
  };
  const auto now = [] { return base::SystemClock::Get().NowUnixNanos(); };
  // Flush 1 merges (nothing measured yet) but folds nothing: two requests, 18 series.
  std::int64_t t = now();
  EXPECT_EQ(flush(0, BodyOf(t, 9, "a"), BodyOf(t, 9, "b")),
            std::make_pair(std::uint64_t{18}, std::uint64_t{0}));
  // Flushes 2-16: two requests of the same 9 series each, written unmerged: 18 records.
  // From flush 3 on (flush 2's requests may come before flush 1 has decided), each
  // request's records were encoded on its own thread, and each goes as its own element.
  for (int n = 1; n < 16; ++n) {
    t = now();
    const std::string body = BodyOf(t, 9, "c");
    EXPECT_EQ(flush(n, body, body), std::make_pair(std::uint64_t{18}, static_cast<std::uint64_t>(n)));
    if (n >= 2) {
      EXPECT_EQ(last_elements, 2 * shards.size()) << "flush " << n + 1;
    }
  }
  // Flush 17 measures again (merged: 9 records), and since half folded away, flush 18 too.
  for (int n = 16; n < 18; ++n) {
    t = now();
    const std::string body = BodyOf(t, 9, "c");
    EXPECT_EQ(flush(n, body, body), std::make_pair(std::uint64_t{9}, std::uint64_t{15}));
    EXPECT_EQ(last_elements, shards.size());
  }
  std::uint64_t lines = 18 * 18;
  EXPECT_EQ(metrics_.Snapshot().points, 3 * lines);
  ExpectReadBackEqualsBodies(bodies);
}

// An unmerged flush large enough for its key sample (>= 256 sampled keys: ~4,096 records)
// estimates what merging would fold away, and the next flush merges as soon as that
// reaches 1 in 10, without waiting for the 16th flush's probe. Requests of one series per
// line and source (3 series a line).
TEST_F(PreAggregatorTest, ALargeUnmergedFlushEstimatesItsMergeFromASampleOfKeys) {
  StartAggregator(std::chrono::milliseconds(100));
  const auto body = [](std::int64_t t, int lines, const std::string& prefix) {
    std::string b;
    for (int i = 0; i < lines; ++i) {
      b += Framed("<190>1 " + support::Rfc3339Micros(t) + " host app web.1 - source=" + prefix + "." +
                  std::to_string(i) + " measure#db.latency=" + std::to_string(i) +
                  "ms count#hits sample#queue=" + std::to_string(i));
    }
    return b;
  };
  std::vector<std::string> bodies;
  std::uint64_t records = 0;
  const auto flush = [&](int n, const std::string& first, const std::string& second) {
    const PreAggregatorStats stats = FlushPair(n, first, second, "S", bodies);
    const std::uint64_t written = stats.records_written - records;
    records = stats.records_written;
    return std::make_pair(written, stats.flushes_unmerged);
  };
  const auto now = [] { return base::SystemClock::Get().NowUnixNanos(); };
  constexpr int kLines = 1'500;  // 4,500 series a request
  // Flush 1 merges and folds nothing away: flushes 2 and 3 do not merge. (Flush 2's
  // requests may come before flush 1 has decided, so they may not be encoded ahead.)
  EXPECT_EQ(flush(0, body(now(), kLines, "a"), body(now(), kLines, "b")),
            std::make_pair(std::uint64_t{9'000}, std::uint64_t{0}));
  EXPECT_EQ(flush(1, body(now(), kLines, "c"), body(now(), kLines, "d")),
            std::make_pair(std::uint64_t{9'000}, std::uint64_t{1}));
  // Flush 3: two requests of the same 4,500 series (one body, so one window), written
  // unmerged; its sample sees every sampled key twice, so flush 4 merges.
  std::string same = body(now(), kLines, "e");
  EXPECT_EQ(flush(2, same, same), std::make_pair(std::uint64_t{9'000}, std::uint64_t{2}));
  same = body(now(), kLines, "e");
  EXPECT_EQ(flush(3, same, same), std::make_pair(std::uint64_t{4'500}, std::uint64_t{2}));
  // Flush 5 merges too (flush 4 measured half folded away); with distinct series again it
  // folds nothing, so flush 6 does not merge, and its distinct sample keeps flush 7 unmerged.
  EXPECT_EQ(flush(4, body(now(), kLines, "f"), body(now(), kLines, "g")),
            std::make_pair(std::uint64_t{9'000}, std::uint64_t{2}));
  EXPECT_EQ(flush(5, body(now(), kLines, "h"), body(now(), kLines, "i")),
            std::make_pair(std::uint64_t{9'000}, std::uint64_t{3}));
  EXPECT_EQ(flush(6, body(now(), kLines, "j"), body(now(), kLines, "k")),
            std::make_pair(std::uint64_t{9'000}, std::uint64_t{4}));
  EXPECT_EQ(metrics_.Snapshot().points, 14u * kLines * 3u);
  ExpectReadBackEqualsBodies(bodies);
}

// limits.max_series_per_tenant stays exact in an unmerged flush: when the upper bound
// reaches the limit the flush is merged on the spot, and the same points are kept and
// dropped as in SeriesBeyondTheTenantBoundAreDroppedAndCountedExistingOnesKept.
TEST_F(PreAggregatorTest, TheTenantBoundStaysExactInAnUnmergedFlush) {
  StartUnmergedWithTenantBound5();
  const auto now = [] { return base::SystemClock::Get().NowUnixNanos(); };
  // Flush 3: 9 series (3 sources x 3 metrics), 3 points each, one window; sent twice.
  const std::string body = Body(now(), 9);
  Answers answers;
  async_handler_->HandleAsync(Drain(body, "T1"), answers.Slot(0));
  async_handler_->HandleAsync(Drain(body, "T2"), answers.Slot(1));
  EXPECT_EQ(answers.Wait(2), (std::vector<unsigned>{204, 204}));
  const PreAggregatorStats stats = aggregator_->stats();
  EXPECT_EQ(stats.flushes, 3u);
  EXPECT_EQ(stats.flushes_unmerged, 1u) << "flush 3 was merged when its bound was reached";
  EXPECT_EQ(stats.records_written - 6u, 5u);
  // 3 + 3 points, then as in the merged flush: 15 + 15 kept, 12 + 12 dropped.
  EXPECT_EQ(metrics_.Snapshot().points, 36u);
  EXPECT_EQ(metrics_.Snapshot().series_limit, 24u);
}

// A request that alone passes the tenant bound in an unmerged flush, its records encoded
// ahead: its series seen more than once are placed first (PrepareEncoded writes the table
// before the point log), so they are kept and fewer points dropped. 8 new series, 5 kept.
TEST_F(PreAggregatorTest, UnderTheTenantBoundAnEncodedRequestKeepsItsRepeatedSeriesFirst) {
  StartUnmergedWithTenantBound5();
  const std::string body =
      Framed("<190>1 " + support::Rfc3339Micros(base::SystemClock::Get().NowUnixNanos()) +
             " host app web.1 - count#lim.s01=1 count#lim.s02=1 count#lim.s01=1 "
             "count#lim.s03=1 count#lim.s04=1 count#lim.s05=1 count#lim.s06=1 "
             "count#lim.s02=1 count#lim.s07=1 count#lim.s08=1 count#lim.s01=1");
  Answers answers;
  async_handler_->HandleAsync(Drain(body, "R1"), answers.Slot(0));
  EXPECT_EQ(answers.Wait(1), (std::vector<unsigned>{204}));
  EXPECT_EQ(aggregator_->stats().records_written - 6u, 5u);
  // s01 (3 points) and s02 (2) kept, 3 of the 6 series seen once: 8 points kept, 3 dropped.
  EXPECT_EQ(metrics_.Snapshot().points, 6u + 8u);
  EXPECT_EQ(metrics_.Snapshot().series_limit, 3u);
}

// The same when the first request of the flush went to its groups encoded as it was: when
// the second one's upper bound passes the limit, the first one's buckets are placed one by
// one and merged with the second's, and exactly 5 series are kept.
TEST_F(PreAggregatorTest, TheTenantBoundStaysExactWhenAnEncodedRequestIsMergedOnTheSpot) {
  StartUnmergedWithTenantBound5();
  const auto now = [] { return base::SystemClock::Get().NowUnixNanos(); };
  // Flush 3: 1 line of web.0 (its 3 series: within the bound, placed as encoded), then 9
  // lines over web.0-2 (9 series, 3 points each).
  const std::int64_t t = now();
  const std::string first = Body(t, 1);
  const std::string second = Body(t, 9);
  Answers answers;
  async_handler_->HandleAsync(Drain(first, "E1"), answers.Slot(0));
  async_handler_->HandleAsync(Drain(second, "E2"), answers.Slot(1));
  EXPECT_EQ(answers.Wait(2), (std::vector<unsigned>{204, 204}));
  const PreAggregatorStats stats = aggregator_->stats();
  ASSERT_EQ(stats.flushes, 3u);
  EXPECT_EQ(stats.flushes_unmerged, 1u) << "flush 3 was merged when its bound was reached";
  EXPECT_EQ(stats.records_written - 6u, 5u);
  // web.0's 3 series take both requests' points (1 + 3 each); 2 more series take 3 each;
  // the other 4 series' 12 points are dropped.
  EXPECT_EQ(metrics_.Snapshot().points, 3u + 3u + 3u + 15u);
  EXPECT_EQ(metrics_.Snapshot().series_limit, 12u);

  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // window + 1 s + 1 s grace
  bucket::BucketMap merged = ReadBackAll();
  std::set<std::pair<std::string, std::string>> series;
  for (const librato::Gauge& g : Gauges(merged)) {
    if (!g.source.starts_with("web.")) continue;  // flushes 1-2's sources: w0.0, w1.0
    if (g.name == "db.latency" || g.name == "hits" || g.name == "queue") series.emplace(g.name, g.source);
    if (g.name == "db.latency" && g.source == "web.0") {
      EXPECT_EQ(g.count, 4u);
    }
    if (g.name == "hits" && g.source == "web.0") {
      EXPECT_EQ(g.value, 4.0);
    }
  }
  EXPECT_EQ(series.size(), 5u);
  // The first request's series came first: all kept, whatever order the second's went in.
  for (const char* name : {"db.latency", "hits", "queue"})
    EXPECT_TRUE(series.contains({name, "web.0"})) << name;
}

}  // namespace
}  // namespace drainmet::store
