// libFuzzer target: the partial bucket decoders, i.e. what reads bytes back from Redis
// (bucket::DecodeBucketKey / KeyViewOf, DecodeRecord and RecordReader, DecodeBatch, ElementReader;
// docs/redis-layout.md, proto/drainmet/v1/partial_bucket.proto). Every input goes through all of
// them, and through ElementReader three times more, as a batch element ("\x00" + input), as
// a compact batch element ("\x01" + input), whose records may use the compact form of a
// one-point bucket (field 17), and as a keyed batch element ("\x02" + input: a header of
// fields 1, 5, 6, then records that leave those to it).
// Invariants: KeyViewOf and DecodeBucketKey agree and a decoded key encodes back to the
// same bytes; a decoded record satisfies the proto's constraints, encodes back to bytes
// that decode to the same record (encode(decode(x)) is a fixed point), and merges with
// itself; a decoded batch re-encodes record by record to a batch that decodes the same; a
// list element (single record or batch) reads to records that satisfy the constraints,
// with one error per bad record and at most one for broken framing, always ending, and its
// records written again by ElementWriter (compact form on and off, keyed elements) read
// back the same. A compact or keyed element is rejected whole by the single-record decoder
// (what an outlet that predates them runs on it). Field 17 decodes only inside compact and
// keyed elements.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/bucket/codec.h"
#include "common/bucket/partial_bucket.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using drainmet::bucket::BucketKey;
using drainmet::bucket::BucketRecord;
using drainmet::bucket::PartialBucket;

bool SameBits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

// What a decoded record must satisfy (codec.h: "never returns a bucket PartialBucket
// could not have built").
void CheckRecord(const BucketRecord& record) {
  const BucketKey& key = record.key;
  const PartialBucket& b = record.bucket;
  FUZZ_CHECK(key.resolution_seconds > 0);
  FUZZ_CHECK(key.window_unix_seconds % key.resolution_seconds == 0);
  for (const std::string* s : {&key.tenant, &key.name, &key.source}) {
    FUZZ_CHECK(s->find('\0') == std::string::npos);
  }
  FUZZ_CHECK(b.count >= 1);
  FUZZ_CHECK(std::isfinite(b.min) && std::isfinite(b.max) && std::isfinite(b.last));
  FUZZ_CHECK(!std::isnan(b.sum) && !std::isnan(b.sum_squares));
  FUZZ_CHECK(b.min <= b.max);
  FUZZ_CHECK(b.min <= b.last && b.last <= b.max);
  if (key.kind != drainmet::extract::Kind::kMeasure) FUZZ_CHECK(b.values.count() == 0);
  if (b.values.count() > 0) {
    FUZZ_CHECK(b.values.count() == b.count);
    if (b.values.exact()) {
      FUZZ_CHECK(b.values.values().size() <= drainmet::bucket::Distribution::kExactCap);
      for (const double v : b.values.values()) FUZZ_CHECK(b.min <= v && v <= b.max);
    } else {
      FUZZ_CHECK(b.values.count() > drainmet::bucket::Distribution::kExactCap);
    }
  }
}

bool SameRecord(const BucketRecord& a, const BucketRecord& b) {
  const PartialBucket& x = a.bucket;
  const PartialBucket& y = b.bucket;
  bool same = a.key == b.key && x.count == y.count && SameBits(x.sum, y.sum) &&
              SameBits(x.sum_squares, y.sum_squares) && SameBits(x.min, y.min) && SameBits(x.max, y.max) &&
              SameBits(x.last, y.last) && x.last_unix_nanos == y.last_unix_nanos && x.units == y.units &&
              x.values.count() == y.values.count() && x.values.exact() == y.values.exact();
  if (same && x.values.exact()) {
    const std::span<const double> u = x.values.values();
    const std::span<const double> v = y.values.values();
    same = u.size() == v.size() &&
           (u.empty() || std::memcmp(u.data(), v.data(), u.size() * sizeof(double)) == 0);
  }
  return same;
}

void FuzzKey(std::string_view bytes) {
  drainmet::bucket::RecordKeyView view;
  BucketKey key;
  key.name = "untouched";
  const bool viewed = drainmet::bucket::KeyViewOf(bytes, &view);
  const bool decoded = drainmet::bucket::DecodeBucketKey(bytes, &key);
  FUZZ_CHECK(viewed == decoded);
  if (!decoded) {
    FUZZ_CHECK(key.name == "untouched");
    return;
  }
  FUZZ_CHECK(view.tenant == key.tenant && view.name == key.name && view.source == key.source);
  FUZZ_CHECK(view.kind == key.kind && view.resolution_seconds == key.resolution_seconds &&
             view.window_unix_seconds == key.window_unix_seconds);
  std::string encoded;
  drainmet::bucket::EncodeBucketKey(key.tenant, key.name, key.source, key.kind, key.resolution_seconds,
                                    key.window_unix_seconds, encoded);
  FUZZ_CHECK(encoded == bytes);
}

void FuzzRecord(std::string_view bytes) {
  absl::StatusOr<BucketRecord> record = drainmet::bucket::DecodeRecord(bytes);
  if (!record.ok()) {
    FUZZ_CHECK(!record.status().message().empty());
    return;
  }
  CheckRecord(*record);
  std::string encoded;
  drainmet::bucket::EncodeRecord(record->key, record->bucket, encoded);
  absl::StatusOr<BucketRecord> again = drainmet::bucket::DecodeRecord(encoded);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(SameRecord(*record, *again));
  std::string encoded_again;
  drainmet::bucket::EncodeRecord(again->key, again->bucket, encoded_again);
  FUZZ_CHECK(encoded_again == encoded);
  // The writers' other encoders give the same bytes.
  std::string appended = "prefix";
  drainmet::bucket::AppendRecord(record->key, record->bucket, appended);
  FUZZ_CHECK(std::string_view(appended).substr(6) == encoded);

  // Merging a decoded bucket with itself keeps min and max and its percentiles are numbers.
  PartialBucket merged = record->bucket;
  merged.Merge(record->bucket);
  FUZZ_CHECK(SameBits(merged.min, record->bucket.min) && SameBits(merged.max, record->bucket.max));
  if (merged.values.count() > 0) {
    const double median = merged.values.Percentile(50);
    FUZZ_CHECK(!std::isnan(median));
  }
}

// RecordReader reads WriteRecord's encoding with its own parser and any other through
// protobuf's; an unknown field in front (number 100, varint 0) sends the same bytes through
// protobuf's parser. Both must agree: same verdict, and the same record when they decode.
void FuzzReaderAgainstProtobuf(std::string_view bytes, drainmet::bucket::RecordForm accept) {
  drainmet::bucket::RecordReader own;
  drainmet::bucket::RecordReader general;
  const std::string through = std::string("\xa0\x06\x00", 3) + std::string(bytes);
  const absl::Status a = own.Decode(bytes, accept);
  const absl::Status b = general.Decode(through, accept);
  FUZZ_CHECK(a.ok() == b.ok());
  if (!a.ok()) {
    // Same message but when protobuf's parse failed (its text names the size).
    const std::string x(a.message());
    const std::string y(b.message());
    FUZZ_CHECK(x == y ||
               (x.starts_with("not a PartialBucketRecord") && y.starts_with("not a PartialBucketRecord")));
    return;
  }
  const auto key_of = [](const drainmet::bucket::RecordReader& r) {
    return BucketKey{std::string(r.key().tenant), std::string(r.key().name),
                     std::string(r.key().source), r.key().kind,
                     r.key().resolution_seconds,  r.key().window_unix_seconds};
  };
  std::string x;
  std::string y;
  drainmet::bucket::EncodeRecord(key_of(own), own.bucket(), x);
  drainmet::bucket::EncodeRecord(key_of(general), general.bucket(), y);
  FUZZ_CHECK(x == y);
}

void FuzzBatch(std::string_view bytes) {
  absl::StatusOr<std::vector<BucketRecord>> batch = drainmet::bucket::DecodeBatch(bytes);
  if (!batch.ok()) return;
  std::string encoded;
  for (const BucketRecord& record : *batch) {
    CheckRecord(record);
    drainmet::bucket::AppendRecordToBatch(record.key, record.bucket, encoded);
  }
  absl::StatusOr<std::vector<BucketRecord>> again = drainmet::bucket::DecodeBatch(encoded);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->size() == batch->size());
  for (std::size_t i = 0; i < batch->size(); ++i) FUZZ_CHECK(SameRecord((*batch)[i], (*again)[i]));
}

BucketRecord Owned(const drainmet::bucket::ElementReader& reader, PartialBucket bucket) {
  const drainmet::bucket::RecordKeyView& k = reader.key();
  return BucketRecord{BucketKey{std::string(k.tenant), std::string(k.name), std::string(k.source), k.kind,
                                k.resolution_seconds, k.window_unix_seconds},
                      std::move(bucket)};
}

void Rewrite(drainmet::bucket::ElementReader& reader, const std::vector<BucketRecord>& records,
             drainmet::bucket::RecordForm form);

void FuzzElement(std::string_view element) {
  drainmet::bucket::ElementReader reader;
  reader.Reset(element);
  std::vector<BucketRecord> records;
  std::size_t errors = 0;
  std::size_t calls = 0;
  for (;;) {
    FUZZ_CHECK(++calls <= element.size() + 2);  // every call but the last consumes bytes
    absl::StatusOr<bool> next = reader.Next();
    if (!next.ok()) {
      FUZZ_CHECK(next.status().code() == absl::StatusCode::kInvalidArgument);
      ++errors;
      continue;
    }
    if (!*next) break;
    records.push_back(Owned(reader, reader.bucket()));
    CheckRecord(records.back());
  }
  const bool compact = !element.empty() && (element.front() == drainmet::bucket::kCompactBatchElementTag ||
                                            element.front() == drainmet::bucket::kKeyedBatchElementTag);
  const bool batch = compact || (!element.empty() && element.front() == drainmet::bucket::kBatchElementTag);
  if (compact) {
    // An outlet that predates compact (or keyed) elements decodes it as one record: always
    // rejected.
    drainmet::bucket::RecordReader old;
    FUZZ_CHECK(!old.Decode(element).ok());
  }
  if (!batch) {
    // A single record: exactly what RecordReader says of the whole element.
    FUZZ_CHECK(records.size() + errors == 1);
    drainmet::bucket::RecordReader single;
    FUZZ_CHECK(single.Decode(element).ok() == (records.size() == 1));
  }
  for (const drainmet::bucket::RecordForm form :
       {drainmet::bucket::RecordForm::kCompact, drainmet::bucket::RecordForm::kFull,
        drainmet::bucket::RecordForm::kKeyed}) {
    Rewrite(reader, records, form);
  }
}

// `records` written again (one element, or a few at the bound) in `form` and read back:
// the same records; with kFull, never a compact element; with kKeyed, only keyed ones.
void Rewrite(drainmet::bucket::ElementReader& reader, const std::vector<BucketRecord>& records,
             drainmet::bucket::RecordForm form) {
  std::string bytes;
  std::vector<std::size_t> ends;
  drainmet::bucket::ElementWriter writer(bytes, ends, drainmet::bucket::kMaxElementBytes, form);
  for (const BucketRecord& r : records) {
    writer.Add(drainmet::bucket::RecordKeyView{r.key.tenant, r.key.name, r.key.source, r.key.kind,
                                               r.key.resolution_seconds, r.key.window_unix_seconds},
               r.bucket);
  }
  writer.Close();
  std::size_t at = 0;
  std::size_t begin = 0;
  for (const std::size_t end : ends) {
    FUZZ_CHECK(form == drainmet::bucket::RecordForm::kCompact ||
               bytes[begin] != drainmet::bucket::kCompactBatchElementTag);
    FUZZ_CHECK((form == drainmet::bucket::RecordForm::kKeyed) ==
               (bytes[begin] == drainmet::bucket::kKeyedBatchElementTag));
    reader.Reset(std::string_view(bytes).substr(begin, end - begin));
    std::size_t in_element = 0;
    for (absl::StatusOr<bool> next = reader.Next();; next = reader.Next()) {
      FUZZ_CHECK(next.ok());
      if (!*next) break;
      FUZZ_CHECK(at < records.size());
      FUZZ_CHECK(SameRecord(records[at], Owned(reader, reader.bucket())));
      ++at;
      ++in_element;
    }
    // The bound holds but for a record longer than it, which is alone.
    FUZZ_CHECK(end - begin <= drainmet::bucket::kMaxElementBytes || in_element == 1);
    begin = end;
  }
  FUZZ_CHECK(at == records.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  FuzzKey(bytes);
  FuzzRecord(bytes);
  FuzzReaderAgainstProtobuf(bytes, drainmet::bucket::RecordForm::kFull);
  FuzzReaderAgainstProtobuf(bytes, drainmet::bucket::RecordForm::kCompact);
  FuzzBatch(bytes);
  FuzzElement(bytes);
  FuzzElement(std::string(1, drainmet::bucket::kBatchElementTag) + std::string(bytes));
  FuzzElement(std::string(1, drainmet::bucket::kCompactBatchElementTag) + std::string(bytes));
  FuzzElement(std::string(1, drainmet::bucket::kKeyedBatchElementTag) + std::string(bytes));
  return 0;
}
