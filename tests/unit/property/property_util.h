#pragma once
// Shared by the property tests: comparing what two ways of aggregating give, bucket by
// bucket and gauge by gauge (SEMANTICS §6.3: bit-identical except sum and sum_squares,
// compared to 1e-12 relative). Test-only.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/bucket/partial_bucket.h"
#include "common/librato/gauge.h"
#include "gtest/gtest.h"

namespace drainmet::property {

inline bool SameBits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

/// |a - b| <= 1e-12 * max(|a|, |b|) (SEMANTICS §6.3's tolerance for sum and sum_squares).
inline bool NearlyEqual(double a, double b) {
  return a == b || std::fabs(a - b) <= 1e-12 * std::max(std::fabs(a), std::fabs(b));
}

/// Two sorted bucket lists (BucketMap::TakeAll) are the same: keys, count, min, max,
/// last (bits and time), units, and the distribution (the exact values as a multiset,
/// bit for bit, or the same sketch); sum and sum_squares to 1e-12.
inline void ExpectSameBuckets(const std::vector<bucket::ClosedBucket>& want,
                              const std::vector<bucket::ClosedBucket>& got, const std::string& context) {
  ASSERT_EQ(want.size(), got.size()) << context;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const bucket::BucketKey& key = want[i].key;
    const bucket::PartialBucket& a = want[i].bucket;
    const bucket::PartialBucket& b = got[i].bucket;
    const std::string where =
        context + " bucket " + key.name + "/" + key.source + "@" + std::to_string(key.window_unix_seconds);
    ASSERT_EQ(key, got[i].key) << where;
    EXPECT_EQ(a.count, b.count) << where;
    EXPECT_TRUE(SameBits(a.min, b.min)) << where << ": " << a.min << " vs " << b.min;
    EXPECT_TRUE(SameBits(a.max, b.max)) << where << ": " << a.max << " vs " << b.max;
    EXPECT_TRUE(SameBits(a.last, b.last)) << where << ": " << a.last << " vs " << b.last;
    EXPECT_EQ(a.last_unix_nanos, b.last_unix_nanos) << where;
    EXPECT_EQ(a.units, b.units) << where;
    EXPECT_TRUE(NearlyEqual(a.sum, b.sum)) << where << ": " << a.sum << " vs " << b.sum;
    EXPECT_TRUE(NearlyEqual(a.sum_squares, b.sum_squares)) << where;
    ASSERT_EQ(a.values.exact(), b.values.exact()) << where;
    EXPECT_EQ(a.values.count(), b.values.count()) << where;
    if (a.values.exact()) {
      std::vector<double> x(a.values.values().begin(), a.values.values().end());
      std::vector<double> y(b.values.values().begin(), b.values.values().end());
      std::sort(x.begin(), x.end(), bucket::TotalLess);
      std::sort(y.begin(), y.end(), bucket::TotalLess);
      ASSERT_EQ(x.size(), y.size()) << where;
      EXPECT_TRUE(x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) == 0) << where;
    } else {
      EXPECT_TRUE(a.values.sketch() == b.values.sketch()) << where;
    }
  }
}

/// Two gauge lists (BuildGauges, sorted) are the same: every field bit for bit, but sum
/// and sum_squares to 1e-12 (SEMANTICS §6.3, §7).
inline void ExpectSameGauges(const std::vector<librato::Gauge>& want, const std::vector<librato::Gauge>& got,
                             const std::string& context) {
  ASSERT_EQ(want.size(), got.size()) << context;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const librato::Gauge& a = want[i];
    const librato::Gauge& b = got[i];
    const std::string where =
        context + " gauge " + a.name + "/" + a.source + "@" + std::to_string(a.measure_time);
    ASSERT_EQ(a.name, b.name) << where;
    EXPECT_EQ(a.source, b.source) << where;
    EXPECT_EQ(a.measure_time, b.measure_time) << where;
    EXPECT_EQ(a.period, b.period) << where;
    EXPECT_EQ(a.complex, b.complex) << where;
    EXPECT_TRUE(SameBits(a.value, b.value)) << where << ": " << a.value << " vs " << b.value;
    EXPECT_EQ(a.count, b.count) << where;
    EXPECT_TRUE(SameBits(a.min, b.min)) << where;
    EXPECT_TRUE(SameBits(a.max, b.max)) << where;
    EXPECT_TRUE(NearlyEqual(a.sum, b.sum)) << where << ": " << a.sum << " vs " << b.sum;
    EXPECT_TRUE(NearlyEqual(a.sum_squares, b.sum_squares)) << where;
    EXPECT_EQ(a.units, b.units) << where;
    EXPECT_EQ(a.tenant, b.tenant) << where;
  }
}

}  // namespace drainmet::property
