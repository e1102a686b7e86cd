#include "common/bucket/partial_bucket.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/bucket/codec.h"
#include "tests/support/allocation_counter.h"

namespace drainmet::bucket {
namespace {

constexpr std::int64_t kSecond = 1'000'000'000;

// ---------------------------------------------------------------------------------------
// PartialBucket::Add / Merge (SEMANTICS §6.1, §6.3)

TEST(PartialBucketAdd, AccumulatesCountSumMinMaxSquares) {
  PartialBucket b;
  b.Add(4.5, 10 * kSecond, "ms", true);
  b.Add(-2, 11 * kSecond, "ms", true);
  b.Add(10, 12 * kSecond, "ms", true);
  EXPECT_EQ(b.count, 3u);
  EXPECT_EQ(b.sum, 12.5);
  EXPECT_EQ(b.sum_squares, 4.5 * 4.5 + 4 + 100);
  EXPECT_EQ(b.min, -2);
  EXPECT_EQ(b.max, 10);
  EXPECT_EQ(b.last, 10);
  EXPECT_EQ(b.last_unix_nanos, 12 * kSecond);
  EXPECT_EQ(b.units, "ms");
  EXPECT_EQ(b.values.count(), 3u);
  EXPECT_EQ(b.values.Percentile(50), 4.5);
}

TEST(PartialBucketAdd, KeepsDistributionOnlyWhenAsked) {
  PartialBucket b;
  b.Add(1, 0, "", false);
  b.Add(2, 0, "", false);
  EXPECT_EQ(b.count, 2u);
  EXPECT_EQ(b.values.count(), 0u);
}

// §6.3: the latest sample is the value with the greatest timestamp; on equal
// timestamps, the later one in arrival order within one request.
TEST(PartialBucketAdd, LatestSampleByTimestampThenArrival) {
  PartialBucket b;
  b.Add(1, 20 * kSecond, "", false);
  b.Add(2, 10 * kSecond, "", false);  // Older, arrives later: ignored.
  EXPECT_EQ(b.last, 1);
  b.Add(0.5, 20 * kSecond, "", false);  // Equal time, later arrival wins even if smaller.
  EXPECT_EQ(b.last, 0.5);
  EXPECT_EQ(b.last_unix_nanos, 20 * kSecond);
  b.Add(-3, 21 * kSecond, "", false);
  EXPECT_EQ(b.last, -3);
}

TEST(PartialBucketAdd, NegativeAndMinimalTimestamps) {
  PartialBucket b;
  b.Add(7, std::numeric_limits<std::int64_t>::min(), "", false);
  EXPECT_EQ(b.last, 7);
  b.Add(8, -5 * kSecond, "", false);
  EXPECT_EQ(b.last, 8);
  EXPECT_EQ(b.last_unix_nanos, -5 * kSecond);
}

// §6.3: across requests, equal timestamps go to the greater value, in either order.
TEST(PartialBucketMerge, LatestSampleTieGoesToGreaterValue) {
  PartialBucket a, b;
  a.Add(3, 30 * kSecond, "", false);
  b.Add(5, 30 * kSecond, "", false);
  PartialBucket ab = a, ba = b;
  ab.Merge(b);
  ba.Merge(a);
  EXPECT_EQ(ab.last, 5);
  EXPECT_EQ(ba.last, 5);

  PartialBucket newer;
  newer.Add(-100, 31 * kSecond, "", false);
  ab.Merge(newer);
  EXPECT_EQ(ab.last, -100);
  EXPECT_EQ(ab.last_unix_nanos, 31 * kSecond);
  PartialBucket older;
  older.Add(1000, 29 * kSecond, "", false);
  ab.Merge(older);
  EXPECT_EQ(ab.last, -100);
}

TEST(PartialBucketMerge, SignedZeroTieIsOrderIndependent) {
  PartialBucket a, b;
  a.Add(-0.0, 0, "", true);
  b.Add(0.0, 0, "", true);
  PartialBucket ab = a, ba = b;
  ab.Merge(b);
  ba.Merge(a);
  EXPECT_EQ(std::signbit(ab.last), std::signbit(ba.last));
  EXPECT_FALSE(std::signbit(ab.last));
  EXPECT_TRUE(std::signbit(ab.min));
  EXPECT_TRUE(std::signbit(ba.min));
  EXPECT_FALSE(std::signbit(ab.max));
  EXPECT_FALSE(std::signbit(ba.max));
}

TEST(PartialBucketMerge, EmptyBucketIsIdentity) {
  PartialBucket a;
  a.Add(-4, 5, "s", true);
  PartialBucket empty;
  PartialBucket a_empty = a;
  a_empty.Merge(empty);
  PartialBucket empty_a = empty;
  empty_a.Merge(a);
  for (const PartialBucket* r : {&a_empty, &empty_a}) {
    EXPECT_EQ(r->count, 1u);
    EXPECT_EQ(r->sum, -4);
    EXPECT_EQ(r->min, -4);
    EXPECT_EQ(r->max, -4);
    EXPECT_EQ(r->last, -4);  // Not the empty bucket's default 0.
    EXPECT_EQ(r->last_unix_nanos, 5);
    EXPECT_EQ(r->units, "s");
    EXPECT_EQ(r->values.count(), 1u);
  }
}

// §6.1: the lexicographically smallest non-empty units, in Add and in Merge.
TEST(PartialBucketUnits, SmallestNonEmptyWins) {
  PartialBucket b;
  b.Add(1, 0, "", true);
  EXPECT_EQ(b.units, "");
  b.Add(1, 0, "ms", true);
  EXPECT_EQ(b.units, "ms");
  b.Add(1, 0, "", true);
  EXPECT_EQ(b.units, "ms");
  b.Add(1, 0, "s", true);
  EXPECT_EQ(b.units, "ms");
  b.Add(1, 0, "MB", true);  // Uppercase sorts first.
  EXPECT_EQ(b.units, "MB");

  PartialBucket other;
  other.Add(1, 0, "B", true);
  PartialBucket none;
  none.Add(1, 0, "", true);
  b.Merge(none);
  EXPECT_EQ(b.units, "MB");
  b.Merge(other);
  EXPECT_EQ(b.units, "B");
  none.Merge(b);
  EXPECT_EQ(none.units, "B");
}

// ---------------------------------------------------------------------------------------
// Property: merging the same partial buckets in any order and grouping gives the same
// bucket (SEMANTICS §6.3; sum and sum_squares to 1e-12 relative).

struct RawPoint {
  double value;
  std::int64_t unix_nanos;
  std::string units;
};

std::vector<std::vector<RawPoint>> RandomPartials(std::mt19937_64& rng, int partials, int max_points) {
  const std::vector<std::string> units = {"", "", "ms", "s", "MB", "b"};
  std::uniform_int_distribution<int> size(0, max_points);
  std::uniform_int_distribution<std::int64_t> second(0, 6);  // Few timestamps: many ties.
  std::uniform_int_distribution<std::size_t> unit(0, units.size() - 1);
  std::uniform_int_distribution<int> small(-3, 3);
  std::lognormal_distribution<double> lognormal(2, 1.5);
  std::bernoulli_distribution discrete(0.3);
  std::vector<std::vector<RawPoint>> result(partials);
  for (auto& partial : result) {
    const int n = size(rng);
    for (int i = 0; i < n; ++i) {
      const double v = discrete(rng) ? small(rng) : lognormal(rng) * (small(rng) < -1 ? -1 : 1);
      partial.push_back({v, second(rng) * kSecond, units[unit(rng)]});
    }
  }
  return result;
}

PartialBucket Build(const std::vector<RawPoint>& points) {
  PartialBucket b;
  for (const RawPoint& p : points) b.Add(p.value, p.unix_nanos, p.units, true);
  return b;
}

// Merges copies of `partials` in a random order and a random tree shape.
PartialBucket MergeRandomly(const std::vector<PartialBucket>& partials, std::mt19937_64& rng) {
  std::vector<PartialBucket> pool = partials;
  std::shuffle(pool.begin(), pool.end(), rng);
  while (pool.size() > 1) {
    std::uniform_int_distribution<std::size_t> pick(0, pool.size() - 1);
    const std::size_t into = pick(rng);
    std::size_t from = pick(rng);
    if (from == into) from = (from + 1) % pool.size();
    pool[into].Merge(pool[from]);
    pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(from));
  }
  return pool.front();
}

void ExpectSameBucket(PartialBucket& got, PartialBucket& want, double abs_sum, double sum_abs_squares) {
  EXPECT_EQ(got.count, want.count);
  EXPECT_EQ(got.min, want.min);
  EXPECT_EQ(got.max, want.max);
  EXPECT_EQ(got.last, want.last);
  EXPECT_EQ(got.last_unix_nanos, want.last_unix_nanos);
  EXPECT_EQ(got.units, want.units);
  EXPECT_NEAR(got.sum, want.sum, 1e-12 * abs_sum);
  EXPECT_NEAR(got.sum_squares, want.sum_squares, 1e-12 * sum_abs_squares);
  ASSERT_EQ(got.values.exact(), want.values.exact());
  EXPECT_EQ(got.values.count(), want.values.count());
  if (!got.values.exact()) {
    EXPECT_EQ(got.values.sketch(), want.values.sketch());
  }
  for (int p = 1; p <= 100; ++p) ASSERT_EQ(got.values.Percentile(p), want.values.Percentile(p)) << "p=" << p;
}

void CheckMergeProperty(std::uint64_t seed, int partials, int max_points, bool expect_exact) {
  std::mt19937_64 rng(seed);
  const std::vector<std::vector<RawPoint>> raw = RandomPartials(rng, partials, max_points);
  std::vector<PartialBucket> built;
  std::vector<double> all;
  double abs_sum = 0, sum_squares = 0;
  std::int64_t latest = std::numeric_limits<std::int64_t>::min();
  double latest_value = 0;
  std::string smallest_units;
  for (const auto& points : raw) {
    built.push_back(Build(points));
    const PartialBucket& b = built.back();
    if (b.count > 0 &&
        (b.last_unix_nanos > latest || (b.last_unix_nanos == latest && b.last > latest_value))) {
      latest = b.last_unix_nanos;
      latest_value = b.last;
    }
    for (const RawPoint& p : points) {
      all.push_back(p.value);
      abs_sum += std::fabs(p.value);
      sum_squares += p.value * p.value;
      if (!p.units.empty() && (smallest_units.empty() || p.units < smallest_units)) smallest_units = p.units;
    }
  }
  ASSERT_FALSE(all.empty());
  ASSERT_EQ(all.size() <= Distribution::kExactCap, expect_exact) << all.size();

  PartialBucket first = MergeRandomly(built, rng);
  // Against an independent reference.
  EXPECT_EQ(first.count, all.size());
  EXPECT_EQ(first.min, *std::min_element(all.begin(), all.end()));
  EXPECT_EQ(first.max, *std::max_element(all.begin(), all.end()));
  EXPECT_EQ(first.last, latest_value);
  EXPECT_EQ(first.last_unix_nanos, latest);
  EXPECT_EQ(first.units, smallest_units);
  EXPECT_EQ(first.values.exact(), expect_exact);
  if (expect_exact) {
    std::sort(all.begin(), all.end());
    for (int p : {1, 50, 95, 99, 100}) {
      EXPECT_EQ(first.values.Percentile(p), all[(p * all.size() + 99) / 100 - 1]) << "p=" << p;
    }
  }
  // Against every other order and grouping.
  for (int round = 0; round < 12; ++round) {
    SCOPED_TRACE(round);
    PartialBucket other = MergeRandomly(built, rng);
    ExpectSameBucket(other, first, abs_sum, sum_squares);
  }
}

TEST(PartialBucketMergeProperty, AnyOrderAndGroupingBelowExactCap) {
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(seed);
    CheckMergeProperty(seed, 12, 300, /*expect_exact=*/true);
  }
}

TEST(PartialBucketMergeProperty, AnyOrderAndGroupingAboveExactCap) {
  for (std::uint64_t seed = 100; seed <= 115; ++seed) {
    SCOPED_TRACE(seed);
    CheckMergeProperty(seed, 10, 2000, /*expect_exact=*/false);
  }
}

TEST(PartialBucketMergeProperty, PartialsThemselvesAboveCap) {
  for (std::uint64_t seed = 200; seed <= 203; ++seed) {
    SCOPED_TRACE(seed);
    CheckMergeProperty(seed, 4, 9000, /*expect_exact=*/false);
  }
}

// ---------------------------------------------------------------------------------------
// Keys and windows (SEMANTICS §6.1, §6.2)

TEST(WindowOf, FloorsToResolution) {
  struct Case {
    std::int64_t unix_nanos;
    std::int32_t resolution;
    std::int64_t window;
  };
  const Case cases[] = {
      {0, 60, 0},
      {59 * kSecond + 999'999'999, 60, 0},
      {60 * kSecond, 60, 60},
      {1714564805 * kSecond + 123, 60, 1714564800},
      {1714564805 * kSecond, 1, 1714564805},
      {1714564805 * kSecond, 3600, 1714564800},
      {1714568399 * kSecond, 3600, 1714564800},
      {1714568400 * kSecond, 3600, 1714568400},
      // §6.2 holds for negative t too: floor, not truncation.
      {-1, 60, -60},
      {-1, 1, -1},
      {-60 * kSecond, 60, -60},
      {-60 * kSecond - 1, 60, -120},
      {-61 * kSecond, 60, -120},
      {-kSecond, 1, -1},
      {-kSecond + 1, 1, -1},
      {std::numeric_limits<std::int64_t>::min(), 60, -9223372080},
      {std::numeric_limits<std::int64_t>::max(), 60, 9223372020},
      {5 * kSecond, 0, 5},  // Resolution <= 0 acts as 1.
  };
  for (const Case& c : cases) {
    EXPECT_EQ(WindowOf(c.unix_nanos, c.resolution), c.window) << c.unix_nanos << " / " << c.resolution;
  }
}

TEST(BucketKey, RoundTripsIncludingNegativeWindows) {
  const BucketKey keys[] = {
      {"tenant", "db.latency", "us-east", extract::Kind::kMeasure, 60, 1714564800},
      {"t", "n", "", extract::Kind::kCount, 1, 0},
      {"", "router.service", "web.1", extract::Kind::kSample, 3600, -3600},
      {"acme", "x", "y", extract::Kind::kSample, std::numeric_limits<std::int32_t>::max(),
       std::numeric_limits<std::int64_t>::min()},
      {"acme", "x", "y", extract::Kind::kMeasure, 5, std::numeric_limits<std::int64_t>::max()},
  };
  std::string encoded;
  for (const BucketKey& key : keys) {
    EncodeBucketKey(key.tenant, key.name, key.source, key.kind, key.resolution_seconds,
                    key.window_unix_seconds, encoded);
    EXPECT_EQ(encoded.size(), key.tenant.size() + key.name.size() + key.source.size() + 3 + 13);
    BucketKey decoded;
    ASSERT_TRUE(DecodeBucketKey(encoded, &decoded));
    EXPECT_EQ(decoded, key);
  }
}

TEST(BucketKey, ExactBytes) {
  std::string encoded;
  EncodeBucketKey("t", "n", "s", extract::Kind::kSample, 60, -1, encoded);
  const std::string want("t\0n\0s\0\x02\x00\x00\x00\x3c\x7f\xff\xff\xff\xff\xff\xff\xff", 19);
  EXPECT_EQ(encoded, want);
  EncodeBucketKey("t", "n", "", extract::Kind::kMeasure, 1, 0, encoded);
  EXPECT_EQ(encoded, std::string("t\0n\0\0\x00\x00\x00\x00\x01\x80\x00\x00\x00\x00\x00\x00\x00", 18));
}

TEST(BucketKey, EncodedKeysSortByWindowWithinSeries) {
  const std::int64_t windows[] = {-7200,
                                  -120,
                                  -60,
                                  -1,
                                  0,
                                  60,
                                  120,
                                  1714564800,
                                  std::numeric_limits<std::int64_t>::min(),
                                  std::numeric_limits<std::int64_t>::max()};
  std::vector<std::pair<std::string, std::int64_t>> encoded;
  for (std::int64_t w : windows) {
    std::string key;
    EncodeBucketKey("t", "n", "s", extract::Kind::kMeasure, 60, w, key);
    encoded.emplace_back(key, w);
  }
  std::sort(encoded.begin(), encoded.end());
  for (std::size_t i = 1; i < encoded.size(); ++i) EXPECT_LT(encoded[i - 1].second, encoded[i].second);
}

TEST(BucketKey, EncodedKeysSortBySeriesFields) {
  // (tenant, name, source, kind, resolution) order, with a prefix sorting first.
  std::vector<BucketKey> ordered = {
      {"a", "m", "", extract::Kind::kMeasure, 60, 0},  {"a", "m", "", extract::Kind::kCount, 60, 0},
      {"a", "m", "s", extract::Kind::kMeasure, 60, 0}, {"a", "m.x", "", extract::Kind::kMeasure, 60, 0},
      {"a", "n", "", extract::Kind::kMeasure, 1, 0},   {"a", "n", "", extract::Kind::kMeasure, 300, -600},
      {"ab", "a", "", extract::Kind::kMeasure, 60, 0},
  };
  std::vector<std::string> encoded;
  for (const BucketKey& k : ordered) {
    std::string e;
    EncodeBucketKey(k.tenant, k.name, k.source, k.kind, k.resolution_seconds, k.window_unix_seconds, e);
    encoded.push_back(e);
  }
  EXPECT_TRUE(std::is_sorted(encoded.begin(), encoded.end()));
}

TEST(BucketKey, EncodeReusesCapacity) {
  std::string out;
  out.reserve(128);
  const char* data = out.data();
  EncodeBucketKey("tenant", "name", "source", extract::Kind::kMeasure, 60, 120, out);
  EncodeBucketKey("tenant2", "name2", "", extract::Kind::kCount, 60, -120, out);
  EXPECT_EQ(out.data(), data);
  BucketKey key;
  ASSERT_TRUE(DecodeBucketKey(out, &key));
  EXPECT_EQ(key.tenant, "tenant2");
  EXPECT_EQ(key.window_unix_seconds, -120);
}

TEST(BucketKey, EncodeAfterALongerKeyHasExactlyTheNewBytes) {
  std::string out = std::string(200, 'x');
  EncodeBucketKey("t", "n", "s", extract::Kind::kSample, 60, -1, out);
  EXPECT_EQ(out, std::string("t\0n\0s\0\x02\x00\x00\x00\x3c\x7f\xff\xff\xff\xff\xff\xff\xff", 19));
  EncodeBucketKey("", "", "", extract::Kind::kCount, 0x01020304, 0x0102030405060708, out);
  EXPECT_EQ(out, std::string("\0\0\0\x01\x01\x02\x03\x04\x81\x02\x03\x04\x05\x06\x07\x08", 16));
}

// HashKeyBytes: equal bytes hash equal (also through EncodedKey), and the keys of a
// request spread over both the bits absl's table reads (low 7 and the rest).
TEST(HashKeyBytes, EqualBytesHashEqual) {
  for (std::size_t n = 0; n <= 40; ++n) {
    const std::string a(n, 'k');
    const std::string b = a;  // Another buffer.
    EXPECT_EQ(HashKeyBytes(a), HashKeyBytes(b)) << n;
    EXPECT_EQ(EncodedKeyHash{}(EncodedKey(a)), EncodedKeyHash{}(std::string_view(b))) << n;
  }
}

TEST(HashKeyBytes, EveryByteAndLengthCounts) {
  std::string key;
  EncodeBucketKey("default", "http.request.time", "web.1", extract::Kind::kMeasure, 60, 1709647320, key);
  const std::uint64_t base = HashKeyBytes(key);
  for (std::size_t i = 0; i < key.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string flipped = key;
      flipped[i] = static_cast<char>(flipped[i] ^ (1 << bit));
      EXPECT_NE(HashKeyBytes(flipped), base) << i << " " << bit;
    }
  }
  // A trailing NUL (or a shorter key) is another key.
  EXPECT_NE(HashKeyBytes(key + std::string(1, '\0')), base);
  EXPECT_NE(HashKeyBytes(std::string_view(key).substr(0, key.size() - 1)), base);
  EXPECT_NE(HashKeyBytes(std::string(8, '\0')), HashKeyBytes(std::string(16, '\0')));
}

TEST(HashKeyBytes, RequestKeysSpreadOverLowAndHighBits) {
  std::vector<std::uint64_t> hashes;
  std::string key;
  for (int name = 0; name < 100; ++name) {
    for (int window = 0; window < 20; ++window) {
      EncodeBucketKey("default", "app.metric." + std::to_string(name), "web." + std::to_string(window % 3),
                      extract::Kind::kMeasure, 60, 1709647320 + 60 * window, key);
      hashes.push_back(HashKeyBytes(key));
    }
  }
  std::vector<std::uint64_t> sorted = hashes;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end()) << "no collisions among 2000 keys";
  std::vector<int> low7(128), high(256);
  for (std::uint64_t h : hashes) {
    ++low7[h & 0x7f];
    ++high[h >> 56];
  }
  // 2000 keys: about 15.6 per low-7 value and 7.8 per top byte; a poor mix piles up.
  EXPECT_LT(*std::max_element(low7.begin(), low7.end()), 40);
  EXPECT_LT(*std::max_element(high.begin(), high.end()), 30);
  EXPECT_LT(std::count(low7.begin(), low7.end(), 0), 3);
}

TEST(BucketKey, DecodeRejectsMalformed) {
  std::string good;
  EncodeBucketKey("t", "n", "s", extract::Kind::kCount, 60, 0, good);
  std::string bad_kind = good;
  bad_kind[6] = 3;
  std::string zero_resolution = good;
  zero_resolution[10] = 0;  // resolution 0x0000003c -> 0
  std::string negative_resolution = good;
  negative_resolution[7] = '\x80';
  const std::string cases[] = {
      "",
      std::string(15, '\0'),                                       // Shorter than three NULs + tail.
      std::string("\0\0\0\0", 4) + good.substr(good.size() - 13),  // Four NULs.
      good.substr(0, good.size() - 1),                             // Short tail.
      std::string("tns") + good.substr(good.size() - 13),          // No separators.
      std::string("t\0n\0s", 5) + good.substr(good.size() - 13),   // Third NUL missing.
      bad_kind,
      zero_resolution,
      negative_resolution,
  };
  for (const std::string& c : cases) {
    BucketKey key{"keep", "", "", extract::Kind::kMeasure, 60, 0};
    EXPECT_FALSE(DecodeBucketKey(c, &key)) << testing::PrintToString(c);
    EXPECT_EQ(key.tenant, "keep");
  }
  BucketKey key;
  EXPECT_TRUE(DecodeBucketKey(good, &key));
}

// ---------------------------------------------------------------------------------------
// BucketMap

extract::Point MakePoint(extract::Kind kind, std::string_view name, std::string_view source, double value,
                         std::int64_t unix_nanos, std::string_view units = "") {
  extract::Point p;
  p.kind = kind;
  p.name = name;
  p.source = source;
  p.value = value;
  p.time_unix_nanos = unix_nanos;
  p.units = units;
  return p;
}

TEST(BucketMap, GroupsPointsBySeriesAndWindow) {
  BucketMap map;
  map.Add("t1", 60, MakePoint(extract::Kind::kMeasure, "db", "", 1, 60 * kSecond, "ms"));
  map.Add("t1", 60, MakePoint(extract::Kind::kMeasure, "db", "", 3, 119 * kSecond, "ms"));
  map.Add("t1", 60, MakePoint(extract::Kind::kMeasure, "db", "", 5, 120 * kSecond));
  map.Add("t1", 60, MakePoint(extract::Kind::kCount, "db", "", 1, 61 * kSecond));
  map.Add("t1", 60, MakePoint(extract::Kind::kMeasure, "db", "web.1", 2, 61 * kSecond));
  map.Add("t0", 60, MakePoint(extract::Kind::kSample, "q", "", 9, -1));
  EXPECT_EQ(map.size(), 5u);

  std::vector<ClosedBucket> closed = map.TakeAll();
  EXPECT_TRUE(map.empty());
  ASSERT_EQ(closed.size(), 5u);

  EXPECT_EQ(closed[0].key, (BucketKey{"t0", "q", "", extract::Kind::kSample, 60, -60}));
  EXPECT_EQ(closed[0].bucket.last, 9);
  EXPECT_EQ(closed[0].bucket.values.count(), 0u);  // Only measures keep a distribution.

  EXPECT_EQ(closed[1].key, (BucketKey{"t1", "db", "", extract::Kind::kMeasure, 60, 60}));
  EXPECT_EQ(closed[1].bucket.count, 2u);
  EXPECT_EQ(closed[1].bucket.sum, 4);
  EXPECT_EQ(closed[1].bucket.units, "ms");
  EXPECT_EQ(closed[1].bucket.values.count(), 2u);

  EXPECT_EQ(closed[2].key, (BucketKey{"t1", "db", "", extract::Kind::kMeasure, 60, 120}));
  EXPECT_EQ(closed[2].bucket.count, 1u);
  EXPECT_EQ(closed[2].bucket.units, "");

  EXPECT_EQ(closed[3].key, (BucketKey{"t1", "db", "", extract::Kind::kCount, 60, 60}));
  EXPECT_EQ(closed[3].bucket.values.count(), 0u);

  EXPECT_EQ(closed[4].key, (BucketKey{"t1", "db", "web.1", extract::Kind::kMeasure, 60, 60}));
  EXPECT_EQ(map.TakeAll().size(), 0u);
}

TEST(BucketMap, MergeCombinesMatchingBuckets) {
  BucketMap a, b;
  a.Add("t", 10, MakePoint(extract::Kind::kSample, "q", "", 1, 5 * kSecond));
  a.Add("t", 10, MakePoint(extract::Kind::kSample, "r", "", 1, 5 * kSecond));
  b.Add("t", 10, MakePoint(extract::Kind::kSample, "q", "", 7, 5 * kSecond));
  b.Add("t", 10, MakePoint(extract::Kind::kSample, "q", "", 2, 15 * kSecond));
  a.Merge(std::move(b));
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move): Merge leaves it empty.
  ASSERT_EQ(a.size(), 3u);
  std::vector<ClosedBucket> closed = a.TakeAll();
  EXPECT_EQ(closed[0].key.name, "q");
  EXPECT_EQ(closed[0].key.window_unix_seconds, 0);
  EXPECT_EQ(closed[0].bucket.count, 2u);
  EXPECT_EQ(closed[0].bucket.last, 7);  // Equal time across requests: the greater value.
  EXPECT_EQ(closed[1].key.window_unix_seconds, 10);
  EXPECT_EQ(closed[2].key.name, "r");

  BucketMap empty, c;
  c.Add("t", 10, MakePoint(extract::Kind::kCount, "hits", "", 1, 0));
  empty.Merge(std::move(c));
  EXPECT_EQ(empty.size(), 1u);
  EXPECT_TRUE(c.empty());  // NOLINT(bugprone-use-after-move)
}

TEST(BucketMap, MergeBucketInsertsOrMerges) {
  BucketMap map;
  std::string key;
  EncodeBucketKey("t", "m", "", extract::Kind::kMeasure, 60, 0, key);
  PartialBucket one;
  one.Add(1, 0, "", true);
  PartialBucket two;
  two.Add(2, 0, "", true);
  map.MergeBucket(key, std::move(one));
  map.MergeBucket(key, std::move(two));
  map.Add("t", 60, MakePoint(extract::Kind::kMeasure, "m", "", 3, 59 * kSecond));
  ASSERT_EQ(map.size(), 1u);
  std::vector<ClosedBucket> closed = map.TakeAll();
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].bucket.count, 3u);
  EXPECT_EQ(closed[0].bucket.values.Percentile(50), 2);
}

}  // namespace
}  // namespace drainmet::bucket

namespace drainmet::bucket {
namespace {

// ---- EncodedKey and table reuse (issue "Performance": no allocation per bucket) --------

TEST(EncodedKeyTest, ShortKeysInlineLongKeysOnTheHeapBothCopyAndMove) {
  const std::string short_bytes(EncodedKey::kInlineBytes, 'a');
  const std::string long_bytes(EncodedKey::kInlineBytes + 1, 'b');
  for (const std::string& bytes : {short_bytes, long_bytes, std::string("x\0y", 3), std::string()}) {
    EncodedKey key(bytes);
    EXPECT_EQ(key.view(), bytes);
    EncodedKey copy = key;
    EXPECT_EQ(copy.view(), bytes);
    EXPECT_EQ(copy, key);
    EncodedKey moved = std::move(copy);
    EXPECT_EQ(moved.view(), bytes);
    EncodedKey assigned("other");
    assigned = moved;
    EXPECT_EQ(assigned.view(), bytes);
    assigned = EncodedKey("z");
    EXPECT_EQ(assigned.view(), "z");
    EXPECT_EQ(EncodedKeyHash{}(key), EncodedKeyHash{}(std::string_view(bytes)));
  }
  EXPECT_LT(EncodedKey("a"), EncodedKey("b"));
  EXPECT_LT(EncodedKey(short_bytes), EncodedKey(long_bytes));
}

extract::Point CountPoint(const std::string& name, std::string_view source, std::int64_t t) {
  extract::Point p;
  p.kind = extract::Kind::kCount;
  p.name = name;
  p.source = source;
  p.value = 1;
  p.time_unix_nanos = t;
  return p;
}

TEST(BucketMapTest, ClearedTableIsReusedAndFindsByBytes) {
  BucketMap map;
  std::vector<std::string> names;
  for (int i = 0; i < 300; ++i) names.push_back("metric.number." + std::to_string(i));
  long allocations_after_first_round = 0;
  for (int round = 0; round < 3; ++round) {
    const long before = testing_support::AllocationCount();
    for (const std::string& name : names) {
      const extract::Point p = CountPoint(name, "web.1", 1'700'000'000'000'000'000);
      map.Add("acme", 60, p);
      map.Add("acme", 60, p);
    }
    ASSERT_EQ(map.size(), 300u);
    for (const auto& [key, bucket] : map.map()) EXPECT_EQ(bucket.count, 2u);
    std::string encoded;
    EncodeBucketKey("acme", "metric.number.7", "web.1", extract::Kind::kCount, 60, 1'699'999'980, encoded);
    ASSERT_TRUE(map.map().contains(std::string_view(encoded)));
    map.clear();
    EXPECT_TRUE(map.empty());
    if (round > 0) allocations_after_first_round += testing_support::AllocationCount() - before;
  }
  // Keys are inline and the slot array stays: a reused table allocates nothing per bucket
  // (600 points and 300 buckets a round; the `encoded` probe above allocates per round).
  EXPECT_LE(allocations_after_first_round, 2 * 2);
}

// A thread's spare table (the receiver's request tables): TakeSpare gives back the table
// this thread gave back, emptied, with its slot array; another thread gets a new one; a
// table past kMaxSpareSlots is not kept.
TEST(BucketMapTest, SpareTableComesBackEmptyWithItsSlotsOnItsThreadOnly) {
  BucketMap table = BucketMap::TakeSpare();
  EXPECT_TRUE(table.empty());
  for (int i = 0; i < 500; ++i) {
    table.Add("acme", 60, CountPoint("m." + std::to_string(i), "web.1", 1'700'000'000'000'000'000));
  }
  ASSERT_EQ(table.size(), 500u);
  const std::size_t capacity = table.map().capacity();
  BucketMap::GiveBack(std::move(table));

  std::size_t other_capacity = 1;
  std::thread([&other_capacity] { other_capacity = BucketMap::TakeSpare().map().capacity(); }).join();
  EXPECT_EQ(other_capacity, 0u) << "another thread's spare is not this one's";

  BucketMap again = BucketMap::TakeSpare();
  EXPECT_TRUE(again.empty());
  EXPECT_EQ(again.map().capacity(), capacity);
  again.Add("acme", 60, CountPoint("m.1", "web.1", 1'700'000'000'000'000'000));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again.map().begin()->second.count, 1u);
  EXPECT_EQ(BucketMap::TakeSpare().map().capacity(), 0u) << "taken: none is left";

  BucketMap large;
  large.map().reserve(BucketMap::kMaxSpareSlots + 1);
  BucketMap::GiveBack(std::move(large));
  EXPECT_EQ(BucketMap::TakeSpare().map().capacity(), 0u) << "too large to keep";
}

// ---------------------------------------------------------------------------------------
// The point log (BucketMap::set_log_points)

// Every bucket of `map` (taken out) as its encoded record: equal exactly when the keys and
// every field are, doubles bit for bit and the values in order.
std::vector<std::string> Records(BucketMap& map) {
  std::vector<std::string> records;
  for (const ClosedBucket& closed : map.TakeAll())
    EncodeRecord(closed.key, closed.bucket, records.emplace_back());
  return records;
}

// The log changes cost, never buckets: random requests (repeats, equal timestamps, -0,
// differing units, every kind), some past 2^14 series so that index slots collide, give
// with the log exactly the buckets they give without it, and the same size() and points().
TEST(BucketMapLog, GivesExactlyTheBucketsOfTheTable) {
  std::mt19937_64 rng(20261130);
  const std::vector<std::string> names = {"db.latency", "mem", "req", "x.perc95"};
  const std::vector<std::string_view> units = {"", "ms", "s", "MB"};
  std::size_t collided = 0;
  for (int request = 0; request < 40; ++request) {
    const int series = request % 4 == 0 ? 30'000 : 1 + static_cast<int>(rng() % 3'000);
    const int points = series + static_cast<int>(rng() % static_cast<std::uint64_t>(2 * series + 1));
    std::vector<std::string> sources;
    for (int i = 0; i < series; ++i) sources.push_back("web." + std::to_string(i));
    BucketMap plain;
    BucketMap logged;
    logged.set_log_points(true);
    for (int i = 0; i < points; ++i) {
      const auto s = static_cast<std::size_t>(rng() % static_cast<std::uint64_t>(series));
      extract::Point p =
          MakePoint(static_cast<extract::Kind>(s % 3), names[s % names.size()], sources[s],
                    static_cast<double>(rng() % 7) - 3, static_cast<std::int64_t>(10 + rng() % 3) * kSecond,
                    units[rng() % units.size()]);
      if (rng() % 50 == 0) p.value = -0.0;
      plain.Add("acme", 60, p);
      logged.Add("acme", 60, p);
    }
    ASSERT_EQ(logged.size(), plain.size()) << request;
    ASSERT_EQ(logged.points(), static_cast<std::uint64_t>(points)) << request;
    ASSERT_EQ(plain.points(), static_cast<std::uint64_t>(points)) << request;
    EXPECT_GT(logged.logged_points().size(), 0u);
    if (series > (1 << 14)) collided += logged.table().size();
    const std::size_t buckets = plain.size();
    const std::vector<std::string> expected = Records(plain);
    ASSERT_EQ(expected.size(), buckets) << "every key decodes";
    ASSERT_EQ(Records(logged), expected) << request;
  }
  EXPECT_GT(collided, 0u) << "the large requests put series in the table for a taken slot";
}

// A series seen once stays in the log; one that comes again moves into the table, its
// logged point first, so the later of two points at one timestamp is the bucket's last
// (SEMANTICS §6.3), as in a table alone.
TEST(BucketMapLog, ASeriesThatComesAgainMovesIntoTheTableInOrder) {
  BucketMap map;
  map.set_log_points(true);
  map.Add("acme", 60, MakePoint(extract::Kind::kSample, "q", "web.1", 5, 61 * kSecond));
  map.Add("acme", 60, MakePoint(extract::Kind::kMeasure, "db", "web.1", 2, 61 * kSecond, "ms"));
  map.Add("acme", 60, MakePoint(extract::Kind::kCount, "req", "web.1", 1, 62 * kSecond));
  EXPECT_EQ(map.size(), 3u);
  EXPECT_EQ(map.logged_points().size(), 3u);
  EXPECT_TRUE(map.table().empty());

  map.Add("acme", 60, MakePoint(extract::Kind::kSample, "q", "web.1", 3, 61 * kSecond));
  EXPECT_EQ(map.size(), 3u);
  EXPECT_EQ(map.points(), 4u);
  ASSERT_EQ(map.table().size(), 1u);
  EXPECT_EQ(map.logged_points()[0].key_size, 0u) << "moved into the table";
  const PartialBucket& q = map.table().begin()->second;
  EXPECT_EQ(q.count, 2u);
  EXPECT_EQ(q.last, 3) << "the later point of the request wins an equal timestamp";
  EXPECT_EQ(q.max, 5);

  const PartialBucket db = map.LoggedBucket(map.logged_points()[1]);
  EXPECT_EQ(db.count, 1u);
  EXPECT_EQ(db.sum, 2);
  EXPECT_EQ(db.units, "ms");
  EXPECT_EQ(db.values.count(), 1u);
  const RecordKeyView key = map.LoggedKey(map.logged_points()[1]);
  EXPECT_EQ(key.tenant, "acme");
  EXPECT_EQ(key.name, "db");
  EXPECT_EQ(key.source, "web.1");
  EXPECT_EQ(key.kind, extract::Kind::kMeasure);
  EXPECT_EQ(key.resolution_seconds, 60);
  EXPECT_EQ(key.window_unix_seconds, 60);
  EXPECT_EQ(map.LoggedUnits(map.logged_points()[1]), "ms");
  const RecordKeyView no_source = map.LoggedKey(map.logged_points()[2]);
  EXPECT_EQ(no_source.name, "req");
  EXPECT_EQ(no_source.source, "web.1");

  // map() folds the log: every bucket in the table, the log empty, nothing lost.
  EXPECT_EQ(map.map().size(), 3u);
  EXPECT_TRUE(map.logged_points().empty());
  EXPECT_EQ(map.size(), 3u);
  EXPECT_EQ(map.points(), 4u);
}

// clear() empties the log and keeps the setting; a cleared table logs afresh (its index
// forgets the previous request's series); Merge and TakeAll see logged points.
TEST(BucketMapLog, ClearMergeAndTakeAllSeeTheLog) {
  BucketMap map;
  map.set_log_points(true);
  map.Add("acme", 60, CountPoint("a", "web.1", 61 * kSecond));
  map.clear();
  EXPECT_TRUE(map.empty());
  EXPECT_TRUE(map.log_points());
  map.Add("acme", 60, CountPoint("a", "web.1", 61 * kSecond));
  EXPECT_EQ(map.logged_points().size(), 1u);
  EXPECT_TRUE(map.table().empty()) << "a new request: the series is logged again";
  map.Add("", 60, CountPoint("c", "", 61 * kSecond));
  const RecordKeyView empty = map.LoggedKey(map.logged_points()[1]);
  EXPECT_EQ(empty.tenant, "");
  EXPECT_EQ(empty.name, "c");
  EXPECT_EQ(empty.source, "");
  map.clear();
  map.Add("acme", 60, CountPoint("a", "web.1", 61 * kSecond));

  BucketMap other;
  other.set_log_points(true);
  other.Add("acme", 60, CountPoint("a", "web.1", 62 * kSecond));
  other.Add("acme", 60, CountPoint("b", "web.1", 62 * kSecond));
  map.Merge(std::move(other));
  std::vector<ClosedBucket> closed = map.TakeAll();
  ASSERT_EQ(closed.size(), 2u);
  EXPECT_EQ(closed[0].key.name, "a");
  EXPECT_EQ(closed[0].bucket.count, 2u);
  EXPECT_EQ(closed[1].key.name, "b");
  EXPECT_EQ(closed[1].bucket.count, 1u);
  EXPECT_TRUE(map.empty());
}

// A point holds its own index slot (2^14 of them, 16 bits each): a request of 70,000
// series logs at most 16,384 of them, the table takes the rest, and the buckets are exactly
// the table's; the same map, cleared, and a moved-from map log afresh.
TEST(BucketMapLog, PastTheIndexSlotsTheTableTakesTheRest) {
  constexpr int kSeries = 70'000;
  BucketMap plain;
  BucketMap logged;
  logged.set_log_points(true);
  const std::string name = "req";  // the points view their name and source
  for (int i = 0; i < kSeries; ++i) {
    const std::string source = "web." + std::to_string(i);
    const extract::Point p = CountPoint(name, source, 61 * kSecond);
    plain.Add("acme", 60, p);
    logged.Add("acme", 60, p);
  }
  EXPECT_LE(logged.logged_points().size(), 16'384u);
  EXPECT_GT(logged.logged_points().size(), 10'000u);
  EXPECT_EQ(logged.size(), static_cast<std::size_t>(kSeries));
  EXPECT_EQ(logged.points(), static_cast<std::uint64_t>(kSeries));
  EXPECT_EQ(logged.table().size() + logged.logged_points().size(), static_cast<std::size_t>(kSeries));
  ASSERT_EQ(Records(logged), Records(plain));

  logged.clear();
  logged.Add("acme", 60, CountPoint("req", "web.1", 61 * kSecond));
  logged.Add("acme", 60, CountPoint("req", "web.1", 62 * kSecond));
  EXPECT_EQ(logged.logged_points().size(), 1u);
  ASSERT_EQ(logged.table().size(), 1u) << "the series came again: the cleared index found it";
  EXPECT_EQ(logged.table().begin()->second.count, 2u);

  BucketMap moved = std::move(logged);
  logged.clear();  // NOLINT(bugprone-use-after-move): a moved-from map is reusable
  logged.set_log_points(true);
  logged.Add("acme", 60, CountPoint("req", "web.2", 61 * kSecond));
  EXPECT_EQ(logged.logged_points().size(), 1u);
  EXPECT_EQ(logged.points(), 1u);
}

}  // namespace
}  // namespace drainmet::bucket
