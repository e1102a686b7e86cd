// Property (issue 5, "Bad input"): merging partial buckets in any order and grouping gives
// identical results (SEMANTICS §6.3: bit-identical count/min/max/latest sample/units/
// distribution or sketch, sum and sum_squares to 1e-12), directly and through the Redis
// record codec, and so identical gauges (§7). Deterministic: seeded std::mt19937_64.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/bucket/codec.h"
#include "common/bucket/partial_bucket.h"
#include "common/librato/gauge.h"
#include "common/telemetry/counters.h"
#include "gtest/gtest.h"
#include "tests/unit/property/property_util.h"

namespace drainmet::property {
namespace {

constexpr std::int64_t kSec = 1'000'000'000;
constexpr std::int64_t kT0 = 1709633700;  // 2024-03-05T10:15:00Z, a window start at any resolution.

struct Observation {
  extract::Kind kind;
  std::string name;
  std::string source;
  std::string units;
  double value;
  std::int64_t unix_nanos;
  int part;  // The request (partial bucket) it arrives in.
};

// A drain's worth of observations: a few series over two windows, one measure with more
// than Distribution::kExactCap values (sketched), one right at the cap, samples sharing
// timestamps across requests (§6.3's tie rule), mixed units (§6.1), negative and zero
// values and wide magnitudes.
std::vector<Observation> MakeObservations(std::mt19937_64& rng, int parts) {
  std::vector<Observation> out;
  std::uniform_int_distribution<int> part(0, parts - 1);
  std::uniform_int_distribution<std::int64_t> offset(0, 2 * 60 * kSec - 1);
  std::uniform_int_distribution<int> pick(0, 3);
  const char* units[] = {"", "ms", "s", "MB"};
  std::normal_distribution<double> normal(100, 40);
  std::uniform_real_distribution<double> exponent(-30, 30);
  const auto add = [&](extract::Kind kind, const char* name, const char* source, int n, bool wide) {
    for (int i = 0; i < n; ++i) {
      double v =
          wide ? (pick(rng) == 0 ? -1 : 1) * std::pow(10.0, exponent(rng)) : std::round(normal(rng) * 8) / 8;
      if (pick(rng) == 0 && !wide) v = 0;
      out.push_back({kind, name, source, units[pick(rng)], v, kT0 * kSec + offset(rng), part(rng)});
    }
  };
  add(extract::Kind::kMeasure, "web.latency", "web.1", 300, false);
  add(extract::Kind::kMeasure, "db.rows", "", 200, true);
  add(extract::Kind::kMeasure, "big", "worker.1", 9000, false);  // Sketched past 4096.
  add(extract::Kind::kMeasure, "cap", "", static_cast<int>(bucket::Distribution::kExactCap), false);
  add(extract::Kind::kCount, "hits", "web.2", 500, false);
  add(extract::Kind::kSample, "load", "web.1", 400, true);
  // Ties: the same timestamp in several requests with different values (§6.3: the greater
  // value wins across requests); and two in one request (the later one wins there).
  for (int i = 0; i < 3 * parts; ++i) {
    const double v = static_cast<double>(pick(rng)) - 1.5;
    out.push_back({extract::Kind::kSample, "tied", "", "", v, (kT0 + 30) * kSec, i % parts});
    out.push_back(
        {extract::Kind::kSample, "tied.units", "", units[pick(rng)], v, (kT0 + 61) * kSec, i % parts});
  }
  return out;
}

// One BucketMap per request, points added in arrival order.
std::vector<bucket::BucketMap> BuildParts(const std::vector<Observation>& observations, int parts) {
  std::vector<bucket::BucketMap> maps(static_cast<std::size_t>(parts));
  for (const Observation& o : observations) {
    extract::Point point;
    point.kind = o.kind;
    point.name = o.name;
    point.source = o.source;
    point.units = o.units;
    point.value = o.value;
    point.time_unix_nanos = o.unix_nanos;
    maps[static_cast<std::size_t>(o.part)].Add("acme", 60, point);
  }
  return maps;
}

// Merges the parts left to right: the reference.
bucket::BucketMap MergeInOrder(std::vector<bucket::BucketMap> maps) {
  bucket::BucketMap result;
  for (bucket::BucketMap& map : maps) result.Merge(std::move(map));
  return result;
}

// Merges two random tables until one is left: any order, any grouping.
bucket::BucketMap MergeRandomTree(std::vector<bucket::BucketMap> maps, std::mt19937_64& rng) {
  while (maps.size() > 1) {
    std::uniform_int_distribution<std::size_t> index(0, maps.size() - 1);
    const std::size_t i = index(rng);
    std::size_t j = index(rng);
    while (j == i) j = index(rng);
    maps[i].Merge(std::move(maps[j]));
    maps.erase(maps.begin() + static_cast<std::ptrdiff_t>(j));
  }
  return std::move(maps.front());
}

// What an outlet does: every part's buckets encoded as records (Redis), decoded, merged
// one record at a time in the given order of parts.
bucket::BucketMap MergeThroughCodec(std::vector<bucket::BucketMap> maps,
                                    const std::vector<std::size_t>& order) {
  bucket::BucketMap result;
  std::string bytes;
  std::string key;
  for (const std::size_t p : order) {
    for (bucket::ClosedBucket& closed : maps[p].TakeAll()) {
      bucket::EncodeRecord(closed.key, closed.bucket, bytes);
      absl::StatusOr<bucket::BucketRecord> record = bucket::DecodeRecord(bytes);
      EXPECT_TRUE(record.ok()) << record.status();
      if (!record.ok()) continue;
      const bucket::BucketKey& k = record->key;
      bucket::EncodeBucketKey(k.tenant, k.name, k.source, k.kind, k.resolution_seconds, k.window_unix_seconds,
                              key);
      result.MergeBucket(key, std::move(record->bucket));
    }
  }
  return result;
}

std::vector<librato::Gauge> Gauges(std::vector<bucket::ClosedBucket> buckets) {
  telemetry::Counters counters;
  return librato::BuildGauges(buckets, counters);
}

// §6.3: 20 seeds x (2..8 requests) x (shuffled sequential, random trees, through the
// codec in a shuffled order) all equal the in-order merge.
TEST(MergeOrderProperty, AnyOrderAndGroupingGivesIdenticalBuckets_Semantics6_3) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    const int parts = 2 + static_cast<int>(seed % 7);
    const std::vector<Observation> observations = MakeObservations(rng, parts);
    std::vector<bucket::ClosedBucket> want = MergeInOrder(BuildParts(observations, parts)).TakeAll();
    ASSERT_FALSE(want.empty());
    const std::vector<librato::Gauge> want_gauges = Gauges(want);
    // The in-order result is itself what the fixture says: one sketched bucket, one exact
    // at the cap (else the property would not cover the switch).
    bool sketched = false;
    for (const bucket::ClosedBucket& b : want) sketched |= !b.bucket.values.exact();
    EXPECT_TRUE(sketched);

    for (int trial = 0; trial < 4; ++trial) {
      const std::string context = "seed " + std::to_string(seed) + " trial " + std::to_string(trial);
      std::vector<std::size_t> order(static_cast<std::size_t>(parts));
      for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), rng);

      std::vector<bucket::BucketMap> built = BuildParts(observations, parts);
      std::vector<bucket::BucketMap> shuffled;
      for (const std::size_t p : order) shuffled.push_back(std::move(built[p]));
      std::vector<bucket::ClosedBucket> sequential = MergeInOrder(std::move(shuffled)).TakeAll();
      ExpectSameBuckets(want, sequential, context + " shuffled");
      ExpectSameGauges(want_gauges, Gauges(std::move(sequential)), context + " shuffled");

      std::vector<bucket::ClosedBucket> tree =
          MergeRandomTree(BuildParts(observations, parts), rng).TakeAll();
      ExpectSameBuckets(want, tree, context + " tree");
      ExpectSameGauges(want_gauges, Gauges(std::move(tree)), context + " tree");

      std::vector<bucket::ClosedBucket> decoded =
          MergeThroughCodec(BuildParts(observations, parts), order).TakeAll();
      ExpectSameBuckets(want, decoded, context + " codec");
      ExpectSameGauges(want_gauges, Gauges(std::move(decoded)), context + " codec");
      if (HasFailure()) return;  // One seed's report is enough.
    }
  }
}

// §6.3 at the level of one bucket: a + (b + c) == (a + b) + c == (c + a) + b for partial
// buckets across the exact/sketch switch (sizes around kExactCap).
TEST(MergeOrderProperty, PartialBucketMergeIsAssociativeAndCommutative_Semantics6_3) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> value(-1e6, 1e6);
  std::uniform_int_distribution<std::int64_t> time(0, 59);
  const std::size_t cap = bucket::Distribution::kExactCap;
  for (const std::size_t n :
       {std::size_t{1}, std::size_t{100}, cap / 3, cap / 2, cap - 1, cap, std::size_t{3000}}) {
    bucket::PartialBucket parts[3];
    for (bucket::PartialBucket& part : parts) {
      for (std::size_t i = 0; i < n; ++i)
        part.Add(value(rng), (kT0 + time(rng)) * kSec, i % 2 ? "ms" : "s", true);
    }
    const auto merged = [&](int x, int y, int z, bool left) {
      bucket::PartialBucket a = parts[x];
      bucket::PartialBucket b = parts[y];
      if (left) {
        a.Merge(b);
        a.Merge(parts[z]);
        return a;
      }
      b.Merge(parts[z]);
      a.Merge(b);
      return a;
    };
    const auto closed = [](bucket::PartialBucket b) {
      std::vector<bucket::ClosedBucket> v(1);
      v[0].key.tenant = "acme";
      v[0].key.name = "x";
      v[0].bucket = std::move(b);
      return v;
    };
    const std::vector<bucket::ClosedBucket> want = closed(merged(0, 1, 2, true));
    const std::string context = "n=" + std::to_string(n);
    ExpectSameBuckets(want, closed(merged(0, 1, 2, false)), context + " a+(b+c)");
    ExpectSameBuckets(want, closed(merged(2, 0, 1, true)), context + " (c+a)+b");
    ExpectSameBuckets(want, closed(merged(1, 2, 0, false)), context + " b+(c+a)");
    ExpectSameBuckets(want, closed(merged(2, 1, 0, true)), context + " (c+b)+a");
  }
}

}  // namespace
}  // namespace drainmet::property
