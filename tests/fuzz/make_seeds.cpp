// Writes the seed corpus of every fuzz target from tests/fixtures (run by run.sh):
//   make_seeds FIXTURES_DIR CURATED_DIR OUT_DIR
// OUT_DIR/<target>/ gets small files: body chunks cut at frame boundaries (framing,
// extraction, with each case's drain query), single frames (RFC 5424 header), lines
// (logfmt), values (value parsing), encoded keys, records and batches of the buckets
// the fixtures make (partial bucket decoder); CURATED_DIR/<target>/ (committed seeds,
// e.g. configuration files) is copied as is. Deterministic; a few hundred files per target.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/bucket/codec.h"
#include "common/bucket/partial_bucket.h"
#include "common/extract/extract.h"
#include "common/logfmt/scanner.h"
#include "common/logplex/frame_reader.h"
#include "common/telemetry/counters.h"
#include "nlohmann/json.hpp"

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kChunkBytes = 2048;  // Body seeds stay small: fuzzing speed.
constexpr std::size_t kMaxPerTarget = 400;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class Corpus {
 public:
  explicit Corpus(fs::path dir, std::string prefix = "seed")
      : dir_(std::move(dir)), prefix_(std::move(prefix)) {
    fs::create_directories(dir_);
  }
  void Add(std::string_view bytes) {
    if (seen_.size() >= kMaxPerTarget || !seen_.insert(std::string(bytes)).second) return;
    char name[64];
    std::snprintf(name, sizeof name, "%s-%04zu", prefix_.c_str(), seen_.size());
    std::ofstream(dir_ / name, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }

 private:
  fs::path dir_;
  std::string prefix_;
  std::set<std::string> seen_;
};

// Cuts `body` into pieces of whole frames of at most kChunkBytes (a longer frame alone).
std::vector<std::string_view> Chunks(std::string_view body) {
  std::vector<std::string_view> chunks;
  drainmet::logplex::FrameReader reader(body);
  std::string_view frame;
  const char* start = body.data();
  const char* end = start;
  while (reader.Next(&frame) == drainmet::logplex::FrameStatus::kFrame) {
    const char* frame_end = frame.data() + frame.size();
    if (frame_end - start > static_cast<std::ptrdiff_t>(kChunkBytes) && end > start) {
      chunks.emplace_back(start, static_cast<std::size_t>(end - start));
      start = end;
    }
    end = frame_end;
  }
  if (end > start) chunks.emplace_back(start, static_cast<std::size_t>(end - start));
  if (!reader.rest().empty() && chunks.size() < 2) chunks.push_back(body.substr(0, kChunkBytes));
  return chunks;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s FIXTURES_DIR CURATED_DIR OUT_DIR\n", argv[0]);
    return 2;
  }
  const fs::path fixtures = argv[1];
  const fs::path curated = argv[2];
  const fs::path out = argv[3];

  // (query, body) of every case and every data file, cases first (they hold the odd input).
  std::vector<std::pair<std::string, std::string>> bodies;
  std::vector<fs::path> cases;
  for (const auto& entry : fs::directory_iterator(fixtures / "cases")) {
    if (entry.is_directory()) cases.push_back(entry.path());
  }
  std::sort(cases.begin(), cases.end());
  for (const fs::path& dir : cases) {
    const nlohmann::json meta = nlohmann::json::parse(ReadFile(dir / "case.json"), nullptr, false);
    const std::string query = meta.is_object() && meta.contains("query") && meta["query"].is_string()
                                  ? meta["query"].get<std::string>()
                                  : std::string();
    bodies.emplace_back(query, ReadFile(dir / "body.logplex"));
  }
  for (const char* set : {"heroku-sample", "legacy-runtime"}) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(fixtures / "data" / set)) {
      if (entry.path().extension() == ".logplex") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (std::size_t i = 0; i < files.size(); i += 8) bodies.emplace_back("", ReadFile(files[i]));
  }

  Corpus framing(out / "frame_reader"), header(out / "rfc5424"), lines(out / "logfmt"), values(out / "value"),
      extraction(out / "extract"), buckets(out / "bucket");
  drainmet::bucket::BucketMap table;
  drainmet::telemetry::Counters counters;
  std::string scratch;
  for (const auto& [query, body] : bodies) {
    for (const std::string_view chunk : Chunks(body)) {
      framing.Add(chunk);
      extraction.Add(query + "\n" + std::string(chunk));
    }
    drainmet::extract::DrainOptions options;
    if (auto parsed = drainmet::extract::ParseDrainQuery(query, 60); parsed.ok()) options = *parsed;
    drainmet::extract::Extractor extractor(options);
    drainmet::logplex::FrameReader reader(body);
    std::string_view frame_bytes;
    while (reader.Next(&frame_bytes) == drainmet::logplex::FrameStatus::kFrame) {
      header.Add(frame_bytes);
      const std::optional<drainmet::logplex::Frame> frame = drainmet::logplex::ParseFrame(frame_bytes);
      if (!frame) continue;
      lines.Add(frame->line);
      drainmet::logfmt::Scanner scanner(frame->line, scratch);
      drainmet::logfmt::Pair pair;
      while (scanner.Next(&pair)) {
        if (pair.has_value) values.Add(pair.value);
      }
      const std::int64_t time = drainmet::logplex::ParseRfc3339Nanos(frame->timestamp).value_or(0);
      extractor.Extract(*frame, time, counters,
                        [&](const drainmet::extract::Point& point) { table.Add("acme-shop", 60, point); });
    }
  }
  for (const char* value :
       {"4.5ms", "7.9e-05s", "100GB", "-0", "1e126", "1e127", "1e-400", ".5", "0x1F", "+3"}) {
    values.Add(value);
  }

  // Keys, records, batches of up to 4 records (PartialBucketBatch) and list elements of up
  // to 4 records (ElementWriter's batch elements, and its keyed batch elements),
  // measures (with their values) included.
  std::string key;
  std::string record;
  std::string batch;
  std::string elements;
  std::vector<std::size_t> element_ends;
  drainmet::bucket::ElementWriter element_writer(elements, element_ends);
  std::string keyed;
  std::vector<std::size_t> keyed_ends;
  drainmet::bucket::ElementWriter keyed_writer(keyed, keyed_ends, drainmet::bucket::kMaxElementBytes,
                                               drainmet::bucket::RecordForm::kKeyed);
  std::size_t n = 0;
  for (const drainmet::bucket::ClosedBucket& closed : table.TakeAll()) {
    const drainmet::bucket::BucketKey& k = closed.key;
    drainmet::bucket::EncodeBucketKey(k.tenant, k.name, k.source, k.kind, k.resolution_seconds,
                                      k.window_unix_seconds, key);
    if (closed.bucket.values.count() > 64) continue;  // Small seeds.
    buckets.Add(key);
    drainmet::bucket::EncodeRecord(k, closed.bucket, record);
    buckets.Add(record);
    drainmet::bucket::AppendRecordToBatch(k, closed.bucket, batch);
    const drainmet::bucket::RecordKeyView view{
        k.tenant, k.name, k.source, k.kind, k.resolution_seconds, k.window_unix_seconds};
    element_writer.Add(view, closed.bucket);
    keyed_writer.Add(view, closed.bucket);
    if (++n % 4 == 0) {
      buckets.Add(batch);
      batch.clear();
      element_writer.Close();
      buckets.Add(elements);
      elements.clear();
      element_ends.clear();
      keyed_writer.Close();  // one element a run of one tenant, resolution and window
      for (std::size_t e = 0, begin = 0; e < keyed_ends.size(); begin = keyed_ends[e++]) {
        buckets.Add(keyed.substr(begin, keyed_ends[e] - begin));
      }
      keyed.clear();
      keyed_ends.clear();
    }
  }

  // Committed seeds (tests/fuzz/corpus/<target>/).
  if (fs::exists(curated)) {
    for (const auto& target : fs::directory_iterator(curated)) {
      if (!target.is_directory()) continue;
      Corpus copy(out / target.path().filename(), "curated");
      for (const auto& file : fs::directory_iterator(target.path())) copy.Add(ReadFile(file.path()));
    }
  }
  return 0;
}
