#include "common/bucket/shard.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace drainmet::bucket {
namespace {

// Published FNV-1a 64 test vectors (Fowler/Noll/Vo reference test suite).
TEST(Fnv1a64, MatchesReferenceVectors) {
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ULL);
  EXPECT_EQ(Fnv1a64("bar", Fnv1a64("foo")), Fnv1a64("foobar"));
}

// Pinned: receivers and outlets of every build must agree (docs/redis-layout.md "Shard
// function"). Computed once with an independent Python implementation of the same
// definition; a change here breaks running clusters and needs a migration.
struct Pinned {
  std::string_view tenant;
  std::string_view name;
  std::string_view source;
  std::uint64_t hash;
  std::uint64_t mixed;
  std::uint32_t shard_of_64;
  std::uint32_t shard_of_63;
  std::uint32_t shard_of_1000;
};

TEST(ShardOf, PinnedVectors) {
  const std::vector<Pinned> pinned = {
      {"", "x", "", 0xd88ec2186b6d7ebfULL, 0xe4c8cd27239a1309ULL, 9, 13, 209},
      {"acme", "db.latency", "web.1", 0x28005445554f58fcULL, 0x44f83f169625995cULL, 28, 38, 228},
      {"acme", "router.service", "web.2", 0xbcc695e8f64c4ccbULL, 0x00bd651800da0a24ULL, 36, 47, 908},
      {"t1", "x.perc95.median", "", 0x72313e98f470c92aULL, 0x3f52bf868b587733ULL, 51, 15, 347},
      {"tenant-42", "logplex.l10", "heroku", 0x01f89daadc533162ULL, 0x3a711276dc17ba78ULL, 56, 37, 896},
      {"acme", "db.latency", "", 0xa4484f09f0820d8dULL, 0xac7315c100d10f36ULL, 54, 14, 774},
  };
  for (const Pinned& p : pinned) {
    SCOPED_TRACE(std::string(p.tenant) + "/" + std::string(p.name) + "/" + std::string(p.source));
    EXPECT_EQ(SeriesHash(p.tenant, p.name, p.source), p.hash);
    EXPECT_EQ(Fmix64(p.hash), p.mixed);
    EXPECT_EQ(ShardOf(p.tenant, p.name, p.source, 64), p.shard_of_64);
    EXPECT_EQ(ShardOf(p.tenant, p.name, p.source, 63), p.shard_of_63);
    EXPECT_EQ(ShardOf(p.tenant, p.name, p.source, 1000), p.shard_of_1000);
    EXPECT_EQ(ShardOf(p.tenant, p.name, p.source, 1), 0u);
  }
}

// The pieces a caller hashing many series of one name uses (store::PreAggregator) give
// exactly ShardOf: the pinned vectors, for shard counts that are powers of two (masked)
// and not (divided), and 0 (one shard).
TEST(ShardOfHash, PrefixThenSourceGivesShardOf) {
  const std::vector<std::vector<std::string_view>> series = {{"", "x", ""},
                                                             {"acme", "db.latency", "web.1"},
                                                             {"acme", "db.latency.perc99", "web.1"},
                                                             {"t1", "x.perc95.median", ""},
                                                             {"tenant-42", "logplex.l10", "heroku"},
                                                             {"acme", "", "web.2"}};
  for (const auto& s : series) {
    SCOPED_TRACE(std::string(s[0]) + "/" + std::string(s[1]) + "/" + std::string(s[2]));
    const std::uint64_t hash = Fnv1a64(s[2], SeriesHashPrefix(s[0], s[1]));
    EXPECT_EQ(hash, SeriesHash(s[0], s[1], s[2]));
    for (std::uint32_t shards : {1u, 2u, 63u, 64u, 1000u, 1024u, 4096u}) {
      EXPECT_EQ(ShardOfHash(hash, shards), ShardOf(s[0], s[1], s[2], shards)) << shards;
      EXPECT_EQ(ShardOfHash(hash, shards), Fmix64(hash) % shards) << shards;
    }
    EXPECT_EQ(ShardOfHash(hash, 0), 0u);
  }
  EXPECT_EQ(ShardOfHash(0x28005445554f58fcULL, 64), 28u);  // pinned: acme/db.latency/web.1
  EXPECT_EQ(ShardOfHash(0x28005445554f58fcULL, 1000), 228u);
}

TEST(Fmix64, MatchesMurmurHash3Finalizer) {
  EXPECT_EQ(Fmix64(0), 0u);
  EXPECT_EQ(Fmix64(1), 0xb456bcfc34c2cb2cULL);
}

TEST(SeriesHash, IsFnv1aOfTheDocumentedBytes) {
  using std::string_literals::operator""s;
  EXPECT_EQ(SeriesHash("acme", "db.latency", "web.1"), Fnv1a64("acme\0db.latency\0web.1"s));
  EXPECT_EQ(SeriesHash("acme", "db.latency.perc99", ""), Fnv1a64("acme\0db.latency\0"s));
  EXPECT_EQ(SeriesHash("", "", ""), Fnv1a64("\0\0"s));
}

// The separators keep field boundaries: moving bytes between fields changes the hash.
TEST(SeriesHash, FieldBoundariesMatter) {
  EXPECT_NE(SeriesHash("ab", "c", ""), SeriesHash("a", "bc", ""));
  EXPECT_NE(SeriesHash("", "ab", "c"), SeriesHash("", "a", "bc"));
  EXPECT_NE(SeriesHash("t", "x", "s"), SeriesHash("t", "x", ""));
}

// SEMANTICS §7.1: measure#x posts x, x.median, x.perc95, x.perc99.
TEST(ShardName, StripsDerivedSuffixesRepeatedly) {
  struct Case {
    std::string_view name;
    std::string_view want;
  };
  for (const Case& c : std::vector<Case>{{"x", "x"},
                                         {"x.median", "x"},
                                         {"x.perc95", "x"},
                                         {"x.perc99", "x"},
                                         {"x.perc95.median", "x"},
                                         {"x.median.median.perc99", "x"},
                                         {".median", ""},
                                         {"db.latency.perc99", "db.latency"},
                                         // Not derived suffixes: kept.
                                         {"x.perc50", "x.perc50"},
                                         {"x.Median", "x.Median"},
                                         {"xmedian", "xmedian"},
                                         {"x.median2", "x.median2"},
                                         {"x.median.y", "x.median.y"},
                                         {"x.p95", "x.p95"},
                                         {"perc99", "perc99"}}) {
    EXPECT_EQ(ShardName(c.name), c.want) << c.name;
  }
}

// SEMANTICS §7.6: every bucket that may post the same gauge identity shares a shard, so one
// outlet sees both sides of the conflict. The kind is no input of ShardOf at all (count#x,
// sample#x and measure#x of one tenant and source are one shard), and derived names strip.
TEST(ShardOf, BucketsThatMayCollideShareAShard) {
  for (std::uint32_t shards : {2u, 7u, 64u, 1024u}) {
    for (std::string_view tenant : {"acme", "tenant-2", ""}) {
      for (std::string_view source : {"web.1", "", "worker.3"}) {
        const std::uint32_t x = ShardOf(tenant, "db.latency", source, shards);
        for (std::string_view name : {"db.latency.median", "db.latency.perc95", "db.latency.perc99",
                                      "db.latency.perc95.median", "db.latency.median.perc99.perc99"}) {
          EXPECT_EQ(ShardOf(tenant, name, source, shards), x) << tenant << "/" << name << "/" << source;
        }
      }
    }
  }
}

TEST(ShardOf, ZeroShardsIsOne) { EXPECT_EQ(ShardOf("acme", "x", "y", 0), 0u); }

TEST(ShardOf, AlwaysBelowNumShards) {
  for (std::uint32_t shards : {1u, 3u, 64u, 65u, 4'294'967'295u}) {
    for (int i = 0; i < 1000; ++i) {
      EXPECT_LT(ShardOf("t", "m." + std::to_string(i), "", shards), shards);
    }
  }
}

// Chi-square of `counts` against a uniform spread of `total` over counts.size() bins.
double ChiSquare(const std::vector<int>& counts, int total) {
  const double expected = static_cast<double>(total) / static_cast<double>(counts.size());
  double chi = 0;
  for (int c : counts) chi += (c - expected) * (c - expected) / expected;
  return chi;
}

// 100k synthetic series over 64 shards. For 63 degrees of freedom the chi-square statistic
// of a uniform spread has mean 63 and exceeds 103 with probability 0.001; the bound of 110
// is thus loose for a good hash and far below what a skewed one gives (thousands).
TEST(ShardOf, SpreadsSeriesUniformlyOver64Shards) {
  constexpr int kSeries = 100'000;
  constexpr std::uint32_t kShards = 64;
  struct Shape {
    std::string_view label;
    std::string (*name)(int);
    std::string (*source)(int);
    std::string (*tenant)(int);
  };
  const std::vector<Shape> shapes = {
      {"one tenant, sequential names", [](int i) { return "metric." + std::to_string(i); },
       [](int) { return std::string(); }, [](int) { return std::string("acme"); }},
      {"names x dynos x tenants", [](int i) { return "app.db.query." + std::to_string(i / 100); },
       [](int i) { return "web." + std::to_string(i % 10); },
       [](int i) { return "tenant-" + std::to_string((i / 10) % 10); }},
      {"router-like names, many sources",
       [](int i) { return std::string(i % 2 ? "router.service" : "router.connect"); },
       [](int i) { return "app" + std::to_string(i / 2) + ".herokuapp.com"; },
       [](int) { return std::string("t"); }},
  };
  for (const Shape& shape : shapes) {
    SCOPED_TRACE(shape.label);
    std::vector<int> counts(kShards, 0);
    for (int i = 0; i < kSeries; ++i)
      ++counts[ShardOf(shape.tenant(i), shape.name(i), shape.source(i), kShards)];
    EXPECT_LT(ChiSquare(counts, kSeries), 110.0);
    for (int c : counts) {
      EXPECT_GT(c, kSeries / 64 * 8 / 10);  // No shard below 80% of its share.
      EXPECT_LT(c, kSeries / 64 * 12 / 10);
    }
  }
}

// Why the finalizer before the modulo: FNV's multiply carries only upward, so the low 6 bits
// of the plain hash depend only on the low 6 bits of each byte, and names that differ in
// '0' (0x30) vs 'p' (0x70) would always share a shard out of 64.
TEST(ShardOf, EveryBitOfTheHashDecidesForPowerOfTwoShardCounts) {
  int same_plain = 0;
  int same_mixed = 0;
  constexpr int kTenants = 2000;
  for (int t = 0; t < kTenants; ++t) {
    const std::string tenant = "tenant-" + std::to_string(t);
    same_plain += SeriesHash(tenant, "web.0", "") % 64 == SeriesHash(tenant, "web.p", "") % 64;
    same_mixed += ShardOf(tenant, "web.0", "", 64) == ShardOf(tenant, "web.p", "", 64);
  }
  EXPECT_EQ(same_plain, kTenants);       // The weakness the finalizer removes.
  EXPECT_LT(same_mixed, kTenants / 20);  // About 1/64 by chance.
}

// Names that differ only in their last character, over [0-9a-z]: plain FNV mod 64 folds
// p..y onto 0..9 (chi-square about 270 here).
TEST(ShardOf, SpreadsNamesDifferingInTheLastCharacter) {
  constexpr std::string_view kChars = "0123456789abcdefghijklmnopqrstuvwxyz";
  constexpr int kSeries = 100'008;  // A multiple of 36.
  std::vector<int> counts(64, 0);
  for (int i = 0; i < kSeries; ++i) {
    ++counts[ShardOf("t" + std::to_string(i / 36), std::string("m.") + kChars[i % 36], "", 64)];
  }
  EXPECT_LT(ChiSquare(counts, kSeries), 110.0);
}

}  // namespace
}  // namespace drainmet::bucket
