// Outlet: closed windows -> requests of <= 300 gauges of one tenant (SEMANTICS §7.4) ->
// sink, with the retry rules of §7.5 (backoff + jitter, Retry-After, horizon, 4xx final).

#include "common/emit/outlet.h"

#include <algorithm>
#include <deque>

#include "common/emit/retry.h"
#include "common/store/memory_store.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace drainmet::emit {
namespace {

constexpr std::int64_t kSec = base::kNanosPerSecond;
constexpr std::int64_t kT0 = 1709633700;

/// Records every post and answers from a script (then 200).
class ScriptedSink final : public Sink {
 public:
  struct Record {
    std::size_t tenant;
    std::string body;
    std::int64_t at;
  };
  explicit ScriptedSink(const base::Clock& clock) : clock_(clock) {}
  librato::PostResult Post(std::size_t tenant, std::string_view body) override {
    posts.push_back({tenant, std::string(body), clock_.NowUnixNanos()});
    librato::PostResult r;
    r.http_status = 200;
    if (!script.empty()) {
      r = script.front();
      script.pop_front();
    }
    r.delivery = librato::Classify(r.http_status);
    return r;
  }
  std::string_view OutputName(std::size_t) const override { return "scripted"; }
  std::deque<librato::PostResult> script;
  std::vector<Record> posts;

 private:
  const base::Clock& clock_;
};

librato::PostResult Answer(long status, std::optional<std::int64_t> retry_after = std::nullopt) {
  librato::PostResult r;
  r.http_status = status;
  r.retry_after_seconds = retry_after;
  r.body = status == 400 ? R"({"errors":{"params":{"name":["is invalid"]}}})" : "";
  return r;
}

class OutletTest : public ::testing::Test {
 protected:
  OutletTest() {
    for (const char* id : {"acme", "globex"}) {
      config::Tenant t;
      t.id = id;
      t.output = config::OutputKind::kStdout;
      config_.tenants.push_back(t);
    }
    config_.outlet.retry_initial_backoff_ms = 1000;
    config_.outlet.retry_max_backoff_ms = 8000;
    config_.retry_horizon_seconds = 60;
  }

  void AddCounts(std::string_view tenant, int series, std::int64_t t = kT0 + 1) {
    bucket::BucketMap map;
    std::vector<std::string> names;
    for (int i = 0; i < series; ++i) names.push_back("c" + std::to_string(1000 + i));
    for (const std::string& name : names) {
      extract::Point p;
      p.kind = extract::Kind::kCount;
      p.name = name;
      p.value = 1;
      p.time_unix_nanos = t * kSec;
      map.Add(tenant, 60, p);
    }
    ASSERT_TRUE(store_.Ingest(tenant, "", map).ok());
  }

  base::FakeClock clock_{(kT0 + 30) * kSec};
  config::Config config_;
  store::MemoryStore store_{clock_, {}};
  telemetry::Metrics metrics_;
  ScriptedSink sink_{clock_};
};

TEST_F(OutletTest, NothingIsSentBeforeTheWindowCloses) {
  Outlet outlet(config_, store_, sink_, clock_, metrics_, 1);
  AddCounts("acme", 1);
  clock_.SetUnixNanos((kT0 + 65) * kSec - 1);
  outlet.RunOnce();
  EXPECT_TRUE(sink_.posts.empty());
  clock_.SetUnixNanos((kT0 + 65) * kSec);
  outlet.RunOnce();
  ASSERT_EQ(sink_.posts.size(), 1u);
  EXPECT_EQ(metrics_.Snapshot().posted, 1u);
}

// §7.4: one tenant per request, at most 300 gauges.
TEST_F(OutletTest, SplitsRequestsPerTenantAndAt300) {
  Outlet outlet(config_, store_, sink_, clock_, metrics_, 1);
  AddCounts("acme", 301);
  AddCounts("globex", 2);
  clock_.SetUnixNanos((kT0 + 70) * kSec);
  outlet.RunOnce();
  ASSERT_EQ(sink_.posts.size(), 3u);
  std::vector<std::pair<std::size_t, std::size_t>> shape;
  for (const auto& p : sink_.posts) {
    shape.emplace_back(p.tenant, nlohmann::json::parse(p.body).at("gauges").size());
  }
  EXPECT_EQ(shape, (std::vector<std::pair<std::size_t, std::size_t>>{{0, 300}, {0, 1}, {1, 2}}));
  EXPECT_EQ(metrics_.Snapshot().posted, 303u);
}

// §7.5: 5xx and 429 retry with backoff; Retry-After is honoured; the same body is resent.
TEST_F(OutletTest, RetriesWithBackoffAndHonoursRetryAfter) {
  Outlet outlet(config_, store_, sink_, clock_, metrics_, 7);
  AddCounts("acme", 1);
  sink_.script = {Answer(500), Answer(429, 20), Answer(200)};
  clock_.SetUnixNanos((kT0 + 65) * kSec);
  outlet.RunOnce();
  ASSERT_EQ(sink_.posts.size(), 1u);
  outlet.RunOnce();  // not due yet: backoff is at least 10% of the base
  ASSERT_EQ(sink_.posts.size(), 1u);
  clock_.AdvanceNanos(2 * kSec);  // past the first backoff ceiling (1 s base)
  outlet.RunOnce();
  ASSERT_EQ(sink_.posts.size(), 2u);
  clock_.AdvanceNanos(19 * kSec);  // Retry-After: 20 not yet passed
  outlet.RunOnce();
  ASSERT_EQ(sink_.posts.size(), 2u);
  clock_.AdvanceNanos(1 * kSec + 1);
  outlet.RunOnce();
  ASSERT_EQ(sink_.posts.size(), 3u);
  EXPECT_EQ(sink_.posts[0].body, sink_.posts[2].body);
  const telemetry::Counters c = metrics_.Snapshot();
  EXPECT_EQ(c.posted, 1u);
  EXPECT_EQ(c.retried, 2u);
  EXPECT_EQ(outlet.pending(), 0u);
}

// §7.5: other 4xx: rejected, counted, never retried.
TEST_F(OutletTest, Other4xxIsRejectedNotRetried) {
  Outlet outlet(config_, store_, sink_, clock_, metrics_, 1);
  AddCounts("acme", 2);
  sink_.script = {Answer(400)};
  clock_.SetUnixNanos((kT0 + 65) * kSec);
  outlet.RunOnce();
  clock_.AdvanceNanos(600 * kSec);
  outlet.RunOnce();
  EXPECT_EQ(sink_.posts.size(), 1u);
  EXPECT_EQ(metrics_.Snapshot().rejected, 2u);
  EXPECT_EQ(outlet.pending(), 0u);
}

// §7.5: past the retry horizon the gauges expire.
TEST_F(OutletTest, ExpiresAfterTheRetryHorizon) {
  Outlet outlet(config_, store_, sink_, clock_, metrics_, 3);
  AddCounts("acme", 1);
  for (int i = 0; i < 100; ++i) sink_.script.push_back(Answer(503));
  clock_.SetUnixNanos((kT0 + 65) * kSec);
  for (int i = 0; i < 200 && metrics_.Snapshot().expired == 0; ++i) {
    outlet.RunOnce();
    clock_.AdvanceNanos(1 * kSec);
  }
  EXPECT_EQ(metrics_.Snapshot().expired, 1u);
  EXPECT_EQ(metrics_.Snapshot().posted, 0u);
  EXPECT_EQ(outlet.pending(), 0u);
  // Every attempt happened within the horizon (window end + 60 s).
  for (const auto& p : sink_.posts) EXPECT_LE(p.at, (kT0 + 60 + 60) * kSec);
  EXPECT_GE(sink_.posts.size(), 3u);
}

// Issue 5 ("Limits": pending retries bounded): while the API fails, the bodies waiting for
// a retry stay within outlet.max_pending_retry_bytes; the oldest windows are dropped
// first, counted expired.
TEST_F(OutletTest, PendingRetriesStayWithinTheByteBoundOldestDroppedFirst) {
  config_.retry_horizon_seconds = 3600;  // no window expires by the horizon here
  Outlet outlet(config_, store_, sink_, clock_, metrics_, 3);
  for (int i = 0; i < 1000; ++i) sink_.script.push_back(Answer(503));
  // Window 0 alone: the size of one queued body (one gauge).
  AddCounts("acme", 1, kT0 + 1);
  clock_.SetUnixNanos((kT0 + 70) * kSec);
  outlet.RunOnce();
  ASSERT_EQ(outlet.pending(), 1u);
  const std::uint64_t one = outlet.pending_bytes();
  ASSERT_GT(one, 0u);
  // Room for two and a half bodies of the same size.
  config_.outlet.max_pending_retry_bytes = 2 * one + one / 2;
  for (int w = 1; w <= 5; ++w) {
    AddCounts("acme", 1, kT0 + 60 * w + 1);
    clock_.SetUnixNanos((kT0 + 60 * w + 70) * kSec);
    outlet.RunOnce();
    EXPECT_LE(outlet.pending_bytes(), config_.outlet.max_pending_retry_bytes) << w;
  }
  // Six windows of one gauge: the two newest are queued, the four oldest dropped.
  EXPECT_EQ(outlet.pending(), 2u);
  EXPECT_EQ(metrics_.Snapshot().expired, 4u);
  EXPECT_EQ(metrics_.Snapshot().posted, 0u);
  // The API is back: what is left is posted, and it is the two newest windows.
  sink_.script.clear();
  sink_.posts.clear();
  clock_.AdvanceNanos(3600 * kSec);
  outlet.RunOnce();
  EXPECT_EQ(metrics_.Snapshot().posted, 2u);
  std::vector<std::int64_t> times;
  for (const auto& post : sink_.posts) {
    const nlohmann::json body = nlohmann::json::parse(post.body);
    for (const auto& g : body.at("gauges")) times.push_back(g.at("measure_time"));
  }
  std::sort(times.begin(), times.end());
  EXPECT_EQ(times, (std::vector<std::int64_t>{kT0 + 240, kT0 + 300}));
  EXPECT_EQ(outlet.pending_bytes(), 0u);
}

// Jitter: two outlets with different seeds do not retry in lockstep.
TEST_F(OutletTest, BackoffIsJittered) {
  std::vector<std::int64_t> first_retry;
  for (std::uint64_t seed : {1u, 2u, 3u, 4u}) {
    base::FakeClock clock((kT0 + 65) * kSec);
    store::MemoryStore store(clock, {});
    ScriptedSink sink(clock);
    telemetry::Metrics metrics;
    config_.outlet.retry_initial_backoff_ms = 10000;
    Outlet outlet(config_, store, sink, clock, metrics, seed);
    bucket::BucketMap map;
    extract::Point p;
    p.kind = extract::Kind::kCount;
    p.name = "x";
    p.time_unix_nanos = (kT0 + 64) * kSec;
    map.Add("acme", 1, p);
    ASSERT_TRUE(store.Ingest("acme", "", map).ok());
    clock.AdvanceNanos(10 * kSec);
    sink.script = {Answer(500)};
    outlet.RunOnce();
    for (int i = 0; i < 200 && sink.posts.size() < 2; ++i) {
      clock.AdvanceNanos(kSec / 10);
      outlet.RunOnce();
    }
    ASSERT_EQ(sink.posts.size(), 2u);
    first_retry.push_back(sink.posts[1].at - sink.posts[0].at);
  }
  std::sort(first_retry.begin(), first_retry.end());
  EXPECT_NE(first_retry.front(), first_retry.back());
}

// Shutdown: every open window is flushed, closed or not.
TEST_F(OutletTest, FlushSendsOpenWindows) {
  Outlet outlet(config_, store_, sink_, clock_, metrics_, 1);
  AddCounts("acme", 1);
  outlet.Flush(1000);
  ASSERT_EQ(sink_.posts.size(), 1u);
  EXPECT_EQ(store_.OpenBuckets(), 0u);
}

TEST(ForEachRequestTest, CutsByTenantThenSize) {
  std::vector<librato::Gauge> gauges(5);
  gauges[0].tenant = gauges[1].tenant = gauges[2].tenant = "a";
  gauges[3].tenant = gauges[4].tenant = "b";
  std::vector<std::size_t> sizes;
  ForEachRequest(gauges, 2, [&](std::span<const librato::Gauge> chunk) { sizes.push_back(chunk.size()); });
  EXPECT_EQ(sizes, (std::vector<std::size_t>{2, 1, 2}));
}

}  // namespace
}  // namespace drainmet::emit

namespace drainmet::emit {
namespace {

// SEMANTICS §7.5: full jitter under a doubling ceiling with a cap, a floor, Retry-After.
TEST(RetryDelayTest, StaysWithinTheJitterBoundsAndHonoursRetryAfter) {
  config::Outlet outlet;
  outlet.retry_initial_backoff_ms = 1000;
  outlet.retry_max_backoff_ms = 8000;
  std::mt19937_64 rng(42);
  librato::PostResult failed;
  failed.http_status = 503;
  constexpr std::int64_t kMs = 1'000'000;
  for (int i = 0; i < 200; ++i) {
    const std::int64_t first = RetryDelayNanos(outlet, 0, failed, rng);
    EXPECT_GE(first, 100 * kMs);
    EXPECT_LE(first, 1100 * kMs);
    const std::int64_t late = RetryDelayNanos(outlet, 30, failed, rng);
    EXPECT_LE(late, 8100 * kMs);
  }
  failed.retry_after_seconds = 20;
  EXPECT_GE(RetryDelayNanos(outlet, 0, failed, rng), 20'000 * kMs);
}

TEST(RetryDelayTest, ResultTextsForMetricsAndLogs) {
  librato::PostResult r;
  EXPECT_EQ(ResultLabel(r), "transport");
  EXPECT_EQ(StatusText(r), "none");
  r.error = "Connection refused";
  EXPECT_EQ(FailureText(r), "Connection refused");
  r = {};
  r.http_status = 429;
  EXPECT_EQ(ResultLabel(r), "429");
  r.http_status = 400;
  r.body = R"({"errors":{}})";
  EXPECT_EQ(ResultLabel(r), "4xx");
  EXPECT_EQ(FailureText(r), R"({"errors":{}})");
  r.http_status = 502;
  r.body.clear();
  EXPECT_EQ(ResultLabel(r), "5xx");
  EXPECT_EQ(FailureText(r), "HTTP 502");
  r.http_status = 204;
  EXPECT_EQ(ResultLabel(r), "2xx");
}

}  // namespace
}  // namespace drainmet::emit
