// Google Benchmarks of the partial bucket codec (common/bucket/codec.h), the receiver's
// flush and the outlet's read path in distributed mode, on three typical buckets: a count
// of one point, a measure of 50 values (exact), and a measure of 10000 values (sketched).
// Reports the encoded size as bytes/record.

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/bucket/codec.h"

namespace drainmet::bucket {
namespace {

constexpr std::int64_t kT0 = 1'714'557'600LL * 1'000'000'000;

struct Case {
  const char* label;
  BucketKey key;
  PartialBucket bucket;
};

Case MakeCase(int which) {
  std::mt19937_64 rng(which);
  std::lognormal_distribution<double> latency(3, 1);  // Milliseconds, median about 20.
  auto bucket_of = [&](extract::Kind kind, int points) {
    PartialBucket b;
    for (int i = 0; i < points; ++i) {
      b.Add(kind == extract::Kind::kCount ? 1.0 : latency(rng), kT0 + i * 1000, "ms",
            kind == extract::Kind::kMeasure);
    }
    return b;
  };
  switch (which) {
    case 0:
      return {"count, 1 point",
              {"acme", "app.requests", "web.1", extract::Kind::kCount, 60, 1'714'557'600},
              bucket_of(extract::Kind::kCount, 1)};
    case 1:
      return {"measure, 50 values",
              {"acme", "db.latency", "web.1", extract::Kind::kMeasure, 60, 1'714'557'600},
              bucket_of(extract::Kind::kMeasure, 50)};
    default:
      return {"measure, 10000 values (sketch)",
              {"acme", "router.service", "web.1", extract::Kind::kMeasure, 60, 1'714'557'600},
              bucket_of(extract::Kind::kMeasure, 10'000)};
  }
}

const Case& CaseOf(int which) {
  static const auto* cases = new std::vector<Case>{MakeCase(0), MakeCase(1), MakeCase(2)};
  return (*cases)[static_cast<std::size_t>(which)];
}

void ReportSize(benchmark::State& state, const Case& c, std::size_t bytes) {
  state.SetLabel(c.label);
  state.counters["bytes/record"] = static_cast<double>(bytes);
  state.counters["records/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_Encode(benchmark::State& state) {
  const Case& c = CaseOf(static_cast<int>(state.range(0)));
  std::string bytes;
  for (auto _ : state) {
    EncodeRecord(c.key, c.bucket, bytes);
    benchmark::DoNotOptimize(bytes.data());
  }
  ReportSize(state, c, bytes.size());
}
BENCHMARK(BM_Encode)->DenseRange(0, 2);

void BM_Decode(benchmark::State& state) {
  const Case& c = CaseOf(static_cast<int>(state.range(0)));
  std::string bytes;
  EncodeRecord(c.key, c.bucket, bytes);
  for (auto _ : state) {
    absl::StatusOr<BucketRecord> record = DecodeRecord(bytes);
    if (!record.ok()) {
      state.SkipWithError("decode failed");
      break;
    }
    benchmark::DoNotOptimize(record->bucket.count);
  }
  ReportSize(state, c, bytes.size());
}
BENCHMARK(BM_Decode)->DenseRange(0, 2);

// What an outlet does per record: RecordReader::Decode into reused storage. `general` 1:
// the same bytes behind an unknown field, so protobuf's parser reads them (what every
// record went through before the reader had its own parser).
void BM_ReaderDecode(benchmark::State& state) {
  const Case& c = CaseOf(static_cast<int>(state.range(0)));
  std::string bytes;
  EncodeRecord(c.key, c.bucket, bytes);
  if (state.range(1) == 1) bytes.insert(0, std::string("\xa0\x06\x00", 3));
  RecordReader reader;
  for (auto _ : state) {
    if (!reader.Decode(bytes).ok()) {
      state.SkipWithError("decode failed");
      break;
    }
    benchmark::DoNotOptimize(reader.bucket().count);
  }
  ReportSize(state, c, bytes.size());
}
BENCHMARK(BM_ReaderDecode)->ArgNames({"case", "general"})->ArgsProduct({{0, 1, 2}, {0, 1}});

// The round trip a partial makes through Redis.
void BM_EncodeDecode(benchmark::State& state) {
  const Case& c = CaseOf(static_cast<int>(state.range(0)));
  std::string bytes;
  for (auto _ : state) {
    EncodeRecord(c.key, c.bucket, bytes);
    absl::StatusOr<BucketRecord> record = DecodeRecord(bytes);
    if (!record.ok()) {
      state.SkipWithError("decode failed");
      break;
    }
    benchmark::DoNotOptimize(record->bucket.count);
  }
  ReportSize(state, c, bytes.size());
}
BENCHMARK(BM_EncodeDecode)->DenseRange(0, 2);

}  // namespace
}  // namespace drainmet::bucket

BENCHMARK_MAIN();
