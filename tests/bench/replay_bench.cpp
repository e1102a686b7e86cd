// Google Benchmarks of the replay path on the shared data sets (docs/performance.md):
// framing alone, framing + header + logfmt + extraction, and the whole replay
// (+ aggregation, gauges, JSON). Reports bytes/s and frames ("lines") per second.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/drain/processor.h"
#include "common/emit/outlet.h"
#include "common/librato/gauge.h"
#include "common/logplex/frame_reader.h"
#include "tests/support/allocation_counter.h"

namespace drainmet {
namespace {

namespace fs = std::filesystem;

struct DataSet {
  std::vector<std::string> bodies;
  std::size_t bytes = 0;
  std::size_t frames = 0;
};

const DataSet& Load(const std::string& name) {
  static auto* sets = new std::map<std::string, DataSet>();
  auto it = sets->find(name);
  if (it != sets->end()) return it->second;
  DataSet set;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fs::path(DRAINMET_FIXTURES_DIR) / "data" / name)) {
    if (e.path().extension() == ".logplex") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    set.bodies.push_back(s.str());
    set.bytes += set.bodies.back().size();
    logplex::FrameReader reader(set.bodies.back());
    std::string_view frame;
    while (reader.Next(&frame) == logplex::FrameStatus::kFrame) ++set.frames;
  }
  return sets->emplace(name, std::move(set)).first->second;
}

void Report(benchmark::State& state, const DataSet& set, long allocations) {
  state.counters["allocs/line"] =
      static_cast<double>(allocations) / static_cast<double>(state.iterations() * set.frames);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * set.bytes));
  state.counters["lines/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * set.frames), benchmark::Counter::kIsRate);
}

void BM_Framing(benchmark::State& state) {
  const DataSet& set = Load("heroku-sample");
  const long allocations_before = testing_support::AllocationCount();
  for (auto _ : state) {
    std::size_t n = 0;
    for (const std::string& body : set.bodies) {
      logplex::FrameReader reader(body);
      std::string_view frame;
      while (reader.Next(&frame) == logplex::FrameStatus::kFrame) {
        auto parsed = logplex::ParseFrame(frame);
        n += parsed ? parsed->line.size() : 0;
      }
    }
    benchmark::DoNotOptimize(n);
  }
  Report(state, set, testing_support::AllocationCount() - allocations_before);
}
BENCHMARK(BM_Framing);

void BM_ParseAndAggregate(benchmark::State& state) {
  const DataSet& set = Load("heroku-sample");
  const long allocations_before = testing_support::AllocationCount();
  for (auto _ : state) {
    telemetry::Counters counters;
    bucket::BucketMap request;
    for (const std::string& body : set.bodies) {
      drain::ProcessBody("default", {}, body, {}, request, counters);
      request.clear();
    }
    benchmark::DoNotOptimize(counters.frames);
  }
  Report(state, set, testing_support::AllocationCount() - allocations_before);
}
BENCHMARK(BM_ParseAndAggregate);

// The whole of `drainmet replay` but file reading and writing: parse, aggregate per
// request, merge, close every window, build gauges, render the request bodies.
void BM_Replay(benchmark::State& state, const std::string& name, const std::string& query) {
  const DataSet& set = Load(name);
  const extract::DrainOptions options = *extract::ParseDrainQuery(query, 60);
  const long allocations_before = testing_support::AllocationCount();
  for (auto _ : state) {
    telemetry::Counters counters;
    bucket::BucketMap all;
    bucket::BucketMap request;
    for (const std::string& body : set.bodies) {
      drain::ProcessBody("default", options, body, {}, request, counters);
      all.Merge(std::move(request));
      request.clear();
    }
    std::vector<bucket::ClosedBucket> closed = all.TakeAll();
    std::vector<librato::Gauge> gauges = librato::BuildGauges(closed, counters);
    std::size_t out = 0;
    emit::ForEachRequest(gauges, 300, [&](std::span<const librato::Gauge> chunk) {
      out += librato::RenderRequestBody(chunk).size();
    });
    benchmark::DoNotOptimize(out);
  }
  Report(state, set, testing_support::AllocationCount() - allocations_before);
}
BENCHMARK_CAPTURE(BM_Replay, heroku_sample, std::string("heroku-sample"), std::string(""));
BENCHMARK_CAPTURE(BM_Replay, legacy_runtime, std::string("legacy-runtime"),
                  std::string("resolution=30&prefix=eu.prod&source-prefix=eu"));

}  // namespace
}  // namespace drainmet

BENCHMARK_MAIN();
