// Google Benchmarks of the partial bucket codec (common/bucket/codec.h), the receiver's
// flush and the outlet's read path in distributed mode, on four typical buckets: a count
// of one point, a measure of 50 values (exact), a measure of 10000 values (sketched), and
// a measure of one value (at high cardinality most buckets hold one point). Reports the
// encoded size as bytes/record. The element benchmarks take `compact`: 1, ElementWriter's
// default (one-point buckets in the compact form, 0x01 elements); 0, RecordForm::kFull
// (every record in full, 0x00 elements: what the writer wrote before the compact form).

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
    case 3:
      return {"measure, 1 value",
              {"acme", "db.latency", "web.1", extract::Kind::kMeasure, 60, 1'714'557'600},
              bucket_of(extract::Kind::kMeasure, 1)};
    default:
      return {"measure, 10000 values (sketch)",
              {"acme", "router.service", "web.1", extract::Kind::kMeasure, 60, 1'714'557'600},
              bucket_of(extract::Kind::kMeasure, 10'000)};
  }
}

const Case& CaseOf(int which) {
  static const auto* cases = new std::vector<Case>{MakeCase(0), MakeCase(1), MakeCase(2), MakeCase(3)};
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
BENCHMARK(BM_Encode)->DenseRange(0, 3);

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
BENCHMARK(BM_Decode)->DenseRange(0, 3);

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
BENCHMARK(BM_ReaderDecode)->ArgNames({"case", "general"})->ArgsProduct({{0, 1, 2, 3}, {0, 1}});

// The `form` argument of the element benchmarks: 0 kFull (0x00 batches), 1 kCompact (0x01
// compact batches), 2 kKeyed (0x02 keyed batches: tenant, resolution, window once).
RecordForm FormOf(std::int64_t form) {
  return form == 2 ? RecordForm::kKeyed : form == 1 ? RecordForm::kCompact : RecordForm::kFull;
}

// The outlet's read of a batch element (ElementReader over ElementWriter's bytes): one
// element of `records` records of the case (distinct sources, as a flush writes them), per
// record. Next to BM_ReaderDecode: the framing's cost per record on top of the decode.
void BM_ElementDecode(benchmark::State& state) {
  const Case& c = CaseOf(static_cast<int>(state.range(0)));
  const auto records = static_cast<std::size_t>(state.range(1));
  std::vector<std::string> sources;
  for (std::size_t i = 0; i < records; ++i) sources.push_back("web." + std::to_string(i));
  const RecordForm form = FormOf(state.range(2));
  std::string bytes;
  std::vector<std::size_t> ends;
  ElementWriter writer(bytes, ends, std::size_t{1} << 30, form);  // one element, whatever its size
  for (const std::string& source : sources) {
    writer.Add(RecordKeyView{c.key.tenant, c.key.name, source, c.key.kind, c.key.resolution_seconds,
                             c.key.window_unix_seconds},
               c.bucket);
  }
  writer.Close();
  ElementReader reader;
  std::uint64_t read = 0;
  for (auto _ : state) {
    reader.Reset(bytes);
    for (absl::StatusOr<bool> next = reader.Next();; next = reader.Next()) {
      if (!next.ok()) {
        state.SkipWithError("decode failed");
        return;
      }
      if (!*next) break;
      benchmark::DoNotOptimize(reader.bucket().count);
      ++read;
    }
  }
  state.SetLabel(c.label);
  state.counters["bytes/record"] = static_cast<double>(bytes.size()) / static_cast<double>(records);
  state.counters["ns/record"] = benchmark::Counter(static_cast<double>(read),
                                                   benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["records/s"] = benchmark::Counter(static_cast<double>(read), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ElementDecode)
    ->ArgNames({"case", "records", "form"})
    ->ArgsProduct({{0, 1, 2, 3}, {1, 100}, {0, 1, 2}});

// The receiver's flush per record: ElementWriter::Add into one reused buffer, elements
// closed at the 64 KiB bound.
void BM_ElementWrite(benchmark::State& state) {
  const Case& c = CaseOf(static_cast<int>(state.range(0)));
  const RecordKeyView key{c.key.tenant,
                          c.key.name,
                          c.key.source,
                          c.key.kind,
                          c.key.resolution_seconds,
                          c.key.window_unix_seconds};
  const RecordForm form = FormOf(state.range(1));
  std::string bytes;
  std::vector<std::size_t> ends;
  bytes.reserve(std::size_t{4} << 20);
  std::uint64_t written = 0;
  std::size_t element_bytes = 0;
  for (auto _ : state) {
    bytes.clear();
    ends.clear();
    ElementWriter writer(bytes, ends, kMaxElementBytes, form);
    for (int i = 0; i < 1000; ++i) writer.Add(key, c.bucket);
    writer.Close();
    written += writer.records();
    element_bytes = bytes.size();
    benchmark::DoNotOptimize(bytes.data());
  }
  state.SetLabel(c.label);
  state.counters["bytes/record"] = static_cast<double>(element_bytes) / 1000;
  state.counters["ns/record"] = benchmark::Counter(static_cast<double>(written),
                                                   benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ElementWrite)->ArgNames({"case", "form"})->ArgsProduct({{0, 1, 2, 3}, {0, 1, 2}});

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
BENCHMARK(BM_EncodeDecode)->DenseRange(0, 3);

}  // namespace
}  // namespace drainmet::bucket

BENCHMARK_MAIN();
