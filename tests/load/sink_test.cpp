// `drainmet-loadgen sink` (services/loadgen/sink.h): the conservation check of gauges
// (SEMANTICS §7.1-§7.4: measure -> complex gauge with count, count -> value = sum, one
// gauge per name/source/time, identical re-posts allowed) against a `send --record`.

#include "services/loadgen/sink.h"

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/http_client.h"

namespace drainmet::loadgen {
namespace {

using nlohmann::json;

/// What `send --record` writes for one tenant that had 10 acknowledged lines of
/// `measure#db.latency=... sample#mem=... count#req=1 source=web.0`.
json Record(const std::string& tenant = "tenant-0") {
  return {
      {"format", "drainmet-loadgen-record/1"},
      {"unacknowledged_requests", 0},
      {"tenants",
       {{{"tenant", tenant},
         {"series",
          {{{"name", "db.latency"}, {"source", "web.0"}, {"kind", "measure"}, {"points", 10}, {"sum", 55.0}},
           {{"name", "req"}, {"source", "web.0"}, {"kind", "count"}, {"points", 10}, {"sum", 10.0}},
           {{"name", "mem"}, {"source", "web.0"}, {"kind", "sample"}, {"points", 10}, {"sum", 1000.0}}}}}}}};
}

/// The gauges of one window holding `n` of those lines with latency sum `sum` (§7.1-§7.3).
json Window(std::int64_t time, int n, double sum, const std::string& source = "web.0") {
  json base = {{"measure_time", time}, {"period", 1}, {"source", source}};
  json measure = base, median = base, req = base, mem = base;
  measure["name"] = "db.latency";
  measure["count"] = n;
  measure["sum"] = sum;
  measure["min"] = 1;
  measure["max"] = 9;
  measure["sum_squares"] = 100;
  median["name"] = "db.latency.median";
  median["value"] = 5;
  req["name"] = "req";
  req["value"] = n;
  mem["name"] = "mem";
  mem["value"] = 300;
  return json::array({measure, median, req, mem});
}

std::string Body(const json& gauges) { return json{{"gauges", gauges}}.dump(); }

TEST(GaugeLedger, HoldsWhenEveryPointIsInExactlyOneGauge) {
  GaugeLedger ledger(false);
  ASSERT_TRUE(ledger.Add("ops@a", Body(Window(100, 6, 30))));
  ASSERT_TRUE(ledger.Add("ops@a", Body(Window(101, 4, 25))));
  absl::StatusOr<json> check = ledger.Check(Record());
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE((*check)["ok"].get<bool>()) << check->dump();
  EXPECT_EQ((*check)["series_expected"], 3);
  EXPECT_EQ((*check)["series_ok"], 3);
  EXPECT_EQ((*check)["measure_points_emitted"], 10);
  EXPECT_EQ((*check)["count_sum_emitted"], 10.0);
  const json stats = ledger.Stats();
  EXPECT_EQ(stats["requests"], 2);
  EXPECT_EQ(stats["gauges"], 8);
  EXPECT_EQ(stats["complex_gauges"], 2);
  EXPECT_EQ(stats["count_sum"], 10);
}

TEST(GaugeLedger, ReportsMissingPoints) {
  GaugeLedger ledger(false);
  ASSERT_TRUE(ledger.Add("ops@a", Body(Window(100, 6, 30))));  // window 101 never came
  absl::StatusOr<json> check = ledger.Check(Record());
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_FALSE((*check)["ok"].get<bool>());
  EXPECT_EQ((*check)["missing_total"], 8.0);  // 4 measure points + 4 of the count's sum
  ASSERT_EQ((*check)["missing"].size(), 2u);
  EXPECT_EQ((*check)["missing"][0]["name"], "db.latency");
  EXPECT_EQ((*check)["missing"][0]["expected"], 10);
  EXPECT_EQ((*check)["missing"][0]["got"], 6);
  EXPECT_EQ((*check)["missing"][1]["name"], "req");
}

// §7.4: a window posted again with identical values is not counted twice; the same
// identity with other values is a conflict and fails the check.
TEST(GaugeLedger, SetsDuplicatesApart) {
  GaugeLedger ledger(false);
  ASSERT_TRUE(ledger.Add("ops@a", Body(Window(100, 6, 30))));
  ASSERT_TRUE(ledger.Add("ops@a", Body(Window(101, 4, 25))));
  ASSERT_TRUE(ledger.Add("ops@a", Body(Window(101, 4, 25))));
  absl::StatusOr<json> check = ledger.Check(Record());
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE((*check)["ok"].get<bool>()) << check->dump();
  EXPECT_EQ((*check)["duplicates_identical"], 4);

  ASSERT_TRUE(ledger.Add("ops@a", Body(Window(101, 5, 26))));
  check = ledger.Check(Record());
  ASSERT_TRUE(check.ok());
  EXPECT_FALSE((*check)["ok"].get<bool>());
  EXPECT_EQ((*check)["duplicates_conflicting"], 2);  // db.latency and req; median and mem are identical
  EXPECT_EQ((*check)["duplicates_identical"], 6);
  EXPECT_EQ((*check)["measure_points_emitted"], 10);  // the first copy counts
}

TEST(GaugeLedger, ReportsExtraPointsAndUnrecordedSeries) {
  GaugeLedger ledger(false);
  ASSERT_TRUE(ledger.Add("ops@a", Body(Window(100, 6, 30))));
  ASSERT_TRUE(ledger.Add("ops@a", Body(Window(101, 5, 26))));  // one point too many
  ASSERT_TRUE(ledger.Add("ops@a", Body(Window(101, 1, 1, "web.9"))));
  absl::StatusOr<json> check = ledger.Check(Record());
  ASSERT_TRUE(check.ok());
  EXPECT_FALSE((*check)["ok"].get<bool>());
  // db.latency and req of web.0 over by one; web.9's db.latency, req and mem not recorded
  // (its db.latency.median is then not recorded either).
  EXPECT_EQ((*check)["extra"].size(), 6u) << check->dump();
  EXPECT_TRUE((*check)["missing"].empty());
}

TEST(GaugeLedger, ComparesSumsOfMeasures) {
  GaugeLedger ledger(false);
  ASSERT_TRUE(ledger.Add("ops@a", Body(Window(100, 10, 54))));
  absl::StatusOr<json> check = ledger.Check(Record());
  ASSERT_TRUE(check.ok());
  EXPECT_FALSE((*check)["ok"].get<bool>());
  ASSERT_EQ((*check)["sum_mismatch"].size(), 1u);
  EXPECT_EQ((*check)["sum_mismatch"][0]["expected_sum"], 55.0);
}

// Per tenant, series are keyed by the Basic-auth user: one tenant's gauges cannot make up
// for another's.
TEST(GaugeLedger, PerTenantKeysByUser) {
  GaugeLedger ledger(true);
  ASSERT_TRUE(ledger.Add("acme", Body(Window(100, 10, 55))));
  json record = Record("acme");
  record["tenants"].push_back(Record("beta")["tenants"][0]);
  absl::StatusOr<json> check = ledger.Check(record);
  ASSERT_TRUE(check.ok());
  EXPECT_FALSE((*check)["ok"].get<bool>());
  EXPECT_EQ((*check)["series_ok"], 3);
  ASSERT_EQ((*check)["missing"].size(), 3u);
  EXPECT_EQ((*check)["missing"][0]["tenant"], "beta");

  ASSERT_TRUE(ledger.Add("beta", Body(Window(100, 10, 55))));
  check = ledger.Check(record);
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE((*check)["ok"].get<bool>()) << check->dump();
}

TEST(GaugeLedger, RefusesWhatIsNotGaugesOrARecord) {
  GaugeLedger ledger(false);
  EXPECT_FALSE(ledger.Add("u", "not json"));
  EXPECT_FALSE(ledger.Add("u", R"({"counters":[]})"));
  EXPECT_EQ(ledger.Stats()["bad_requests"], 2);
  EXPECT_EQ(ledger.Check(json{{"format", "other"}}).status().code(), absl::StatusCode::kInvalidArgument);
}

// Bodies stored by Enqueue and accounted at Check/Stats give the same check and totals as
// bodies accounted at once by Add: same order, so the same first copies and duplicates.
TEST(GaugeLedger, LazyAccountingGivesTheSameCheck) {
  const std::vector<std::string> bodies = {
      Body(Window(100, 6, 30)),
      Body(Window(101, 4, 25)),
      Body(Window(101, 4, 25)),          // identical duplicate
      Body(Window(101, 5, 26)),          // conflicting duplicate
      Body(Window(102, 1, 1, "web.9")),  // not recorded
      R"({"counters":[]})",              // passes the quick look, fails the parse
  };
  GaugeLedger eager(false);
  GaugeLedger lazy(false);
  for (const std::string& body : bodies) {
    eager.Add("ops@a", body);
    EXPECT_TRUE(lazy.Enqueue("ops@a", body));
  }
  const GaugeLedger::Arrivals arrivals = lazy.Received();
  EXPECT_EQ(arrivals.requests, bodies.size());
  EXPECT_EQ(arrivals.pending_requests, bodies.size());
  EXPECT_GT(arrivals.last_unix_nanos, 0);
  absl::StatusOr<json> want = eager.Check(Record());
  absl::StatusOr<json> got = lazy.Check(Record());
  ASSERT_TRUE(want.ok() && got.ok());
  EXPECT_EQ(*got, *want);
  EXPECT_FALSE((*got)["ok"].get<bool>());
  EXPECT_EQ(lazy.Received().pending_requests, 0u);
  json want_stats = eager.Stats(), got_stats = lazy.Stats();
  for (json* stats : {&want_stats, &got_stats}) {
    stats->erase("first_post_unix_s");
    stats->erase("last_post_unix_s");
  }
  EXPECT_EQ(got_stats, want_stats);
  EXPECT_EQ(got_stats["bad_requests"], 1);

  // Bodies that fit an ok check stay ok when accounted lazily, and a body refused at the
  // quick look is a bad request at once.
  GaugeLedger ok(false);
  EXPECT_TRUE(ok.Enqueue("ops@a", Body(Window(100, 6, 30))));
  EXPECT_TRUE(ok.Enqueue("ops@a", Body(Window(101, 4, 25))));
  EXPECT_FALSE(ok.Enqueue("ops@a", "{"));
  got = ok.Check(Record());
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE((*got)["ok"].get<bool>()) << got->dump();
  EXPECT_EQ(ok.Stats()["bad_requests"], 1);
}

// Past max_pending_bytes the body that crossed it is accounted before Enqueue returns.
TEST(GaugeLedger, BoundsTheBodiesKeptUnparsed) {
  const std::string body = Body(Window(100, 6, 30));
  GaugeLedger ledger(false, /*max_pending_bytes=*/body.size() + 1);
  ASSERT_TRUE(ledger.Enqueue("ops@a", body));
  EXPECT_EQ(ledger.Received().pending_requests, 1u);
  ASSERT_TRUE(ledger.Enqueue("ops@a", Body(Window(101, 4, 25))));
  EXPECT_EQ(ledger.Received().pending_requests, 0u);
  absl::StatusOr<json> check = ledger.Check(Record());
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE((*check)["ok"].get<bool>()) << check->dump();
}

// FORMATS.md §5.1-§5.2 over HTTP: POST /v1/metrics with Basic auth answers 200; /stats
// and /check answer JSON.
TEST(Sink, AnswersMetricsStatsAndCheckOverHttp) {
  const std::string expect = ::testing::TempDir() + "/sink_expect.json";
  {
    std::ofstream out(expect);
    out << Record("ops@acme").dump();
  }
  SinkOptions options;
  options.per_tenant = true;
  options.expect_path = expect;
  absl::StatusOr<std::unique_ptr<Sink>> sink = Sink::Start(options);
  ASSERT_TRUE(sink.ok()) << sink.status();
  const std::uint16_t port = (*sink)->port();
  const support::Headers headers = {{"Content-Type", "application/json"},
                                    {"Authorization", "Basic " + absl::Base64Escape("ops@acme:secret")}};
  support::HttpReply reply = support::HttpPost(port, "/v1/metrics", headers, Body(Window(100, 10, 55)));
  EXPECT_EQ(reply.status, 200u) << reply.error;
  EXPECT_EQ(support::HttpPost(port, "/v1/metrics", headers, "{").status, 400u);

  reply = support::HttpGet(port, "/arrivals");
  ASSERT_EQ(reply.status, 200u);
  const json arrivals = json::parse(reply.body, nullptr, false);
  EXPECT_EQ(arrivals["requests"], 2);
  EXPECT_EQ(arrivals["pending_requests"], 1);
  EXPECT_GT(arrivals["last_post_unix_s"].get<double>(), 0);

  reply = support::HttpGet(port, "/stats");
  ASSERT_EQ(reply.status, 200u);
  const json stats = json::parse(reply.body, nullptr, false);
  EXPECT_EQ(stats["gauges"], 4);
  EXPECT_EQ(stats["users"]["ops@acme"], 2);

  reply = support::HttpGet(port, "/check");
  ASSERT_EQ(reply.status, 200u);
  EXPECT_TRUE(json::parse(reply.body, nullptr, false)["ok"].get<bool>()) << reply.body;
  EXPECT_EQ(support::HttpGet(port, "/nope").status, 404u);
  (*sink)->Stop();
}

}  // namespace
}  // namespace drainmet::loadgen
