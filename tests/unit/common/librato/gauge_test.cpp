#include "common/librato/gauge.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"

namespace drainmet::librato {
namespace {

using bucket::ClosedBucket;
using extract::Kind;

constexpr std::int64_t kWindow = 1714564800;  // 2024-05-01T12:00:00Z
constexpr std::int64_t kSecond = 1'000'000'000;

struct BucketSpec {
  // Every member has an initializer so that tests may name only the fields they need.
  std::string name = {};
  Kind kind = Kind::kMeasure;
  std::vector<double> values = {};
  std::string units = {};
  std::string source = {};
  std::int32_t resolution = 60;
  std::int64_t window = kWindow;
  std::string tenant = "t1";
};

// A closed bucket holding `values` in arrival order, one second apart.
ClosedBucket Bucket(const BucketSpec& spec) {
  ClosedBucket closed;
  closed.key.tenant = spec.tenant;
  closed.key.name = spec.name;
  closed.key.source = spec.source;
  closed.key.kind = spec.kind;
  closed.key.resolution_seconds = spec.resolution;
  closed.key.window_unix_seconds = spec.window;
  std::int64_t t = spec.window * kSecond;
  for (double v : spec.values) {
    closed.bucket.Add(v, t, spec.units, spec.kind == Kind::kMeasure);
    t += kSecond;
  }
  return closed;
}

std::vector<Gauge> Build(const std::vector<BucketSpec>& specs, telemetry::Counters& counters) {
  std::vector<ClosedBucket> buckets;
  for (const BucketSpec& spec : specs) buckets.push_back(Bucket(spec));
  return BuildGauges(buckets, counters);
}

std::string Json(const Gauge& gauge) {
  std::string out;
  AppendGaugeJson(gauge, out);
  return out;
}

std::vector<std::string> Names(const std::vector<Gauge>& gauges) {
  std::vector<std::string> names;
  for (const Gauge& g : gauges) names.push_back(g.name);
  return names;
}

// FORMATS.md §6.3's worked example with drainmet's semantics (SEMANTICS §6.4, §7.1-7.3):
// sum_squares is sent, the nearest-rank median of {3, 6, 4.5} is 4.5, the sample is the
// latest by timestamp, and only buckets with units carry attributes.
TEST(BuildGaugesTest, Formats63WorkedExample) {
  telemetry::Counters counters;
  std::vector<Gauge> gauges = Build(
      {
          {.name = "db.latency",
           .kind = Kind::kMeasure,
           .values = {3, 6, 4.5},
           .units = "ms",
           .source = "us-east"},
          {.name = "orders.created", .kind = Kind::kCount, .values = {1, 2}, .source = "us-east"},
          {.name = "queue.depth", .kind = Kind::kSample, .values = {17, 12}, .source = "us-east"},
      },
      counters);
  std::vector<std::string> json;
  for (const Gauge& g : gauges) json.push_back(Json(g));
  EXPECT_THAT(json, testing::ElementsAre(
                        R"({"name":"db.latency","source":"us-east","measure_time":1714564800,"period":60,)"
                        R"("count":3,"sum":13.5,"min":3,"max":6,"sum_squares":65.25,)"
                        R"("attributes":{"display_units_long":"ms"}})",
                        R"({"name":"db.latency.median","source":"us-east","measure_time":1714564800,)"
                        R"("period":60,"value":4.5,"attributes":{"display_units_long":"ms"}})",
                        R"({"name":"db.latency.perc95","source":"us-east","measure_time":1714564800,)"
                        R"("period":60,"value":6,"attributes":{"display_units_long":"ms"}})",
                        R"({"name":"db.latency.perc99","source":"us-east","measure_time":1714564800,)"
                        R"("period":60,"value":6,"attributes":{"display_units_long":"ms"}})",
                        R"({"name":"orders.created","source":"us-east","measure_time":1714564800,)"
                        R"("period":60,"value":3})",
                        R"({"name":"queue.depth","source":"us-east","measure_time":1714564800,)"
                        R"("period":60,"value":12})"));
  EXPECT_EQ(counters, telemetry::Counters{});
  for (const Gauge& g : gauges) EXPECT_EQ(g.tenant, "t1");
}

std::vector<double> Shuffled(int n) {
  std::vector<double> values(n);
  std::iota(values.begin(), values.end(), 1.0);
  std::mt19937 rng(42);
  std::shuffle(values.begin(), values.end(), rng);
  return values;
}

struct PercentileCase {
  int n;
  double median, perc95, perc99;
};

// SEMANTICS §6.4 nearest rank on values 1..n arriving unsorted (case C17, FORMATS §6.4 table).
TEST(BuildGaugesTest, PercentilesAreNearestRankSemantics64) {
  const PercentileCase cases[] = {
      {1, 1, 1, 1},     {2, 1, 2, 2},      {4, 2, 4, 4},          {5, 3, 5, 5},
      {20, 10, 19, 20}, {100, 50, 95, 99}, {1000, 500, 950, 990},
  };
  for (const PercentileCase& c : cases) {
    SCOPED_TRACE(c.n);
    telemetry::Counters counters;
    std::vector<Gauge> gauges =
        Build({{.name = "api.resp", .values = Shuffled(c.n), .units = "ms"}}, counters);
    ASSERT_EQ(gauges.size(), 4u);
    EXPECT_TRUE(gauges[0].complex);
    EXPECT_EQ(gauges[0].count, static_cast<std::uint64_t>(c.n));
    EXPECT_EQ(gauges[0].min, 1);
    EXPECT_EQ(gauges[0].max, c.n);
    EXPECT_DOUBLE_EQ(gauges[0].sum, c.n * (c.n + 1) / 2.0);
    EXPECT_DOUBLE_EQ(gauges[0].sum_squares, c.n * (c.n + 1.0) * (2 * c.n + 1) / 6.0);
    EXPECT_EQ(gauges[1].name, "api.resp.median");
    EXPECT_EQ(gauges[1].value, c.median);
    EXPECT_EQ(gauges[2].name, "api.resp.perc95");
    EXPECT_EQ(gauges[2].value, c.perc95);
    EXPECT_EQ(gauges[3].name, "api.resp.perc99");
    EXPECT_EQ(gauges[3].value, c.perc99);
    for (const Gauge& g : gauges) EXPECT_EQ(g.units, "ms");
  }
}

// SEMANTICS §6.3, §7.1: beyond 4096 values the distribution is a 1% sketch, whose answer
// is clamped to the observed [min, max]: a constant series reports exactly its value.
TEST(BuildGaugesTest, SketchPercentilesClampedToMinMax) {
  telemetry::Counters counters;
  std::vector<double> values(5000, 7.3);
  std::vector<Gauge> gauges = Build({{.name = "x", .values = values}}, counters);
  ASSERT_EQ(gauges.size(), 4u);
  for (int i = 1; i < 4; ++i) EXPECT_EQ(gauges[i].value, 7.3) << gauges[i].name;

  // A wide range: the sketch's answer is within 1% and never outside [min, max].
  std::vector<double> wide(5000);
  std::iota(wide.begin(), wide.end(), 1.0);
  gauges = Build({{.name = "y", .values = wide}}, counters);
  ASSERT_EQ(gauges.size(), 4u);
  const double expected[] = {2500, 4750, 4950};
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(gauges[i + 1].value, expected[i], expected[i] * 0.01) << gauges[i + 1].name;
    EXPECT_GE(gauges[i + 1].value, 1);
    EXPECT_LE(gauges[i + 1].value, 5000);
  }
}

// §7.2/§7.3: a count's value is its sum; a sample's is the value with the latest timestamp.
TEST(BuildGaugesTest, CountIsSumSampleIsLatest) {
  telemetry::Counters counters;
  std::vector<Gauge> gauges = Build({{.name = "c", .kind = Kind::kCount, .values = {1, 2.5, -1}},
                                     {.name = "s", .kind = Kind::kSample, .values = {5, 9, 4}}},
                                    counters);
  ASSERT_EQ(gauges.size(), 2u);
  EXPECT_FALSE(gauges[0].complex);
  EXPECT_EQ(gauges[0].value, 2.5);
  EXPECT_EQ(gauges[1].value, 4);
  EXPECT_EQ(gauges[0].measure_time, kWindow);
  EXPECT_EQ(gauges[0].period, 60);
}

// What one sent gauge is, to identify the winner of a conflict.
struct Sent {
  std::string name;
  std::int32_t period;
  bool complex;
  double value;  // value, or sum for a complex gauge

  bool operator==(const Sent&) const = default;
  friend void PrintTo(const Sent& s, std::ostream* os) {
    *os << s.name << "/" << s.period << (s.complex ? " complex sum=" : " value=") << s.value;
  }
};

struct ConflictCase {
  std::string title;
  std::vector<BucketSpec> buckets;
  std::vector<Sent> sent;
  std::uint64_t name_conflict;
};

// SEMANTICS §7.6: one gauge per (tenant, name, source, measure_time). Measure beats count
// beats sample; within a kind the series' own name beats a derived name, then the smaller
// period, then the earlier bucket; every gauge not sent counts name_conflict.
TEST(BuildGaugesTest, ConflictsResolvedSemantics76) {
  const std::vector<ConflictCase> cases = {
      {"CountBeatsSample",
       {{.name = "x", .kind = Kind::kSample, .values = {7}},
        {.name = "x", .kind = Kind::kCount, .values = {3}}},
       {{"x", 60, false, 3}},
       1},
      {"MeasureBeatsCount",
       {{.name = "x", .kind = Kind::kCount, .values = {3}},
        {.name = "x", .kind = Kind::kMeasure, .values = {5}}},
       {{"x", 60, true, 5},
        {"x.median", 60, false, 5},
        {"x.perc95", 60, false, 5},
        {"x.perc99", 60, false, 5}},
       1},
      {"MeasureBeatsSample",
       {{.name = "x", .kind = Kind::kMeasure, .values = {5}},
        {.name = "x", .kind = Kind::kSample, .values = {7}}},
       {{"x", 60, true, 5},
        {"x.median", 60, false, 5},
        {"x.perc95", 60, false, 5},
        {"x.perc99", 60, false, 5}},
       1},
      {"AllThreeKinds",
       {{.name = "x", .kind = Kind::kSample, .values = {7}},
        {.name = "x", .kind = Kind::kCount, .values = {3}},
        {.name = "x", .kind = Kind::kMeasure, .values = {5}}},
       {{"x", 60, true, 5},
        {"x.median", 60, false, 5},
        {"x.perc95", 60, false, 5},
        {"x.perc99", 60, false, 5}},
       2},
      {"MeasureDerivedBeatsSampleOwnName",
       {{.name = "x.median", .kind = Kind::kSample, .values = {7}},
        {.name = "x", .kind = Kind::kMeasure, .values = {5}}},
       {{"x", 60, true, 5},
        {"x.median", 60, false, 5},
        {"x.perc95", 60, false, 5},
        {"x.perc99", 60, false, 5}},
       1},
      {"MeasureDerivedBeatsCountOwnName",
       {{.name = "x.perc99", .kind = Kind::kCount, .values = {7}},
        {.name = "x", .kind = Kind::kMeasure, .values = {5}}},
       {{"x", 60, true, 5},
        {"x.median", 60, false, 5},
        {"x.perc95", 60, false, 5},
        {"x.perc99", 60, false, 5}},
       1},
      {"OwnNameBeatsDerivedOfSameKind",
       {{.name = "x", .kind = Kind::kMeasure, .values = {5}},
        {.name = "x.median", .kind = Kind::kMeasure, .values = {8}}},
       {{"x", 60, true, 5},
        {"x.median", 60, true, 8},
        {"x.median.median", 60, false, 8},
        {"x.median.perc95", 60, false, 8},
        {"x.median.perc99", 60, false, 8},
        {"x.perc95", 60, false, 5},
        {"x.perc99", 60, false, 5}},
       1},
      {"OwnNameBeatsDerivedEvenWithLargerPeriod",
       {{.name = "x", .kind = Kind::kMeasure, .values = {5}, .resolution = 60, .window = 0},
        {.name = "x.median", .kind = Kind::kMeasure, .values = {8}, .resolution = 120, .window = 0}},
       {{"x", 60, true, 5},
        {"x.median", 120, true, 8},
        {"x.median.median", 120, false, 8},
        {"x.median.perc95", 120, false, 8},
        {"x.median.perc99", 120, false, 8},
        {"x.perc95", 60, false, 5},
        {"x.perc99", 60, false, 5}},
       1},
      {"SmallerPeriodWinsSameKind",
       {{.name = "x", .kind = Kind::kSample, .values = {7}, .resolution = 120, .window = 120},
        {.name = "x", .kind = Kind::kSample, .values = {9}, .resolution = 60, .window = 120}},
       {{"x", 60, false, 9}},
       1},
      {"SmallerPeriodWinsForEveryMeasureGauge",
       {{.name = "x", .kind = Kind::kMeasure, .values = {7}, .resolution = 120, .window = 0},
        {.name = "x", .kind = Kind::kMeasure, .values = {9}, .resolution = 60, .window = 0}},
       {{"x", 60, true, 9},
        {"x.median", 60, false, 9},
        {"x.perc95", 60, false, 9},
        {"x.perc99", 60, false, 9}},
       4},
      {"KindBeatsPeriod",
       {{.name = "x", .kind = Kind::kSample, .values = {7}, .resolution = 1, .window = 0},
        {.name = "x", .kind = Kind::kCount, .values = {9}, .resolution = 60, .window = 0}},
       {{"x", 60, false, 9}},
       1},
      {"FirstBucketWinsOtherwise",
       {{.name = "x", .kind = Kind::kSample, .values = {7}},
        {.name = "x", .kind = Kind::kSample, .values = {9}}},
       {{"x", 60, false, 7}},
       1},
      {"DifferentSourcesDoNotConflict",
       {{.name = "x", .kind = Kind::kSample, .values = {7}, .source = "a"},
        {.name = "x", .kind = Kind::kCount, .values = {9}}},
       {{"x", 60, false, 9}, {"x", 60, false, 7}},
       0},
      {"DifferentWindowsDoNotConflict",
       {{.name = "x", .kind = Kind::kSample, .values = {7}, .window = 60},
        {.name = "x", .kind = Kind::kCount, .values = {9}, .window = 0}},
       {{"x", 60, false, 9}, {"x", 60, false, 7}},
       0},
      {"DifferentTenantsDoNotConflict",
       {{.name = "x", .kind = Kind::kSample, .values = {7}, .tenant = "b"},
        {.name = "x", .kind = Kind::kCount, .values = {9}, .tenant = "a"}},
       {{"x", 60, false, 9}, {"x", 60, false, 7}},
       0},
  };
  for (const ConflictCase& c : cases) {
    SCOPED_TRACE(c.title);
    telemetry::Counters counters;
    std::vector<Gauge> gauges = Build(c.buckets, counters);
    std::vector<Sent> sent;
    for (const Gauge& g : gauges) sent.push_back({g.name, g.period, g.complex, g.complex ? g.sum : g.value});
    EXPECT_EQ(sent, c.sent);
    EXPECT_EQ(counters.name_conflict, c.name_conflict);
    EXPECT_EQ(counters.bad_name, 0u);
  }
}

// SEMANTICS §5.1: a derived name may reach 255 bytes; past that it is not sent (bad_name).
TEST(BuildGaugesTest, DerivedNameLimit255Semantics51) {
  telemetry::Counters counters;
  const std::string at_limit(255 - 7, 'a');  // + ".median" = 255 bytes
  std::vector<Gauge> gauges = Build({{.name = at_limit, .values = {1}}}, counters);
  ASSERT_EQ(gauges.size(), 4u);
  EXPECT_EQ(gauges[1].name.size(), 255u);
  EXPECT_EQ(counters.bad_name, 0u);

  const std::string over(255 - 6, 'b');  // + ".median" = 256 bytes
  gauges = Build({{.name = over, .kind = Kind::kMeasure, .values = {1}},
                  {.name = over, .kind = Kind::kCount, .values = {2}, .source = "s"}},
                 counters);
  ASSERT_EQ(gauges.size(), 2u);
  EXPECT_EQ(gauges[0].name, over);
  EXPECT_TRUE(gauges[0].complex);
  EXPECT_EQ(gauges[1].source, "s");
  EXPECT_EQ(counters.bad_name, 3u);  // one per derived gauge not sent
  EXPECT_EQ(counters.name_conflict, 0u);
}

// §7.1-7.3: every gauge of a bucket with units carries display_units_long, derived ones too.
TEST(BuildGaugesTest, UnitsAttributeOnEveryKind) {
  telemetry::Counters counters;
  std::vector<Gauge> gauges = Build({{.name = "m", .values = {1}, .units = "ms"},
                                     {.name = "c", .kind = Kind::kCount, .values = {1}, .units = "kB"},
                                     {.name = "s", .kind = Kind::kSample, .values = {1}, .units = "MB"},
                                     {.name = "u", .kind = Kind::kSample, .values = {1}}},
                                    counters);
  ASSERT_EQ(gauges.size(), 7u);
  EXPECT_THAT(Names(gauges), testing::ElementsAre("c", "m", "m.median", "m.perc95", "m.perc99", "s", "u"));
  const char* units[] = {"kB", "ms", "ms", "ms", "ms", "MB", ""};
  for (std::size_t i = 0; i < gauges.size(); ++i) EXPECT_EQ(gauges[i].units, units[i]) << gauges[i].name;
  EXPECT_EQ(
      Json(gauges[0]),
      R"({"name":"c","measure_time":1714564800,"period":60,"value":1,"attributes":{"display_units_long":"kB"}})");
  EXPECT_EQ(Json(gauges[6]), R"({"name":"u","measure_time":1714564800,"period":60,"value":1})");
}

// Sorted by (tenant, name, source, measure_time) in byte order, no source first, as
// expected.jsonl is.
TEST(BuildGaugesTest, SortedByTenantNameSourceTime) {
  telemetry::Counters counters;
  std::vector<Gauge> gauges = Build({{.name = "b", .kind = Kind::kSample, .values = {1}, .tenant = "t2"},
                                     {.name = "a", .kind = Kind::kSample, .values = {2}, .source = "z"},
                                     {.name = "a", .kind = Kind::kSample, .values = {3}, .window = 60},
                                     {.name = "a", .kind = Kind::kSample, .values = {4}, .window = 0},
                                     {.name = "B", .kind = Kind::kSample, .values = {5}},
                                     {.name = "a", .kind = Kind::kSample, .values = {6}, .source = "Y"}},
                                    counters);
  std::vector<double> values;
  for (const Gauge& g : gauges) values.push_back(g.value);
  EXPECT_THAT(values, testing::ElementsAre(5, 4, 3, 6, 2, 1));
}

// The order and the §7.6 choice against a reference made bucket by bucket: every gauge of
// bucket i alone is a candidate, ranked by (kind, own name before derived, period, i); the
// best of each (tenant, name, source, measure_time) is sent, in that order (byte order).
// Sources around the 16 bytes BuildGauges compares at once, with NULs, high bytes, prefixes
// of one another; names whose derived names sort elsewhere ("a" < "a.b" but
// "a.b.median" < "a.median"); conflicts of every kind.
TEST(BuildGaugesTest, OrderAndChoiceMatchAReference) {
  using namespace std::string_literals;
  const std::vector<std::string> sources = {"",
                                            "a",
                                            "a\0"s,
                                            "a\0\0"s,
                                            "web.1",
                                            "web.10",
                                            "web.9",
                                            "aaaaaaaaaaaaaaaa",
                                            "aaaaaaaaaaaaaaaaa",
                                            "aaaaaaaaaaaaaaaab",
                                            "aaaaaaaaaaaaaaaa\0"s,
                                            "aaaaaaaaaaaaaaab",
                                            "aaaaaaaab",
                                            "aaaaaaaa",
                                            "\xff",
                                            "\x80z",
                                            "worker.queue.long-name.1",
                                            "worker.queue.long-name.2"};
  const std::vector<std::string> names = {"a", "a.b", "a.median", "a.b.median", "x", "x.perc95", "\xc3\xa9"};
  const std::vector<std::string> tenants = {"t1", "t2", "t10"};
  std::mt19937 rng(7);
  auto pick = [&](const auto& list) { return list[rng() % list.size()]; };
  for (int round = 0; round < 20; ++round) {
    std::vector<BucketSpec> specs;
    for (int i = 0; i < 300; ++i) {
      BucketSpec spec;
      spec.name = pick(names);
      spec.kind = static_cast<Kind>(rng() % 3);
      spec.source = pick(sources);
      spec.tenant = pick(tenants);
      spec.resolution = rng() % 2 == 0 ? 1 : 60;
      spec.window = rng() % 2 == 0 ? kWindow : kWindow + 60;
      spec.values.assign(1 + rng() % 3, static_cast<double>(rng() % 100));
      specs.push_back(spec);
    }
    struct Ranked {
      Gauge gauge;
      std::tuple<Kind, bool, std::int32_t, std::size_t> preference;
    };
    std::map<std::tuple<std::string, std::string, std::string, std::int64_t>, Ranked> best;
    std::uint64_t candidates = 0;
    for (std::size_t i = 0; i < specs.size(); ++i) {
      telemetry::Counters ignored;
      for (Gauge& g : Build({specs[i]}, ignored)) {
        ++candidates;
        Ranked ranked{g, {specs[i].kind, g.name != specs[i].name, g.period, i}};
        auto [it, inserted] = best.try_emplace({g.tenant, g.name, g.source, g.measure_time}, ranked);
        if (!inserted && ranked.preference < it->second.preference) it->second = std::move(ranked);
      }
    }
    std::vector<Gauge> want;
    for (auto& [identity, ranked] : best) want.push_back(std::move(ranked.gauge));

    telemetry::Counters counters;
    const std::vector<Gauge> got = Build(specs, counters);
    ASSERT_EQ(got.size(), want.size()) << "round " << round;
    for (std::size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i], want[i]) << "round " << round << " gauge " << i << ": " << Json(got[i]) << " vs "
                                 << Json(want[i]);
    }
    EXPECT_EQ(counters.name_conflict, candidates - want.size());
  }
}

// The table overload (what the outlet uses) gives exactly BuildGauges(TakeAll()): the same
// gauges in the same order (SEMANTICS §7.6 conflicts, §5.1 long names, §7.1 sketches
// included) and the same counters; a key that does not decode is skipped as TakeAll drops
// it.
TEST(BuildGaugesTest, FromATableEqualsFromTakeAll) {
  const std::vector<std::string> names = {"a",          "a.b",      "a.median",
                                          "a.b.median", "x.perc95", std::string(250, 'n')};
  const std::vector<std::string> sources = {"", "web.1", "web.10", "aaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaab"};
  const std::vector<std::string> tenants = {"t1", "t2", "t10"};
  std::mt19937 rng(11);
  auto pick = [&](const auto& list) { return list[rng() % list.size()]; };
  for (int round = 0; round < 20; ++round) {
    bucket::BucketMap table, reference;
    std::string key;
    for (int i = 0; i < 400; ++i) {
      const BucketSpec spec{.name = pick(names),
                            .kind = static_cast<Kind>(rng() % 3),
                            .values = std::vector<double>(1 + rng() % (i % 50 == 0 ? 3000 : 3),
                                                          static_cast<double>(rng() % 100) + 0.5),
                            .units = rng() % 4 == 0 ? "ms" : "",
                            .source = pick(sources),
                            .resolution = rng() % 2 == 0 ? 1 : 60,
                            .window = rng() % 2 == 0 ? kWindow : kWindow + 60,
                            .tenant = pick(tenants)};
      const ClosedBucket closed = Bucket(spec);
      bucket::EncodeBucketKey(spec.tenant, spec.name, spec.source, spec.kind, spec.resolution, spec.window,
                              key);
      table.MergeBucket(key, bucket::PartialBucket(closed.bucket));
      reference.MergeBucket(key, bucket::PartialBucket(closed.bucket));
    }
    table.MergeBucket("not a key", bucket::PartialBucket(Bucket({.name = "z", .values = {1}}).bucket));
    telemetry::Counters from_table, from_take_all;
    const std::vector<Gauge> got = BuildGauges(table, from_table);
    std::vector<ClosedBucket> closed = reference.TakeAll();
    const std::vector<Gauge> want = BuildGauges(closed, from_take_all);
    ASSERT_EQ(got.size(), want.size()) << "round " << round;
    for (std::size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i], want[i]) << "round " << round << " gauge " << i << ": " << Json(got[i]) << " vs "
                                 << Json(want[i]);
    }
    EXPECT_EQ(from_table, from_take_all) << "round " << round;
    EXPECT_GT(from_table.name_conflict, 0u);
    EXPECT_GT(from_table.bad_name, 0u);
  }
}

TEST(BuildGaugesTest, EmptyInputAndEmptyBucket) {
  telemetry::Counters counters;
  EXPECT_TRUE(Build({}, counters).empty());
  EXPECT_TRUE(Build({{.name = "nothing", .values = {}}}, counters).empty());
  EXPECT_EQ(counters, telemetry::Counters{});
}

struct NumberCase {
  double value;
  std::string text;
};

// SEMANTICS §3.4: integral values below 2^53 as integers, the rest shortest round-trip.
TEST(AppendNumberTest, FormatsSemantics34) {
  const NumberCase cases[] = {
      {2500, "2500"},
      {2500.0, "2500"},
      {2.5e3, "2500"},
      {0, "0"},
      {-0.0, "0"},
      {-3, "-3"},
      {-3.5, "-3.5"},
      {0.1, "0.1"},
      {7.9341e-05, "7.9341e-05"},
      {6.294994281e-09, "6.294994281e-09"},
      {161901.31999999998, "161901.31999999998"},
      {12403503861, "12403503861"},
      {1e15, "1000000000000000"},
      {9007199254740991.0, "9007199254740991"},
      {-9007199254740991.0, "-9007199254740991"},
      {9007199254740992.0, "9007199254740992"},  // 2^53: shortest round-trip, same digits
      {1e20, "1e+20"},
      {-1e20, "-1e+20"},
      {1e126, "1e+126"},
      {5e-324, "5e-324"},
      {std::numeric_limits<double>::quiet_NaN(), "0"},
      {std::numeric_limits<double>::infinity(), "0"},
  };
  for (const NumberCase& c : cases) {
    std::string out = "x";
    AppendNumber(c.value, out);
    EXPECT_EQ(out, "x" + c.text) << c.text;
    if (std::isfinite(c.value)) {
      // Valid JSON that reads back as the same double.
      nlohmann::json parsed = nlohmann::json::parse(c.text);
      EXPECT_EQ(parsed.get<double>(), c.value == 0 ? 0.0 : c.value) << c.text;
    }
  }
}

struct EscapeCase {
  std::string title;
  std::string units;
  std::string json;  // the escaped string as it appears in the output
};

// RFC 8259 §7 escaping of strings; units are arbitrary bytes from the drain.
TEST(AppendGaugeJsonTest, EscapesStrings) {
  const EscapeCase cases[] = {
      {"Plain", "ms", R"("ms")"},
      {"Quote", "a\"b", R"("a\"b")"},
      {"Backslash", "a\\b", R"("a\\b")"},
      {"Controls", std::string("\n\t\x01\x1f\x7f", 5), R"("\u000a\u0009\u0001\u001f\u007f")"},
      {"Nul", std::string("a\0b", 3), R"("a\u0000b")"},
      {"ValidUtf8", "\xC2\xB5s \xE2\x82\xAC \xF0\x9F\x98\x80", "\"\xC2\xB5s \xE2\x82\xAC \xF0\x9F\x98\x80\""},
      {"InvalidByte",
       "a\xFF"
       "b",
       "\"a\xEF\xBF\xBD"
       "b\""},
      {"Truncated", "a\xC2", "\"a\xEF\xBF\xBD\""},
      {"Overlong", "\xC0\xAF", "\"\xEF\xBF\xBD\xEF\xBF\xBD\""},
      {"Surrogate", "\xED\xA0\x80", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""},
      {"AboveMax", "\xF4\x90\x80\x80", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""},
      {"LoneContinuation", "\x80x", "\"\xEF\xBF\xBDx\""},
  };
  for (const EscapeCase& c : cases) {
    SCOPED_TRACE(c.title);
    Gauge gauge;
    gauge.name = "n";
    gauge.measure_time = 60;
    gauge.period = 60;
    gauge.value = 1;
    gauge.units = c.units;
    const std::string json = Json(gauge);
    EXPECT_EQ(json,
              R"({"name":"n","measure_time":60,"period":60,"value":1,"attributes":{"display_units_long":)" +
                  c.json + "}}");
    nlohmann::json parsed = nlohmann::json::parse(json);  // throws (fails) if invalid
    if (c.title == "Plain" || c.title == "Quote" || c.title == "Backslash" || c.title == "Controls" ||
        c.title == "Nul" || c.title == "ValidUtf8") {
      EXPECT_EQ(parsed["attributes"]["display_units_long"].get<std::string>(), c.units);
    }
  }
}

TEST(RenderRequestBodyTest, EmptyAndSeveral) {
  EXPECT_EQ(RenderRequestBody({}), R"({"gauges":[]})");

  telemetry::Counters counters;
  std::vector<Gauge> gauges =
      Build({{.name = "db.latency", .values = {3, 6, 4.5}, .units = "ms", .source = "web.1"},
             {.name = "hits", .kind = Kind::kCount, .values = {1, 1}}},
            counters);
  const std::string body = RenderRequestBody(gauges);
  nlohmann::json parsed = nlohmann::json::parse(body);
  ASSERT_TRUE(parsed.is_object());
  ASSERT_EQ(parsed.size(), 1u);
  const nlohmann::json& array = parsed["gauges"];
  ASSERT_EQ(array.size(), 5u);
  EXPECT_EQ(array[0],
            nlohmann::json::parse(R"({"name":"db.latency","source":"web.1","measure_time":1714564800,
      "period":60,"count":3,"sum":13.5,"min":3,"max":6,"sum_squares":65.25,
      "attributes":{"display_units_long":"ms"}})"));
  EXPECT_EQ(array[1]["value"], 4.5);
  EXPECT_EQ(array[4],
            nlohmann::json::parse(R"({"name":"hits","measure_time":1714564800,"period":60,"value":2})"));
}

// The byte format of the golden data set: every line of expected.jsonl, read back into a
// Gauge and written again, gives the same bytes (field order, numbers, attributes).
TEST(AppendGaugeJsonTest, ReproducesExpectedJsonlByteForByte) {
  std::ifstream in(DRAINMET_FIXTURES_DIR "/data/heroku-sample/expected.jsonl");
  ASSERT_TRUE(in.good());
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    Gauge g;
    g.name = j["name"].get<std::string>();
    if (j.contains("source")) g.source = j["source"].get<std::string>();
    g.measure_time = j["measure_time"].get<std::int64_t>();
    g.period = j["period"].get<std::int32_t>();
    if (j.contains("count")) {
      g.complex = true;
      g.count = j["count"].get<std::uint64_t>();
      g.sum = j["sum"].get<double>();
      g.min = j["min"].get<double>();
      g.max = j["max"].get<double>();
      g.sum_squares = j["sum_squares"].get<double>();
    } else {
      g.value = j["value"].get<double>();
    }
    if (j.contains("attributes")) g.units = j["attributes"]["display_units_long"].get<std::string>();
    ASSERT_EQ(Json(g), line);
    ++lines;
  }
  EXPECT_EQ(lines, 2649);
}

}  // namespace
}  // namespace drainmet::librato
