#include "common/bucket/codec.h"

#include <climits>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "proto/drainmet/v1/partial_bucket.pb.h"

namespace drainmet::bucket {
namespace {

using Record = v1::PartialBucketRecord;

v1::Kind ToProto(extract::Kind kind) {
  switch (kind) {
    case extract::Kind::kMeasure:
      return v1::KIND_MEASURE;
    case extract::Kind::kCount:
      return v1::KIND_COUNT;
    case extract::Kind::kSample:
      return v1::KIND_SAMPLE;
  }
  return v1::KIND_UNSPECIFIED;  // Not a Kind: decodes as an error, as it should.
}

void FillStore(const std::map<int, std::uint64_t>& buckets, v1::SketchStore& store) {
  store.mutable_index()->Reserve(static_cast<int>(buckets.size()));
  store.mutable_count()->Reserve(static_cast<int>(buckets.size()));
  for (const auto& [index, n] : buckets) {
    store.add_index(index);
    store.add_count(n);
  }
}

void FillRecord(const BucketKey& key, const PartialBucket& bucket, Record& record) {
  record.set_tenant(key.tenant);
  record.set_name(key.name);
  record.set_source(key.source);
  record.set_kind(ToProto(key.kind));
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
  const Distribution& distribution = bucket.values;
  if (distribution.exact()) {
    // Empty for counts and samples; written in the order held, so decoding restores it.
    const std::vector<double>& values = distribution.values();
    record.mutable_values()->Add(values.begin(), values.end());
  } else {
    v1::DDSketch& sketch = *record.mutable_sketch();
    FillStore(distribution.sketch().positive(), *sketch.mutable_positive());
    FillStore(distribution.sketch().negative(), *sketch.mutable_negative());
    sketch.set_zero_count(distribution.sketch().zero_count());
  }
}

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

absl::StatusOr<extract::Kind> KindFromProto(int kind) {
  switch (kind) {
    case v1::KIND_MEASURE:
      return extract::Kind::kMeasure;
    case v1::KIND_COUNT:
      return extract::Kind::kCount;
    case v1::KIND_SAMPLE:
      return extract::Kind::kSample;
    default:
      return Invalid("kind: " + std::to_string(kind) + " is not KIND_MEASURE, KIND_COUNT or KIND_SAMPLE");
  }
}

absl::Status CheckKeyString(std::string_view field, const std::string& value) {
  if (value.find('\0') != std::string::npos) return Invalid(std::string(field) + ": contains NUL");
  return absl::OkStatus();
}

absl::Status CheckFinite(std::string_view field, double value) {
  if (!std::isfinite(value)) return Invalid(std::string(field) + ": not finite");
  return absl::OkStatus();
}

// `value` within [min, max] in TotalLess order, the order the bucket picks min and max in.
bool Within(double value, double min, double max) { return !TotalLess(value, min) && !TotalLess(max, value); }

absl::StatusOr<std::map<int, std::uint64_t>> StoreFromProto(std::string_view side,
                                                            const v1::SketchStore& store) {
  if (store.index_size() != store.count_size()) {
    return Invalid("sketch." + std::string(side) + ": " + std::to_string(store.index_size()) +
                   " indices but " + std::to_string(store.count_size()) + " counts");
  }
  std::map<int, std::uint64_t> buckets;
  for (int i = 0; i < store.index_size(); ++i) {
    // Strictly ascending: what the encoder writes, and no index given twice.
    if (i > 0 && store.index(i) <= store.index(i - 1)) {
      return Invalid("sketch." + std::string(side) + ".index: not strictly ascending at position " +
                     std::to_string(i));
    }
    buckets.emplace_hint(buckets.end(), store.index(i), store.count(i));
  }
  return buckets;
}

absl::StatusOr<Distribution> DistributionFromProto(const Record& record, extract::Kind kind) {
  if (record.has_sketch() && record.values_size() > 0) return Invalid("values and sketch: both present");
  if (kind != extract::Kind::kMeasure) {
    if (record.has_sketch() || record.values_size() > 0) {
      return Invalid("values/sketch: only measures carry a distribution");
    }
    return Distribution();
  }
  if (record.count() <= Distribution::kExactCap) {
    if (record.has_sketch()) {
      return Invalid("sketch: present for a count of " + std::to_string(record.count()) +
                     " (<= " + std::to_string(Distribution::kExactCap) + " is exact)");
    }
    if (static_cast<std::uint64_t>(record.values_size()) != record.count()) {
      return Invalid("values: " + std::to_string(record.values_size()) + " values for a count of " +
                     std::to_string(record.count()));
    }
    for (double value : record.values()) {
      if (!std::isfinite(value)) return Invalid("values: holds a value that is not finite");
      if (!Within(value, record.min(), record.max()))
        return Invalid("values: holds a value outside [min, max]");
    }
    return Distribution::FromExact(std::vector<double>(record.values().begin(), record.values().end()));
  }
  if (!record.has_sketch()) {
    return Invalid("sketch: missing for a count of " + std::to_string(record.count()) + " (> " +
                   std::to_string(Distribution::kExactCap) + " values)");
  }
  const v1::DDSketch& proto = record.sketch();
  absl::StatusOr<std::map<int, std::uint64_t>> positive = StoreFromProto("positive", proto.positive());
  if (!positive.ok()) return positive.status();
  absl::StatusOr<std::map<int, std::uint64_t>> negative = StoreFromProto("negative", proto.negative());
  if (!negative.ok()) return negative.status();
  absl::StatusOr<DDSketch> sketch =
      DDSketch::FromStores(*std::move(positive), *std::move(negative), proto.zero_count());
  if (!sketch.ok()) return sketch.status();
  if (sketch->count() != record.count()) {
    return Invalid("sketch: holds " + std::to_string(sketch->count()) + " values for a count of " +
                   std::to_string(record.count()));
  }
  return Distribution::FromSketch(*std::move(sketch));
}

absl::StatusOr<BucketRecord> FromProto(Record& record) {
  BucketRecord out;
  absl::StatusOr<extract::Kind> kind = KindFromProto(static_cast<int>(record.kind()));
  if (!kind.ok()) return kind.status();
  if (absl::Status s = CheckKeyString("tenant", record.tenant()); !s.ok()) return s;
  if (absl::Status s = CheckKeyString("name", record.name()); !s.ok()) return s;
  if (absl::Status s = CheckKeyString("source", record.source()); !s.ok()) return s;
  if (record.name().empty()) return Invalid("name: empty");
  if (record.resolution_seconds() <= 0) {
    return Invalid("resolution_seconds: " + std::to_string(record.resolution_seconds()) + " is not > 0");
  }
  if (record.window_unix_seconds() % record.resolution_seconds() != 0) {
    return Invalid("window_unix_seconds: " + std::to_string(record.window_unix_seconds()) +
                   " is not a multiple of resolution_seconds " + std::to_string(record.resolution_seconds()));
  }
  if (record.count() == 0) return Invalid("count: 0 (an empty bucket is never written)");
  for (const auto& [field, value] : {std::pair<std::string_view, double>{"sum", record.sum()},
                                     {"sum_squares", record.sum_squares()},
                                     {"min", record.min()},
                                     {"max", record.max()},
                                     {"last", record.last()}}) {
    if (absl::Status s = CheckFinite(field, value); !s.ok()) return s;
  }
  if (record.sum_squares() < 0) return Invalid("sum_squares: negative");
  if (TotalLess(record.max(), record.min())) return Invalid("min: greater than max");
  if (!Within(record.last(), record.min(), record.max())) return Invalid("last: outside [min, max]");

  absl::StatusOr<Distribution> distribution = DistributionFromProto(record, *kind);
  if (!distribution.ok()) return distribution.status();

  out.key.tenant = std::move(*record.mutable_tenant());
  out.key.name = std::move(*record.mutable_name());
  out.key.source = std::move(*record.mutable_source());
  out.key.kind = *kind;
  out.key.resolution_seconds = record.resolution_seconds();
  out.key.window_unix_seconds = record.window_unix_seconds();
  out.bucket.count = record.count();
  out.bucket.sum = record.sum();
  out.bucket.sum_squares = record.sum_squares();
  out.bucket.min = record.min();
  out.bucket.max = record.max();
  out.bucket.last = record.last();
  out.bucket.last_unix_nanos = record.last_unix_nanos();
  out.bucket.units = std::move(*record.mutable_units());
  out.bucket.values = *std::move(distribution);
  return out;
}

// protobuf takes sizes as int.
bool TooLong(std::string_view bytes) { return bytes.size() > static_cast<std::size_t>(INT_MAX); }

}  // namespace

void EncodeRecord(const BucketKey& key, const PartialBucket& bucket, std::string& out) {
  Record record;
  FillRecord(key, bucket, record);
  out.clear();
  record.AppendToString(&out);
}

absl::StatusOr<BucketRecord> DecodeRecord(std::string_view bytes) {
  Record record;
  if (TooLong(bytes) || !record.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Invalid("not a PartialBucketRecord (protobuf parse failed, " + std::to_string(bytes.size()) +
                   " bytes)");
  }
  return FromProto(record);
}

void AppendRecordToBatch(const BucketKey& key, const PartialBucket& bucket, std::string& out) {
  // A batch holding one record, appended: batches concatenate (partial_bucket.proto).
  v1::PartialBucketBatch batch;
  FillRecord(key, bucket, *batch.add_records());
  batch.AppendToString(&out);
}

absl::StatusOr<std::vector<BucketRecord>> DecodeBatch(std::string_view bytes) {
  v1::PartialBucketBatch batch;
  if (TooLong(bytes) || !batch.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Invalid("not a PartialBucketBatch (protobuf parse failed, " + std::to_string(bytes.size()) +
                   " bytes)");
  }
  std::vector<BucketRecord> records;
  records.reserve(static_cast<std::size_t>(batch.records_size()));
  for (int i = 0; i < batch.records_size(); ++i) {
    absl::StatusOr<BucketRecord> record = FromProto(*batch.mutable_records(i));
    if (!record.ok()) {
      return Invalid("record " + std::to_string(i) + ": " + std::string(record.status().message()));
    }
    records.push_back(*std::move(record));
  }
  return records;
}

}  // namespace drainmet::bucket
