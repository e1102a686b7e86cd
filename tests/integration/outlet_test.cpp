// The distributed outlet (services/outlet) against a private redis-server and a fake
// Librato: what receivers ingest through RedisStore arrives at the API exactly as the
// in-memory path would build it (issue "Distributed drainmet"); shards are shared between
// outlets; a fenced outlet leaves the rest to the next holder (RELIABILITY.md §3.3);
// SEMANTICS §7.5 retries and rejections; Stop releases the leases; the binary's smoke test.

#include "services/outlet/outlet.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "common/bucket/codec.h"
#include "common/config/auth.h"
#include "common/drain/handler.h"
#include "common/drain/processor.h"
#include "common/librato/gauge.h"
#include "common/store/redis_store.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/child_process.h"
#include "tests/support/drain_text.h"
#include "tests/support/eventually.h"
#include "tests/support/fake_librato.h"
#include "tests/support/http_client.h"
#include "tests/support/redis_server.h"

namespace drainmet::outlet {
namespace {

using std::chrono::milliseconds;

const char kOutletBinary[] = DRAINMET_BINARY_DIR "/services/outlet/drainmet-outlet";

using support::Framed;

/// `lines` frames stamped `t`: measures, counts and samples over 3 sources and 2 names.
std::string Body(std::int64_t t, int lines) {
  std::string body;
  for (int i = 0; i < lines; ++i) {
    body += Framed("<190>1 " + support::Rfc3339Micros(t) + " host app web.1 - source=web." +
                   std::to_string(i % 3) + " measure#db.latency=" + std::to_string(i * 1.5) +
                   "ms measure#api." + std::to_string(i % 2) + "=" + std::to_string(i) +
                   " count#hits sample#queue=" + std::to_string(i));
  }
  return body;
}

/// A gauge as identified on the wire: tenant (from the Basic-auth email), name, source, time.
std::string GaugeId(std::string_view tenant, const std::string& name, const std::string& source,
                    std::int64_t t) {
  return std::string(tenant) + "|" + name + "|" + source + "|" + std::to_string(t);
}

class OutletTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = support::RedisServer::Start(); }
  static void TearDownTestSuite() { server_ = absl::UnknownError("stopped"); }

  void SetUp() override {
    if (absl::IsNotFound(server_.status()))
      GTEST_SKIP() << "no redis-server; deploy/bootstrap.sh installs it";
    ASSERT_TRUE(server_.ok()) << server_.status();
    const std::string_view flush[] = {"FLUSHALL"};
    ASSERT_TRUE(client_.Command(flush).ok());
    auto fake = support::FakeLibrato::Start();
    ASSERT_TRUE(fake.ok()) << fake.status();
    fake_ = *std::move(fake);
  }

  static store::RedisClient::Options ClientOptions() {
    store::RedisClient::Options o;
    o.unix_socket = (*server_)->socket_path();
    o.command_timeout = milliseconds(2000);
    return o;
  }

  config::Config MakeConfig(std::uint32_t shards) const {
    config::Config c;
    c.grace_seconds = 1;
    c.redis.shards = shards;
    c.redis.servers = {"unix:" + (*server_)->socket_path()};
    c.outlet.seal_interval_ms = 50;
    c.outlet.lease_ttl_ms = 1500;
    c.outlet.lease_renew_ms = 300;
    c.outlet.retry_initial_backoff_ms = 100;
    c.outlet.retry_max_backoff_ms = 1000;
    for (const char* id : {"acme", "beta"}) {
      config::Tenant t;
      t.id = id;
      t.token_hashes.push_back(config::HashToken(std::string("tok-") + id));
      t.default_resolution_seconds = 1;
      t.output = config::OutputKind::kLibrato;
      t.librato.url = fake_->Url();
      t.librato.email = std::string(id) + "@example.com";
      t.librato.api_token = std::string("api-") + id;
      c.tenants.push_back(t);
    }
    EXPECT_TRUE(config::Validate(c).ok()) << config::Validate(c);
    return c;
  }

  /// Ingests `body` for `tenant` through RedisStore + DrainHandler (resolution 1, grace 1)
  /// and merges the same body through the in-memory path into expected_.
  void Ingest(const config::Config& c, const std::string& tenant, const std::string& body,
              std::string frame) {
    store::RedisStoreOptions options;
    options.shards = c.redis.shards;
    options.servers = {ClientOptions()};
    options.grace_seconds = c.grace_seconds;
    store::RedisStore store(options);
    auto directory = std::make_shared<const drain::TenantDirectory>(c);
    telemetry::Metrics metrics;
    drain::DrainHandler handler(directory, store, base::SystemClock::Get(), metrics);
    http::Request r;
    r.method = "POST";
    r.target = "/logs?resolution=1";
    r.headers.emplace_back("Authorization", "Basic " + absl::Base64Escape("tok-" + tenant + ":"));
    r.headers.emplace_back("Logplex-Frame-Id", frame);
    r.body = body;
    ASSERT_EQ(handler.Handle(r).status, 204u);

    extract::DrainOptions drain_options;
    drain_options.resolution_seconds = 1;
    bucket::BucketMap request;
    telemetry::Counters counters;
    drain::ProcessBody(tenant, drain_options, body, {}, request, counters);
    expected_.Merge(std::move(request));
  }

  std::vector<librato::Gauge> ExpectedGauges() {
    std::vector<bucket::ClosedBucket> closed = expected_.TakeAll();
    telemetry::Counters counters;
    return librato::BuildGauges(closed, counters);
  }

  /// Gauges of the 2xx answers by GaugeId, with how often each arrived.
  std::map<std::string, std::pair<nlohmann::json, int>> Received() const {
    std::map<std::string, std::pair<nlohmann::json, int>> got;
    for (const support::RecordedRequest& r : fake_->Requests()) {
      if (r.status < 200 || r.status >= 300) continue;
      const std::string tenant = r.user.substr(0, r.user.find('@'));
      const nlohmann::json body = nlohmann::json::parse(r.body, nullptr, false);
      if (!body.is_object() || !body.contains("gauges")) continue;
      for (const nlohmann::json& g : body["gauges"]) {
        const std::string id = GaugeId(tenant, g.value("name", ""), g.value("source", ""),
                                       g.value("measure_time", std::int64_t{0}));
        auto& entry = got[id];
        entry.first = g;
        ++entry.second;
      }
    }
    return got;
  }

  /// Waits until every expected gauge arrived, then checks each arrived once with the
  /// in-memory path's values (SEMANTICS §7.1-7.3; sums to 1e-12 relative).
  void ExpectExactlyTheExpectedGauges(const std::vector<librato::Gauge>& want) {
    ASSERT_FALSE(want.empty());
    EXPECT_TRUE(support::Eventually([&] { return Received().size() >= want.size(); }, milliseconds(15000)))
        << "got " << Received().size() << " of " << want.size() << " gauges";
    std::this_thread::sleep_for(milliseconds(400));  // A duplicate would show by now.
    const auto got = Received();
    EXPECT_EQ(got.size(), want.size());
    for (const librato::Gauge& w : want) {
      const std::string id = GaugeId(w.tenant, w.name, w.source, w.measure_time);
      SCOPED_TRACE(id);
      auto it = got.find(id);
      ASSERT_NE(it, got.end());
      EXPECT_EQ(it->second.second, 1) << "posted more than once";
      const nlohmann::json& g = it->second.first;
      EXPECT_EQ(g.value("period", 0), w.period);
      if (w.complex) {
        EXPECT_EQ(g.value("count", std::uint64_t{0}), w.count);
        EXPECT_EQ(g.value("min", 0.0), w.min);
        EXPECT_EQ(g.value("max", 0.0), w.max);
        EXPECT_NEAR(g.value("sum", 0.0), w.sum, 1e-12 * std::abs(w.sum));
        EXPECT_NEAR(g.value("sum_squares", 0.0), w.sum_squares, 1e-12 * std::abs(w.sum_squares));
      } else {
        EXPECT_EQ(g.value("value", -1.0), w.value);
      }
    }
  }

  /// Every window of every shard acked: nothing pending, nothing sealed and unacked.
  bool AllAcked(std::uint32_t shards) {
    for (std::uint32_t s = 0; s < shards; ++s) {
      for (const char* key : {"pending", "sealed_index"}) {
        const std::string k = store::ShardProtocol::Key(s, key);
        const std::string_view zcard[] = {"ZCARD", k};
        auto r = client_.Command(zcard);
        if (!r.ok() || r->integer != 0) return false;
      }
    }
    return true;
  }

  /// The tenants marked sent in any window of `shard` (sent:<close> sets), sorted.
  std::vector<std::string> SentTenants(std::uint32_t shard) {
    std::vector<std::string> tenants;
    const std::string pattern = store::ShardProtocol::Key(shard, "sent:*");
    const std::string_view keys[] = {"KEYS", pattern};
    auto found = client_.Command(keys);
    if (!found.ok() || !found->is_array()) return tenants;
    for (const store::Reply& key : found->elements) {
      const std::string_view members[] = {"SMEMBERS", key.str};
      auto got = client_.Command(members);
      if (!got.ok() || !got->is_array()) continue;
      for (const store::Reply& m : got->elements) tenants.push_back(m.str);
    }
    std::sort(tenants.begin(), tenants.end());
    return tenants;
  }

  bool LeaseExists(std::uint32_t shard) {
    const std::string k = store::ShardProtocol::Key(shard, "lease");
    const std::string_view exists[] = {"EXISTS", k};
    auto r = client_.Command(exists);
    return r.ok() && r->integer == 1;
  }

  std::unique_ptr<ShardOutlet> NewOutlet(const config::Config& c, telemetry::Metrics& metrics,
                                         std::string owner = "") {
    OutletOptions o;
    o.owner = std::move(owner);
    o.shutdown_timeout_ms = 3000;
    auto outlet = std::make_unique<ShardOutlet>(c, o, base::SystemClock::Get(), metrics);
    EXPECT_TRUE(outlet->Start().ok());
    return outlet;
  }

  static inline absl::StatusOr<std::unique_ptr<support::RedisServer>> server_ =
      absl::UnknownError("not started");
  store::RedisClient client_{ClientOptions()};
  std::unique_ptr<support::FakeLibrato> fake_;
  bucket::BucketMap expected_;
};

std::int64_t Now() { return base::SystemClock::Get().NowUnixNanos(); }

TEST_F(OutletTest, PostsExactlyTheGaugesOfTheMemoryPath) {
  const config::Config c = MakeConfig(8);
  const std::int64_t t = Now();
  Ingest(c, "acme", Body(t, 40), "F1");
  Ingest(c, "acme", Body(t, 9), "F2");
  Ingest(c, "beta", Body(t, 17), "F3");
  telemetry::Metrics metrics;
  auto outlet = NewOutlet(c, metrics);
  EXPECT_TRUE(support::Eventually([&] { return outlet->HeldShards().size() == 8; }, milliseconds(3000)));
  const std::vector<librato::Gauge> want = ExpectedGauges();
  ExpectExactlyTheExpectedGauges(want);
  EXPECT_TRUE(support::Eventually([&] { return AllAcked(8); }, milliseconds(3000)));
  const telemetry::Counters counters = metrics.Snapshot();
  EXPECT_EQ(counters.posted, want.size());
  EXPECT_EQ(counters.retried, 0u);
  for (const support::RecordedRequest& r : fake_->Requests()) {
    EXPECT_TRUE(r.basic_auth);
    EXPECT_EQ(r.password, "api-" + r.user.substr(0, r.user.find('@')));
  }
  outlet->Stop();
}

// Lists as a pre-aggregating receiver writes them (docs/redis-layout.md "Record encoding"):
// batch elements of many records, mixed with single-record elements (RedisStore), plus a
// batch with a record that does not decode and an element whose framing is broken. The
// outlet merges every good record to the memory path's gauges and counts the two bad ones.
TEST_F(OutletTest, ReadsBatchElementsMixedWithSinglesAndSkipsWhatIsCorrupt) {
  const config::Config c = MakeConfig(8);
  const std::int64_t t = Now();
  Ingest(c, "acme", Body(t, 12), "F1");  // single-record elements

  // beta: its buckets written as a flush writes them, one batch element per (shard, window).
  bucket::BucketMap beta;
  {
    extract::DrainOptions options;
    options.resolution_seconds = 1;
    telemetry::Counters counters;
    drain::ProcessBody("beta", options, Body(t, 30), {}, beta, counters);
  }
  store::RedisStoreOptions options;
  options.shards = c.redis.shards;
  options.grace_seconds = c.grace_seconds;
  std::map<store::ShardWindow, std::vector<std::pair<bucket::RecordKeyView, const bucket::PartialBucket*>>>
      groups;
  for (const auto& [encoded, partial] : beta.map()) {
    bucket::RecordKeyView key;
    ASSERT_TRUE(bucket::KeyViewOf(encoded, &key));
    groups[store::ShardWindowOf(key, options)].emplace_back(key, &partial);
  }
  const auto varint = [](std::size_t n) {
    std::string out;
    for (; n >= 0x80; n >>= 7) out.push_back(static_cast<char>(n | 0x80));
    out.push_back(static_cast<char>(n));
    return out;
  };
  const std::string corrupt =
      "\x0a\x02"
      "ab";  // tenant "ab", nothing else: count 0
  store::ShardProtocol protocol;
  std::size_t batches = 0;
  bool first = true;
  for (const auto& [where, records] : groups) {
    std::string bytes;
    std::vector<std::size_t> ends;
    bucket::ElementWriter writer(bytes, ends);
    for (const auto& [key, partial] : records) writer.Add(key, *partial);
    writer.Close();
    ASSERT_EQ(ends.size(), 1u);
    std::vector<std::string> elements = {bytes};
    if (writer.records() > 1) ++batches;
    if (first) {
      // Next to the good element: a batch holding a record that does not decode, and one
      // whose first length runs past its end.
      elements.push_back(std::string(1, bucket::kBatchElementTag) + varint(corrupt.size()) + corrupt);
      elements.push_back(std::string(1, bucket::kBatchElementTag) + varint(500) + "short");
      first = false;
    }
    std::vector<store::IngestRecord> ingest;
    for (const std::string& e : elements) ingest.push_back(store::IngestRecord{where.close, e});
    const std::vector<store::IngestRequest> requests = {{"beta", "", ingest}};
    absl::StatusOr<std::vector<store::ShardIngestResult>> got =
        protocol.Ingest(client_, where.shard, requests);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), 1u);
    EXPECT_EQ((*got)[0].applied, static_cast<std::int64_t>(elements.size()));
  }
  EXPECT_GE(batches, 4u) << "most (shard, window)s of the 15 series over 8 shards hold several records";
  expected_.Merge(std::move(beta));

  telemetry::Metrics metrics;
  auto outlet = NewOutlet(c, metrics);
  const std::vector<librato::Gauge> want = ExpectedGauges();
  ExpectExactlyTheExpectedGauges(want);
  EXPECT_TRUE(support::Eventually([&] { return AllAcked(8); }, milliseconds(3000)));
  const std::string text = metrics.RenderText();
  EXPECT_NE(text.find("\ndrainmet_outlet_bad_records_total 2\n"), std::string::npos) << text;
  outlet->Stop();
}

TEST_F(OutletTest, TwoOutletsShareTheShardsAndPostEachGaugeOnce) {
  const config::Config c = MakeConfig(8);
  telemetry::Metrics ma, mb;
  auto a = NewOutlet(c, ma, "outlet-a");
  auto b = NewOutlet(c, mb, "outlet-b");
  // Rebalance: each ends with ceil(8 / 2) = 4 shards, together all 8, none twice.
  const bool balanced = support::Eventually(
      [&] {
        auto ha = a->HeldShards();
        auto hb = b->HeldShards();
        return ha.size() == 4 && hb.size() == 4;
      },
      milliseconds(10000));
  auto ha = a->HeldShards();
  auto hb = b->HeldShards();
  EXPECT_TRUE(balanced) << ha.size() << " + " << hb.size();
  std::vector<std::uint32_t> all = ha;
  all.insert(all.end(), hb.begin(), hb.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<std::uint32_t>{0, 1, 2, 3, 4, 5, 6, 7}));

  const std::int64_t t = Now();
  Ingest(c, "acme", Body(t, 30), "F1");
  Ingest(c, "beta", Body(t, 30), "F2");
  ExpectExactlyTheExpectedGauges(ExpectedGauges());
  EXPECT_TRUE(support::Eventually([&] { return AllAcked(8); }, milliseconds(3000)));
  EXPECT_GT(ma.Snapshot().posted, 0u);
  EXPECT_GT(mb.Snapshot().posted, 0u);
  a->Stop();
  b->Stop();
}

TEST_F(OutletTest, FencedOutletLeavesTheUnsentTenantsToTheNextHolder) {
  // RELIABILITY.md §3.3: A posts one tenant (200, marked sent) and is stuck on the other
  // when its lease is taken over; B re-emits only the stuck one and acks; A never marks or
  // acks. A posts both tenants' requests at once (outlet.max_inflight_requests), so either
  // may arrive first: the first gets the 200.
  config::Config c = MakeConfig(1);
  config::Config slow_retries = c;
  slow_retries.outlet.retry_initial_backoff_ms = 20000;  // A's retry waits >= 2 s.
  slow_retries.outlet.retry_max_backoff_ms = 20000;
  fake_->Script({{200, "{}", std::nullopt, 0}, {500, "{}", std::nullopt, 1500}});
  const std::int64_t t = Now();
  Ingest(c, "acme", Body(t, 10), "F1");
  Ingest(c, "beta", Body(t, 10), "F2");
  telemetry::Metrics ma, mb;
  auto a = NewOutlet(slow_retries, ma, "outlet-a");
  ASSERT_TRUE(fake_->WaitForRequests(2, milliseconds(10000)));  // One answered, one held.
  const std::string done_user = fake_->Requests()[0].user;
  const std::string stuck_user = fake_->Requests()[1].user;
  ASSERT_NE(done_user, stuck_user);
  // A marks the answered tenant sent before its lease goes.
  ASSERT_TRUE(support::Eventually(
      [&] { return SentTenants(0) == std::vector<std::string>{done_user.substr(0, done_user.find('@'))}; },
      milliseconds(3000)));
  a->PauseLeaseManagerForTest(true);
  const std::string lease_key = store::ShardProtocol::Key(0, "lease");
  const std::string_view del[] = {"DEL", lease_key};
  ASSERT_TRUE(client_.Command(del).ok());  // As if A's lease expired while it was stalled.
  auto b = NewOutlet(c, mb, "outlet-b");
  ASSERT_TRUE(support::Eventually([&] { return b->HeldShards().size() == 1; }, milliseconds(3000)));
  a->PauseLeaseManagerForTest(false);
  EXPECT_TRUE(support::Eventually([&] { return a->HeldShards().empty(); }, milliseconds(3000)));

  EXPECT_TRUE(support::Eventually([&] { return AllAcked(1); }, milliseconds(10000)));
  std::this_thread::sleep_for(milliseconds(2500));  // Past A's retry time: it must not post.
  const std::vector<support::RecordedRequest> requests = fake_->Requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].status, 200u);
  EXPECT_EQ(requests[1].status, 500u);
  EXPECT_EQ(requests[2].user, stuck_user);
  EXPECT_EQ(requests[2].status, 200u);
  EXPECT_EQ(requests[2].body, requests[1].body) << "a re-emission is byte-identical";
  const std::uint64_t stuck_gauges = nlohmann::json::parse(requests[2].body)["gauges"].size();
  EXPECT_EQ(mb.Snapshot().retried, stuck_gauges) << "B's re-emission counts as retried";
  EXPECT_EQ(ma.Snapshot().posted + mb.Snapshot().posted, ExpectedGauges().size());
  a->Stop();
  b->Stop();
}

TEST_F(OutletTest, ServerErrorIsRetriedThenAcked) {
  // SEMANTICS §7.5: 5xx is retried (same body) until 2xx; then the window is acked.
  const config::Config c = MakeConfig(1);
  fake_->Script({{500, "{\"errors\":\"busy\"}", std::nullopt, 0}});
  Ingest(c, "acme", Body(Now(), 5), "F1");
  telemetry::Metrics metrics;
  auto outlet = NewOutlet(c, metrics);
  ASSERT_TRUE(fake_->WaitForRequests(2, milliseconds(10000)));
  EXPECT_TRUE(support::Eventually([&] { return AllAcked(1); }, milliseconds(3000)));
  std::this_thread::sleep_for(milliseconds(300));
  const auto requests = fake_->Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].status, 500u);
  EXPECT_EQ(requests[1].status, 200u);
  EXPECT_EQ(requests[0].body, requests[1].body);
  const std::uint64_t gauges = nlohmann::json::parse(requests[1].body)["gauges"].size();
  EXPECT_EQ(metrics.Snapshot().retried, gauges);
  EXPECT_EQ(metrics.Snapshot().posted, gauges);
  outlet->Stop();
}

TEST_F(OutletTest, ConcurrentRequestsRetryAndPostEachGaugeOnce) {
  // outlet.max_inflight_requests: a tenant's requests go out several at once (libcurl
  // multi, keep-alive); a 500 and a 429 with Retry-After among them are retried (same body,
  // the 429 not before its Retry-After), every gauge arrives exactly once, then the window
  // is acked.
  config::Config c = MakeConfig(1);
  c.outlet.max_gauges_per_request = 5;
  c.outlet.max_inflight_requests = 4;
  std::vector<support::FakeLibrato::Answer> script = {{500, "{\"errors\":\"busy\"}", std::nullopt, 300},
                                                      {429, "{}", std::string("1"), 300}};
  for (int i = 0; i < 12; ++i) script.push_back({200, "{}", std::nullopt, 300});
  fake_->Script(script);
  Ingest(c, "acme", Body(Now(), 30), "F1");
  const std::vector<librato::Gauge> want = ExpectedGauges();
  const std::size_t posts = (want.size() + 4) / 5;
  ASSERT_GE(posts, 6u) << "the test needs more requests than may be in flight";
  telemetry::Metrics metrics;
  auto outlet = NewOutlet(c, metrics);
  ExpectExactlyTheExpectedGauges(want);
  EXPECT_TRUE(support::Eventually([&] { return AllAcked(1); }, milliseconds(3000)));
  outlet->Stop();

  const auto requests = fake_->Requests();
  ASSERT_EQ(requests.size(), posts + 2);
  // Several in flight at once: the second and third arrived while the first was held.
  EXPECT_LT(requests[2].received - requests[0].received, milliseconds(300));
  // Never more than 4 at once: the fifth waited for an answer.
  EXPECT_GE(requests[4].received - requests[0].received, milliseconds(250));
  // The 500's and the 429's bodies were posted again, the 429's after its Retry-After.
  int again_500 = 0;
  int again_429 = 0;
  for (std::size_t i = 2; i < requests.size(); ++i) {
    if (requests[i].body == requests[0].body) ++again_500;
    if (requests[i].body == requests[1].body) {
      ++again_429;
      EXPECT_GE(requests[i].received - requests[1].received, milliseconds(1000 + 300));
    }
  }
  EXPECT_EQ(again_500, 1);
  EXPECT_EQ(again_429, 1);
  const std::uint64_t retried = nlohmann::json::parse(requests[0].body)["gauges"].size() +
                                nlohmann::json::parse(requests[1].body)["gauges"].size();
  EXPECT_EQ(metrics.Snapshot().retried, retried);
  EXPECT_EQ(metrics.Snapshot().posted, want.size());
  // Keep-alive: at most one connection per request in flight, reused by later requests.
  std::set<std::string> connections;
  for (const support::RecordedRequest& r : requests) connections.insert(r.remote_address);
  EXPECT_LE(connections.size(), 4u);
}

TEST_F(OutletTest, ClientErrorIsRejectedAckedAndNotRetried) {
  // SEMANTICS §7.5: a 4xx other than 429 is permanent: counted rejected, the window acked.
  const config::Config c = MakeConfig(1);
  fake_->Script({{400, "{\"errors\":{\"params\":\"bad\"}}", std::nullopt, 0}});
  Ingest(c, "acme", Body(Now(), 5), "F1");
  telemetry::Metrics metrics;
  auto outlet = NewOutlet(c, metrics);
  ASSERT_TRUE(fake_->WaitForRequests(1, milliseconds(10000)));
  EXPECT_TRUE(support::Eventually([&] { return AllAcked(1); }, milliseconds(3000)));
  std::this_thread::sleep_for(milliseconds(500));
  const auto requests = fake_->Requests();
  ASSERT_EQ(requests.size(), 1u);
  const std::uint64_t gauges = nlohmann::json::parse(requests[0].body)["gauges"].size();
  EXPECT_EQ(metrics.Snapshot().rejected, gauges);
  EXPECT_EQ(metrics.Snapshot().retried, 0u);
  EXPECT_EQ(metrics.Snapshot().posted, 0u);
  // RELIABILITY.md §3.3 step 4: the request is kept as a dead letter of its shard.
  store::ShardProtocol protocol;
  absl::StatusOr<std::vector<store::DeadLetter>> letters = protocol.DeadLetters(client_, 0, 10);
  ASSERT_TRUE(letters.ok()) << letters.status();
  ASSERT_EQ(letters->size(), 1u);
  const store::DeadLetter& letter = letters->front();
  EXPECT_EQ(letter.tenant, "acme");
  EXPECT_EQ(letter.status, 400);
  EXPECT_EQ(letter.reason, "rejected");
  EXPECT_EQ(letter.gauges, static_cast<std::int64_t>(gauges));
  EXPECT_EQ(letter.payload_sha256, config::Sha256Hex(requests[0].body));
  EXPECT_NE(letter.detail.find("bad"), std::string::npos) << letter.detail;
  EXPECT_GT(letter.close, 0);
  EXPECT_NE(metrics.RenderText().find("drainmet_outlet_dead_letters_total{reason=\"rejected\"} 1"),
            std::string::npos);
  outlet->Stop();
}

TEST_F(OutletTest, StopReleasesTheLeasesForTheNextOutlet) {
  const config::Config c = MakeConfig(4);
  telemetry::Metrics ma, mb;
  auto a = NewOutlet(c, ma, "outlet-a");
  ASSERT_TRUE(support::Eventually([&] { return a->HeldShards().size() == 4; }, milliseconds(3000)));
  a->Stop();
  EXPECT_TRUE(a->HeldShards().empty());
  for (std::uint32_t s = 0; s < 4; ++s) EXPECT_FALSE(LeaseExists(s)) << s;
  const std::string_view zscore[] = {"ZSCORE", kOutletsKey, "outlet-a"};
  auto member = client_.Command(zscore);
  ASSERT_TRUE(member.ok());
  EXPECT_TRUE(member->is_nil()) << "the heartbeat is removed at Stop";
  // The next outlet takes them at once (its first round), not after a lease time.
  const auto before = std::chrono::steady_clock::now();
  auto b = NewOutlet(c, mb, "outlet-b");
  EXPECT_TRUE(support::Eventually([&] { return b->HeldShards().size() == 4; }, milliseconds(1000)));
  EXPECT_LT(std::chrono::steady_clock::now() - before, milliseconds(c.outlet.lease_ttl_ms));
  b->Stop();
}

// RELIABILITY.md §3.3: a renewal the store refuses (the lease was taken over) drops the
// shard and is counted as drainmet_outlet_lease_renewals_total{result="refused"}; the
// renewals before it count as ok. The workers idle (a long interval) so that the manager,
// not a seal, is the one to meet the fence.
TEST_F(OutletTest, RefusedRenewalIsCountedAndTheShardDropped) {
  config::Config c = MakeConfig(2);
  c.outlet.seal_interval_ms = 60000;
  telemetry::Metrics metrics;
  // The value of drainmet_outlet_lease_renewals_total{result}, -1 when absent.
  auto renewals = [&](const std::string& result) {
    const std::string text = metrics.RenderText();
    const std::string series = "drainmet_outlet_lease_renewals_total{result=\"" + result + "\"} ";
    const std::size_t at = text.find(series);
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + series.size()));
  };
  auto outlet = NewOutlet(c, metrics, "outlet-a");
  ASSERT_TRUE(support::Eventually([&] { return outlet->HeldShards().size() == 2; }, milliseconds(3000)));
  ASSERT_TRUE(support::Eventually([&] { return renewals("ok") >= 2; }, milliseconds(3000)));
  EXPECT_EQ(renewals("refused"), 0);
  // Another owner holds both leases now (as after an expiry and a takeover).
  for (std::uint32_t shard = 0; shard < 2; ++shard) {
    const std::string k = store::ShardProtocol::Key(shard, "lease");
    const std::string_view set[] = {"SET", k, "outlet-b:999"};
    ASSERT_TRUE(client_.Command(set).ok());
  }
  EXPECT_TRUE(support::Eventually([&] { return outlet->HeldShards().empty(); }, milliseconds(3000)));
  EXPECT_EQ(renewals("refused"), 2);
  EXPECT_EQ(renewals("failed"), 0);
  outlet->Stop();
}

TEST_F(OutletTest, BinaryServesHealthzAndReleasesLeasesOnSigterm) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("outlet_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string config_path = (dir / "outlet.yaml").string();
  {
    std::ofstream out(config_path);
    out << "grace_seconds: 1\n"
        << "redis:\n  shards: 4\n  servers: [\"unix:" << (*server_)->socket_path() << "\"]\n"
        << "outlet:\n  lease_ttl_ms: 3000\n  lease_renew_ms: 200\n"
        << "tenants:\n  - id: acme\n    token_hashes: [\"" << config::HashToken("tok-acme") << "\"]\n"
        << "    output: librato\n    librato:\n      url: \"" << fake_->Url() << "\"\n"
        << "      email: acme@example.com\n      api_token: secret\n";
    ASSERT_TRUE(out.good());
  }
  support::ChildProcess child;
  ASSERT_TRUE(child
                  .Start({kOutletBinary, "--config", config_path, "--listen", "127.0.0.1:0", "--grpc-listen",
                          "127.0.0.1:0"})
                  .ok());
  constexpr std::string_view kListen = "msg=\"drainmet-outlet listening\" listen=127.0.0.1:";
  const std::optional<std::string> line = child.WaitForLine(kListen, milliseconds(10000));
  ASSERT_TRUE(line.has_value()) << child.Stderr();
  const auto port = static_cast<std::uint16_t>(std::stoi(line->substr(line->find(kListen) + kListen.size())));
  ASSERT_NE(port, 0) << *line;
  const support::HttpReply health = support::HttpGet(port, "/healthz");
  EXPECT_EQ(health.status, 200u) << health.error;
  EXPECT_TRUE(support::Eventually([&] { return support::HttpGet(port, "/readyz").status == 200; },
                                  milliseconds(3000)));
  EXPECT_TRUE(support::Eventually(
      [&] { return LeaseExists(0) && LeaseExists(1) && LeaseExists(2) && LeaseExists(3); },
      milliseconds(3000)));
  const support::HttpReply metrics = support::HttpGet(port, "/metrics");
  EXPECT_NE(metrics.body.find("drainmet_outlet_leases_held 4"), std::string::npos) << metrics.body;

  child.Signal(SIGTERM);
  EXPECT_EQ(child.WaitExitCode(milliseconds(10000)), std::optional<int>(0)) << child.Stderr();
  for (std::uint32_t s = 0; s < 4; ++s) EXPECT_FALSE(LeaseExists(s)) << s;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace drainmet::outlet
