// Google Benchmarks of each stage of the pipeline on its own (docs/performance.md,
// "Stages"): framing, RFC 5424 header, RFC 3339 timestamps, logfmt, values, extraction,
// aggregation, merge, distributions and sketches, and the Librato JSON. Inputs come from
// the shared data sets (tests/fixtures/data) wherever they can, synthetic ones where a
// stage needs a shape the data do not have (many series, big distributions).
//
// Every benchmark reports bytes/s where the stage reads or writes bytes, items/s for its
// natural item (frames, pairs, values, points, buckets, gauges) and `allocs/<item>`: heap
// allocations (global operator new, tests/support/allocation_counter) per item, counted
// in the timed region only. No timing is asserted anywhere; the CTest entry is a smoke run.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/bucket/distribution.h"
#include "common/bucket/partial_bucket.h"
#include "common/drain/processor.h"
#include "common/extract/extract.h"
#include "common/extract/value.h"
#include "common/librato/gauge.h"
#include "common/logfmt/scanner.h"
#include "common/logplex/frame_reader.h"
#include "common/telemetry/counters.h"
#include "tests/support/allocation_counter.h"

namespace drainmet {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------
// Shared data sets, read into memory once and pre-split into the input of each stage.

struct DataSet {
  std::string name;
  extract::DrainOptions options;
  std::vector<std::string> bodies;
  std::size_t body_bytes = 0;
  std::vector<std::string_view> frames;  // Counted bytes of every kFrame (header + MSG).
  std::size_t frame_bytes = 0;
  std::vector<logplex::Frame> parsed;        // Frames whose header parses.
  std::vector<std::string_view> timestamps;  // TIMESTAMP of every parsed frame.
  std::size_t timestamp_bytes = 0;
  std::vector<std::size_t> body_end;  // parsed[body_end[i-1] .. body_end[i]) are body i's.
  std::vector<std::int64_t> times;    // Parsed time of parsed[i]; INT64_MIN when it does not parse.
  std::size_t line_bytes = 0;         // Sum of parsed[i].line sizes.
};

// The drain options of each set are those of its drain.json (`query`).
std::string QueryOf(const std::string& name) {
  return name == "legacy-runtime" ? "resolution=30&prefix=eu.prod&source-prefix=eu" : "";
}

const DataSet& Load(const std::string& name) {
  static auto* sets = new std::map<std::string, DataSet>();
  auto it = sets->find(name);
  if (it != sets->end()) return it->second;
  DataSet& set = (*sets)[name];
  set.name = name;
  set.options = *extract::ParseDrainQuery(QueryOf(name), 60);
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fs::path(DRAINMET_FIXTURES_DIR) / "data" / name)) {
    if (e.path().extension() == ".logplex") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  set.bodies.reserve(files.size());  // Views below point into the bodies: no reallocation.
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    set.bodies.push_back(s.str());
    set.body_bytes += set.bodies.back().size();
  }
  for (const std::string& body : set.bodies) {
    logplex::FrameReader reader(body);
    std::string_view frame;
    while (reader.Next(&frame) == logplex::FrameStatus::kFrame) {
      set.frames.push_back(frame);
      set.frame_bytes += frame.size();
      const std::optional<logplex::Frame> parsed = logplex::ParseFrame(frame);
      if (!parsed) continue;
      set.parsed.push_back(*parsed);
      set.timestamps.push_back(parsed->timestamp);
      set.timestamp_bytes += parsed->timestamp.size();
      set.line_bytes += parsed->line.size();
      set.times.push_back(logplex::ParseRfc3339Nanos(parsed->timestamp).value_or(INT64_MIN));
    }
    set.body_end.push_back(set.parsed.size());
  }
  return set;
}

// ---------------------------------------------------------------------------------------
// Reporting.

// Heap allocations of the timed region: PauseTiming/ResumeTiming through this meter
// leave the set-up's allocations out.
class AllocationMeter {
 public:
  AllocationMeter() : start_(testing_support::AllocationCount()) {}
  void Pause(benchmark::State& state) {
    state.PauseTiming();
    pause_start_ = testing_support::AllocationCount();
  }
  void Resume(benchmark::State& state) {
    paused_ += testing_support::AllocationCount() - pause_start_;
    state.ResumeTiming();
  }
  long Timed() const { return testing_support::AllocationCount() - start_ - paused_; }

 private:
  long start_;
  long pause_start_ = 0;
  long paused_ = 0;
};

// items/s (as items_per_second) and allocs/<item> for `items_per_iteration`; bytes/s when
// `bytes_per_iteration` > 0.
void Report(benchmark::State& state, const AllocationMeter& meter, const char* item,
            std::size_t items_per_iteration, std::size_t bytes_per_iteration) {
  const auto iterations = static_cast<std::int64_t>(state.iterations());
  const auto items = iterations * static_cast<std::int64_t>(items_per_iteration);
  state.SetItemsProcessed(items);
  if (bytes_per_iteration > 0)
    state.SetBytesProcessed(iterations * static_cast<std::int64_t>(bytes_per_iteration));
  state.counters[std::string("allocs/") + item] =
      items > 0 ? static_cast<double>(meter.Timed()) / static_cast<double>(items) : 0.0;
}

// A second rate next to items_per_second (e.g. lines/s where the items are pairs).
void ReportRate(benchmark::State& state, const char* name, std::size_t per_iteration) {
  state.counters[name] =
      benchmark::Counter(static_cast<double>(state.iterations()) * static_cast<double>(per_iteration),
                         benchmark::Counter::kIsRate);
}

// One benchmark per data set.
#define DRAINMET_BENCH_DATA(fn)                                       \
  BENCHMARK_CAPTURE(fn, heroku_sample, std::string("heroku-sample")); \
  BENCHMARK_CAPTURE(fn, legacy_runtime, std::string("legacy-runtime"))

// ---------------------------------------------------------------------------------------
// Framing: logplex::FrameReader over whole bodies (RFC 6587 octet counting). Items: frames.

void BM_FrameReader(benchmark::State& state, const std::string& name) {
  const DataSet& set = Load(name);
  AllocationMeter meter;
  for (auto _ : state) {
    std::size_t n = 0;
    for (const std::string& body : set.bodies) {
      logplex::FrameReader reader(body);
      std::string_view frame;
      while (reader.Next(&frame) == logplex::FrameStatus::kFrame) n += frame.size();
    }
    benchmark::DoNotOptimize(n);
  }
  Report(state, meter, "frame", set.frames.size(), set.body_bytes);
}
DRAINMET_BENCH_DATA(BM_FrameReader);

// RFC 5424 header: logplex::ParseFrame of every frame's counted bytes. Items: frames.
void BM_ParseFrame(benchmark::State& state, const std::string& name) {
  const DataSet& set = Load(name);
  AllocationMeter meter;
  for (auto _ : state) {
    std::size_t n = 0;
    for (std::string_view frame : set.frames) {
      const std::optional<logplex::Frame> parsed = logplex::ParseFrame(frame);
      n += parsed ? parsed->line.size() : 0;
    }
    benchmark::DoNotOptimize(n);
  }
  Report(state, meter, "frame", set.frames.size(), set.frame_bytes);
}
DRAINMET_BENCH_DATA(BM_ParseFrame);

// RFC 3339: logplex::ParseRfc3339Nanos of every frame's TIMESTAMP. Items: timestamps.
void BM_ParseRfc3339(benchmark::State& state, const std::string& name) {
  const DataSet& set = Load(name);
  AllocationMeter meter;
  for (auto _ : state) {
    std::uint64_t sum = 0;  // Unsigned: wraps instead of overflowing.
    for (std::string_view ts : set.timestamps)
      sum += static_cast<std::uint64_t>(logplex::ParseRfc3339Nanos(ts).value_or(0));
    benchmark::DoNotOptimize(sum);
  }
  Report(state, meter, "timestamp", set.timestamps.size(), set.timestamp_bytes);
}
DRAINMET_BENCH_DATA(BM_ParseRfc3339);

// The forms the data sets do not have: Z, other offsets, no or 1-9 fraction digits,
// lowercase t/z, a leap second, and a few invalid ones (rejected early or late).
void BM_ParseRfc3339Mixed(benchmark::State& state) {
  static const std::vector<std::string> kTimestamps = {
      "2024-03-05T14:02:17Z",
      "2024-03-05T14:02:17.1Z",
      "2024-03-05T14:02:17.123Z",
      "2024-03-05T14:02:17.123456Z",
      "2024-03-05T14:02:17.123456789Z",
      "2024-03-05T14:02:17.116831+00:00",
      "2024-03-05T15:02:17.116831+01:00",
      "2024-03-05T06:02:17.116-08:00",
      "2024-03-05t14:02:17.5z",
      "2016-12-31T23:59:60Z",
      "2013-08-22T09:31:05+05:30",
      "2024-02-29T00:00:00.000001-00:00",
      "-",
      "2024-02-30T00:00:00Z",
      "2024-03-05 14:02:17Z",
      "2024-03-05T14:02:17.1234567890Z",
  };
  std::size_t bytes = 0;
  for (const std::string& ts : kTimestamps) bytes += ts.size();
  AllocationMeter meter;
  for (auto _ : state) {
    std::uint64_t sum = 0;  // Unsigned: wraps instead of overflowing.
    for (const std::string& ts : kTimestamps)
      sum += static_cast<std::uint64_t>(logplex::ParseRfc3339Nanos(ts).value_or(0));
    benchmark::DoNotOptimize(sum);
  }
  Report(state, meter, "timestamp", kTimestamps.size(), bytes);
}
BENCHMARK(BM_ParseRfc3339Mixed);

// ---------------------------------------------------------------------------------------
// logfmt: the Scanner over the line (MSG) of every parsed frame, one scratch string for
// all lines. Items: pairs.

std::size_t CountPairs(const DataSet& set) {
  std::string scratch;
  std::size_t pairs = 0;
  for (const logplex::Frame& frame : set.parsed) {
    logfmt::Scanner scanner(frame.line, scratch);
    logfmt::Pair pair;
    while (scanner.Next(&pair)) ++pairs;
  }
  return pairs;
}

void BM_LogfmtScanner(benchmark::State& state, const std::string& name) {
  const DataSet& set = Load(name);
  const std::size_t pairs = CountPairs(set);
  std::string scratch;
  AllocationMeter meter;
  for (auto _ : state) {
    std::size_t n = 0;
    for (const logplex::Frame& frame : set.parsed) {
      logfmt::Scanner scanner(frame.line, scratch);
      logfmt::Pair pair;
      while (scanner.Next(&pair)) n += pair.value.size();
    }
    benchmark::DoNotOptimize(n);
  }
  Report(state, meter, "pair", pairs, set.line_bytes);
  ReportRate(state, "lines/s", set.parsed.size());
}
DRAINMET_BENCH_DATA(BM_LogfmtScanner);

// ---------------------------------------------------------------------------------------
// Values: extract::ParseValue. Items: values.

bool IsMetricKey(std::string_view key) {
  return key.starts_with("measure#") || key.starts_with("count#") || key.starts_with("sample#") ||
         key.starts_with("measure.") || key == "connect" || key == "service" || key == "bytes" ||
         key == "val";
}

// The value text of every pair of both data sets that extraction parses as a number
// (l2met prefixes, router connect/service/bytes, legacy val=), in order.
const std::vector<std::string>& DataValues() {
  static const auto* values = [] {
    auto* out = new std::vector<std::string>();
    for (const char* name : {"heroku-sample", "legacy-runtime"}) {
      std::string scratch;
      for (const logplex::Frame& frame : Load(name).parsed) {
        logfmt::Scanner scanner(frame.line, scratch);
        logfmt::Pair pair;
        while (scanner.Next(&pair)) {
          if (pair.has_value && !pair.value.empty() && IsMetricKey(pair.key)) out->emplace_back(pair.value);
        }
      }
    }
    return out;
  }();
  return *values;
}

void BM_ParseValue(benchmark::State& state, const std::vector<std::string>& values) {
  std::size_t bytes = 0;
  for (const std::string& v : values) bytes += v.size();
  AllocationMeter meter;
  for (auto _ : state) {
    double sum = 0;
    for (const std::string& v : values) {
      extract::ParsedValue parsed;
      if (extract::ParseValue(v, &parsed)) sum += parsed.value + static_cast<double>(parsed.units.size());
    }
    benchmark::DoNotOptimize(sum);
  }
  Report(state, meter, "value", values.size(), bytes);
}

void BM_ParseValueData(benchmark::State& state) {
  const std::vector<std::string>& values = DataValues();
  state.SetLabel(std::to_string(values.size()) + " values of both data sets");
  BM_ParseValue(state, values);
}
BENCHMARK(BM_ParseValueData);

// A synthetic mix: integers, decimals, units of every common kind, exponents, signs, and
// some that fail (bad_value).
void BM_ParseValueMixed(benchmark::State& state) {
  static const std::vector<std::string> kValues = {
      "1",   "42",     "0",        "2.11ms", "0.50ms",    "1.10ms", "0.0kB",      "3ms",
      "200", "17.4MB", "512.00MB", "1024",   "-3C",       "2.5E+3", "7.9341e-05", "1e3s",
      "0.5", ".5",     "12ms3",    "5em",    "99.999%",   "31.2s",  "1.7976e308", "0x1F",
      "inf", "-",      "abc",      "1e400",  "123456789", "4.5ms",  "65536bytes", "8.0kB",
  };
  BM_ParseValue(state, kValues);
}
BENCHMARK(BM_ParseValueMixed);

// ---------------------------------------------------------------------------------------
// Extraction: extract::Extractor over every parsed frame that has a time, one extractor
// per body as drain::ProcessBody does (so its scratch buffers warm up once per body).
// Items: lines (points/s beside).

void BM_Extractor(benchmark::State& state, const std::string& name) {
  const DataSet& set = Load(name);
  std::size_t lines = 0;
  for (std::int64_t t : set.times) lines += t != INT64_MIN ? 1 : 0;
  std::size_t points = 0;
  AllocationMeter meter;
  for (auto _ : state) {
    telemetry::Counters counters;
    std::size_t n = 0;
    double sum = 0;
    std::size_t begin = 0;
    for (std::size_t end : set.body_end) {
      extract::Extractor extractor(set.options);
      for (std::size_t i = begin; i < end; ++i) {
        if (set.times[i] == INT64_MIN) continue;
        extractor.Extract(set.parsed[i], set.times[i], counters, [&](const extract::Point& point) {
          ++n;
          sum += point.value + static_cast<double>(point.name.size());
        });
      }
      begin = end;
    }
    points = n;
    benchmark::DoNotOptimize(sum);
  }
  Report(state, meter, "line", lines, set.line_bytes);
  ReportRate(state, "points/s", points);
  state.counters["points/line"] = lines > 0 ? static_cast<double>(points) / static_cast<double>(lines) : 0;
}
DRAINMET_BENCH_DATA(BM_Extractor);

// ---------------------------------------------------------------------------------------
// Aggregation: bucket::BucketMap::Add of a point stream over N distinct series.
//
// The series are those of heroku-sample (every (kind, name, source) its extraction
// yields, most frequent first), replicated with a numbered source when N is larger than
// the data's series count; each series takes the values the data gave it, in order. Every
// point of a table falls in one window, so buckets = series. The stream visits every
// series in turn, kPointsPerSeries times (hashing scatters the table accesses).

constexpr int kPointsPerSeries = 4;
constexpr std::int64_t kWindowStartNanos = 1'709'647'320LL * 1'000'000'000;  // A minute of heroku-sample.

struct RealSeries {
  extract::Kind kind = extract::Kind::kMeasure;
  std::string name;
  std::string source;
  std::string units;
  std::vector<double> values;
};

const std::vector<RealSeries>& DataSeries() {
  static const auto* series = [] {
    const DataSet& set = Load("heroku-sample");
    std::map<std::tuple<extract::Kind, std::string, std::string>, RealSeries> by_key;
    telemetry::Counters counters;
    extract::Extractor extractor(set.options);
    for (std::size_t i = 0; i < set.parsed.size(); ++i) {
      if (set.times[i] == INT64_MIN) continue;
      extractor.Extract(set.parsed[i], set.times[i], counters, [&](const extract::Point& p) {
        RealSeries& s = by_key[{p.kind, std::string(p.name), std::string(p.source)}];
        s.kind = p.kind;
        s.name = p.name;
        s.source = p.source;
        if (s.units.empty()) s.units = p.units;
        s.values.push_back(p.value);
      });
    }
    auto* out = new std::vector<RealSeries>();
    for (auto& [key, s] : by_key) out->push_back(std::move(s));
    // std::sort with a full order, not std::stable_sort: the latter's nothrow operator
    // new is not the counter's, which ASan reports as a new/free mismatch.
    std::sort(out->begin(), out->end(), [](const RealSeries& a, const RealSeries& b) {
      if (a.values.size() != b.values.size()) return a.values.size() > b.values.size();
      return std::tie(a.kind, a.name, a.source) < std::tie(b.kind, b.name, b.source);
    });
    return out;
  }();
  return *series;
}

// N series: base series (i mod S) of the data, with source "<source>.r<i / S>" beyond the
// first S; and the value of each series in each pass (replica r of a series takes the
// data's values from the r-th on), laid out by series so the stream reads them in order.
constexpr int kPasses = kPointsPerSeries + 1;  // The live benchmark's prefill pass + kPointsPerSeries.

struct SeriesTable {
  std::vector<std::uint32_t> base;
  std::vector<std::string> source;
  std::vector<double> values;  // values[i * kPasses + pass].
};

SeriesTable MakeSeries(std::size_t n) {
  const std::vector<RealSeries>& real = DataSeries();
  SeriesTable table;
  table.base.reserve(n);
  table.source.reserve(n);
  table.values.reserve(n * kPasses);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t b = i % real.size();
    const std::size_t replica = i / real.size();
    table.base.push_back(static_cast<std::uint32_t>(b));
    table.source.push_back(replica == 0 ? real[b].source
                                        : real[b].source + (real[b].source.empty() ? "r" : ".r") +
                                              std::to_string(replica));
    for (std::size_t pass = 0; pass < kPasses; ++pass) {
      table.values.push_back(real[b].values[(replica + pass) % real[b].values.size()]);
    }
  }
  return table;
}

// Adds pass `pass` of the stream (one point per series) to `map`. The loop reads its
// inputs in order and divides nothing, so the table's accesses dominate.
void AddPass(const SeriesTable& series, int pass, bucket::BucketMap& map) {
  const std::vector<RealSeries>& real = DataSeries();
  const std::int64_t pass_nanos = kWindowStartNanos + static_cast<std::int64_t>(pass) * 1'000'000'000;
  for (std::size_t i = 0; i < series.base.size(); ++i) {
    const RealSeries& r = real[series.base[i]];
    extract::Point point;
    point.kind = r.kind;
    point.name = r.name;
    point.source = series.source[i];
    point.units = r.units;
    point.value = series.values[i * kPasses + static_cast<std::size_t>(pass)];
    point.time_unix_nanos = pass_nanos + static_cast<std::int64_t>(i & 1023) * 1000;
    map.Add("acme-shop", 60, point);
  }
}

// Enough tables per iteration for about 4096 points when N is small (few enough that the
// live benchmark's prefilled tables stay in L2).
std::size_t TablesPerIteration(std::size_t n) {
  return std::max<std::size_t>(1, 4096 / (n * kPointsPerSeries));
}

// From empty: each table fills to N buckets (the first point of a series creates its
// bucket) and is destroyed, all timed. This is the life of a request's or a flush's table.
void BM_AggregateNewSeries(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const SeriesTable series = MakeSeries(n);
  const std::size_t tables = TablesPerIteration(n);
  AllocationMeter meter;
  for (auto _ : state) {
    for (std::size_t t = 0; t < tables; ++t) {
      bucket::BucketMap map;
      for (int pass = 0; pass < kPointsPerSeries; ++pass) AddPass(series, pass, map);
      benchmark::DoNotOptimize(map.size());
    }
  }
  Report(state, meter, "point", tables * n * kPointsPerSeries, 0);
  state.counters["series"] = static_cast<double>(n);
}
BENCHMARK(BM_AggregateNewSeries)
    ->Arg(10)
    ->Arg(10'000)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Unit(benchmark::kMicrosecond);

// One point per series from empty: a request's table at high cardinality, where nearly
// every bucket holds a single value (a measure's held inline by bucket::Distribution).
// Each table fills to N buckets and is destroyed, all timed.
void BM_AggregateNewSeriesOnePoint(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const SeriesTable series = MakeSeries(n);
  const std::size_t tables = std::max<std::size_t>(1, 4096 / n);
  AllocationMeter meter;
  for (auto _ : state) {
    for (std::size_t t = 0; t < tables; ++t) {
      bucket::BucketMap map;
      AddPass(series, 0, map);
      benchmark::DoNotOptimize(map.size());
    }
  }
  Report(state, meter, "point", tables * n, 0);
  state.counters["series"] = static_cast<double>(n);
}
BENCHMARK(BM_AggregateNewSeriesOnePoint)->Arg(10)->Arg(10'000)->Arg(150'000)->Unit(benchmark::kMicrosecond);

// Live series: the table already holds the N buckets (one point each, not timed); the
// timed part adds kPointsPerSeries more points to every series. This is the steady state
// of a table holding N live series.
void BM_AggregateLiveSeries(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const SeriesTable series = MakeSeries(n);
  const std::size_t tables = TablesPerIteration(n);
  std::vector<bucket::BucketMap> maps(tables);
  AllocationMeter meter;
  for (auto _ : state) {
    meter.Pause(state);
    for (bucket::BucketMap& map : maps) {
      map.clear();
      AddPass(series, 0, map);
    }
    meter.Resume(state);
    for (bucket::BucketMap& map : maps) {
      for (int pass = 1; pass <= kPointsPerSeries; ++pass) AddPass(series, pass, map);
      benchmark::DoNotOptimize(map.size());
    }
  }
  Report(state, meter, "point", tables * n * kPointsPerSeries, 0);
  state.counters["series"] = static_cast<double>(n);
}
BENCHMARK(BM_AggregateLiveSeries)
    ->Arg(10)
    ->Arg(10'000)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------------------
// Merge.

// The per-request tables of a data set, as drain::ProcessBody builds them (one per body).
const std::vector<bucket::BucketMap>& RequestTables(const std::string& name) {
  static auto* tables = new std::map<std::string, std::vector<bucket::BucketMap>>();
  auto it = tables->find(name);
  if (it != tables->end()) return it->second;
  const DataSet& set = Load(name);
  std::vector<bucket::BucketMap>& out = (*tables)[name];
  telemetry::Counters counters;
  for (const std::string& body : set.bodies) {
    out.emplace_back();
    drain::ProcessBody("default", set.options, body, {}, out.back(), counters);
  }
  return out;
}

// Merges `tables` (copied before the timed part) into one empty table with
// BucketMap::Merge, in order, as replay and the store do. Items: buckets merged.
void BM_MergeTables(benchmark::State& state, const std::vector<bucket::BucketMap>& tables) {
  std::size_t buckets = 0;
  for (const bucket::BucketMap& t : tables) buckets += t.size();
  std::vector<bucket::BucketMap> copies;
  std::size_t merged_size = 0;
  AllocationMeter meter;
  for (auto _ : state) {
    meter.Pause(state);
    copies = tables;
    meter.Resume(state);
    bucket::BucketMap all;
    for (bucket::BucketMap& t : copies) all.Merge(std::move(t));
    merged_size = all.size();
    meter.Pause(state);  // Not timed: destroying the result.
    all.clear();
    meter.Resume(state);
  }
  Report(state, meter, "bucket", buckets, 0);
  state.counters["tables"] = static_cast<double>(tables.size());
  state.counters["result_buckets"] = static_cast<double>(merged_size);
}

void BM_MergeRequestTables(benchmark::State& state, const std::string& name) {
  BM_MergeTables(state, RequestTables(name));
}
DRAINMET_BENCH_DATA(BM_MergeRequestTables);

// Synthetic: 64 request tables of 1000 buckets each over 4000 series of one window (so
// a bucket meets the same series in about 16 other tables), count buckets of 1-3 points or
// measure buckets of 8 values.
std::vector<bucket::BucketMap> SyntheticTables(extract::Kind kind) {
  constexpr int kTables = 64;
  constexpr int kBucketsPerTable = 1000;
  constexpr int kSeries = 4000;
  std::mt19937_64 rng(kind == extract::Kind::kCount ? 1 : 2);
  std::lognormal_distribution<double> latency(3, 1);
  std::vector<bucket::BucketMap> tables(kTables);
  std::vector<int> ids(kSeries);
  for (int i = 0; i < kSeries; ++i) ids[static_cast<std::size_t>(i)] = i;
  std::string name;
  std::string source;
  for (bucket::BucketMap& table : tables) {
    std::shuffle(ids.begin(), ids.end(), rng);
    for (int b = 0; b < kBucketsPerTable; ++b) {
      const int id = ids[static_cast<std::size_t>(b)];
      name = "app.metric." + std::to_string(id % 400);
      source = "web." + std::to_string(id / 400 + 1);
      const int points = kind == extract::Kind::kCount ? 1 + id % 3 : 8;
      for (int p = 0; p < points; ++p) {
        extract::Point point;
        point.kind = kind;
        point.name = name;
        point.source = source;
        point.units = kind == extract::Kind::kMeasure ? "ms" : "";
        point.value = kind == extract::Kind::kCount ? 1.0 : latency(rng);
        point.time_unix_nanos = kWindowStartNanos + p * 1'000'000;
        table.Add("acme-shop", 60, point);
      }
    }
  }
  return tables;
}

void BM_MergeSyntheticCount(benchmark::State& state) {
  static const auto* tables = new std::vector<bucket::BucketMap>(SyntheticTables(extract::Kind::kCount));
  BM_MergeTables(state, *tables);
}
BENCHMARK(BM_MergeSyntheticCount)->Unit(benchmark::kMicrosecond);

void BM_MergeSyntheticMeasure(benchmark::State& state) {
  static const auto* tables = new std::vector<bucket::BucketMap>(SyntheticTables(extract::Kind::kMeasure));
  BM_MergeTables(state, *tables);
}
BENCHMARK(BM_MergeSyntheticMeasure)->Unit(benchmark::kMicrosecond);

// PartialBucket::Merge alone, 1024 merges per iteration into fresh copies of one bucket:
// count buckets (3 points into 2), measure buckets (8 values into 8, exact).
void BM_PartialBucketMerge(benchmark::State& state) {
  const bool measure = state.range(0) != 0;
  const int points = measure ? 8 : 3;
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> latency(3, 1);
  constexpr std::size_t kMerges = 1024;
  std::vector<bucket::PartialBucket> others(kMerges);
  for (std::size_t i = 0; i < kMerges; ++i) {
    for (int p = 0; p < points; ++p) {
      others[i].Add(measure ? latency(rng) : 1.0, kWindowStartNanos + p, measure ? "ms" : "", measure);
    }
  }
  bucket::PartialBucket base;
  for (int p = 0; p < (measure ? 8 : 2); ++p) {
    base.Add(measure ? latency(rng) : 1.0, kWindowStartNanos + 100 + p, measure ? "ms" : "", measure);
  }
  std::vector<bucket::PartialBucket> targets;
  AllocationMeter meter;
  for (auto _ : state) {
    meter.Pause(state);
    // Fresh copies (copy-assigning into last iteration's targets would keep their grown
    // value vectors and hide the merge's reallocation).
    targets = std::vector<bucket::PartialBucket>(kMerges, base);
    meter.Resume(state);
    for (std::size_t i = 0; i < kMerges; ++i) targets[i].Merge(others[i]);
    benchmark::DoNotOptimize(targets.data());
  }
  state.SetLabel(measure ? "measure, 8 values into 8" : "count, 3 points into 2");
  Report(state, meter, "merge", kMerges, 0);
}
BENCHMARK(BM_PartialBucketMerge)->ArgName("measure")->Arg(0)->Arg(1);

// ---------------------------------------------------------------------------------------
// Percentiles and the sketch: bucket::Distribution.

// Lognormal latencies in milliseconds (median about 20), the shape of router service
// times in the data.
std::vector<double> Latencies(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> latency(3, 1);
  std::vector<double> out(n);
  for (double& v : out) v = latency(rng);
  return out;
}

// Add N values to an empty distribution, then the three percentiles BuildGauges asks for.
// Exact up to 4096 values (sort once), a DDSketch beyond. Items: values.
void BM_DistributionAddPercentiles(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::vector<double> values = Latencies(n, 4);
  AllocationMeter meter;
  bool exact = true;
  for (auto _ : state) {
    bucket::Distribution d;
    for (double v : values) d.Add(v);
    double p = d.Percentile(50) + d.Percentile(95) + d.Percentile(99);
    exact = d.exact();
    benchmark::DoNotOptimize(p);
  }
  state.SetLabel(exact ? "exact" : "sketch");
  Report(state, meter, "value", n, 0);
}
BENCHMARK(BM_DistributionAddPercentiles)->Arg(100)->Arg(4096)->Arg(100'000)->Unit(benchmark::kMicrosecond);

// Merging two sketched distributions of N values each (the outlet merging two receivers'
// partial buckets of a busy series). Items: sketch buckets of the merged-in side.
void BM_SketchMerge(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  bucket::Distribution a;
  bucket::Distribution b;
  for (double v : Latencies(n, 5)) a.Add(v);
  for (double v : Latencies(n, 6)) b.Add(v);
  const std::size_t b_buckets = b.sketch().positive().size() + b.sketch().negative().size();
  bucket::Distribution target;
  AllocationMeter meter;
  for (auto _ : state) {
    meter.Pause(state);
    target = a;
    meter.Resume(state);
    target.Merge(b);
    benchmark::DoNotOptimize(target.count());
  }
  state.SetLabel(std::to_string(b_buckets) + " sketch buckets per side");
  Report(state, meter, "sketch_bucket", b_buckets, 0);
}
BENCHMARK(BM_SketchMerge)->Arg(10'000)->Arg(100'000);

// Two exact distributions of 3000 values whose merge passes 4096 and switches to a sketch.
void BM_DistributionMergeToSketch(benchmark::State& state) {
  bucket::Distribution a;
  bucket::Distribution b;
  for (double v : Latencies(3000, 7)) a.Add(v);
  for (double v : Latencies(3000, 8)) b.Add(v);
  bucket::Distribution target;
  AllocationMeter meter;
  for (auto _ : state) {
    meter.Pause(state);
    target = a;
    meter.Resume(state);
    target.Merge(b);
    benchmark::DoNotOptimize(target.count());
  }
  Report(state, meter, "value", 6000, 0);
}
BENCHMARK(BM_DistributionMergeToSketch)->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------------------
// Librato JSON: librato::BuildGauges over closed buckets of heroku-sample chosen evenly
// across the set (all kinds), as many as give 300 gauges, then RenderRequestBody of those
// 300 gauges (one POST /v1/metrics body, FORMATS.md §5.2).

std::vector<bucket::ClosedBucket> EvenlyChosen(const std::vector<bucket::ClosedBucket>& all, std::size_t n) {
  std::vector<bucket::ClosedBucket> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(all[i * all.size() / n]);
  return out;
}

std::size_t GaugeCount(std::vector<bucket::ClosedBucket> buckets) {
  telemetry::Counters counters;
  return librato::BuildGauges(buckets, counters).size();
}

struct GaugeInput {
  std::vector<bucket::ClosedBucket> buckets;  // Give at least 300 gauges.
  std::vector<librato::Gauge> gauges;         // The first 300 of them.
};

const GaugeInput& Gauges300() {
  static const auto* input = [] {
    bucket::BucketMap all;
    for (bucket::BucketMap table : RequestTables("heroku-sample")) all.Merge(std::move(table));
    const std::vector<bucket::ClosedBucket> closed = all.TakeAll();
    std::size_t lo = 1;  // Smallest bucket count giving >= 300 gauges (closed gives 2,649).
    std::size_t hi = closed.size();
    while (lo < hi) {
      const std::size_t mid = (lo + hi) / 2;
      if (GaugeCount(EvenlyChosen(closed, mid)) >= 300) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    auto* out = new GaugeInput();
    out->buckets = EvenlyChosen(closed, lo);
    std::vector<bucket::ClosedBucket> copy = out->buckets;
    telemetry::Counters counters;
    out->gauges = librato::BuildGauges(copy, counters);
    out->gauges.resize(std::min<std::size_t>(out->gauges.size(), 300));
    return out;
  }();
  return *input;
}

void BM_BuildGauges(benchmark::State& state) {
  const GaugeInput& input = Gauges300();
  std::vector<bucket::ClosedBucket> buckets;
  std::size_t gauges = 0;
  AllocationMeter meter;
  for (auto _ : state) {
    meter.Pause(state);
    buckets = input.buckets;  // BuildGauges sorts the distributions in place.
    meter.Resume(state);
    telemetry::Counters counters;
    std::vector<librato::Gauge> out = librato::BuildGauges(buckets, counters);
    gauges = out.size();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(std::to_string(input.buckets.size()) + " buckets");
  Report(state, meter, "gauge", gauges, 0);
}
BENCHMARK(BM_BuildGauges)->Unit(benchmark::kMicrosecond);

void BM_RenderRequestBody(benchmark::State& state) {
  const GaugeInput& input = Gauges300();
  std::size_t bytes = 0;
  AllocationMeter meter;
  for (auto _ : state) {
    const std::string body = librato::RenderRequestBody(input.gauges);
    bytes = body.size();
    benchmark::DoNotOptimize(body.data());
  }
  Report(state, meter, "gauge", input.gauges.size(), bytes);
}
BENCHMARK(BM_RenderRequestBody)->Unit(benchmark::kMicrosecond);

// Both, as the outlet runs them for one request: bytes are the JSON written.
void BM_BuildAndRender(benchmark::State& state) {
  const GaugeInput& input = Gauges300();
  std::vector<bucket::ClosedBucket> buckets;
  std::size_t bytes = 0;
  AllocationMeter meter;
  for (auto _ : state) {
    meter.Pause(state);
    buckets = input.buckets;
    meter.Resume(state);
    telemetry::Counters counters;
    std::vector<librato::Gauge> gauges = librato::BuildGauges(buckets, counters);
    const std::string body = librato::RenderRequestBody(
        std::span<const librato::Gauge>(gauges).first(std::min<std::size_t>(gauges.size(), 300)));
    bytes = body.size();
    benchmark::DoNotOptimize(body.data());
  }
  Report(state, meter, "gauge", input.gauges.size(), bytes);
}
BENCHMARK(BM_BuildAndRender)->Unit(benchmark::kMicrosecond);

// One shard's window as the outlet sees it in tests/load/outlet_window.sh (150,000 one-point
// buckets over 64 shards: ~2,343 a shard, sources x {measure, sample, count}), merged into a
// table: arg 0 = BucketMap::TakeAll then BuildGauges(span) (the outlet before 2026-11-30),
// arg 1 = BuildGauges(BucketMap&) (the table read in place). Filling the table is not timed.
void BM_OutletWindowGauges(benchmark::State& state) {
  constexpr int kSources = 781;
  constexpr std::int64_t kWindow = 1'796'000'000;
  struct Entry {
    std::string key;
    bucket::PartialBucket bucket;
  };
  static const auto* entries = [] {
    auto* out = new std::vector<Entry>();
    const std::pair<const char*, extract::Kind> metrics[] = {
        {"loadgen.request.latency", extract::Kind::kMeasure},
        {"loadgen.queue.depth", extract::Kind::kSample},
        {"loadgen.requests", extract::Kind::kCount}};
    for (int s = 0; s < kSources; ++s) {
      const std::string source = "host-" + std::to_string(100000 + s * 64);
      for (const auto& [name, kind] : metrics) {
        Entry e;
        bucket::EncodeBucketKey("acme", name, source, kind, 5, kWindow, e.key);
        e.bucket.Add(12.5 + s, kWindow * 1'000'000'000, kind == extract::Kind::kMeasure ? "ms" : "",
                     kind == extract::Kind::kMeasure);
        out->push_back(std::move(e));
      }
    }
    return out;
  }();
  const bool in_place = state.range(0) == 1;
  bucket::BucketMap table;
  std::size_t gauges = 0;
  AllocationMeter meter;
  for (auto _ : state) {
    meter.Pause(state);
    table.clear();
    for (const Entry& e : *entries) table.MergeBucket(e.key, bucket::PartialBucket(e.bucket));
    meter.Resume(state);
    telemetry::Counters counters;
    std::vector<librato::Gauge> out;
    if (in_place) {
      out = librato::BuildGauges(table, counters);
      table.clear();  // Timed: the outlet drops the buckets after building (TakeAll moved them).
    } else {
      std::vector<bucket::ClosedBucket> closed = table.TakeAll();
      out = librato::BuildGauges(closed, counters);
    }
    gauges = out.size();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(std::to_string(entries->size()) + (in_place ? " buckets, in place" : " buckets, TakeAll"));
  Report(state, meter, "gauge", gauges, 0);
}
BENCHMARK(BM_OutletWindowGauges)->ArgName("in_place")->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace drainmet

BENCHMARK_MAIN();
