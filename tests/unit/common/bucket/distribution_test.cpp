#include "common/bucket/distribution.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "tests/support/allocation_counter.h"

namespace drainmet::bucket {
namespace {

// Reference nearest rank on a sorted copy (SEMANTICS §6.4), written independently of the
// integer formula: the smallest index i with (i + 1) / n >= P / 100.
double ReferencePercentile(std::vector<double> values, int p) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  for (std::size_t i = 0; i < n; ++i) {
    if ((i + 1) * 100 >= static_cast<std::size_t>(p) * n) return values[i];
  }
  return values.back();
}

std::vector<double> OneTo(int n) {
  std::vector<double> values;
  for (int i = 1; i <= n; ++i) values.push_back(i);
  return values;
}

struct PercentileCase {
  int n;
  double p50, p95, p99;
};

// FORMATS.md §6.4 test vectors, nearest-rank columns; SEMANTICS §6.4 examples.
const PercentileCase kNearestRank[] = {
    {1, 1, 1, 1},     {2, 1, 2, 2},      {4, 2, 4, 4},          {5, 3, 5, 5},
    {20, 10, 19, 20}, {100, 50, 95, 99}, {1000, 500, 950, 990}, {4096, 2048, 3892, 4056},
};

TEST(DistributionPercentile, NearestRankVectorsOfSemantics64) {
  for (const PercentileCase& c : kNearestRank) {
    SCOPED_TRACE(c.n);
    Distribution d;
    for (double v : OneTo(c.n)) d.Add(v);
    ASSERT_TRUE(d.exact());
    EXPECT_EQ(d.Percentile(50), c.p50);
    EXPECT_EQ(d.Percentile(95), c.p95);
    EXPECT_EQ(d.Percentile(99), c.p99);
    EXPECT_EQ(d.Percentile(100), c.n);
    EXPECT_EQ(d.Percentile(1), (c.n + 99) / 100);  // ceil(n / 100)
  }
}

TEST(DistributionPercentile, ShuffledInputGivesSameRanks) {
  std::mt19937_64 rng(6004);
  for (const PercentileCase& c : kNearestRank) {
    for (int round = 0; round < 5; ++round) {
      SCOPED_TRACE(testing::Message() << "n=" << c.n << " round=" << round);
      std::vector<double> values = OneTo(c.n);
      std::shuffle(values.begin(), values.end(), rng);
      Distribution d;
      for (double v : values) d.Add(v);
      EXPECT_EQ(d.Percentile(50), c.p50);
      EXPECT_EQ(d.Percentile(95), c.p95);
      EXPECT_EQ(d.Percentile(99), c.p99);
    }
  }
}

TEST(DistributionPercentile, MatchesReferenceForEveryPAndN) {
  std::mt19937_64 rng(64);
  std::uniform_real_distribution<double> uniform(-1000, 1000);
  for (int n = 1; n <= 230; ++n) {
    std::vector<double> values;
    for (int i = 0; i < n; ++i) values.push_back(uniform(rng));
    Distribution d;
    for (double v : values) d.Add(v);
    for (int p = 1; p <= 100; ++p) {
      ASSERT_EQ(d.Percentile(p), ReferencePercentile(values, p)) << "n=" << n << " p=" << p;
    }
  }
}

TEST(DistributionPercentile, AddAfterPercentileResorts) {
  Distribution d;
  for (double v : {5.0, 1.0, 3.0}) d.Add(v);
  EXPECT_EQ(d.Percentile(50), 3);
  d.Add(0);
  d.Add(-1);
  EXPECT_EQ(d.Percentile(50), 1);  // -1 0 1 3 5
  Distribution other;
  for (double v : {-9.0, -8.0, -7.0}) other.Add(v);
  d.Merge(other);
  EXPECT_EQ(d.Percentile(50), -1);  // -9 -8 -7 -1 0 1 3 5
}

TEST(DistributionPercentile, EmptyAndOutOfRangeP) {
  Distribution d;
  EXPECT_EQ(d.Percentile(50), 0);  // Precondition broken: defined, not a crash.
  d.Add(7);
  d.Add(8);
  EXPECT_EQ(d.Percentile(0), 7);
  EXPECT_EQ(d.Percentile(250), 8);
}

TEST(TotalLess, OrdersSignedZerosAndNan) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(TotalLess(-0.0, 0.0));
  EXPECT_FALSE(TotalLess(0.0, -0.0));
  EXPECT_TRUE(TotalLess(1, 2));
  EXPECT_FALSE(TotalLess(2, 1));
  EXPECT_FALSE(TotalLess(2, 2));
  EXPECT_TRUE(TotalLess(std::numeric_limits<double>::infinity(), nan));
  EXPECT_FALSE(TotalLess(nan, 0));
  EXPECT_FALSE(TotalLess(nan, nan));
}

// §6.3: exact while the bucket holds at most 4096 values.
TEST(DistributionSwitch, AddStaysExactAt4096AndSketchesAt4097) {
  Distribution d;
  for (int i = 1; i <= 4096; ++i) d.Add(i);
  EXPECT_TRUE(d.exact());
  EXPECT_EQ(d.count(), 4096u);
  EXPECT_EQ(d.values().size(), 4096u);
  EXPECT_EQ(d.Percentile(95), 3892);
  d.Add(4097);
  EXPECT_FALSE(d.exact());
  EXPECT_EQ(d.count(), 4097u);
  EXPECT_TRUE(d.values().empty());
  EXPECT_EQ(d.sketch().count(), 4097u);
  EXPECT_NEAR(d.Percentile(95), 3893, 3893 * 0.01);  // (95*4097+99)/100-1 = 3892 -> 3893
}

TEST(DistributionSwitch, MergeStaysExactAt4096AndSketchesAt4097) {
  Distribution a, b;
  for (int i = 0; i < 2048; ++i) a.Add(i);
  for (int i = 0; i < 2048; ++i) b.Add(i);
  Distribution exact = a;
  exact.Merge(b);
  EXPECT_TRUE(exact.exact());
  EXPECT_EQ(exact.count(), 4096u);

  b.Add(2048);
  Distribution sketched = a;
  sketched.Merge(b);
  EXPECT_FALSE(sketched.exact());
  EXPECT_EQ(sketched.count(), 4097u);

  // The same values added one by one give the same sketch.
  Distribution added;
  for (double v : a.values()) added.Add(v);
  for (double v : b.values()) added.Add(v);
  EXPECT_FALSE(added.exact());
  EXPECT_EQ(added.sketch(), sketched.sketch());
}

TEST(DistributionSwitch, MergeOfExactIntoSketchAndBack) {
  Distribution big, small;
  for (int i = 1; i <= 5000; ++i) big.Add(i);
  for (int i = 1; i <= 10; ++i) small.Add(-i);
  Distribution left = big;
  left.Merge(small);
  Distribution right = small;
  right.Merge(big);
  EXPECT_FALSE(left.exact());
  EXPECT_FALSE(right.exact());
  EXPECT_EQ(left.sketch(), right.sketch());
  EXPECT_EQ(left.count(), 5010u);
  // Rank 0 is -10, the most negative.
  EXPECT_NEAR(left.Percentile(1) /* rank (5010+99)/100-1 = 50 */, 41, 41 * 0.01);
  Distribution empty;
  left.Merge(empty);
  EXPECT_EQ(left.count(), 5010u);
}

// ---- Layout (distribution.h): one value inline, the vector from the second, the sketch
// allocated on the switch. Behaviour is the same whichever holds the values.

std::vector<double> ValuesOf(const Distribution& d) { return {d.values().begin(), d.values().end()}; }

// A sketched distribution of 1..n (n > kExactCap).
Distribution Sketched(int n) {
  Distribution d;
  for (int i = 1; i <= n; ++i) d.Add(i);
  return d;
}

TEST(DistributionInline, OneValueIsHeldWithoutAllocating) {
  Distribution d;
  const long before = testing_support::AllocationCount();
  d.Add(-0.0);
  EXPECT_EQ(testing_support::AllocationCount() - before, 0);
  EXPECT_TRUE(d.exact());
  EXPECT_EQ(d.count(), 1u);
  ASSERT_EQ(d.values().size(), 1u);
  EXPECT_EQ(std::bit_cast<std::uint64_t>(d.values()[0]), std::bit_cast<std::uint64_t>(-0.0));
  for (int p : {1, 50, 95, 99, 100}) {
    EXPECT_EQ(std::bit_cast<std::uint64_t>(d.Percentile(p)), std::bit_cast<std::uint64_t>(-0.0)) << p;
  }
  EXPECT_EQ(d.sketch().count(), 0u);
}

TEST(DistributionInline, SecondValueMovesBothToTheVectorInOrder) {
  Distribution d;
  d.Add(7);
  EXPECT_EQ(d.Percentile(50), 7);
  d.Add(3);
  EXPECT_EQ(d.count(), 2u);
  EXPECT_EQ(ValuesOf(d), (std::vector<double>{7, 3}));
  EXPECT_EQ(d.Percentile(50), 3);
  EXPECT_EQ(d.Percentile(100), 7);
  EXPECT_EQ(ValuesOf(d), (std::vector<double>{3, 7}));  // sorted in place
  d.Add(5);
  EXPECT_EQ(d.Percentile(50), 5);
}

TEST(DistributionInline, MergeOfInlineAndInline) {
  Distribution a, b;
  a.Add(3);
  b.Add(1);
  a.Merge(b);
  EXPECT_TRUE(a.exact());
  EXPECT_EQ(ValuesOf(a), (std::vector<double>{3, 1}));
  EXPECT_EQ(a.Percentile(50), 1);
  EXPECT_EQ(a.Percentile(100), 3);
  EXPECT_EQ(ValuesOf(b), (std::vector<double>{1}));  // `other` untouched

  // An empty distribution merging one value holds it inline too.
  Distribution empty;
  const long before = testing_support::AllocationCount();
  empty.Merge(b);
  EXPECT_EQ(testing_support::AllocationCount() - before, 0);
  EXPECT_EQ(ValuesOf(empty), (std::vector<double>{1}));
  Distribution none;
  b.Merge(none);
  EXPECT_EQ(ValuesOf(b), (std::vector<double>{1}));
}

TEST(DistributionInline, MergeOfInlineAndVector) {
  Distribution one, three;
  one.Add(5);
  for (double v : {1.0, 2.0, 3.0}) three.Add(v);
  Distribution left = one;
  left.Merge(three);
  EXPECT_EQ(ValuesOf(left), (std::vector<double>{5, 1, 2, 3}));
  Distribution right = three;
  right.Merge(one);
  EXPECT_EQ(ValuesOf(right), (std::vector<double>{1, 2, 3, 5}));
  for (int p : {1, 25, 50, 75, 100}) EXPECT_EQ(left.Percentile(p), right.Percentile(p)) << p;
  EXPECT_EQ(left.Percentile(50), 2);
  EXPECT_EQ(left.Percentile(75), 3);

  // At the cap: 4095 + 1 stays exact, 4096 + 1 sketches.
  Distribution full;
  for (int i = 1; i <= 4095; ++i) full.Add(i);
  full.Merge(one);
  EXPECT_TRUE(full.exact());
  EXPECT_EQ(full.count(), 4096u);
  full.Merge(one);
  EXPECT_FALSE(full.exact());
  EXPECT_EQ(full.count(), 4097u);
  EXPECT_TRUE(full.values().empty());
}

TEST(DistributionInline, MergeOfInlineAndSketch) {
  const Distribution big = Sketched(5000);
  Distribution one;
  one.Add(-7);
  Distribution left = one;
  left.Merge(big);
  Distribution right = big;
  right.Merge(one);
  DDSketch want = big.sketch();
  want.Add(-7);
  for (const Distribution* d : {&left, &right}) {
    EXPECT_FALSE(d->exact());
    EXPECT_EQ(d->count(), 5001u);
    EXPECT_TRUE(d->values().empty());
    EXPECT_EQ(d->sketch(), want);
  }
  EXPECT_NEAR(left.Percentile(1), 50, 50 * 0.01);  // rank (5001+99)/100-1 = 50: value 50
  EXPECT_EQ(left.Percentile(1), right.Percentile(1));
}

TEST(DistributionInline, CopyOfASketchIsDeepAndEqual) {
  Distribution original = Sketched(5000);
  Distribution copy = original;
  EXPECT_FALSE(copy.exact());
  EXPECT_EQ(copy.sketch(), original.sketch());
  EXPECT_NE(&copy.sketch(), &original.sketch());
  copy.Add(1e9);
  EXPECT_EQ(copy.count(), 5001u);
  EXPECT_EQ(original.count(), 5000u);
  EXPECT_EQ(original.sketch().count(), 5000u);

  // Assignment: onto an inline distribution, onto another sketch, and back to exact.
  Distribution assigned;
  assigned.Add(1);
  assigned = original;
  EXPECT_EQ(assigned.sketch(), original.sketch());
  assigned.Add(2);
  EXPECT_EQ(original.count(), 5000u);
  Distribution other = Sketched(6000);
  other = original;
  EXPECT_EQ(other.sketch(), original.sketch());
  Distribution one;
  one.Add(4);
  other = one;
  EXPECT_TRUE(other.exact());
  EXPECT_EQ(ValuesOf(other), (std::vector<double>{4}));
  EXPECT_EQ(other.sketch().count(), 0u);
}

TEST(DistributionInline, MoveLeavesTheSourceEmpty) {
  Distribution one;
  one.Add(4);
  Distribution moved = std::move(one);
  EXPECT_EQ(ValuesOf(moved), (std::vector<double>{4}));
  EXPECT_EQ(one.count(), 0u);  // NOLINT(bugprone-use-after-move): documented state
  Distribution sketch = Sketched(5000);
  Distribution target;
  target.Add(1);
  target = std::move(sketch);
  EXPECT_EQ(target.count(), 5000u);
  EXPECT_TRUE(sketch.exact());  // NOLINT(bugprone-use-after-move): documented state
  EXPECT_EQ(sketch.count(), 0u);
}

TEST(DistributionInline, TakeAndAdoptStorageRoundTrip) {
  // One value: nothing to take, and the distribution is emptied.
  Distribution one;
  one.Add(1);
  std::vector<double> none = one.TakeStorage();
  EXPECT_EQ(none.capacity(), 0u);
  EXPECT_EQ(one.count(), 0u);
  EXPECT_TRUE(one.exact());

  // Storage of three values goes to a distribution of one value, which keeps it for its
  // second: no allocation for values two to eight.
  Distribution three;
  for (double v : {1.0, 2.0, 3.0}) three.Add(v);
  std::vector<double> storage = three.TakeStorage();
  ASSERT_GE(storage.capacity(), 8u);
  EXPECT_TRUE(storage.empty());
  EXPECT_EQ(three.count(), 0u);
  const double* data = storage.data();
  one.AdoptStorage(std::move(storage));
  const long before = testing_support::AllocationCount();
  for (double v : {9.0, 8.0, 7.0}) one.Add(v);
  EXPECT_EQ(testing_support::AllocationCount() - before, 0);
  EXPECT_EQ(ValuesOf(one), (std::vector<double>{9, 8, 7}));
  EXPECT_EQ(one.Percentile(50), 8);
  std::vector<double> again = one.TakeStorage();
  EXPECT_EQ(again.data(), data);
  EXPECT_TRUE(again.empty());

  // A distribution that already holds a value ignores storage; so does a sketch.
  Distribution holding;
  holding.Add(5);
  holding.AdoptStorage(std::move(again));
  EXPECT_EQ(ValuesOf(holding), (std::vector<double>{5}));
  EXPECT_EQ(holding.TakeStorage().capacity(), 0u);
  Distribution sketched = Sketched(5000);
  std::vector<double> spare(16);
  spare.clear();
  sketched.AdoptStorage(std::move(spare));
  EXPECT_TRUE(sketched.TakeStorage().empty());
  EXPECT_EQ(sketched.count(), 5000u);
}

TEST(DistributionInline, FromExactOfOneValue) {
  absl::StatusOr<Distribution> d = Distribution::FromExact({2.5});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(ValuesOf(*d), (std::vector<double>{2.5}));
  EXPECT_EQ(d->Percentile(99), 2.5);
  d->Add(1);
  EXPECT_EQ(ValuesOf(*d), (std::vector<double>{2.5, 1}));
}

TEST(DDSketch, RelativeAccuracyOnLognormalValues) {
  std::mt19937_64 rng(2019);
  std::lognormal_distribution<double> lognormal(3.0, 2.0);
  std::vector<double> values;
  Distribution d;
  for (int i = 0; i < 100000; ++i) {
    values.push_back(lognormal(rng));
    d.Add(values.back());
  }
  ASSERT_FALSE(d.exact());
  std::sort(values.begin(), values.end());
  for (int p = 1; p <= 100; ++p) {
    const double exact = values[(p * values.size() + 99) / 100 - 1];
    const double approx = d.Percentile(p);
    EXPECT_LE(std::fabs(approx - exact), exact * (DDSketch::kRelativeAccuracy + 1e-9)) << "p=" << p;
  }
}

TEST(DDSketch, RelativeAccuracyOnMixedSigns) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal(0, 1e4);
  std::vector<double> values;
  DDSketch sketch;
  for (int i = 0; i < 20000; ++i) {
    double v = normal(rng);
    if (i % 100 == 0) v = 0;
    values.push_back(v);
    sketch.Add(v);
  }
  EXPECT_EQ(sketch.zero_count(), 200u);
  std::sort(values.begin(), values.end());
  for (std::uint64_t rank = 0; rank < values.size(); rank += 97) {
    const double exact = values[rank];
    EXPECT_LE(std::fabs(sketch.ValueAtRank(rank) - exact), std::fabs(exact) * 0.01 + 1e-12)
        << "rank=" << rank;
  }
  EXPECT_NEAR(sketch.ValueAtRank(0), values.front(), std::fabs(values.front()) * 0.01);
  EXPECT_NEAR(sketch.ValueAtRank(values.size() - 1), values.back(), values.back() * 0.01);
}

TEST(DDSketch, BucketsAndRepresentatives) {
  DDSketch sketch;
  sketch.Add(1.0);   // ceil(log_gamma(1)) = 0
  sketch.Add(-1.0);  // mirrored
  sketch.Add(0.0);
  sketch.Add(1e-301);
  sketch.Add(std::numeric_limits<double>::quiet_NaN());
  sketch.Add(100.0, 3);
  sketch.Add(5.0, 0);  // n = 0 adds nothing
  EXPECT_EQ(sketch.count(), 8u);
  EXPECT_EQ(sketch.zero_count(), 3u);
  ASSERT_EQ(sketch.negative().size(), 1u);
  EXPECT_EQ(sketch.negative().begin()->first, 0);
  ASSERT_EQ(sketch.positive().size(), 2u);
  EXPECT_EQ(sketch.positive().at(0), 1u);
  EXPECT_EQ(sketch.positive().rbegin()->second, 3u);

  const double gamma = 1.01 / 0.99;
  EXPECT_DOUBLE_EQ(sketch.ValueAtRank(0), -2 / (gamma + 1));
  EXPECT_EQ(sketch.ValueAtRank(1), 0);
  EXPECT_EQ(sketch.ValueAtRank(3), 0);
  EXPECT_DOUBLE_EQ(sketch.ValueAtRank(4), 2 / (gamma + 1));
  EXPECT_NEAR(sketch.ValueAtRank(5), 100, 1);
  EXPECT_NEAR(sketch.ValueAtRank(7), 100, 1);
  EXPECT_NEAR(sketch.ValueAtRank(99), 100, 1);  // Past the end: the greatest value.
  EXPECT_EQ(DDSketch().ValueAtRank(0), 0);
}

TEST(DDSketch, InfinityAndExtremesDoNotCrash) {
  DDSketch sketch;
  sketch.Add(std::numeric_limits<double>::infinity());
  sketch.Add(-std::numeric_limits<double>::infinity());
  sketch.Add(std::numeric_limits<double>::max());
  sketch.Add(std::numeric_limits<double>::denorm_min());
  sketch.Add(1e-300);
  EXPECT_EQ(sketch.count(), 5u);
  EXPECT_EQ(sketch.zero_count(), 1u);
  EXPECT_LT(sketch.ValueAtRank(0), -1e307);
  EXPECT_GT(sketch.ValueAtRank(4), 1e307);
}

TEST(DDSketch, MergeIsCommutativeAndAssociative) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> uniform(-50, 50);
  DDSketch a, b, c;
  for (int i = 0; i < 300; ++i) a.Add(uniform(rng));
  for (int i = 0; i < 200; ++i) b.Add(uniform(rng) * 1000);
  for (int i = 0; i < 100; ++i) c.Add(0);
  DDSketch ab_c = a;
  ab_c.Merge(b);
  ab_c.Merge(c);
  DDSketch bc = b;
  bc.Merge(c);
  DDSketch a_bc = a;
  a_bc.Merge(bc);
  DDSketch cba = c;
  cba.Merge(b);
  cba.Merge(a);
  EXPECT_EQ(ab_c, a_bc);
  EXPECT_EQ(ab_c, cba);
  EXPECT_EQ(ab_c.count(), 600u);
}

}  // namespace
}  // namespace drainmet::bucket
