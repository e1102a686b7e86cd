#include "common/bucket/codec.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "common/bucket/distribution.h"
#include "google/protobuf/io/coded_stream.h"
#include "proto/drainmet/v1/partial_bucket.pb.h"
#include "tests/support/allocation_counter.h"

namespace drainmet::bucket {
namespace {

using extract::Kind;

constexpr std::int64_t kSecond = 1'000'000'000;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kDenormMin = std::numeric_limits<double>::denorm_min();

std::uint64_t Bits(double d) { return std::bit_cast<std::uint64_t>(d); }

std::vector<std::uint64_t> Bits(std::span<const double> values) {
  std::vector<std::uint64_t> bits;
  for (double v : values) bits.push_back(Bits(v));
  return bits;
}

// Field for field, doubles by bit pattern, the distribution in the same state.
void ExpectSameBucket(const PartialBucket& want, const PartialBucket& got) {
  EXPECT_EQ(want.count, got.count);
  EXPECT_EQ(Bits(want.sum), Bits(got.sum)) << want.sum << " vs " << got.sum;
  EXPECT_EQ(Bits(want.sum_squares), Bits(got.sum_squares)) << want.sum_squares << " vs " << got.sum_squares;
  EXPECT_EQ(Bits(want.min), Bits(got.min)) << want.min << " vs " << got.min;
  EXPECT_EQ(Bits(want.max), Bits(got.max)) << want.max << " vs " << got.max;
  EXPECT_EQ(Bits(want.last), Bits(got.last)) << want.last << " vs " << got.last;
  EXPECT_EQ(want.last_unix_nanos, got.last_unix_nanos);
  EXPECT_EQ(want.units, got.units);
  ASSERT_EQ(want.values.exact(), got.values.exact());
  EXPECT_EQ(want.values.count(), got.values.count());
  if (want.values.exact()) {
    EXPECT_EQ(Bits(want.values.values()), Bits(got.values.values()));
  } else {
    EXPECT_TRUE(want.values.sketch() == got.values.sketch());
  }
}

BucketKey Key(Kind kind, std::int64_t window = 1'714'557'600, std::int32_t resolution = 60) {
  return BucketKey{"acme", "db.latency", "web.1", kind, resolution, window};
}

// A bucket as a receiver builds it: one Add per point, a distribution for measures.
PartialBucket Build(Kind kind, const std::vector<double>& values, std::string_view units = "ms",
                    std::int64_t t0 = 1'714'557'600 * kSecond) {
  PartialBucket b;
  for (std::size_t i = 0; i < values.size(); ++i) {
    b.Add(values[i], t0 + static_cast<std::int64_t>(i % 7), units, kind == Kind::kMeasure);
  }
  return b;
}

BucketRecord RoundTrip(const BucketKey& key, const PartialBucket& bucket) {
  std::string bytes;
  EncodeRecord(key, bucket, bytes);
  absl::StatusOr<BucketRecord> decoded = DecodeRecord(bytes);
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  if (!decoded.ok()) return {};
  return *std::move(decoded);
}

void ExpectRoundTrip(const BucketKey& key, const PartialBucket& bucket) {
  const BucketRecord got = RoundTrip(key, bucket);
  EXPECT_EQ(got.key, key);
  ExpectSameBucket(bucket, got.bucket);
}

std::vector<double> Range(int from, int to) {
  std::vector<double> v;
  for (int i = from; i <= to; ++i) v.push_back(i);
  return v;
}

// ---------------------------------------------------------------------------------------
// Round trips: Decode(Encode(b)) == b field for field (SEMANTICS §6.3).

TEST(CodecRoundTrip, EveryKind) {
  for (Kind kind : {Kind::kMeasure, Kind::kCount, Kind::kSample}) {
    SCOPED_TRACE(static_cast<int>(kind));
    ExpectRoundTrip(Key(kind), Build(kind, {4.5, -2, 10, 0.25}));
    ExpectRoundTrip(Key(kind), Build(kind, {1}));
  }
}

TEST(CodecRoundTrip, ExactAtCapAndSketchedAboveIt) {
  const PartialBucket at_cap = Build(Kind::kMeasure, Range(1, 4096));
  ASSERT_TRUE(at_cap.values.exact());
  ExpectRoundTrip(Key(Kind::kMeasure), at_cap);

  const PartialBucket above = Build(Kind::kMeasure, Range(-2000, 2096));  // 4097 values, one 0.
  ASSERT_FALSE(above.values.exact());
  ASSERT_EQ(above.values.sketch().zero_count(), 1u);
  ASSERT_FALSE(above.values.sketch().negative().empty());
  ExpectRoundTrip(Key(Kind::kMeasure), above);

  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> lognormal(0, 3);
  std::vector<double> many;
  for (int i = 0; i < 100'000; ++i) many.push_back(i % 3 == 0 ? -lognormal(rng) : lognormal(rng));
  ExpectRoundTrip(Key(Kind::kMeasure), Build(Kind::kMeasure, many));
}

TEST(CodecRoundTrip, EmptyUnitsSourceAndTenant) {
  for (Kind kind : {Kind::kMeasure, Kind::kCount, Kind::kSample}) {
    BucketKey key = Key(kind);
    key.tenant.clear();
    key.source.clear();
    ExpectRoundTrip(key, Build(kind, {1, 2, 3}, ""));
  }
}

// Units are whatever followed the number (§3.1): not necessarily UTF-8.
TEST(CodecRoundTrip, StringsAreBytesNotUtf8) {
  BucketKey key = Key(Kind::kSample);
  key.tenant = "t\xc3\xbc";
  key.source = "web.\xff";
  ExpectRoundTrip(key, Build(Kind::kSample, {3},
                             "\xff\xfe"
                             "ms"));
}

// §6.2 windows are floors, so before 1970 they are negative; timestamps likewise.
TEST(CodecRoundTrip, NegativeWindowsAndTimestamps) {
  ExpectRoundTrip(Key(Kind::kMeasure, -120, 60), Build(Kind::kMeasure, {1, 2}, "ms", -90 * kSecond));
  const std::int64_t min_ns = std::numeric_limits<std::int64_t>::min();
  PartialBucket earliest;
  earliest.Add(5, min_ns, "", false);
  ExpectRoundTrip(Key(Kind::kSample, WindowOf(min_ns, 3600), 3600), earliest);
  ExpectRoundTrip(Key(Kind::kCount, WindowOf(std::numeric_limits<std::int64_t>::max(), 1), 1),
                  Build(Kind::kCount, {1}));
}

TEST(CodecRoundTrip, ExtremeDoubles) {
  const std::vector<double> extremes = {0.0,
                                        -0.0,
                                        kDenormMin,
                                        -kDenormMin,
                                        std::numeric_limits<double>::min(),
                                        1e-300,
                                        std::nextafter(1e-300, 0.0),
                                        1e126,
                                        -1e126,
                                        0.1,
                                        1.0 / 3};
  for (Kind kind : {Kind::kMeasure, Kind::kCount, Kind::kSample}) {
    SCOPED_TRACE(static_cast<int>(kind));
    ExpectRoundTrip(Key(kind), Build(kind, extremes));
    for (double v : extremes) ExpectRoundTrip(Key(kind), Build(kind, {v}));
  }
  // Sketched: the extremes land in the zero count and the outermost buckets.
  std::vector<double> sketched;
  for (int i = 0; i < 400; ++i) sketched.insert(sketched.end(), extremes.begin(), extremes.end());
  const PartialBucket b = Build(Kind::kMeasure, sketched);
  ASSERT_FALSE(b.values.exact());
  ExpectRoundTrip(Key(Kind::kMeasure), b);
}

TEST(CodecRoundTrip, NegativeZeroStaysNegative) {
  const BucketRecord got = RoundTrip(Key(Kind::kMeasure), Build(Kind::kMeasure, {-0.0}));
  EXPECT_TRUE(std::signbit(got.bucket.min));
  EXPECT_TRUE(std::signbit(got.bucket.max));
  EXPECT_TRUE(std::signbit(got.bucket.last));
  ASSERT_EQ(got.bucket.values.values().size(), 1u);
  EXPECT_TRUE(std::signbit(got.bucket.values.values()[0]));
}

// Percentile sorts the exact values in place; the encoding keeps the order held, whatever it is.
TEST(CodecRoundTrip, AfterPercentileSortedTheValues) {
  PartialBucket b = Build(Kind::kMeasure, {5, 1, 4, 2, 3});
  EXPECT_EQ(b.values.Percentile(50), 3);
  ExpectRoundTrip(Key(Kind::kMeasure), b);
  BucketRecord got = RoundTrip(Key(Kind::kMeasure), b);
  EXPECT_EQ(got.bucket.values.Percentile(95), 5);
}

TEST(CodecEncode, ClearsAndReusesTheBufferDeterministically) {
  const PartialBucket b = Build(Kind::kMeasure, Range(1, 50));
  std::string first = "stale bytes that must go";
  EncodeRecord(Key(Kind::kMeasure), b, first);
  std::string second;
  EncodeRecord(Key(Kind::kMeasure), b, second);
  EXPECT_EQ(first, second);
  // 50 values of 8 bytes plus the key and aggregate.
  EXPECT_GT(first.size(), 400u);
  EXPECT_LT(first.size(), 500u);
  const std::size_t capacity = second.capacity();
  EncodeRecord(Key(Kind::kCount), Build(Kind::kCount, {1}), second);
  EXPECT_EQ(second.capacity(), capacity);
  EXPECT_LT(second.size(), 100u);
}

// ---------------------------------------------------------------------------------------
// Merging decoded partials equals merging the originals (DESIGN rule 4, SEMANTICS §6.3).

struct RandomBuckets {
  Kind kind;
  std::vector<PartialBucket> partials;
};

RandomBuckets MakeRandomBuckets(std::mt19937_64& rng, std::size_t max_points_per_partial) {
  std::uniform_int_distribution<int> kind_of(0, 2);
  std::uniform_int_distribution<int> partials_of(1, 6);
  std::uniform_int_distribution<std::size_t> points_of(1, max_points_per_partial);
  std::uniform_int_distribution<int> shape_of(0, 5);
  std::uniform_int_distribution<int> tick_of(0, 3);  // Few timestamps: ties of §6.3.
  std::lognormal_distribution<double> lognormal(0, 2);
  std::uniform_real_distribution<double> uniform(-1000, 1000);
  static constexpr std::string_view kUnits[] = {"", "ms", "s", "MB"};
  RandomBuckets out;
  out.kind = static_cast<Kind>(kind_of(rng));
  const int partials = partials_of(rng);
  for (int p = 0; p < partials; ++p) {
    PartialBucket b;
    const std::size_t points = points_of(rng);
    const std::string_view units = kUnits[rng() % 4];
    for (std::size_t i = 0; i < points; ++i) {
      double v = 0;
      switch (shape_of(rng)) {
        case 0:
          v = lognormal(rng);
          break;
        case 1:
          v = -lognormal(rng);
          break;
        case 2:
          v = uniform(rng);
          break;
        case 3:
          v = std::round(uniform(rng));
          break;
        case 4:
          v = (rng() % 2) ? 0.0 : -0.0;
          break;
        default:
          v = kDenormMin * static_cast<double>(rng() % 1000);
          break;
      }
      b.Add(v, 1'714'557'600 * kSecond + tick_of(rng), units, out.kind == Kind::kMeasure);
    }
    out.partials.push_back(std::move(b));
  }
  return out;
}

void ExpectMergeAfterDecodeEqualsMergeBeforeEncode(std::uint64_t seed, std::size_t max_points_per_partial,
                                                   int trials) {
  std::mt19937_64 rng(seed);
  for (int trial = 0; trial < trials; ++trial) {
    SCOPED_TRACE(trial);
    const RandomBuckets r = MakeRandomBuckets(rng, max_points_per_partial);
    const BucketKey key = Key(r.kind);
    PartialBucket before;
    PartialBucket after;
    std::string bytes;
    for (const PartialBucket& partial : r.partials) {
      before.Merge(partial);
      EncodeRecord(key, partial, bytes);
      absl::StatusOr<BucketRecord> decoded = DecodeRecord(bytes);
      ASSERT_TRUE(decoded.ok()) << decoded.status();
      ASSERT_EQ(decoded->key, key);
      after.Merge(decoded->bucket);
    }
    ExpectSameBucket(before, after);
    if (r.kind == Kind::kMeasure) {
      for (int p : {50, 95, 99})
        EXPECT_EQ(Bits(before.values.Percentile(p)), Bits(after.values.Percentile(p)));
    }
    // The merged bucket itself travels too.
    ExpectRoundTrip(key, after);
  }
}

TEST(CodecMergeProperty, MergeAfterDecodeEqualsMergeBeforeEncodeBelowExactCap) {
  ExpectMergeAfterDecodeEqualsMergeBeforeEncode(/*seed=*/1, /*max_points_per_partial=*/600, /*trials=*/200);
}

TEST(CodecMergeProperty, MergeAfterDecodeEqualsMergeBeforeEncodeAboveExactCap) {
  // Partials of up to 6000 points: some sketched themselves, most merges pass 4096.
  ExpectMergeAfterDecodeEqualsMergeBeforeEncode(/*seed=*/2, /*max_points_per_partial=*/6000, /*trials=*/30);
}

// The bytes protobuf's own serializer gives for the record (the reference the hand-written
// encoder must match byte for byte, so records keep the bytes they always had).
std::string ProtobufBytes(const BucketKey& key, const PartialBucket& bucket) {
  v1::PartialBucketRecord record;
  record.set_tenant(key.tenant);
  record.set_name(key.name);
  record.set_source(key.source);
  record.set_kind(static_cast<v1::Kind>(static_cast<int>(key.kind) + 1));  // kMeasure = 0 -> 1
  record.set_resolution_seconds(key.resolution_seconds);
  record.set_window_unix_seconds(key.window_unix_seconds);
  record.set_count(bucket.count);
  record.set_sum(bucket.sum);
  record.set_sum_squares(bucket.sum_squares);
  record.set_min(bucket.min);
  record.set_max(bucket.max);
  record.set_last(bucket.last);
  record.set_last_unix_nanos(bucket.last_unix_nanos);
  record.set_units(bucket.units);
  if (bucket.values.exact()) {
    record.mutable_values()->Add(bucket.values.values().begin(), bucket.values.values().end());
  } else {
    v1::DDSketch& sketch = *record.mutable_sketch();
    for (const auto& [side, store] :
         {std::pair{&bucket.values.sketch().positive(), sketch.mutable_positive()},
          std::pair{&bucket.values.sketch().negative(), sketch.mutable_negative()}}) {
      for (const auto& [index, n] : *side) {
        store->add_index(index);
        store->add_count(n);
      }
    }
    sketch.set_zero_count(bucket.values.sketch().zero_count());
  }
  std::string bytes;
  record.SerializeToString(&bytes);
  return bytes;
}

TEST(CodecEncode, BytesAreProtobufsOwn) {
  ASSERT_EQ(static_cast<int>(Kind::kMeasure), 0);
  ASSERT_EQ(static_cast<int>(Kind::kSample), 2);
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> lognormal(0, 3);
  std::vector<std::pair<BucketKey, PartialBucket>> cases;
  for (Kind kind : {Kind::kMeasure, Kind::kCount, Kind::kSample}) {
    cases.emplace_back(Key(kind), Build(kind, {1}));
    cases.emplace_back(Key(kind), Build(kind, {0.0}, ""));                            // zero doubles omitted
    cases.emplace_back(Key(kind), Build(kind, {-0.0}));                               // -0.0 written
    cases.emplace_back(Key(kind, -120, 60), Build(kind, {-5, 3}, "", -7 * kSecond));  // negative varints
    cases.emplace_back(BucketKey{"", "n", "", kind, 1, 0}, Build(kind, {2.5}, "", 0));
    cases.emplace_back(BucketKey{std::string(200, 't'), std::string(300, 'n'), std::string(130, 's'), kind,
                                 3600, 1'714'557'600},
                       Build(kind, Range(1, 20), std::string(150, 'u')));  // 2-byte lengths
  }
  cases.emplace_back(Key(Kind::kMeasure), Build(Kind::kMeasure, Range(1, 4096)));      // exact at the cap
  cases.emplace_back(Key(Kind::kMeasure), Build(Kind::kMeasure, Range(-2000, 2096)));  // sketch, both sides
  cases.emplace_back(Key(Kind::kMeasure), Build(Kind::kMeasure, Range(1, 5000)));      // positive only
  cases.emplace_back(Key(Kind::kMeasure), Build(Kind::kMeasure, Range(-5000, -1)));    // negative only
  std::vector<double> many;
  for (int i = 0; i < 50'000; ++i) many.push_back(i % 3 == 0 ? -lognormal(rng) : lognormal(rng));
  cases.emplace_back(Key(Kind::kMeasure), Build(Kind::kMeasure, many));
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    std::mt19937_64 r(seed);
    RandomBuckets random = MakeRandomBuckets(r, seed % 2 == 0 ? 50 : 3000);
    PartialBucket merged;
    for (const PartialBucket& p : random.partials) merged.Merge(p);
    cases.emplace_back(Key(random.kind), std::move(merged));
  }
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    const auto& [key, bucket] = cases[i];
    std::string bytes;
    EncodeRecord(key, bucket, bytes);
    EXPECT_EQ(bytes, ProtobufBytes(key, bucket));
    const RecordKeyView view{
        key.tenant, key.name, key.source, key.kind, key.resolution_seconds, key.window_unix_seconds};
    EXPECT_EQ(RecordSize(view, bucket), bytes.size());
    std::string written(bytes.size(), '\0');
    EXPECT_EQ(WriteRecord(view, bucket, written.data()), written.data() + written.size());
    EXPECT_EQ(written, bytes);
    // A batch of one record, as protobuf writes it.
    v1::PartialBucketBatch batch;
    ASSERT_TRUE(batch.add_records()->ParseFromString(bytes));
    std::string batch_bytes = "x";
    AppendRecordToBatch(key, bucket, batch_bytes);
    EXPECT_EQ(batch_bytes, "x" + batch.SerializeAsString());
  }
}

// KeyViewOf: the fields of an encoded key without copying (rejections: BucketKey tests of
// partial_bucket_test.cpp, DecodeBucketKey being KeyViewOf plus copies).
TEST(BucketKeyView, ViewsTheEncodedFields) {
  std::vector<BucketKey> keys = {
      Key(Kind::kMeasure),
      Key(Kind::kCount, -60, 60),
      Key(Kind::kSample, 0, 1),
      BucketKey{"", "n", "", Kind::kCount, 3600, 1'714'554'000},
      BucketKey{std::string(100, 't'), "a.b", "web.1", Kind::kMeasure, 1, -1},
      BucketKey{"acme", "x", "s", Kind::kSample, 2'147'483'647, std::numeric_limits<std::int64_t>::min()},
      BucketKey{"acme", "x", "s", Kind::kSample, 1, std::numeric_limits<std::int64_t>::max()}};
  std::string encoded;
  for (const BucketKey& key : keys) {
    EncodeBucketKey(key.tenant, key.name, key.source, key.kind, key.resolution_seconds,
                    key.window_unix_seconds, encoded);
    RecordKeyView view;
    ASSERT_TRUE(KeyViewOf(encoded, &view));
    EXPECT_EQ(view.tenant, key.tenant);
    EXPECT_EQ(view.name, key.name);
    EXPECT_EQ(view.source, key.source);
    EXPECT_EQ(view.kind, key.kind);
    EXPECT_EQ(view.resolution_seconds, key.resolution_seconds);
    EXPECT_EQ(view.window_unix_seconds, key.window_unix_seconds);
    // Views into `encoded`, not copies.
    EXPECT_GE(view.tenant.data(), encoded.data());
    EXPECT_LE(view.source.data() + view.source.size(), encoded.data() + encoded.size());
  }
}

TEST(CodecEncode, AppendRecordAppendsWithoutAllocatingWhenWarm) {
  const PartialBucket measure = Build(Kind::kMeasure, Range(1, 30));
  const PartialBucket count = Build(Kind::kCount, {1, 1, 1});
  std::string one;
  std::string two;
  EncodeRecord(Key(Kind::kMeasure), measure, one);
  EncodeRecord(Key(Kind::kCount), count, two);
  std::string out = "prefix";
  out.reserve(4096);
  const long before = testing_support::AllocationCount();
  for (int i = 0; i < 3; ++i) {
    AppendRecord(Key(Kind::kMeasure), measure, out);
    AppendRecord(Key(Kind::kCount), count, out);
  }
  EXPECT_EQ(testing_support::AllocationCount() - before, 0);
  EXPECT_EQ(out, "prefix" + one + two + one + two + one + two);
}

// ---------------------------------------------------------------------------------------
// Untrusted bytes (Redis content): rejected with InvalidArgument, never a crash.

std::vector<std::pair<std::string, std::string>> ValidEncodings() {
  std::vector<std::pair<std::string, std::string>> out;
  auto add = [&](std::string name, const BucketKey& key, const PartialBucket& b) {
    std::string bytes;
    EncodeRecord(key, b, bytes);
    out.emplace_back(std::move(name), std::move(bytes));
  };
  add("measure", Key(Kind::kMeasure), Build(Kind::kMeasure, {4.5, -2, 10}));
  add("measure_one_zero", Key(Kind::kMeasure), Build(Kind::kMeasure, {0.0}, ""));
  add("count", Key(Kind::kCount), Build(Kind::kCount, {1, 1}));
  add("sample_no_units", Key(Kind::kSample), Build(Kind::kSample, {3}, ""));
  add("sketched", Key(Kind::kMeasure), Build(Kind::kMeasure, Range(-100, 4100)));
  BucketKey bare{"", "x", "", Kind::kCount, 1, 0};
  PartialBucket zero_time;
  zero_time.Add(0.0, 0, "", false);
  add("count_all_defaults", bare, zero_time);
  return out;
}

// A proper prefix of a record always loses or breaks `count` (the last field but the
// sketch) or the sketch that a count > 4096 needs (partial_bucket.proto).
TEST(CodecDecode, RejectsEveryTruncation) {
  for (const auto& [name, bytes] : ValidEncodings()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(DecodeRecord(bytes).ok()) << DecodeRecord(bytes).status();
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      const absl::StatusOr<BucketRecord> got = DecodeRecord(std::string_view(bytes).substr(0, n));
      ASSERT_FALSE(got.ok()) << "prefix of " << n << " of " << bytes.size() << " bytes accepted";
      EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

TEST(CodecDecode, RejectsRandomBytes) {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int> length_of(0, 300);
  for (int i = 0; i < 20'000; ++i) {
    std::string bytes(static_cast<std::size_t>(length_of(rng)), '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    const absl::StatusOr<BucketRecord> got = DecodeRecord(bytes);
    ASSERT_FALSE(got.ok()) << "random input " << i << " accepted";
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

// Bit flips may give another valid record (a different mantissa); whatever is accepted must
// be a bucket that encodes and decodes again like any other.
TEST(CodecDecode, BitFlipsNeverYieldAnInconsistentBucket) {
  for (const auto& [name, bytes] : ValidEncodings()) {
    SCOPED_TRACE(name);
    for (std::size_t bit = 0; bit < bytes.size() * 8; ++bit) {
      std::string flipped = bytes;
      flipped[bit / 8] = static_cast<char>(flipped[bit / 8] ^ (1 << (bit % 8)));
      const absl::StatusOr<BucketRecord> got = DecodeRecord(flipped);
      if (!got.ok()) {
        EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
        continue;
      }
      ExpectRoundTrip(got->key, got->bucket);
    }
  }
}

// A valid record as a proto, for the constraint cases below.
v1::PartialBucketRecord ValidProto(Kind kind, const std::vector<double>& values) {
  std::string bytes;
  EncodeRecord(Key(kind), Build(kind, values), bytes);
  v1::PartialBucketRecord record;
  EXPECT_TRUE(record.ParseFromString(bytes));
  return record;
}

struct Violation {
  std::string name;
  Kind kind;
  std::vector<double> values;
  std::function<void(v1::PartialBucketRecord&)> mutate;
  std::string message;  // A substring of the status message naming the culprit.
};

class CodecDecodeRejectsTest : public testing::TestWithParam<Violation> {};

TEST_P(CodecDecodeRejectsTest, WithInvalidArgumentNamingTheField) {
  const Violation& v = GetParam();
  v1::PartialBucketRecord record = ValidProto(v.kind, v.values);
  {
    const std::string valid = record.SerializeAsString();
    ASSERT_TRUE(DecodeRecord(valid).ok()) << DecodeRecord(valid).status();
  }
  v.mutate(record);
  const absl::StatusOr<BucketRecord> got = DecodeRecord(record.SerializeAsString());
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(got.status().message()).find(v.message), std::string::npos) << got.status();
}

using R = v1::PartialBucketRecord;
const std::vector<double> kThree = {4.5, -2, 10};

std::vector<double> Sketched() { return Range(-100, 4100); }  // 4201 values: min -100, max 4100.

// Each constraint of partial_bucket.proto, violated alone.
INSTANTIATE_TEST_SUITE_P(
    Constraints, CodecDecodeRejectsTest,
    testing::Values(
        Violation{"KindUnspecified", Kind::kCount, {1}, [](R& r) { r.set_kind(v1::KIND_UNSPECIFIED); }, "kind"},
        Violation{"KindOutOfRange", Kind::kCount, {1}, [](R& r) { r.set_kind(static_cast<v1::Kind>(7)); }, "kind"},
        Violation{"KindNegative", Kind::kCount, {1}, [](R& r) { r.set_kind(static_cast<v1::Kind>(-1)); }, "kind"},
        Violation{"ResolutionZero", Kind::kCount, {1}, [](R& r) { r.set_resolution_seconds(0); },
                  "resolution_seconds"},
        Violation{"ResolutionNegative", Kind::kCount, {1},
                  [](R& r) {
                    r.set_resolution_seconds(-60);
                    r.set_window_unix_seconds(-60);
                  },
                  "resolution_seconds"},
        Violation{"WindowNotAMultiple", Kind::kCount, {1},
                  [](R& r) { r.set_window_unix_seconds(r.window_unix_seconds() + 1); }, "window_unix_seconds"},
        Violation{"NameEmpty", Kind::kCount, {1}, [](R& r) { r.clear_name(); }, "name"},
        Violation{"NulInTenant", Kind::kCount, {1}, [](R& r) { r.set_tenant(std::string("a\0b", 3)); }, "tenant"},
        Violation{"NulInName", Kind::kCount, {1}, [](R& r) { r.set_name(std::string("a\0b", 3)); }, "name"},
        Violation{"NulInSource", Kind::kCount, {1}, [](R& r) { r.set_source(std::string("\0", 1)); }, "source"},
        Violation{"CountZero", Kind::kCount, {1}, [](R& r) { r.set_count(0); }, "count"},
        Violation{"SumNaN", Kind::kCount, {1}, [](R& r) { r.set_sum(kNaN); }, "sum"},
        Violation{"SumInfinite", Kind::kCount, {1}, [](R& r) { r.set_sum(kInf); }, "sum"},
        Violation{"SumSquaresMinusInfinity", Kind::kCount, {1}, [](R& r) { r.set_sum_squares(-kInf); },
                  "sum_squares"},
        Violation{"SumSquaresNegative", Kind::kCount, {1}, [](R& r) { r.set_sum_squares(-1); }, "sum_squares"},
        Violation{"MinNaN", Kind::kSample, {1}, [](R& r) { r.set_min(kNaN); }, "min"},
        Violation{"MaxInfinite", Kind::kSample, {1}, [](R& r) { r.set_max(kInf); }, "max"},
        Violation{"LastNaN", Kind::kSample, {1}, [](R& r) { r.set_last(-kNaN); }, "last"},
        Violation{"MinAboveMax", Kind::kSample, {1, 2},
                  [](R& r) {
                    r.set_min(3);
                    r.set_last(3);
                  },
                  "min"},
        Violation{"NegativeZeroMaxBelowPositiveZeroMin", Kind::kSample, {0},
                  [](R& r) {
                    r.set_min(0.0);
                    r.set_max(-0.0);
                    r.set_last(-0.0);
                  },
                  "min"},
        Violation{"LastOutsideMinMax", Kind::kSample, {1, 2}, [](R& r) { r.set_last(2.5); }, "last"},
        Violation{"ValuesOnACount", Kind::kCount, {1}, [](R& r) { r.add_values(1); }, "only measures"},
        Violation{"SketchOnASample", Kind::kSample, {1}, [](R& r) { r.mutable_sketch()->set_zero_count(1); },
                  "only measures"},
        Violation{"MeasureWithoutValues", Kind::kMeasure, kThree, [](R& r) { r.clear_values(); }, "values"},
        Violation{"MoreValuesThanCount", Kind::kMeasure, kThree, [](R& r) { r.add_values(1); }, "values"},
        Violation{"FewerValuesThanCount", Kind::kMeasure, kThree, [](R& r) { r.set_count(4); }, "values"},
        Violation{"ValueNaN", Kind::kMeasure, kThree, [](R& r) { r.set_values(1, kNaN); }, "values"},
        Violation{"ValueInfinite", Kind::kMeasure, kThree, [](R& r) { r.set_values(2, -kInf); }, "values"},
        Violation{"ValueOutsideMinMax", Kind::kMeasure, kThree, [](R& r) { r.set_values(0, 11); }, "values"},
        Violation{"MoreThan4096ExactValues", Kind::kMeasure, Range(1, 4096),
                  [](R& r) {
                    r.add_values(1);
                    r.set_count(4097);
                  },
                  "sketch: missing"},
        Violation{"ValuesAndSketch", Kind::kMeasure, kThree,
                  [](R& r) { r.mutable_sketch()->set_zero_count(3); }, "both"},
        Violation{"SketchForAFewValues", Kind::kMeasure, kThree,
                  [](R& r) {
                    r.clear_values();
                    r.mutable_sketch()->set_zero_count(3);
                  },
                  "sketch"},
        Violation{"SketchMissing", Kind::kMeasure, Sketched(), [](R& r) { r.clear_sketch(); }, "sketch: missing"},
        Violation{"SketchCountBelowCount", Kind::kMeasure, Sketched(),
                  [](R& r) { r.set_count(r.count() + 1); }, "sketch: holds"},
        Violation{"SketchArraysOfDifferentLengths", Kind::kMeasure, Sketched(),
                  [](R& r) { r.mutable_sketch()->mutable_positive()->add_count(1); }, "sketch.positive"},
        Violation{"SketchBucketOfZero", Kind::kMeasure, Sketched(),
                  [](R& r) {
                    v1::SketchStore& s = *r.mutable_sketch()->mutable_negative();
                    s.set_count(0, 0);
                  },
                  "count 0"},
        Violation{"SketchIndexRepeated", Kind::kMeasure, Sketched(),
                  [](R& r) {
                    v1::SketchStore& s = *r.mutable_sketch()->mutable_positive();
                    s.set_index(1, s.index(0));
                  },
                  "strictly ascending"},
        Violation{"SketchIndexDescending", Kind::kMeasure, Sketched(),
                  [](R& r) {
                    v1::SketchStore& s = *r.mutable_sketch()->mutable_positive();
                    s.set_index(0, s.index(s.index_size() - 1) + 1);
                  },
                  "strictly ascending"},
        Violation{"SketchIndexAboveMax", Kind::kMeasure, Sketched(),
                  [](R& r) {
                    v1::SketchStore& s = *r.mutable_sketch()->mutable_positive();
                    s.set_index(s.index_size() - 1, DDSketch::MaxIndex() + 1);
                  },
                  "outside"},
        Violation{"SketchIndexBelowMin", Kind::kMeasure, Sketched(),
                  [](R& r) {
                    v1::SketchStore& s = *r.mutable_sketch()->mutable_negative();
                    s.set_index(0, DDSketch::MinIndex() - 1);
                  },
                  "outside"},
        Violation{"SketchCountOverflows", Kind::kMeasure, Sketched(),
                  [](R& r) {
                    v1::SketchStore& s = *r.mutable_sketch()->mutable_positive();
                    s.set_count(0, std::numeric_limits<std::uint64_t>::max());
                  },
                  "overflows"},
        // A negative count written by a signed writer is a huge uint64: the sum no longer matches.
        Violation{"SketchNegativeCount", Kind::kMeasure, Sketched(),
                  [](R& r) {
                    v1::SketchStore& s = *r.mutable_sketch()->mutable_positive();
                    s.set_count(0, static_cast<std::uint64_t>(std::int64_t{-1}));
                    s.set_count(1, 2);
                  },
                  "sketch"}),
    [](const testing::TestParamInfo<Violation>& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------
// Batches: one Redis value per request and shard; batches concatenate.

// ---- RecordReader: its own parser for WriteRecord's encoding, protobuf's for the rest.

// An unknown field (number 100, varint 0) in front: protobuf ignores it, and the reader's
// own parser declines any record that has one, so the bytes go through protobuf's parser.
std::string ThroughProtobuf(std::string_view bytes) {
  return std::string("\xa0\x06\x00", 3) + std::string(bytes);
}

std::vector<std::pair<BucketKey, PartialBucket>> ReaderRecords() {
  return {
      {Key(Kind::kCount), Build(Kind::kCount, {1, 1, 1})},
      {Key(Kind::kSample, -120), Build(Kind::kSample, {-3.5, 7}, "MB")},
      {Key(Kind::kMeasure), Build(Kind::kMeasure, kThree)},
      {Key(Kind::kMeasure, 0, 1), Build(Kind::kMeasure, {0.25}, "")},
      {BucketKey{"", "n", "", Kind::kMeasure, 3600, -3600}, Build(Kind::kMeasure, {-0.0, 1e150, -1e-300})},
      {Key(Kind::kMeasure), Build(Kind::kMeasure, Sketched())}};
}

// The reader's own parser and protobuf's agree on every record, every truncation of it and
// every single-byte change: both decode it to the same record, or both reject it with the
// same message.
TEST(CodecRecordReader, OwnParserAgreesWithProtobufsOnEveryByteChange) {
  RecordReader own;
  RecordReader general;
  std::string bytes;
  std::string own_bytes;
  std::string general_bytes;
  std::size_t decoded = 0;
  const auto compare = [&](std::string_view candidate) {
    const absl::Status a = own.Decode(candidate);
    const std::string through = ThroughProtobuf(candidate);
    const absl::Status b = general.Decode(through);
    ASSERT_EQ(a.ok(), b.ok()) << a << " vs " << b;
    if (!a.ok()) {
      // Not a message at all: the text names the size, which the prefix changes.
      const std::string parse_failed = "not a PartialBucketRecord";
      const std::string got(a.message());
      const std::string want(b.message());
      if (got.starts_with(parse_failed)) {
        EXPECT_TRUE(want.starts_with(parse_failed)) << want;
      } else {
        EXPECT_EQ(got, want);
      }
      return;
    }
    ++decoded;
    EncodeRecord(
        BucketKey{std::string(own.key().tenant), std::string(own.key().name), std::string(own.key().source),
                  own.key().kind, own.key().resolution_seconds, own.key().window_unix_seconds},
        own.bucket(), own_bytes);
    EncodeRecord(BucketKey{std::string(general.key().tenant), std::string(general.key().name),
                           std::string(general.key().source), general.key().kind,
                           general.key().resolution_seconds, general.key().window_unix_seconds},
                 general.bucket(), general_bytes);
    EXPECT_EQ(own_bytes, general_bytes);
  };
  for (const auto& [key, bucket] : ReaderRecords()) {
    EncodeRecord(key, bucket, bytes);
    compare(bytes);
    for (std::size_t n = 0; n < bytes.size(); ++n) compare(std::string_view(bytes).substr(0, n));
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      for (const unsigned char to : {0x00, 0x01, 0x02, 0x7f, 0x80, 0xff}) {
        std::string changed = bytes;
        changed[i] = static_cast<char>(to);
        compare(changed);
      }
    }
  }
  EXPECT_GT(decoded, 100u) << "changes inside doubles and strings still decode";
}

TEST(CodecRecordReader, ReadsWriteRecordsOwnBytesWithoutProtobufAndKeepsKeyViewsIntoThem) {
  RecordReader reader;
  std::string bytes;
  for (const auto& [key, bucket] : ReaderRecords()) {
    EncodeRecord(key, bucket, bytes);
    ASSERT_TRUE(reader.Decode(bytes).ok());
    EXPECT_EQ(reader.key().name, key.name);
    EXPECT_EQ(reader.key().kind, key.kind);
    EXPECT_EQ(reader.key().window_unix_seconds, key.window_unix_seconds);
    ExpectSameBucket(bucket, reader.bucket());
    // The sketched record is not in the own parser's encoding: its key lives in the reader.
    const bool own = bucket.values.exact();
    const bool views_bytes =
        reader.key().name.data() >= bytes.data() &&
        reader.key().name.data() + reader.key().name.size() <= bytes.data() + bytes.size();
    EXPECT_EQ(views_bytes, own) << key.name;
  }
}

// Fields repeated (protobuf: the last wins), values not packed (one fixed64 field each)
// and fields out of order decode as protobuf's parser decodes them.
TEST(CodecRecordReader, OtherWritersEncodingsDecodeAsProtobufSays) {
  v1::PartialBucketRecord record = ValidProto(Kind::kMeasure, kThree);
  std::string bytes = record.SerializeAsString();
  // name again, at the end: "other".
  bytes += std::string("\x12\x05other", 7);
  RecordReader reader;
  ASSERT_TRUE(reader.Decode(bytes).ok()) << reader.Decode(bytes);
  EXPECT_EQ(reader.key().name, "other");
  ExpectSameBucket(Build(Kind::kMeasure, kThree), reader.bucket());

  // Values as three unpacked fixed64 fields 14 after count (field 15).
  v1::PartialBucketRecord without_values = record;
  without_values.clear_values();
  std::string unpacked = without_values.SerializeAsString();
  for (double v : record.values()) {
    unpacked.push_back(static_cast<char>((14 << 3) | 1));
    char raw[8];
    std::memcpy(raw, &v, 8);
    unpacked.append(raw, 8);
  }
  ASSERT_TRUE(reader.Decode(unpacked).ok()) << reader.Decode(unpacked);
  ExpectSameBucket(Build(Kind::kMeasure, kThree), reader.bucket());
}

// One reader, many records: nothing of a record decoded before leaks into the next, also
// after its bucket was moved out or its decode failed.
TEST(CodecRecordReader, ReusedAcrossRecordsKeepsNothingOfThePreviousOne) {
  RecordReader reader;
  std::string bytes;
  const PartialBucket measure = Build(Kind::kMeasure, {1, 2, 3, 4, 5});
  const PartialBucket count = Build(Kind::kCount, {1}, "");
  const PartialBucket one = Build(Kind::kMeasure, {9}, "s");
  EncodeRecord(Key(Kind::kMeasure), measure, bytes);
  ASSERT_TRUE(reader.Decode(bytes).ok());
  ExpectSameBucket(measure, reader.bucket());
  EncodeRecord(Key(Kind::kCount), count, bytes);
  ASSERT_TRUE(reader.Decode(bytes).ok());
  ExpectSameBucket(count, reader.bucket());
  PartialBucket moved = std::move(reader.bucket());
  ExpectSameBucket(count, moved);
  EXPECT_FALSE(reader
                   .Decode("\x0a\x05"
                           "ab")
                   .ok());  // truncated
  EncodeRecord(Key(Kind::kMeasure), one, bytes);
  ASSERT_TRUE(reader.Decode(bytes).ok());
  ExpectSameBucket(one, reader.bucket());
  EncodeRecord(Key(Kind::kMeasure), Build(Kind::kMeasure, Sketched()), bytes);
  ASSERT_TRUE(reader.Decode(bytes).ok());
  EncodeRecord(Key(Kind::kMeasure), measure, bytes);
  ASSERT_TRUE(reader.Decode(bytes).ok());
  ExpectSameBucket(measure, reader.bucket());
}

TEST(CodecBatch, AppendedRecordsDecodeInOrder) {
  std::string batch;
  const std::vector<std::pair<BucketKey, PartialBucket>> records = {
      {Key(Kind::kMeasure), Build(Kind::kMeasure, Range(1, 50))},
      {Key(Kind::kCount, 1'714'557'660), Build(Kind::kCount, {1})},
      {Key(Kind::kMeasure), Build(Kind::kMeasure, Range(1, 5000))}};
  for (const auto& [key, bucket] : records) AppendRecordToBatch(key, bucket, batch);
  absl::StatusOr<std::vector<BucketRecord>> got = DecodeBatch(batch);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), records.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ((*got)[i].key, records[i].first);
    ExpectSameBucket(records[i].second, (*got)[i].bucket);
  }
}

TEST(CodecBatch, ConcatenatedBatchesAreOneBatch) {
  std::string a;
  std::string b;
  AppendRecordToBatch(Key(Kind::kSample), Build(Kind::kSample, {1}), a);
  AppendRecordToBatch(Key(Kind::kSample), Build(Kind::kSample, {2}), b);
  AppendRecordToBatch(Key(Kind::kSample), Build(Kind::kSample, {3}), b);
  absl::StatusOr<std::vector<BucketRecord>> got = DecodeBatch(a + b);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[0].bucket.last, 1);
  EXPECT_EQ((*got)[2].bucket.last, 3);
}

TEST(CodecBatch, EmptyBytesAreAnEmptyBatch) {
  absl::StatusOr<std::vector<BucketRecord>> got = DecodeBatch("");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->empty());
}

TEST(CodecBatch, OneBadRecordRejectsTheBatchNamingIt) {
  v1::PartialBucketBatch batch;
  *batch.add_records() = ValidProto(Kind::kCount, {1});
  *batch.add_records() = ValidProto(Kind::kCount, {1});
  batch.mutable_records(1)->set_count(0);
  absl::StatusOr<std::vector<BucketRecord>> got = DecodeBatch(batch.SerializeAsString());
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(got.status().message()).find("record 1: count"), std::string::npos) << got.status();
}

// Cut inside a record: rejected. Cut at a record boundary: a valid shorter batch (the format
// cannot tell; whole values are written atomically, partial_bucket.proto).
TEST(CodecBatch, TruncationInsideARecordIsRejected) {
  std::string batch;
  AppendRecordToBatch(Key(Kind::kMeasure), Build(Kind::kMeasure, {1, 2, 3}), batch);
  const std::size_t first = batch.size();
  AppendRecordToBatch(Key(Kind::kCount), Build(Kind::kCount, {1}), batch);
  for (std::size_t n = 1; n < batch.size(); ++n) {
    SCOPED_TRACE(n);
    absl::StatusOr<std::vector<BucketRecord>> got = DecodeBatch(std::string_view(batch).substr(0, n));
    if (n == first) {
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(got->size(), 1u);
    } else {
      EXPECT_FALSE(got.ok());
    }
  }
}

// ---------------------------------------------------------------------------------------
// List elements: one record, or a batch element (0x00, then (varint length, record)...).

using Records = std::vector<std::pair<BucketKey, PartialBucket>>;

// Writes `records` with one ElementWriter of bound `max_bytes` and form `form`; the
// elements, in order.
std::vector<std::string> WriteElements(const Records& records, std::size_t max_bytes = kMaxElementBytes,
                                       RecordForm form = RecordForm::kCompact) {
  std::string bytes = "before";  // the writer appends: elements begin where `bytes` ended
  std::vector<std::size_t> ends;
  ElementWriter writer(bytes, ends, max_bytes, form);
  for (const auto& [key, bucket] : records) {
    writer.Add(RecordKeyView{key.tenant, key.name, key.source, key.kind, key.resolution_seconds,
                             key.window_unix_seconds},
               bucket);
  }
  writer.Close();
  EXPECT_EQ(writer.records(), records.size());
  EXPECT_EQ(writer.elements(), ends.size());
  std::vector<std::string> elements;
  std::size_t begin = 6;
  for (const std::size_t end : ends) {
    elements.push_back(bytes.substr(begin, end - begin));
    begin = end;
  }
  EXPECT_EQ(bytes.substr(0, 6), "before");
  return elements;
}

// What ElementReader gives for `element`: the records it decoded, re-encoded, and the
// errors, in order ("" for a record).
struct Read {
  std::vector<std::string> records;
  std::vector<std::string> errors;
};
Read ReadElement(ElementReader& reader, std::string_view element) {
  Read read;
  reader.Reset(element);
  for (int guard = 0; guard < 100000; ++guard) {
    absl::StatusOr<bool> next = reader.Next();
    if (!next.ok()) {
      EXPECT_EQ(next.status().code(), absl::StatusCode::kInvalidArgument);
      read.errors.emplace_back(next.status().message());
      continue;
    }
    if (!*next) return read;
    const RecordKeyView& k = reader.key();
    std::string bytes;
    EncodeRecord(BucketKey{std::string(k.tenant), std::string(k.name), std::string(k.source), k.kind,
                           k.resolution_seconds, k.window_unix_seconds},
                 reader.bucket(), bytes);
    read.records.push_back(std::move(bytes));
  }
  ADD_FAILURE() << "Next never returned false";
  return read;
}

std::string Encoded(const BucketKey& key, const PartialBucket& bucket) {
  std::string bytes;
  EncodeRecord(key, bucket, bytes);
  return bytes;
}

// `n` one-point count records of distinct sources.
Records Counts(int n) {
  Records records;
  for (int i = 0; i < n; ++i) {
    BucketKey key = Key(Kind::kCount);
    key.source = "web." + std::to_string(i);
    records.emplace_back(key, Build(Kind::kCount, {1}, ""));
  }
  return records;
}

// The tests of 0x00 batch elements write with RecordForm::kFull (what the writer writes
// for outlets that predate compact elements); compact elements: CodecCompact below.

TEST(CodecElement, OneRecordIsWrittenAloneAsASingleRecordElement) {
  const Records one = {{Key(Kind::kMeasure), Build(Kind::kMeasure, kThree)}};
  const std::vector<std::string> elements = WriteElements(one);
  ASSERT_EQ(elements.size(), 1u);
  EXPECT_EQ(elements[0], Encoded(one[0].first, one[0].second));  // no tag, no length
  ElementReader reader;
  const Read read = ReadElement(reader, elements[0]);
  EXPECT_TRUE(read.errors.empty());
  EXPECT_EQ(read.records, std::vector<std::string>{elements[0]});
}

TEST(CodecElement, TwoRecordsAreOneBatchElementByteForByte) {
  const Records two = {{Key(Kind::kCount), Build(Kind::kCount, {1, 1}, "")},
                       {Key(Kind::kSample, -120), Build(Kind::kSample, {-3.5, 7}, "MB")}};
  const std::string a = Encoded(two[0].first, two[0].second);
  const std::string b = Encoded(two[1].first, two[1].second);
  ASSERT_LT(a.size(), 128u);
  ASSERT_LT(b.size(), 128u);
  const std::vector<std::string> elements = WriteElements(two);
  ASSERT_EQ(elements.size(), 1u);
  // 0x00, then each record's length (one varint byte here) and bytes.
  EXPECT_EQ(elements[0],
            std::string(1, '\0') + static_cast<char>(a.size()) + a + static_cast<char>(b.size()) + b);
  ElementReader reader;
  const Read read = ReadElement(reader, elements[0]);
  EXPECT_TRUE(read.errors.empty());
  EXPECT_EQ(read.records, (std::vector<std::string>{a, b}));
}

TEST(CodecElement, ManyRecordsRoundTripInOrderAcrossKindsAndSketches) {
  Records many = ReaderRecords();  // counts, samples, measures, a sketch (not the own parser's encoding)
  for (const auto& r : Counts(500)) many.push_back(r);
  const std::vector<std::string> elements = WriteElements(many, std::size_t{1} << 20, RecordForm::kFull);
  ASSERT_EQ(elements.size(), 1u);  // ~55 KiB: under this bound
  EXPECT_EQ(elements[0][0], kBatchElementTag);
  ElementReader reader;
  const Read read = ReadElement(reader, elements[0]);
  EXPECT_TRUE(read.errors.empty());
  ASSERT_EQ(read.records.size(), many.size());
  for (std::size_t i = 0; i < many.size(); ++i) {
    EXPECT_EQ(read.records[i], Encoded(many[i].first, many[i].second)) << i;
  }
  // And field for field (doubles bit-exact, the sketch identical), through the reader.
  reader.Reset(elements[0]);
  for (const auto& [key, bucket] : many) {
    absl::StatusOr<bool> next = reader.Next();
    ASSERT_TRUE(next.ok() && *next) << next.status();
    EXPECT_EQ(reader.key().source, key.source);
    ExpectSameBucket(bucket, reader.bucket());
  }
  EXPECT_FALSE(*reader.Next());
}

// The bound: an element takes records while they fit, every element <= max_bytes, the
// records in order over the elements; a record larger than the bound is alone.
TEST(CodecElement, SplitsAtTheBoundAndKeepsAnOversizedRecordAlone) {
  const Records counts = Counts(10);  // web.0 .. web.9: 92 bytes each (93 framed)
  const std::string first = Encoded(counts[0].first, counts[0].second);
  ASSERT_EQ(first.size(), 92u);
  // 1 + 3 x 93 = 280 <= 300 < 373: three records an element, the last holds one (alone).
  std::vector<std::string> elements = WriteElements(counts, 300, RecordForm::kFull);
  ASSERT_EQ(elements.size(), 4u);
  for (int e = 0; e < 3; ++e) EXPECT_EQ(elements[e].size(), 280u) << e;
  EXPECT_EQ(elements[3], Encoded(counts[9].first, counts[9].second));
  ElementReader reader;
  std::vector<std::string> all;
  for (const std::string& element : elements) {
    const Read read = ReadElement(reader, element);
    EXPECT_TRUE(read.errors.empty());
    all.insert(all.end(), read.records.begin(), read.records.end());
  }
  ASSERT_EQ(all.size(), counts.size());
  for (std::size_t i = 0; i < counts.size(); ++i)
    EXPECT_EQ(all[i], Encoded(counts[i].first, counts[i].second));

  // A 2.5 KiB sketched record between small ones, bound 1000: the small ones before it
  // close their element, it is alone (plain), the ones after open the next.
  Records mixed = {counts[0], counts[1], {Key(Kind::kMeasure), Build(Kind::kMeasure, Sketched())}, counts[2]};
  const std::string big = Encoded(mixed[2].first, mixed[2].second);
  ASSERT_GT(big.size(), 1000u);
  elements = WriteElements(mixed, 1000, RecordForm::kFull);
  ASSERT_EQ(elements.size(), 3u);
  EXPECT_EQ(elements[0][0], kBatchElementTag);
  EXPECT_EQ(ReadElement(reader, elements[0]).records.size(), 2u);
  EXPECT_EQ(elements[1], big);
  EXPECT_EQ(elements[2], Encoded(counts[2].first, counts[2].second));

  // The default bound, 8,000 bytes: 2000 count records (93 to 96 bytes framed, 190,890
  // bytes) in 24 elements (83 to 86 records each), each <= 8,000 bytes.
  const Records lots = Counts(2000);
  elements = WriteElements(lots, kMaxElementBytes, RecordForm::kFull);
  std::size_t records = 0;
  for (const std::string& element : elements) {
    EXPECT_LE(element.size(), kMaxElementBytes);
    const Read read = ReadElement(reader, element);
    EXPECT_TRUE(read.errors.empty());
    records += read.records.size();
  }
  EXPECT_EQ(elements.size(), 24u);
  EXPECT_EQ(records, 2000u);
}

TEST(CodecElement, ReaderTakesSingleAndBatchElementsAlike) {
  const Records counts = Counts(5);
  const std::string single = Encoded(counts[0].first, counts[0].second);  // as receivers before batches wrote
  const std::vector<std::string> batch = WriteElements(Records(counts.begin() + 1, counts.end()));
  ASSERT_EQ(batch.size(), 1u);
  ElementReader reader;
  std::vector<std::string> all;
  for (const std::string& element : {single, batch[0], single}) {
    const Read read = ReadElement(reader, element);
    EXPECT_TRUE(read.errors.empty());
    all.insert(all.end(), read.records.begin(), read.records.end());
  }
  ASSERT_EQ(all.size(), 6u);
  EXPECT_EQ(all[0], single);
  EXPECT_EQ(all[4], Encoded(counts[4].first, counts[4].second));
  EXPECT_EQ(all[5], single);
  // "\x00" alone is an empty batch; an empty element is one record that does not decode.
  EXPECT_TRUE(ReadElement(reader, std::string(1, '\0')).records.empty());
  EXPECT_TRUE(ReadElement(reader, std::string(1, '\0')).errors.empty());
  const Read empty = ReadElement(reader, "");
  EXPECT_TRUE(empty.records.empty());
  EXPECT_EQ(empty.errors.size(), 1u);
}

// A record of a batch that does not decode is one error; the records around it are read.
TEST(CodecElement, CorruptRecordInsideABatchIsSkippedAlone) {
  const Records counts = Counts(3);
  std::string element(1, '\0');
  const std::string a = Encoded(counts[0].first, counts[0].second);
  std::string b = Encoded(counts[1].first, counts[1].second);
  const std::string c = Encoded(counts[2].first, counts[2].second);
  b.back() = '\0';  // count (field 15, the last byte) 0: breaks a constraint
  const std::string* const parts[] = {&a, &b, &c};
  for (const std::string* r : parts) element += static_cast<char>(r->size()) + *r;
  ElementReader reader;
  const Read read = ReadElement(reader, element);
  EXPECT_EQ(read.records, (std::vector<std::string>{a, c}));
  ASSERT_EQ(read.errors.size(), 1u);
  EXPECT_TRUE(read.errors[0].starts_with("batch element: record 1: count")) << read.errors[0];
}

// Broken framing (a length past the end, a truncated varint): the records before it are
// read, the rest of the element is one error, then the element ends.
TEST(CodecElement, BrokenFramingGivesUpTheRestOnce) {
  const Records counts = Counts(3);
  const std::vector<std::string> elements = WriteElements(counts, kMaxElementBytes, RecordForm::kFull);
  ASSERT_EQ(elements.size(), 1u);
  const std::string& whole = elements[0];
  const std::string a = Encoded(counts[0].first, counts[0].second);
  ElementReader reader;
  // Every cut: the records wholly inside are read; a cut inside a record's bytes or its
  // length is one error.
  for (std::size_t n = 1; n < whole.size(); ++n) {
    SCOPED_TRACE(n);
    const Read read = ReadElement(reader, std::string_view(whole).substr(0, n));
    const std::size_t complete = (n - 1) / 93;  // 93 bytes per framed record
    EXPECT_EQ(read.records.size(), complete);
    const bool at_boundary = (n - 1) % 93 == 0;
    EXPECT_EQ(read.errors.size(), at_boundary ? 0u : 1u);
    if (!at_boundary) {
      EXPECT_NE(read.errors[0].find("past the end"), std::string::npos) << read.errors[0];
    }
  }
  // A length of 200 after the first record, 92 + 93 bytes left: one error, nothing more.
  std::string bad = whole;
  bad.insert(1 + 93 + 1, 1, '\x01');  // 200 = 0xc8 0x01 as a varint
  bad[1 + 93] = static_cast<char>(0xc8);
  Read read = ReadElement(reader, bad);
  EXPECT_EQ(read.records, std::vector<std::string>{a});
  ASSERT_EQ(read.errors.size(), 1u);
  EXPECT_EQ(read.errors[0],
            "batch element: record 1's length is truncated or past the end (187 bytes left); the rest of "
            "the element skipped");
  // A varint of 11 bytes: broken framing too.
  read = ReadElement(reader, std::string(1, '\0') + std::string(11, '\xff'));
  EXPECT_TRUE(read.records.empty());
  EXPECT_EQ(read.errors.size(), 1u);
}

// The outlet's loop: no allocation per record once the reader's storage is warm.
TEST(CodecElement, ReadingABatchAllocatesNothingPerRecord) {
  Records measures;
  for (int i = 0; i < 300; ++i) {
    BucketKey key = Key(Kind::kMeasure);
    key.source = "web." + std::to_string(i);
    measures.emplace_back(key, Build(Kind::kMeasure, {1, 2, static_cast<double>(i)}));
  }
  const std::vector<std::string> elements = WriteElements(measures, std::size_t{1} << 20);
  ASSERT_EQ(elements.size(), 1u);  // one element of 300 records (~30 KB)
  ElementReader reader;
  ASSERT_EQ(ReadElement(reader, elements[0]).records.size(), 300u);  // warms the storage
  const long before = testing_support::AllocationCount();
  std::size_t read = 0;
  double sum = 0;
  reader.Reset(elements[0]);
  for (absl::StatusOr<bool> next = reader.Next(); next.ok() && *next; next = reader.Next()) {
    sum += reader.bucket().sum;
    ++read;
  }
  EXPECT_EQ(testing_support::AllocationCount() - before, 0);
  EXPECT_EQ(read, 300u);
  EXPECT_EQ(sum, 300 * 3 + 299 * 300 / 2);
}

// The outlet moves each decoded bucket into its table, so the reader has no storage left
// for the next record; a measure of one value needs none (held inline by Distribution).
TEST(CodecElement, ReadingOneValueMeasuresAllocatesNothingWhenBucketsAreMovedOut) {
  Records measures;
  for (int i = 0; i < 300; ++i) {
    BucketKey key = Key(Kind::kMeasure);
    key.source = "web." + std::to_string(i);
    measures.emplace_back(key, Build(Kind::kMeasure, {static_cast<double>(i)}));
  }
  const std::vector<std::string> elements = WriteElements(measures, std::size_t{1} << 20);
  ASSERT_EQ(elements.size(), 1u);
  ElementReader reader;
  std::vector<PartialBucket> taken(300);
  const long before = testing_support::AllocationCount();
  std::size_t read = 0;
  reader.Reset(elements[0]);
  for (absl::StatusOr<bool> next = reader.Next(); next.ok() && *next; next = reader.Next()) {
    taken[read] = std::move(reader.bucket());
    ++read;
  }
  EXPECT_EQ(testing_support::AllocationCount() - before, 0);
  ASSERT_EQ(read, 300u);
  for (std::size_t i = 0; i < read; ++i) {
    ASSERT_EQ(taken[i].values.values().size(), 1u);
    EXPECT_EQ(taken[i].values.values()[0], static_cast<double>(i));
    EXPECT_EQ(taken[i].values.Percentile(50), static_cast<double>(i));
  }
}

// ---------------------------------------------------------------------------------------
// The compact form of one-point buckets (field 17 `value`), only inside compact batch
// elements (0x01): partial_bucket.proto, docs/redis-layout.md "Record encoding".

RecordKeyView ViewOf(const BucketKey& key) {
  return RecordKeyView{
      key.tenant, key.name, key.source, key.kind, key.resolution_seconds, key.window_unix_seconds};
}

// WriteRecord's bytes in `form`, checked against RecordSize.
std::string Written(const BucketKey& key, const PartialBucket& bucket, RecordForm form) {
  std::string bytes(RecordSize(ViewOf(key), bucket, form), '\xee');
  char* end = WriteRecord(ViewOf(key), bucket, bytes.data(), form);
  EXPECT_EQ(end, bytes.data() + bytes.size()) << "RecordSize and WriteRecord disagree";
  return bytes;
}

// The one-point buckets of `kind` a receiver builds, over values that stress the form:
// signed zeros, subnormals, the smallest normal, large magnitudes (v * v still finite, and
// not), fractions whose square rounds.
std::vector<double> OnePointValues() {
  return {1.0,
          -1.0,
          -0.0,
          kDenormMin,
          -kDenormMin,
          kDenormMin * 12345,
          std::numeric_limits<double>::min(),
          0.1,
          -3.7,
          1e150,
          -1.3e154,
          1e200,  // v * v overflows: sum_squares not finite, the full form is rejected too
          std::numeric_limits<double>::max(),
          123456789.123,
          std::nextafter(1.0, 2.0)};
}

TEST(CodecCompact, OnePointBucketsRoundTripBitForBitInACompactElement) {
  for (const Kind kind : {Kind::kCount, Kind::kSample, Kind::kMeasure}) {
    for (const double v : OnePointValues()) {
      for (const std::string_view units : {"", "ms"}) {
        SCOPED_TRACE(testing::Message() << static_cast<int>(kind) << " " << v << " '" << units << "'");
        const BucketKey key = Key(kind);
        const PartialBucket b = Build(kind, {v}, units, -5 * kSecond);
        const std::optional<double> value = CompactValue(kind, b);
        ASSERT_TRUE(value.has_value());
        EXPECT_EQ(Bits(*value), Bits(v));
        const std::string full = Encoded(key, b);
        const std::string compact = Written(key, b, RecordForm::kCompact);
        EXPECT_EQ(Written(key, b, RecordForm::kFull), full);
        // Fields 7-11 (9 bytes each, those with bits not zero: not sum or sum_squares for -0,
        // not sum_squares when v * v underflows) and 14 (10 bytes, measures) give way to
        // field 17 (10 bytes).
        std::size_t saved = kind == Kind::kMeasure ? 10 : 0;
        for (const double field : {b.sum, b.sum_squares, b.min, b.max, b.last}) {
          saved += Bits(field) != 0 ? 9 : 0;
        }
        EXPECT_EQ(compact.size() + saved - 10, full.size());
        if (Bits(b.sum_squares) != 0 && Bits(b.sum) != 0) {
          EXPECT_EQ(saved, kind == Kind::kMeasure ? 55u : 45u);
        }

        // What protobuf's parser makes of the bytes: the key, last_unix_nanos, units,
        // count 1 and the value; nothing of fields 7-11, 14.
        v1::PartialBucketRecord proto;
        ASSERT_TRUE(proto.ParseFromString(compact));
        EXPECT_TRUE(proto.has_value());
        EXPECT_EQ(Bits(proto.value()), Bits(v));
        EXPECT_EQ(proto.count(), 1u);
        EXPECT_EQ(proto.last_unix_nanos(), -5 * kSecond);
        EXPECT_EQ(proto.units(), units);
        EXPECT_EQ(Bits(proto.sum()), 0u);
        EXPECT_EQ(Bits(proto.min()), 0u);
        EXPECT_EQ(proto.values_size(), 0);
        // Protobuf's own order (count, then value) reads the same.
        const std::string protobuf_order = proto.SerializeAsString();
        EXPECT_EQ(protobuf_order.size(), compact.size());

        // Own parser, protobuf's (behind an unknown field), protobuf's order: the bucket
        // Add built, bit for bit; the compact element written for it likewise.
        for (const std::string& bytes : {compact, ThroughProtobuf(compact), protobuf_order}) {
          RecordReader reader;
          const absl::Status s = reader.Decode(bytes, RecordForm::kCompact);
          if (v == 1e200 || v == std::numeric_limits<double>::max()) {
            // v * v = inf: rejected as the full form is.
            EXPECT_EQ(s.message(), "sum_squares: not finite");
            EXPECT_EQ(DecodeRecord(full).status().message(), "sum_squares: not finite");
            continue;
          }
          ASSERT_TRUE(s.ok()) << s;
          EXPECT_EQ(reader.key().source, key.source);
          EXPECT_EQ(reader.key().kind, kind);
          ExpectSameBucket(b, reader.bucket());
        }
        const std::vector<std::string> elements = WriteElements({{key, b}});
        ASSERT_EQ(elements.size(), 1u);
        // Alone, still framed: 0x01, length, the compact record.
        EXPECT_EQ(elements[0],
                  std::string(1, kCompactBatchElementTag) + static_cast<char>(compact.size()) + compact);
        ElementReader reader;
        reader.Reset(elements[0]);
        const absl::StatusOr<bool> next = reader.Next();
        if (std::isfinite(v * v)) {
          ASSERT_TRUE(next.ok() && *next) << next.status();
          ExpectSameBucket(b, reader.bucket());
        } else {
          EXPECT_FALSE(next.ok());
        }
        EXPECT_FALSE(*reader.Next());
      }
    }
  }
}

// -0: Add gives sum +0 + -0 = +0 and min, max, last -0; the compact form gives that back.
// AddPoint writes exactly what Add of the one-point bucket PartialBucket::Add gives writes:
// every kind, the compact values, +0, infinities and NaN (written in full or as Add does),
// with and without units, in both forms, and elements filled past their bound alike.
TEST(CodecCompact, AddPointWritesWhatAddOfItsOnePointBucketWrites) {
  std::vector<double> values = OnePointValues();
  for (const double v : {0.0, std::numeric_limits<double>::infinity(),
                         -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()})
    values.push_back(v);
  for (const RecordForm form : {RecordForm::kCompact, RecordForm::kFull, RecordForm::kKeyed}) {
    std::string by_point;
    std::string by_bucket;
    std::vector<std::size_t> point_ends;
    std::vector<std::size_t> bucket_ends;
    ElementWriter points(by_point, point_ends, 300, form);
    ElementWriter buckets(by_bucket, bucket_ends, 300, form);
    for (const Kind kind : {Kind::kCount, Kind::kSample, Kind::kMeasure}) {
      for (const double v : values) {
        for (const std::string_view units : {"", "ms"}) {
          const BucketKey key = Key(kind);
          const RecordKeyView view{
              key.tenant, key.name, key.source, key.kind, key.resolution_seconds, key.window_unix_seconds};
          PartialBucket b;
          b.Add(v, -5 * kSecond, units, kind == Kind::kMeasure);
          points.AddPoint(view, v, -5 * kSecond, units);
          buckets.Add(view, b);
        }
      }
    }
    points.Close();
    buckets.Close();
    EXPECT_EQ(points.records(), buckets.records());
    EXPECT_GT(point_ends.size(), 5u) << "several elements";
    EXPECT_EQ(point_ends, bucket_ends);
    EXPECT_EQ(by_point, by_bucket);
  }
}

TEST(CodecCompact, NegativeZeroKeepsItsSignsAsAddGivesThem) {
  const PartialBucket b = Build(Kind::kMeasure, {-0.0});
  ASSERT_EQ(Bits(b.sum), 0u);
  ASSERT_EQ(Bits(b.min), Bits(-0.0));
  const std::vector<std::string> elements = WriteElements({{Key(Kind::kMeasure), b}});
  ASSERT_EQ(elements.size(), 1u);
  EXPECT_EQ(elements[0][0], kCompactBatchElementTag);
  ElementReader reader;
  reader.Reset(elements[0]);
  ASSERT_TRUE(*reader.Next());
  ExpectSameBucket(b, reader.bucket());
  EXPECT_EQ(Bits(reader.bucket().sum), 0u);
  EXPECT_EQ(Bits(reader.bucket().last), Bits(-0.0));
  EXPECT_EQ(Bits(reader.bucket().values.values()[0]), Bits(-0.0));
}

// Buckets the compact form would not give back bit for bit: written in full, also inside a
// compact element, and an element of such records only is a plain one (0x00 or alone).
TEST(CodecCompact, BucketsItWouldNotGiveBackAreWrittenInFull) {
  std::vector<std::pair<std::string, std::pair<Kind, PartialBucket>>> cases;
  const auto add = [&](std::string name, Kind kind, PartialBucket b) {
    cases.push_back({std::move(name), {kind, std::move(b)}});
  };
  add("two points", Kind::kCount, Build(Kind::kCount, {1, 1}));
  add("two equal measures", Kind::kMeasure, Build(Kind::kMeasure, {2, 2}));
  add("+0 (the full form is shorter)", Kind::kCount, Build(Kind::kCount, {0.0}));
  add("+0 measure (as long)", Kind::kMeasure, Build(Kind::kMeasure, {0.0}));
  PartialBucket b = Build(Kind::kSample, {5});
  b.last = 4;
  add("last != min", Kind::kSample, b);
  b = Build(Kind::kSample, {5});
  b.min = 4;
  add("min != max", Kind::kSample, b);
  b = Build(Kind::kCount, {5});
  b.sum = 6;
  add("sum != value", Kind::kCount, b);
  b = Build(Kind::kCount, {-0.0});
  b.sum = -0.0;  // not what Add gives (+0 + -0 = +0)
  add("sum -0", Kind::kCount, b);
  b = Build(Kind::kCount, {0.1});
  b.sum_squares = std::nextafter(b.sum_squares, 1.0);
  add("sum_squares one ulp off", Kind::kCount, b);
  b = Build(Kind::kCount, {3});
  b.min = std::bit_cast<double>(std::uint64_t{0x7ff8000000000001});  // a NaN payload
  add("min a NaN", Kind::kCount, b);
  add("NaN", Kind::kSample, Build(Kind::kSample, {kNaN}));
  add("inf", Kind::kSample, Build(Kind::kSample, {kInf}));
  b = Build(Kind::kMeasure, {7});
  b.values = *Distribution::FromExact({std::nextafter(7.0, 8.0)});
  add("measure value != value", Kind::kMeasure, b);
  b = Build(Kind::kCount, {7});
  b.values = *Distribution::FromExact({7});
  add("count with values", Kind::kCount, b);
  add("measure without values", Kind::kMeasure, Build(Kind::kCount, {7}));
  add("sketched", Kind::kMeasure, Build(Kind::kMeasure, Sketched()));
  for (const auto& [name, kind_bucket] : cases) {
    SCOPED_TRACE(name);
    const auto& [kind, bucket] = kind_bucket;
    EXPECT_FALSE(CompactValue(kind, bucket).has_value());
    EXPECT_EQ(Written(Key(kind), bucket, RecordForm::kCompact), Encoded(Key(kind), bucket));
    const std::vector<std::string> elements = WriteElements({{Key(kind), bucket}, {Key(kind), bucket}});
    ASSERT_EQ(elements.size(), 1u);
    EXPECT_EQ(elements[0][0], kBatchElementTag);
    EXPECT_EQ(WriteElements({{Key(kind), bucket}})[0], Encoded(Key(kind), bucket));
  }
}

// One element of compact and full records, of every kind: 0x01, each record in the form
// its bucket allows, all read back in order, bit for bit.
TEST(CodecCompact, MixedCompactElementReadsEveryRecordInOrder) {
  Records mixed = ReaderRecords();  // counts, samples, measures (one of one value), a sketch
  for (const auto& r : Counts(50)) mixed.push_back(r);
  mixed.push_back({Key(Kind::kMeasure), Build(Kind::kMeasure, {-0.0}, "")});
  mixed.push_back({Key(Kind::kSample), Build(Kind::kSample, {kDenormMin}, "B")});
  mixed.push_back({Key(Kind::kCount), Build(Kind::kCount, {0.0})});
  const std::vector<std::string> elements = WriteElements(mixed, std::size_t{1} << 20);
  ASSERT_EQ(elements.size(), 1u);
  ASSERT_EQ(elements[0][0], kCompactBatchElementTag);
  // The framing: each record in its form, compact exactly where CompactValue says.
  std::size_t at = 1;
  std::size_t compact = 0;
  for (const auto& [key, bucket] : mixed) {
    const std::string want =
        CompactValue(key.kind, bucket) ? Written(key, bucket, RecordForm::kCompact) : Encoded(key, bucket);
    compact += CompactValue(key.kind, bucket) ? 1 : 0;
    std::string framed;
    std::uint64_t size = want.size();
    while (size >= 0x80) {
      framed.push_back(static_cast<char>(size | 0x80));
      size >>= 7;
    }
    framed.push_back(static_cast<char>(size));
    ASSERT_EQ(elements[0].substr(at, framed.size() + want.size()), framed + want) << key.source;
    at += framed.size() + want.size();
  }
  EXPECT_EQ(at, elements[0].size());
  EXPECT_EQ(compact, 53u);  // the 0.25 measure, 50 counts, -0 measure, the subnormal sample
  ElementReader reader;
  const Read read = ReadElement(reader, elements[0]);
  EXPECT_TRUE(read.errors.empty());
  ASSERT_EQ(read.records.size(), mixed.size());
  for (std::size_t i = 0; i < mixed.size(); ++i)
    EXPECT_EQ(read.records[i], Encoded(mixed[i].first, mixed[i].second));
  reader.Reset(elements[0]);
  for (const auto& [key, bucket] : mixed) {
    absl::StatusOr<bool> next = reader.Next();
    ASSERT_TRUE(next.ok() && *next) << next.status();
    ExpectSameBucket(bucket, reader.bucket());
  }
  EXPECT_FALSE(*reader.Next());
  // The bound holds as for 0x00 elements; "\x01" alone is an empty compact batch.
  for (const std::string& element : WriteElements(Counts(2000))) {
    EXPECT_LE(element.size(), kMaxElementBytes);
    EXPECT_EQ(element[0], kCompactBatchElementTag);
  }
  EXPECT_TRUE(ReadElement(reader, std::string(1, kCompactBatchElementTag)).records.empty());
  EXPECT_TRUE(ReadElement(reader, std::string(1, kCompactBatchElementTag)).errors.empty());
}

// A compact record outside a compact element: a single-record element, a 0x00 batch,
// DecodeRecord, a PartialBucketBatch: rejected naming `value`, by both parsers.
TEST(CodecCompact, FieldValueOutsideACompactElementIsRejected) {
  const BucketKey key = Key(Kind::kCount);
  const std::string compact = Written(key, Build(Kind::kCount, {1}), RecordForm::kCompact);
  const std::string want =
      "value: present outside a compact batch element (the compact form is read only there)";
  for (const std::string& bytes : {compact, ThroughProtobuf(compact)}) {
    RecordReader reader;
    EXPECT_EQ(reader.Decode(bytes), absl::InvalidArgumentError(want));
    EXPECT_EQ(DecodeRecord(bytes).status(), absl::InvalidArgumentError(want));
    ElementReader elements;
    EXPECT_EQ(ReadElement(elements, bytes).errors, std::vector<std::string>{want});
    const std::string batch = std::string(1, kBatchElementTag) + static_cast<char>(bytes.size()) + bytes;
    EXPECT_EQ(ReadElement(elements, batch).errors,
              std::vector<std::string>{"batch element: record 0: " + want});
    const std::string proto_batch = std::string(1, '\x0a') + static_cast<char>(bytes.size()) + bytes;
    EXPECT_EQ(DecodeBatch(proto_batch).status(), absl::InvalidArgumentError("record 0: " + want));
  }
}

// Field 17 with any of fields 7-11, 14 or 16, with a count other than 1, or not finite:
// rejected inside a compact element too, with the same message by both parsers.
TEST(CodecCompact, FieldValueBreakingItsConstraintsIsRejected) {
  v1::PartialBucketRecord base;
  ASSERT_TRUE(
      base.ParseFromString(Written(Key(Kind::kMeasure), Build(Kind::kMeasure, {3}), RecordForm::kCompact)));
  ASSERT_TRUE(base.has_value());
  const std::string together =
      "value: present together with sum, sum_squares, min, max, last, values or sketch";
  const std::vector<std::pair<std::function<void(v1::PartialBucketRecord&)>, std::string>> cases = {
      {[](R& r) { r.set_sum(3); }, together},
      {[](R& r) { r.set_sum_squares(9); }, together},
      {[](R& r) { r.set_min(3); }, together},
      {[](R& r) { r.set_max(3); }, together},
      {[](R& r) { r.set_last(3); }, together},
      {[](R& r) { r.add_values(3); }, together},
      {[](R& r) { r.mutable_sketch()->set_zero_count(1); }, together},
      {[](R& r) { r.set_count(0); }, "value: present with a count of 0 (must be 1)"},
      {[](R& r) { r.set_count(2); }, "value: present with a count of 2 (must be 1)"},
      {[](R& r) { r.set_value(kInf); }, "value: not finite"},
      {[](R& r) { r.set_value(-kInf); }, "value: not finite"},
      {[](R& r) { r.set_value(kNaN); }, "value: not finite"},
      {[](R& r) { r.set_name(""); }, "name: empty"},  // and the record's other rules still hold
  };
  for (const auto& [mutate, want] : cases) {
    SCOPED_TRACE(want);
    R record = base;
    mutate(record);
    const std::string bytes = record.SerializeAsString();
    for (const std::string& candidate : {bytes, ThroughProtobuf(bytes)}) {
      RecordReader reader;
      EXPECT_EQ(reader.Decode(candidate, RecordForm::kCompact), absl::InvalidArgumentError(want));
      ElementReader elements;
      const std::string element =
          std::string(1, kCompactBatchElementTag) + static_cast<char>(candidate.size()) + candidate;
      EXPECT_EQ(ReadElement(elements, element).errors,
                std::vector<std::string>{"compact batch element: record 0: " + want});
    }
  }
  // Fields 7-11 at their default (bits zero) are absent to protobuf, so to the reader too.
  R zeros = base;
  zeros.set_sum(0);
  RecordReader reader;
  EXPECT_TRUE(reader.Decode(zeros.SerializeAsString(), RecordForm::kCompact).ok());
}

// An outlet that predates compact elements takes a 0x01 element for one record (its first
// byte is not 0x00) and decodes it with RecordReader::Decode: field number 0, rejected by
// the own parser (it declines) and by protobuf's, so the element is counted corrupt and
// never misread. Every compact element, whatever follows the tag.
// `written` (elements of first byte `tag`), `tag` alone and 2,000 random elements of that
// first byte are each rejected whole by the single-record decoder, as protobuf rejects them.
void ExpectSingleRecordDecoderRejects(char tag, const std::vector<std::string>& written) {
  std::mt19937_64 rng(17);
  std::vector<std::string> elements = {std::string(1, tag)};
  elements.insert(elements.end(), written.begin(), written.end());
  for (int i = 0; i < 2000; ++i) {  // the tag, then anything
    std::string e(1 + rng() % 200, '\0');
    for (char& c : e) c = static_cast<char>(rng());
    e[0] = tag;
    elements.push_back(e);
  }
  for (const std::string& element : elements) {
    ASSERT_EQ(element[0], tag);
    RecordReader reader;
    const absl::Status s = reader.Decode(element);  // the old ElementReader's single-record path
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    // It went to protobuf's parser (the own parser declined) and protobuf failed.
    EXPECT_TRUE(std::string(s.message()).starts_with("not a PartialBucketRecord (protobuf parse failed"))
        << s;
    v1::PartialBucketRecord proto;
    EXPECT_FALSE(proto.ParseFromString(element));
    v1::PartialBucketBatch batch;
    EXPECT_FALSE(batch.ParseFromString(element));
  }
}

TEST(CodecCompact, ASingleRecordDecoderRejectsEveryCompactElement) {
  std::vector<std::string> elements = WriteElements(Counts(300));
  Records mixed = ReaderRecords();
  mixed.push_back({Key(Kind::kSample), Build(Kind::kSample, {2})});
  for (const std::string& e : WriteElements(mixed, std::size_t{1} << 20)) elements.push_back(e);
  ExpectSingleRecordDecoderRejects(kCompactBatchElementTag, elements);
}

// A compact record cut short is detected: field 17 comes before count, which stays last.
TEST(CodecCompact, RejectsEveryTruncationOfACompactRecord) {
  for (const Kind kind : {Kind::kCount, Kind::kSample, Kind::kMeasure}) {
    const std::string bytes = Written(Key(kind), Build(kind, {2.5}), RecordForm::kCompact);
    RecordReader reader;
    ASSERT_TRUE(reader.Decode(bytes, RecordForm::kCompact).ok());
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      EXPECT_FALSE(reader.Decode(std::string_view(bytes).substr(0, n), RecordForm::kCompact).ok()) << n;
    }
  }
}

// The reader's own parser and protobuf's agree on compact records, every truncation and
// every single-byte change of them (the counterpart of OwnParserAgreesWithProtobufs...).
TEST(CodecCompact, OwnParserAgreesWithProtobufsOnEveryByteChange) {
  RecordReader own;
  RecordReader general;
  std::size_t decoded = 0;
  const auto compare = [&](std::string_view candidate) {
    const absl::Status a = own.Decode(candidate, RecordForm::kCompact);
    const absl::Status b = general.Decode(ThroughProtobuf(candidate), RecordForm::kCompact);
    ASSERT_EQ(a.ok(), b.ok()) << a << " vs " << b;
    if (!a.ok()) {
      const std::string parse_failed = "not a PartialBucketRecord";
      if (std::string(a.message()).starts_with(parse_failed)) {
        EXPECT_TRUE(std::string(b.message()).starts_with(parse_failed)) << b;
      } else {
        EXPECT_EQ(a.message(), b.message());
      }
      return;
    }
    ++decoded;
    EXPECT_EQ(own.key().source, general.key().source);
    EXPECT_EQ(own.key().kind, general.key().kind);
    ExpectSameBucket(general.bucket(), own.bucket());
  };
  for (const Kind kind : {Kind::kCount, Kind::kSample, Kind::kMeasure}) {
    const std::string bytes = Written(Key(kind), Build(kind, {-42.125}, "ms"), RecordForm::kCompact);
    compare(bytes);
    for (std::size_t n = 0; n < bytes.size(); ++n) compare(std::string_view(bytes).substr(0, n));
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      for (const unsigned char to : {0x00, 0x01, 0x02, 0x7f, 0x80, 0x89, 0xff}) {
        std::string changed = bytes;
        changed[i] = static_cast<char>(to);
        compare(changed);
      }
    }
  }
  EXPECT_GT(decoded, 50u);
}

// Merging the records read from compact elements, and from keyed ones, equals merging the
// originals: the property helper's random buckets, each partial one record, through
// ElementWriter and ElementReader; the one-point partials (many) go compact.
TEST(CodecCompact, MergeAfterCompactElementsEqualsMergeBeforeEncode) {
  std::mt19937_64 rng(3);
  std::size_t compacted = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const RecordForm form = trial % 3 == 2 ? RecordForm::kKeyed : RecordForm::kCompact;
    SCOPED_TRACE(trial);
    const RandomBuckets r = MakeRandomBuckets(rng, trial % 2 == 0 ? 1 : 3);
    const BucketKey key = Key(r.kind);
    Records records;
    PartialBucket before;
    for (const PartialBucket& partial : r.partials) {
      before.Merge(partial);
      records.push_back({key, partial});
      if (CompactValue(r.kind, partial)) ++compacted;
    }
    PartialBucket after;
    ElementReader reader;
    for (const std::string& element : WriteElements(records, 200, form)) {  // a few records an element
      reader.Reset(element);
      for (absl::StatusOr<bool> next = reader.Next();; next = reader.Next()) {
        ASSERT_TRUE(next.ok()) << next.status();
        if (!*next) break;
        after.Merge(reader.bucket());
      }
    }
    ExpectSameBucket(before, after);
  }
  EXPECT_GT(compacted, 300u);
}

// The reader allocates nothing per compact record either once warm.
// Keyed elements likewise, their records' tenant taken from the header.
TEST(CodecCompact, ReadingACompactElementAllocatesNothingPerRecord) {
  Records measures;
  for (int i = 0; i < 300; ++i) {
    BucketKey key = Key(Kind::kMeasure);
    key.source = "web." + std::to_string(i);
    measures.emplace_back(key, Build(Kind::kMeasure, {static_cast<double>(i + 1)}));
  }
  for (const auto& [form, tag] : {std::pair{RecordForm::kCompact, kCompactBatchElementTag},
                                  std::pair{RecordForm::kKeyed, kKeyedBatchElementTag}}) {
    const std::vector<std::string> elements = WriteElements(measures, std::size_t{1} << 20, form);
    ASSERT_EQ(elements.size(), 1u);
    ASSERT_EQ(elements[0][0], tag);
    ElementReader reader;
    ASSERT_EQ(ReadElement(reader, elements[0]).records.size(), 300u);  // warms the storage
    const long before = testing_support::AllocationCount();
    double sum = 0;
    std::size_t same_tenant = 0;
    reader.Reset(elements[0]);
    for (absl::StatusOr<bool> next = reader.Next(); next.ok() && *next; next = reader.Next()) {
      sum += reader.bucket().values.values()[0];
      same_tenant += reader.key().tenant == measures[0].first.tenant ? 1 : 0;
    }
    EXPECT_EQ(testing_support::AllocationCount() - before, 0);
    EXPECT_EQ(sum, 300 * 301 / 2);
    EXPECT_EQ(same_tenant, 300u);
  }
}

// ---------------------------------------------------------------------------------------
// Keyed batch elements (0x02): a header with the tenant, resolution and window, then
// records without them (docs/redis-layout.md "List elements").

// The header of keyed element `element` and the records after it (their framing removed).
struct Keyed {
  std::string header;
  std::vector<std::string> records;
};
Keyed SplitKeyed(std::string_view element) {
  Keyed keyed;
  EXPECT_EQ(element.front(), kKeyedBatchElementTag);
  std::string_view rest = element.substr(1);
  const auto take = [&rest]() {
    google::protobuf::io::CodedInputStream in(reinterpret_cast<const std::uint8_t*>(rest.data()),
                                              static_cast<int>(rest.size()));
    std::uint32_t size = 0;
    EXPECT_TRUE(in.ReadVarint32(&size));
    const auto skip = static_cast<std::size_t>(in.CurrentPosition());
    std::string bytes(rest.substr(skip, size));
    rest.remove_prefix(skip + size);
    return bytes;
  };
  keyed.header = take();
  while (!rest.empty()) keyed.records.push_back(take());
  return keyed;
}

// Records of several tenants, windows and resolutions, in runs of one (tenant, resolution,
// window) as a flush part writes them, every kind and form (one-point buckets, several
// points, sketches, +0, an empty tenant).
Records KeyedRecords() {
  Records records;
  for (int run = 0; run < 6; ++run) {
    for (int i = 0; i < 40; ++i) {
      constexpr Kind kKinds[] = {Kind::kMeasure, Kind::kCount, Kind::kSample};
      BucketKey key = Key(kKinds[i % 3], 1'714'557'600 + 60 * (run / 2), run % 3 == 2 ? 10 : 60);
      key.tenant = run == 4 ? "" : "tenant-" + std::to_string(run % 2);
      key.source = "web." + std::to_string(i);
      std::vector<double> values = {static_cast<double>(i) - 20.5};
      if (i % 7 == 0) values = {1, 2, 3};
      if (i % 11 == 0) values = {0.0};
      records.emplace_back(key, Build(key.kind, values, i % 2 == 0 ? "ms" : ""));
    }
  }
  records.emplace_back(Key(Kind::kMeasure), Build(Kind::kMeasure, Sketched()));
  return records;
}

TEST(CodecKeyed, EveryRecordReadsBackInOrderAndTheHeaderIsWrittenOncePerElement) {
  const Records records = KeyedRecords();
  for (const std::size_t max_bytes : {std::size_t{200}, kMaxElementBytes, std::size_t{1} << 20}) {
    SCOPED_TRACE(max_bytes);
    const std::vector<std::string> elements = WriteElements(records, max_bytes, RecordForm::kKeyed);
    std::vector<std::string> want;
    for (const auto& [key, bucket] : records) want.push_back(Encoded(key, bucket));
    std::vector<std::string> got;
    ElementReader reader;
    std::size_t written_bytes = 0;
    for (const std::string& element : elements) {
      written_bytes += element.size();
      const Read read = ReadElement(reader, element);
      EXPECT_TRUE(read.errors.empty()) << read.errors[0];
      got.insert(got.end(), read.records.begin(), read.records.end());
      // The header holds fields 1, 5 and 6 only, and every record of the element has them.
      const Keyed keyed = SplitKeyed(element);
      v1::PartialBucketRecord header;
      ASSERT_TRUE(header.ParseFromString(keyed.header));
      ASSERT_EQ(keyed.records.size(), read.records.size());
      for (std::size_t r = 0; r < keyed.records.size(); ++r) {
        v1::PartialBucketRecord record;
        ASSERT_TRUE(record.ParseFromString(keyed.records[r]));
        EXPECT_TRUE(record.tenant().empty() && record.resolution_seconds() == 0 &&
                    record.window_unix_seconds() == 0);
        v1::PartialBucketRecord decoded;
        ASSERT_TRUE(decoded.ParseFromString(read.records[r]));
        EXPECT_EQ(decoded.tenant(), header.tenant());
        EXPECT_EQ(decoded.resolution_seconds(), header.resolution_seconds());
        EXPECT_EQ(decoded.window_unix_seconds(), header.window_unix_seconds());
      }
    }
    EXPECT_EQ(got, want);
    if (max_bytes == std::size_t{1} << 20) {
      // One element a run of one (tenant, resolution, window) and one for the sketch's key.
      EXPECT_EQ(elements.size(), 7u);
      // Against compact elements: 22% fewer bytes here (the sketch's record is large).
      const std::vector<std::string> compact = WriteElements(records, max_bytes, RecordForm::kCompact);
      std::size_t compact_bytes = 0;
      for (const std::string& element : compact) compact_bytes += element.size();
      EXPECT_LT(written_bytes * 100, compact_bytes * 80) << written_bytes << " vs " << compact_bytes;
    }
  }
}

// Each record leaves out exactly the header's bytes (its tenant, resolution and window
// fields): 300 one-point counts of one window take 299 headers less (less its length byte).
TEST(CodecKeyed, EachRecordSavesTheHeadersBytes) {
  const std::vector<std::string> compact =
      WriteElements(Counts(300), std::size_t{1} << 20, RecordForm::kCompact);
  const std::vector<std::string> keyed = WriteElements(Counts(300), std::size_t{1} << 20, RecordForm::kKeyed);
  ASSERT_EQ(compact.size(), 1u);
  ASSERT_EQ(keyed.size(), 1u);
  const std::size_t header = SplitKeyed(keyed[0]).header.size();
  EXPECT_EQ(header, 2 + Key(Kind::kCount).tenant.size() + 2 + 6);
  EXPECT_EQ(compact[0].size() - keyed[0].size(), 299 * header - 1);
}

// A record of a keyed element is what protobuf parses from the header's bytes followed by
// the record's: the reader's own parser agrees with that on the records written, on every
// truncation and on every single-byte change of them, also when the record carries its
// own tenant, resolution or window (they replace the header's).
TEST(CodecKeyed, RecordsMeanTheHeaderFollowedByTheRecordAsProtobufParsesThem) {
  const BucketKey key = Key(Kind::kMeasure);
  const RecordKeyView view = ViewOf(key);
  v1::PartialBucketRecord header_record;
  header_record.set_tenant(key.tenant);
  header_record.set_resolution_seconds(key.resolution_seconds);
  header_record.set_window_unix_seconds(key.window_unix_seconds);
  const std::string header = header_record.SerializeAsString();
  RecordReader own;
  RecordReader general;
  std::size_t decoded = 0;
  const auto compare = [&](std::string_view record) {
    const absl::Status a = own.DecodeWithHeader(header, view, record, RecordForm::kCompact);
    const absl::Status b =
        general.Decode(ThroughProtobuf(header + std::string(record)), RecordForm::kCompact);
    ASSERT_EQ(a.ok(), b.ok()) << a << " vs " << b;
    if (!a.ok()) return;
    ++decoded;
    EXPECT_EQ(own.key().tenant, general.key().tenant);
    EXPECT_EQ(own.key().name, general.key().name);
    EXPECT_EQ(own.key().source, general.key().source);
    EXPECT_EQ(own.key().kind, general.key().kind);
    EXPECT_EQ(own.key().resolution_seconds, general.key().resolution_seconds);
    EXPECT_EQ(own.key().window_unix_seconds, general.key().window_unix_seconds);
    ExpectSameBucket(general.bucket(), own.bucket());
  };
  std::vector<std::string> records;
  for (const Kind kind : {Kind::kCount, Kind::kSample, Kind::kMeasure}) {
    for (const std::vector<double>& values : {std::vector<double>{-42.125}, std::vector<double>{1, 2}}) {
      BucketKey k = Key(kind);
      const std::vector<std::string> elements =
          WriteElements({{k, Build(kind, values, "ms")}}, kMaxElementBytes, RecordForm::kKeyed);
      ASSERT_EQ(elements.size(), 1u);
      const Keyed keyed = SplitKeyed(elements[0]);
      EXPECT_EQ(keyed.header, header);
      records.push_back(keyed.records.at(0));
    }
  }
  // A record with its own key fields (what another writer could put in a keyed element).
  BucketKey other = Key(Kind::kCount, 1'714'557'000, 30);
  other.tenant = "other";
  records.push_back(Written(other, Build(Kind::kCount, {5}), RecordForm::kCompact));
  for (const std::string& bytes : records) {
    compare(bytes);
    for (std::size_t n = 0; n < bytes.size(); ++n) compare(std::string_view(bytes).substr(0, n));
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      for (const unsigned char to : {0x00, 0x01, 0x02, 0x0a, 0x28, 0x30, 0x7f, 0x80, 0xff}) {
        std::string changed = bytes;
        changed[i] = static_cast<char>(to);
        compare(changed);
      }
    }
  }
  EXPECT_GT(decoded, 100u);
  ASSERT_TRUE(own.DecodeWithHeader(header, view, records.back(), RecordForm::kCompact).ok());
  EXPECT_EQ(own.key().tenant, "other");
  EXPECT_EQ(own.key().resolution_seconds, 30);
  EXPECT_EQ(own.key().window_unix_seconds, 1'714'557'000);
  // A keyed element's records that are only a header's defaults away from valid are not
  // valid alone: the header is needed.
  EXPECT_FALSE(own.Decode(records.front(), RecordForm::kCompact).ok());
}

// A header that is truncated, runs past the element or holds anything but fields 1, 5, 6
// in that order gives up the element with one error; a bad record inside costs only itself.
TEST(CodecKeyed, BrokenHeadersGiveUpTheElementOnceAndBadRecordsOnlyThemselves) {
  const Records runs = Counts(3);
  const std::string element = WriteElements(runs, kMaxElementBytes, RecordForm::kKeyed).at(0);
  const Keyed keyed = SplitKeyed(element);
  ASSERT_EQ(keyed.records.size(), 3u);
  std::string body;  // the framed records
  for (const std::string& r : keyed.records) body += static_cast<char>(r.size()) + r;
  const std::string tag(1, kKeyedBatchElementTag);
  const auto with_header = [&](std::string_view header) {
    return tag + static_cast<char>(header.size()) + std::string(header) + body;
  };
  ElementReader reader;
  EXPECT_EQ(ReadElement(reader, with_header(keyed.header)).records.size(), 3u);
  const std::vector<std::string> broken = {
      tag + "\x80",                                         // the length truncated
      tag + "\x7f" + keyed.header,                          // the length past the end
      with_header(keyed.header + "\x12\x01n"),              // field 2 (name)
      with_header(std::string("\x28\x3c") + keyed.header),  // 5 before 1
      with_header(keyed.header + "\x30\x01"),               // 6 twice
      with_header(std::string("\x0d\x01\x02\x03\x04")),     // field 1 as fixed32
      with_header(std::string("\x0a\x05"
                              "ab")),  // the tenant past the header's end
  };
  for (const std::string& e : broken) {
    SCOPED_TRACE(testing::PrintToString(e));
    const Read read = ReadElement(reader, e);
    EXPECT_TRUE(read.records.empty());
    ASSERT_EQ(read.errors.size(), 1u);
    EXPECT_TRUE(
        read.errors[0].starts_with("keyed batch element: its header is truncated or not fields 1, 5, 6"))
        << read.errors[0];
  }
  // 0x02 alone: no records, no error (as 0x00 and 0x01 alone). An empty header: every field
  // at its default, so the records have resolution 0 and are rejected one by one.
  const Read empty = ReadElement(reader, tag);
  EXPECT_TRUE(empty.records.empty() && empty.errors.empty());
  const Read defaults = ReadElement(reader, with_header(""));
  EXPECT_TRUE(defaults.records.empty());
  ASSERT_EQ(defaults.errors.size(), 3u);
  EXPECT_EQ(defaults.errors[0], "keyed batch element: record 0: resolution_seconds: 0 is not > 0");
  // The middle record broken: the others still read.
  std::string bad_body;
  for (std::size_t r = 0; r < 3; ++r) {
    std::string record = keyed.records[r];
    if (r == 1) record.back() = '\x00';  // count 0
    bad_body += static_cast<char>(record.size()) + record;
  }
  const Read one_bad =
      ReadElement(reader, tag + static_cast<char>(keyed.header.size()) + keyed.header + bad_body);
  EXPECT_EQ(one_bad.records.size(), 2u);
  ASSERT_EQ(one_bad.errors.size(), 1u);
  EXPECT_TRUE(one_bad.errors[0].starts_with("keyed batch element: record 1: ")) << one_bad.errors[0];
}

// Outlets that predate keyed elements read one as a single record and reject it: 0x02 is
// the tag of field number 0, which protobuf forbids. They count it bad; they never misread it.
TEST(CodecKeyed, ASingleRecordDecoderRejectsEveryKeyedElement) {
  const std::vector<std::string> elements =
      WriteElements(KeyedRecords(), kMaxElementBytes, RecordForm::kKeyed);
  EXPECT_EQ(elements.size(), 7u);
  ExpectSingleRecordDecoderRejects(kKeyedBatchElementTag, elements);
}

// ---------------------------------------------------------------------------------------
// Restoring distributions (distribution.h factories the codec uses).

TEST(DistributionRestore, FromExactKeepsOrderUpToTheCap) {
  absl::StatusOr<Distribution> d = Distribution::FromExact({3, -0.0, 1});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->exact());
  EXPECT_EQ(Bits(d->values()), Bits(std::vector<double>{3, -0.0, 1}));
  EXPECT_EQ(d->Percentile(50), 1);  // Of -0, 1, 3 (§6.4).
  EXPECT_TRUE(Distribution::FromExact(std::vector<double>(Distribution::kExactCap, 1.0)).ok());
  EXPECT_EQ(Distribution::FromExact(std::vector<double>(Distribution::kExactCap + 1, 1.0)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DistributionRestore, FromSketchNeedsMoreThanTheCap) {
  DDSketch small;
  small.Add(1, Distribution::kExactCap);
  EXPECT_EQ(Distribution::FromSketch(small).status().code(), absl::StatusCode::kInvalidArgument);
  DDSketch big;
  big.Add(1, Distribution::kExactCap + 1);
  absl::StatusOr<Distribution> d = Distribution::FromSketch(big);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(d->exact());
  EXPECT_EQ(d->count(), Distribution::kExactCap + 1);
  EXPECT_TRUE(d->sketch() == big);
}

TEST(DistributionRestore, FromStoresInvertsTheAccessors) {
  DDSketch sketch;
  for (double v : {-3.0, 0.0, 1e-310, 2.0, 2.0, 1e126, -1e126}) sketch.Add(v);
  absl::StatusOr<DDSketch> restored =
      DDSketch::FromStores(sketch.positive(), sketch.negative(), sketch.zero_count());
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_TRUE(*restored == sketch);
  EXPECT_EQ(restored->count(), 7u);
  EXPECT_EQ(restored->ValueAtRank(6), sketch.ValueAtRank(6));
}

TEST(DistributionRestore, IndexRangeIsThatOfTheExtremeMagnitudes) {
  EXPECT_EQ(DDSketch::MinIndex(), -34537);
  EXPECT_EQ(DDSketch::MaxIndex(), 35488);
  DDSketch sketch;
  sketch.Add(DDSketch::kMinIndexable);
  sketch.Add(std::numeric_limits<double>::max());
  sketch.Add(-kInf);
  EXPECT_EQ(sketch.positive().begin()->first, DDSketch::MinIndex());
  EXPECT_EQ(sketch.positive().rbegin()->first, DDSketch::MaxIndex());
  EXPECT_EQ(sketch.negative().begin()->first, DDSketch::MaxIndex());
  EXPECT_TRUE(DDSketch::FromStores({{DDSketch::MinIndex(), 1}, {DDSketch::MaxIndex(), 1}}, {}, 0).ok());
  EXPECT_FALSE(DDSketch::FromStores({{DDSketch::MaxIndex() + 1, 1}}, {}, 0).ok());
  EXPECT_FALSE(DDSketch::FromStores({}, {{DDSketch::MinIndex() - 1, 1}}, 0).ok());
  EXPECT_FALSE(DDSketch::FromStores({{0, 0}}, {}, 0).ok());
  EXPECT_FALSE(DDSketch::FromStores({{0, 1}}, {}, std::numeric_limits<std::uint64_t>::max()).ok());
}

}  // namespace
}  // namespace drainmet::bucket
