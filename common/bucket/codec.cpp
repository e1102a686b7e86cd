#include "common/bucket/codec.h"

#include <bit>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "common/base/strings.h"
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

absl::Status CheckKeyString(std::string_view field, std::string_view value) {
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

// A record's fields but the distribution, as decoded: views into a message or into the
// record's bytes. What both decoders (the protobuf parser and RecordReader's own) check,
// with the same rules and messages.
struct RecordFields {
  std::string_view tenant;
  std::string_view name;
  std::string_view source;
  std::string_view units;
  int kind = 0;  // the proto's enum value
  std::int32_t resolution_seconds = 0;
  std::int64_t window_unix_seconds = 0;
  double sum = 0;
  double sum_squares = 0;
  double min = 0;
  double max = 0;
  double last = 0;
  std::int64_t last_unix_nanos = 0;
  std::uint64_t count = 0;
  // Field 17 (the compact form of a one-point bucket) is read beside this struct and passed
  // to ExpandValue, which fills sum .. last from it.
};

bool NonZeroBits(double value) { return std::bit_cast<std::uint64_t>(value) != 0; }

RecordFields FieldsOf(const Record& record) {
  RecordFields f;
  f.tenant = record.tenant();
  f.name = record.name();
  f.source = record.source();
  f.units = record.units();
  f.kind = static_cast<int>(record.kind());
  f.resolution_seconds = record.resolution_seconds();
  f.window_unix_seconds = record.window_unix_seconds();
  f.sum = record.sum();
  f.sum_squares = record.sum_squares();
  f.min = record.min();
  f.max = record.max();
  f.last = record.last();
  f.last_unix_nanos = record.last_unix_nanos();
  f.count = record.count();
  return f;
}

// Field 17 (`value`, the compact form of a one-point bucket) of a record that has it:
// accepted only where `accept` allows it (a record of a compact batch element), alone
// (none of fields 7-11, 14, 16 present as protobuf reads them, proto3: a double whose bits
// are not zero; `has_distribution` for non-empty values or a sketch), with count 1 and a
// finite value. Then fills the aggregate as PartialBucket::Add of that one point fills an
// empty bucket (sum = +0 + value: a value of -0 has sum +0).
absl::Status ExpandValue(RecordFields& f, double value, RecordForm accept, bool has_distribution) {
  if (accept != RecordForm::kCompact) {
    return Invalid("value: present outside a compact batch element (the compact form is read only there)");
  }
  if (NonZeroBits(f.sum) || NonZeroBits(f.sum_squares) || NonZeroBits(f.min) || NonZeroBits(f.max) ||
      NonZeroBits(f.last) || has_distribution) {
    return Invalid("value: present together with sum, sum_squares, min, max, last, values or sketch");
  }
  if (f.count != 1) {
    return Invalid("value: present with a count of " + std::to_string(f.count) + " (must be 1)");
  }
  if (!std::isfinite(value)) return Invalid("value: not finite");
  const double zero = 0;
  f.sum = zero + value;
  f.sum_squares = zero + value * value;
  f.min = value;
  f.max = value;
  f.last = value;
  return absl::OkStatus();
}

// The constraints of partial_bucket.proto on everything but the distribution's content.
absl::StatusOr<extract::Kind> CheckFields(const RecordFields& f) {
  absl::StatusOr<extract::Kind> kind = KindFromProto(f.kind);
  if (!kind.ok()) return kind.status();
  if (absl::Status s = CheckKeyString("tenant", f.tenant); !s.ok()) return s;
  if (absl::Status s = CheckKeyString("name", f.name); !s.ok()) return s;
  if (absl::Status s = CheckKeyString("source", f.source); !s.ok()) return s;
  if (f.name.empty()) return Invalid("name: empty");
  if (f.resolution_seconds <= 0) {
    return Invalid("resolution_seconds: " + std::to_string(f.resolution_seconds) + " is not > 0");
  }
  if (f.window_unix_seconds % f.resolution_seconds != 0) {
    return Invalid("window_unix_seconds: " + std::to_string(f.window_unix_seconds) +
                   " is not a multiple of resolution_seconds " + std::to_string(f.resolution_seconds));
  }
  if (f.count == 0) return Invalid("count: 0 (an empty bucket is never written)");
  for (const auto& [field, value] : {std::pair<std::string_view, double>{"sum", f.sum},
                                     {"sum_squares", f.sum_squares},
                                     {"min", f.min},
                                     {"max", f.max},
                                     {"last", f.last}}) {
    if (absl::Status s = CheckFinite(field, value); !s.ok()) return s;
  }
  if (f.sum_squares < 0) return Invalid("sum_squares: negative");
  if (TotalLess(f.max, f.min)) return Invalid("min: greater than max");
  if (!Within(f.last, f.min, f.max)) return Invalid("last: outside [min, max]");
  return kind;
}

// Which distribution a record must carry: none but for measures; then every value up to
// kExactCap, a sketch beyond.
absl::Status CheckDistributionShape(extract::Kind kind, std::uint64_t count, std::size_t values,
                                    bool has_sketch) {
  if (has_sketch && values > 0) return Invalid("values and sketch: both present");
  if (kind != extract::Kind::kMeasure) {
    if (has_sketch || values > 0) return Invalid("values/sketch: only measures carry a distribution");
    return absl::OkStatus();
  }
  if (count <= Distribution::kExactCap) {
    if (has_sketch) {
      return Invalid("sketch: present for a count of " + std::to_string(count) +
                     " (<= " + std::to_string(Distribution::kExactCap) + " is exact)");
    }
    if (values != count) {
      return Invalid("values: " + std::to_string(values) + " values for a count of " + std::to_string(count));
    }
    return absl::OkStatus();
  }
  if (!has_sketch) {
    return Invalid("sketch: missing for a count of " + std::to_string(count) + " (> " +
                   std::to_string(Distribution::kExactCap) + " values)");
  }
  return absl::OkStatus();
}

// The exact values of a measure (their number already checked): finite, within [min, max].
absl::Status CheckExactValues(const RecordFields& f, std::span<const double> values) {
  for (double value : values) {
    if (!std::isfinite(value)) return Invalid("values: holds a value that is not finite");
    if (!Within(value, f.min, f.max)) return Invalid("values: holds a value outside [min, max]");
  }
  return absl::OkStatus();
}

// Everything of `out` but its distribution, from checked fields.
void FillBucket(const RecordFields& f, PartialBucket& out) {
  out.count = f.count;
  out.sum = f.sum;
  out.sum_squares = f.sum_squares;
  out.min = f.min;
  out.max = f.max;
  out.last = f.last;
  out.last_unix_nanos = f.last_unix_nanos;
  out.units.assign(f.units);
}

absl::StatusOr<Distribution> DistributionFromProto(const Record& record, const RecordFields& f,
                                                   extract::Kind kind) {
  if (absl::Status s = CheckDistributionShape(kind, f.count, static_cast<std::size_t>(record.values_size()),
                                              record.has_sketch());
      !s.ok()) {
    return s;
  }
  if (kind != extract::Kind::kMeasure) return Distribution();
  if (!record.has_sketch()) {
    const std::span<const double> values(record.values().data(),
                                         static_cast<std::size_t>(record.values_size()));
    if (absl::Status s = CheckExactValues(f, values); !s.ok()) return s;
    return Distribution::FromExact(std::vector<double>(record.values().begin(), record.values().end()));
  }
  const v1::DDSketch& proto = record.sketch();
  absl::StatusOr<std::map<int, std::uint64_t>> positive = StoreFromProto("positive", proto.positive());
  if (!positive.ok()) return positive.status();
  absl::StatusOr<std::map<int, std::uint64_t>> negative = StoreFromProto("negative", proto.negative());
  if (!negative.ok()) return negative.status();
  absl::StatusOr<DDSketch> sketch =
      DDSketch::FromStores(*std::move(positive), *std::move(negative), proto.zero_count());
  if (!sketch.ok()) return sketch.status();
  if (sketch->count() != f.count) {
    return Invalid("sketch: holds " + std::to_string(sketch->count()) + " values for a count of " +
                   std::to_string(f.count));
  }
  return Distribution::FromSketch(*std::move(sketch));
}

absl::StatusOr<BucketRecord> FromProto(const Record& record, RecordForm accept) {
  RecordFields f = FieldsOf(record);
  if (record.has_value()) {
    if (absl::Status s =
            ExpandValue(f, record.value(), accept, record.values_size() > 0 || record.has_sketch());
        !s.ok()) {
      return s;
    }
  }
  absl::StatusOr<extract::Kind> kind = CheckFields(f);
  if (!kind.ok()) return kind.status();
  absl::StatusOr<Distribution> distribution =
      !record.has_value()                ? DistributionFromProto(record, f, *kind)
      : *kind == extract::Kind::kMeasure ? Distribution::FromExact(std::vector<double>{record.value()})
                                         : absl::StatusOr<Distribution>(Distribution());
  if (!distribution.ok()) return distribution.status();
  BucketRecord out;
  out.key = BucketKey{std::string(f.tenant), std::string(f.name),  std::string(f.source), *kind,
                      f.resolution_seconds,  f.window_unix_seconds};
  FillBucket(f, out.bucket);
  out.bucket.values = *std::move(distribution);
  return out;
}

bool TooLong(std::string_view bytes) { return bytes.size() > static_cast<std::size_t>(INT_MAX); }

// ---- The wire format, written by hand (no message object, no allocation but `out`'s).
// Byte for byte what protobuf's serializer writes for the same PartialBucketRecord
// (fields in number order; proto3 scalars omitted when zero, doubles when their bits are
// zero, so -0.0 is written; repeated fields packed; the sketch message present, with both
// stores, whenever the distribution is a sketch), so records keep the bytes they had when
// protobuf's SerializeToString made them (codec_test compares the two).

constexpr std::uint32_t kVarint = 0;
constexpr std::uint32_t kFixed64 = 1;
constexpr std::uint32_t kLengthDelimited = 2;

constexpr std::uint32_t Tag(std::uint32_t field, std::uint32_t wire_type) { return (field << 3) | wire_type; }

std::size_t VarintSize(std::uint64_t value) {
  // 1 + floor(log2(value | 1) / 7): 7 payload bits per byte.
  return static_cast<std::size_t>((64 - __builtin_clzll(value | 1) + 6) / 7);
}

char* WriteVarint(std::uint64_t value, char* p) {
  while (value >= 0x80) {
    *p++ = static_cast<char>(value | 0x80);
    value >>= 7;
  }
  *p++ = static_cast<char>(value);
  return p;
}

char* WriteFixed64(double value, char* p) {
  static_assert(std::endian::native == std::endian::little, "protobuf's fixed64 is little-endian");
  std::memcpy(p, &value, sizeof value);
  return p + sizeof value;
}

std::uint64_t Bits(double value) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

// Varints of int32/int64/enum fields: negative values take 10 bytes (sign-extended).
std::uint64_t SignExtended(std::int64_t value) { return static_cast<std::uint64_t>(value); }

std::uint32_t ZigZag(int value) {
  return (static_cast<std::uint32_t>(value) << 1) ^ static_cast<std::uint32_t>(value >> 31);
}

// One field's bytes: tag + payload.
std::size_t BytesFieldSize(std::string_view bytes) {
  return bytes.empty() ? 0 : 1 + VarintSize(bytes.size()) + bytes.size();
}
std::size_t VarintFieldSize(std::uint32_t tag, std::uint64_t value) {
  return value == 0 ? 0 : VarintSize(tag) + VarintSize(value);
}
std::size_t DoubleFieldSize(double value) { return Bits(value) == 0 ? 0 : 1 + 8; }

char* WriteBytesField(std::uint32_t field, std::string_view bytes, char* p) {
  if (bytes.empty()) return p;
  *p++ = static_cast<char>(Tag(field, kLengthDelimited));
  p = WriteVarint(bytes.size(), p);
  std::memcpy(p, bytes.data(), bytes.size());
  return p + bytes.size();
}
char* WriteVarintField(std::uint32_t tag, std::uint64_t value, char* p) {
  if (value == 0) return p;
  p = WriteVarint(tag, p);
  return WriteVarint(value, p);
}
char* WriteDoubleField(std::uint32_t field, double value, char* p) {
  if (Bits(value) == 0) return p;
  *p++ = static_cast<char>(Tag(field, kFixed64));
  return WriteFixed64(value, p);
}

// SketchStore: packed sint32 indices (1), packed uint64 counts (2).
struct StoreSizes {
  std::size_t index = 0;  // payload bytes of the packed indices
  std::size_t count = 0;  // payload bytes of the packed counts
  std::size_t Message() const {
    return (index == 0 ? 0 : 1 + VarintSize(index) + index) +
           (count == 0 ? 0 : 1 + VarintSize(count) + count);
  }
};

StoreSizes SizeStore(const std::map<int, std::uint64_t>& buckets) {
  StoreSizes sizes;
  for (const auto& [index, n] : buckets) {
    sizes.index += VarintSize(ZigZag(index));
    sizes.count += VarintSize(n);
  }
  return sizes;
}

char* WriteStore(const std::map<int, std::uint64_t>& buckets, const StoreSizes& sizes, char* p) {
  if (sizes.index > 0) {
    *p++ = static_cast<char>(Tag(1, kLengthDelimited));
    p = WriteVarint(sizes.index, p);
    for (const auto& [index, n] : buckets) p = WriteVarint(ZigZag(index), p);
  }
  if (sizes.count > 0) {
    *p++ = static_cast<char>(Tag(2, kLengthDelimited));
    p = WriteVarint(sizes.count, p);
    for (const auto& [index, n] : buckets) p = WriteVarint(n, p);
  }
  return p;
}

// The DDSketch message's size (sketch field 16's payload) and its stores' sizes.
struct SketchSizes {
  StoreSizes positive;
  StoreSizes negative;
  std::size_t message = 0;
};

SketchSizes SizeSketch(const DDSketch& sketch) {
  SketchSizes sizes;
  sizes.positive = SizeStore(sketch.positive());
  sizes.negative = SizeStore(sketch.negative());
  const std::size_t positive = sizes.positive.Message();
  const std::size_t negative = sizes.negative.Message();
  sizes.message = 1 + VarintSize(positive) + positive + 1 + VarintSize(negative) + negative +
                  VarintFieldSize(Tag(3, kVarint), sketch.zero_count());
  return sizes;
}

constexpr std::uint32_t kSketchTag = Tag(16, kLengthDelimited);  // two bytes as a varint

// A keyed element's header: fields 1, 5 and 6 of `key`.
std::size_t HeaderSize(const RecordKeyView& key) {
  return BytesFieldSize(key.tenant) + VarintFieldSize(Tag(5, kVarint), SignExtended(key.resolution_seconds)) +
         VarintFieldSize(Tag(6, kVarint), SignExtended(key.window_unix_seconds));
}
// Fields 1-6 (the key); `keyed`: 2-4 only (a keyed element's header holds 1, 5 and 6).
std::size_t KeyFieldsSize(const RecordKeyView& key, bool keyed) {
  const std::size_t own = BytesFieldSize(key.name) + BytesFieldSize(key.source) +
                          VarintFieldSize(Tag(4, kVarint), SignExtended(ToProto(key.kind)));
  return keyed ? own : own + HeaderSize(key);
}

std::size_t RecordSizeWith(const RecordKeyView& key, const PartialBucket& bucket, const SketchSizes* sketch,
                           bool keyed = false) {
  std::size_t size = KeyFieldsSize(key, keyed) + DoubleFieldSize(bucket.sum) +
                     DoubleFieldSize(bucket.sum_squares) + DoubleFieldSize(bucket.min) +
                     DoubleFieldSize(bucket.max) + DoubleFieldSize(bucket.last) +
                     VarintFieldSize(Tag(12, kVarint), SignExtended(bucket.last_unix_nanos)) +
                     BytesFieldSize(bucket.units) + VarintFieldSize(Tag(15, kVarint), bucket.count);
  if (sketch == nullptr) {
    const std::size_t values = bucket.values.values().size() * 8;
    if (values > 0) size += 1 + VarintSize(values) + values;
  } else {
    size += VarintSize(kSketchTag) + VarintSize(sketch->message) + sketch->message;
  }
  return size;
}

// The compact form of a one-point bucket of value `value` (CompactValue): the key, fields
// 12, 13, then 17 (written whatever its bits), then count (1). Not protobuf's order (by
// number: 15, 17) on purpose: count stays the last field, so a record cut short loses it or
// breaks field 17, and every truncation is detected (partial_bucket.proto, `count`).
// Protobuf's parser reads either order alike, and so does RecordReader.
constexpr std::uint32_t kValueTag = Tag(17, kFixed64);  // two bytes as a varint

// Of a bucket whose last point is at `last_unix_nanos`, with `units`.
// Of a bucket whose last point is at `last_unix_nanos`, with `units`; `keyed`: in a keyed
// element (no fields 1, 5, 6).
std::size_t CompactRecordSize(const RecordKeyView& key, std::int64_t last_unix_nanos, std::string_view units,
                              bool keyed = false) {
  return KeyFieldsSize(key, keyed) + VarintFieldSize(Tag(12, kVarint), SignExtended(last_unix_nanos)) +
         BytesFieldSize(units) + VarintFieldSize(Tag(15, kVarint), 1) + VarintSize(kValueTag) + 8;
}
std::size_t CompactRecordSize(const RecordKeyView& key, const PartialBucket& bucket, bool keyed = false) {
  return CompactRecordSize(key, bucket.last_unix_nanos, bucket.units, keyed);
}

// Fields 1-6 (the key), as both forms of a record begin; `keyed`: 2-4 only.
char* WriteKeyFields(const RecordKeyView& key, char* p, bool keyed = false) {
  if (!keyed) p = WriteBytesField(1, key.tenant, p);
  p = WriteBytesField(2, key.name, p);
  p = WriteBytesField(3, key.source, p);
  p = WriteVarintField(Tag(4, kVarint), SignExtended(ToProto(key.kind)), p);
  if (keyed) return p;
  p = WriteVarintField(Tag(5, kVarint), SignExtended(key.resolution_seconds), p);
  p = WriteVarintField(Tag(6, kVarint), SignExtended(key.window_unix_seconds), p);
  return p;
}

// A keyed element's header: fields 1, 5 and 6 of `key` (size: HeaderSize).
char* WriteHeader(const RecordKeyView& key, char* p) {
  p = WriteBytesField(1, key.tenant, p);
  p = WriteVarintField(Tag(5, kVarint), SignExtended(key.resolution_seconds), p);
  return WriteVarintField(Tag(6, kVarint), SignExtended(key.window_unix_seconds), p);
}

char* WriteCompactRecord(const RecordKeyView& key, std::int64_t last_unix_nanos, std::string_view units,
                         double value, char* p, bool keyed = false) {
  p = WriteKeyFields(key, p, keyed);
  p = WriteVarintField(Tag(12, kVarint), SignExtended(last_unix_nanos), p);
  p = WriteBytesField(13, units, p);
  p = WriteVarint(kValueTag, p);
  p = WriteFixed64(value, p);
  return WriteVarintField(Tag(15, kVarint), 1, p);
}
char* WriteCompactRecord(const RecordKeyView& key, const PartialBucket& bucket, double value, char* p,
                         bool keyed = false) {
  return WriteCompactRecord(key, bucket.last_unix_nanos, bucket.units, value, p, keyed);
}

// ---- Reading records by hand: the encoding WriteRecord produces, without a message object.

// A varint at [p, end), advancing p. False when truncated or longer than protobuf reads
// (more than 10 bytes, or a 10th byte above 1).
bool ReadVarint(const char*& p, const char* end, std::uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    const auto byte = static_cast<unsigned char>(*p++);
    value |= std::uint64_t{byte & 0x7fu} << shift;
    if (byte < 0x80) return shift < 63 || byte <= 1;
  }
  return false;
}

// Fills `f`, `packed_values` (field 14's bytes) and `value_bytes` (field 17's 8 bytes, when
// present) from a record in the canonical encoding (what WriteRecord writes for a bucket
// without a sketch, in either form): fields in ascending number (but 17, just before 15),
// each at most once, the wire type of its declaration, values packed. Then protobuf's
// parser would give the same fields (proto3: a missing field is its default). False for
// anything else (a sketch, an unknown or repeated field, another writer's order, bad
// bytes): the general parser decides those.
bool ParseCanonical(std::string_view bytes, RecordFields& f, std::string_view& packed_values,
                    std::string_view& value_bytes) {
  static_assert(std::endian::native == std::endian::little, "fixed64 doubles are little-endian");
  const char* p = bytes.data();
  const char* const end = p + bytes.size();
  std::uint64_t previous = 0;
  while (p < end) {
    std::uint64_t tag = 0;
    if (!ReadVarint(p, end, tag)) return false;
    const std::uint64_t field = tag >> 3;
    const auto wire_type = static_cast<std::uint32_t>(tag & 7);
    // Ascending field numbers, but for 17 (the compact form's value), which WriteRecord puts
    // right before 15 (count), so that a compact record cut short loses its count too.
    // Rank 0: not a field of the canonical encoding (0, 16, unknown).
    static constexpr std::uint8_t kRank[18] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 0, 15};
    if (field >= 18 || kRank[field] <= previous) return false;
    previous = kRank[field];
    switch (field) {
      case 1:
      case 2:
      case 3:
      case 13:
      case 14: {
        std::uint64_t size = 0;
        if (wire_type != kLengthDelimited || !ReadVarint(p, end, size) ||
            size > static_cast<std::uint64_t>(end - p)) {
          return false;
        }
        const std::string_view value(p, static_cast<std::size_t>(size));
        p += size;
        if (field == 1) f.tenant = value;
        if (field == 2) f.name = value;
        if (field == 3) f.source = value;
        if (field == 13) f.units = value;
        if (field == 14) {
          if (size % 8 != 0) return false;
          packed_values = value;
        }
        break;
      }
      case 17: {  // the compact form's value (ExpandValue)
        if (wire_type != kFixed64 || end - p < 8) return false;
        value_bytes = std::string_view(p, 8);
        p += 8;
        break;
      }
      case 7:
      case 8:
      case 9:
      case 10:
      case 11: {
        if (wire_type != kFixed64 || end - p < 8) return false;
        double value = 0;
        std::memcpy(&value, p, 8);
        p += 8;
        double* const fields[] = {&f.sum, &f.sum_squares, &f.min, &f.max, &f.last};
        *fields[field - 7] = value;
        break;
      }
      default: {  // 4, 5, 6, 12, 15: varints (int32 and enum fields keep the low 32 bits)
        std::uint64_t value = 0;
        if (wire_type != kVarint || !ReadVarint(p, end, value)) return false;
        if (field == 4) f.kind = static_cast<std::int32_t>(static_cast<std::uint32_t>(value));
        if (field == 5) f.resolution_seconds = static_cast<std::int32_t>(static_cast<std::uint32_t>(value));
        if (field == 6) f.window_unix_seconds = static_cast<std::int64_t>(value);
        if (field == 12) f.last_unix_nanos = static_cast<std::int64_t>(value);
        if (field == 15) f.count = value;
        break;
      }
    }
  }
  return true;
}

}  // namespace

std::optional<double> CompactValue(extract::Kind kind, const PartialBucket& bucket) {
  if (bucket.count != 1 || !bucket.values.exact()) return std::nullopt;
  const double v = bucket.last;
  if (!std::isfinite(v) || Bits(v) == 0) return std::nullopt;  // +0: the full form is shorter
  const double zero = 0;
  if (Bits(bucket.min) != Bits(v) || Bits(bucket.max) != Bits(v) || Bits(bucket.sum) != Bits(zero + v) ||
      Bits(bucket.sum_squares) != Bits(zero + v * v)) {
    return std::nullopt;
  }
  const auto& values = bucket.values.values();
  const std::size_t want = kind == extract::Kind::kMeasure ? 1 : 0;
  if (values.size() != want || (want == 1 && Bits(values[0]) != Bits(v))) return std::nullopt;
  return v;
}

namespace {
// The full form of a record; `keyed`: in a keyed element (no fields 1, 5, 6).
std::size_t FullRecordSize(const RecordKeyView& key, const PartialBucket& bucket, bool keyed) {
  if (bucket.values.exact()) return RecordSizeWith(key, bucket, nullptr, keyed);
  const SketchSizes sketch = SizeSketch(bucket.values.sketch());
  return RecordSizeWith(key, bucket, &sketch, keyed);
}
char* WriteFullRecord(const RecordKeyView& key, const PartialBucket& bucket, char* p, bool keyed);
}  // namespace

std::size_t RecordSize(const RecordKeyView& key, const PartialBucket& bucket, RecordForm form) {
  if (form != RecordForm::kFull && CompactValue(key.kind, bucket)) return CompactRecordSize(key, bucket);
  return FullRecordSize(key, bucket, /*keyed=*/false);
}

char* WriteRecord(const RecordKeyView& key, const PartialBucket& bucket, char* p, RecordForm form) {
  if (form != RecordForm::kFull) {
    if (const std::optional<double> value = CompactValue(key.kind, bucket)) {
      return WriteCompactRecord(key, bucket, *value, p);
    }
  }
  return WriteFullRecord(key, bucket, p, /*keyed=*/false);
}

namespace {
char* WriteFullRecord(const RecordKeyView& key, const PartialBucket& bucket, char* p, bool keyed) {
  p = WriteKeyFields(key, p, keyed);
  p = WriteDoubleField(7, bucket.sum, p);
  p = WriteDoubleField(8, bucket.sum_squares, p);
  p = WriteDoubleField(9, bucket.min, p);
  p = WriteDoubleField(10, bucket.max, p);
  p = WriteDoubleField(11, bucket.last, p);
  p = WriteVarintField(Tag(12, kVarint), SignExtended(bucket.last_unix_nanos), p);
  p = WriteBytesField(13, bucket.units, p);
  const Distribution& distribution = bucket.values;
  if (distribution.exact()) {
    // Empty for counts and samples; written in the order held, so decoding restores it.
    const std::span<const double> values = distribution.values();
    if (!values.empty()) {
      *p++ = static_cast<char>(Tag(14, kLengthDelimited));
      p = WriteVarint(values.size() * 8, p);
      static_assert(std::endian::native == std::endian::little, "packed doubles are little-endian");
      std::memcpy(p, values.data(), values.size() * 8);
      p += values.size() * 8;
    }
    return WriteVarintField(Tag(15, kVarint), bucket.count, p);
  }
  p = WriteVarintField(Tag(15, kVarint), bucket.count, p);
  const DDSketch& sketch = distribution.sketch();
  const SketchSizes sizes = SizeSketch(sketch);
  p = WriteVarint(kSketchTag, p);
  p = WriteVarint(sizes.message, p);
  *p++ = static_cast<char>(Tag(1, kLengthDelimited));
  p = WriteVarint(sizes.positive.Message(), p);
  p = WriteStore(sketch.positive(), sizes.positive, p);
  *p++ = static_cast<char>(Tag(2, kLengthDelimited));
  p = WriteVarint(sizes.negative.Message(), p);
  p = WriteStore(sketch.negative(), sizes.negative, p);
  return WriteVarintField(Tag(3, kVarint), sketch.zero_count(), p);
}
}  // namespace

void EncodeRecord(const BucketKey& key, const PartialBucket& bucket, std::string& out) {
  out.clear();
  AppendRecord(key, bucket, out);
}

void AppendRecord(const BucketKey& key, const PartialBucket& bucket, std::string& out) {
  AppendRecord(RecordKeyView{key.tenant, key.name, key.source, key.kind, key.resolution_seconds,
                             key.window_unix_seconds},
               bucket, out);
}

void AppendRecord(const RecordKeyView& key, const PartialBucket& bucket, std::string& out) {
  const std::size_t size = RecordSize(key, bucket);
  const std::size_t at = out.size();
  // resize() zero-fills the new bytes once; WriteRecord then overwrites every one of them.
  out.resize(at + size);
  char* end = WriteRecord(key, bucket, out.data() + at);
  (void)end;
}

absl::Status RecordReader::Decode(std::string_view bytes, RecordForm accept) {
  return DecodeFrom(bytes, accept, nullptr, {});
}

absl::Status RecordReader::DecodeWithHeader(std::string_view header, const RecordKeyView& header_key,
                                            std::string_view bytes, RecordForm accept) {
  return DecodeFrom(bytes, accept, &header_key, header);
}

absl::Status RecordReader::DecodeFrom(std::string_view bytes, RecordForm accept,
                                      const RecordKeyView* header_key, std::string_view header) {
  RecordFields f;
  if (header_key != nullptr) {
    // What parsing the header's bytes first leaves (they hold fields 1, 5, 6 only).
    f.tenant = header_key->tenant;
    f.resolution_seconds = header_key->resolution_seconds;
    f.window_unix_seconds = header_key->window_unix_seconds;
  }
  std::string_view packed;
  std::string_view value_bytes;
  if (TooLong(bytes) || !ParseCanonical(bytes, f, packed, value_bytes)) {
    if (header_key == nullptr) return DecodeGeneral(bytes, accept);
    // Rare (a sketch, another writer's encoding): protobuf parses the header and the record
    // as one message, which is what the record means.
    std::string joined;
    joined.reserve(header.size() + bytes.size());
    joined.append(header).append(bytes);
    return DecodeGeneral(joined, accept);
  }
  if (!value_bytes.empty()) {
    double value = 0;
    std::memcpy(&value, value_bytes.data(), 8);
    if (absl::Status s = ExpandValue(f, value, accept, !packed.empty()); !s.ok()) return s;
  }
  absl::StatusOr<extract::Kind> kind = CheckFields(f);
  if (!kind.ok()) return kind.status();
  // The compact form of a measure: its one value is field 17's 8 bytes (field 14 absent).
  if (!value_bytes.empty() && *kind == extract::Kind::kMeasure) packed = value_bytes;
  const std::size_t n = packed.size() / 8;
  if (absl::Status s = CheckDistributionShape(*kind, f.count, n, /*has_sketch=*/false); !s.ok()) return s;
  // Two values or more go into the storage of the bucket decoded last (kept unless it was
  // moved); a single value is held inline (Distribution), so it allocates nothing.
  std::vector<double> storage = bucket_.values.TakeStorage();
  if (n <= 1) {
    double value = 0;
    if (n == 1) std::memcpy(&value, packed.data(), sizeof value);
    if (absl::Status s = CheckExactValues(f, std::span<const double>(&value, n)); !s.ok()) return s;
    FillBucket(f, bucket_);
    if (!bucket_.values.exact()) bucket_.values = Distribution();  // else empty: TakeStorage
    bucket_.values.AdoptStorage(std::move(storage));
    if (n == 1) bucket_.values.Add(value);
  } else {
    storage.resize(n);
    std::memcpy(storage.data(), packed.data(), packed.size());
    if (absl::Status s = CheckExactValues(f, storage); !s.ok()) return s;
    FillBucket(f, bucket_);
    bucket_.values = *Distribution::FromExact(std::move(storage));  // n <= kExactCap: checked
  }
  key_ = RecordKeyView{f.tenant, f.name, f.source, *kind, f.resolution_seconds, f.window_unix_seconds};
  return absl::OkStatus();
}

absl::Status RecordReader::DecodeGeneral(std::string_view bytes, RecordForm accept) {
  Record record;
  if (TooLong(bytes) || !record.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Invalid("not a PartialBucketRecord (protobuf parse failed, " + std::to_string(bytes.size()) +
                   " bytes)");
  }
  absl::StatusOr<BucketRecord> decoded = FromProto(record, accept);
  if (!decoded.ok()) return decoded.status();
  general_key_ = std::move(decoded->key);
  bucket_ = std::move(decoded->bucket);
  key_ = RecordKeyView{general_key_.tenant,
                       general_key_.name,
                       general_key_.source,
                       general_key_.kind,
                       general_key_.resolution_seconds,
                       general_key_.window_unix_seconds};
  return absl::OkStatus();
}

ElementWriter::ElementWriter(std::string& bytes, std::vector<std::size_t>& ends, std::size_t max_bytes,
                             RecordForm form)
    : bytes_(bytes), ends_(ends), max_bytes_(max_bytes == 0 ? 1 : max_bytes), form_(form) {}

void ElementWriter::Add(const RecordKeyView& key, const PartialBucket& bucket) {
  const bool keyed = form_ == RecordForm::kKeyed;
  const std::optional<double> value =
      form_ != RecordForm::kFull ? CompactValue(key.kind, bucket) : std::nullopt;
  const std::size_t size = value ? CompactRecordSize(key, bucket, keyed) : FullRecordSize(key, bucket, keyed);
  char* p = WriteVarint(size, Open(VarintSize(size) + size, key));
  if (value) {
    WriteCompactRecord(key, bucket, *value, p, keyed);
    // The element holds a compact record: only a reader of compact elements may read it.
    if (open_compact_++ == 0 && !keyed) bytes_[start_] = kCompactBatchElementTag;
  } else {
    WriteFullRecord(key, bucket, p, keyed);
  }
  ++open_records_;
  ++records_;
}

void ElementWriter::AddPoint(const RecordKeyView& key, double value, std::int64_t unix_nanos,
                             std::string_view units) {
  // CompactValue of that bucket, without making it: Add of one value v gives count 1,
  // min = max = last = v, sum = +0 + v, sum_squares = +0 + v * v and (measures) values
  // [v], which CompactValue takes exactly when v is finite and not +0.
  if (form_ == RecordForm::kFull || !std::isfinite(value) || Bits(value) == 0) {
    PartialBucket bucket;
    bucket.Add(value, unix_nanos, units, key.kind == extract::Kind::kMeasure);
    return Add(key, bucket);
  }
  const bool keyed = form_ == RecordForm::kKeyed;
  const std::size_t size = CompactRecordSize(key, unix_nanos, units, keyed);
  char* p = Open(VarintSize(size) + size, key);
  p = WriteVarint(size, p);
  WriteCompactRecord(key, unix_nanos, units, value, p, keyed);
  if (open_compact_++ == 0 && !keyed) bytes_[start_] = kCompactBatchElementTag;
  ++open_records_;
  ++records_;
}

bool ElementWriter::SameHeader(const RecordKeyView& key) const {
  return header_resolution_ == key.resolution_seconds && header_window_ == key.window_unix_seconds &&
         base::BytesEqual(std::string_view(bytes_.data() + header_tenant_, header_tenant_size_), key.tenant);
}

char* ElementWriter::Open(std::size_t framed, const RecordKeyView& key) {
  const bool keyed = form_ == RecordForm::kKeyed;
  if (open_records_ > 0 && (bytes_.size() - start_ + framed > max_bytes_ || (keyed && !SameHeader(key)))) {
    Close();
  }
  if (open_records_ == 0) {
    start_ = bytes_.size();
    if (!keyed) {
      bytes_.push_back(kBatchElementTag);
    } else {
      // 0x02, the header's length, the header (fields 1, 5, 6).
      const std::size_t header = HeaderSize(key);
      bytes_.resize(start_ + 1 + VarintSize(header) + header);
      char* p = bytes_.data() + start_;
      *p++ = kKeyedBatchElementTag;
      p = WriteVarint(header, p);
      // The tenant's bytes follow its tag and length in the header.
      header_tenant_ = key.tenant.empty()
                           ? 0
                           : static_cast<std::size_t>(p - bytes_.data()) + 1 + VarintSize(key.tenant.size());
      header_tenant_size_ = key.tenant.size();
      header_resolution_ = key.resolution_seconds;
      header_window_ = key.window_unix_seconds;
      WriteHeader(key, p);
    }
  }
  const std::size_t at = bytes_.size();
  bytes_.resize(at + framed);  // zero-fills once; every byte is overwritten after
  return bytes_.data() + at;
}

void ElementWriter::Close() {
  if (open_records_ == 0) return;
  if (open_records_ == 1 && open_compact_ == 0 && form_ != RecordForm::kKeyed) {
    // One record: written alone, as a single-record element (no tag, no length). A compact
    // record stays framed in its compact element: alone it would be rejected.
    const char* p = bytes_.data() + start_ + 1;
    std::uint64_t size = 0;
    ReadVarint(p, bytes_.data() + bytes_.size(), size);
    bytes_.erase(start_, static_cast<std::size_t>(p - (bytes_.data() + start_)));
  }
  ends_.push_back(bytes_.size());
  open_records_ = 0;
  open_compact_ = 0;
  ++elements_;
}

namespace {
// A keyed element's header at `header`: fields 1, 5 and 6 in that order, each at most once
// (absent: its default), into `key`'s tenant, resolution and window. False for anything else.
bool ParseHeader(std::string_view header, RecordKeyView& key) {
  key = RecordKeyView{};
  key.resolution_seconds = 0;  // proto3's default (RecordKeyView's is 60)
  const char* p = header.data();
  const char* const end = p + header.size();
  std::uint64_t previous = 0;
  while (p < end) {
    std::uint64_t tag = 0;
    if (!ReadVarint(p, end, tag)) return false;
    const std::uint64_t field = tag >> 3;
    if ((field != 1 && field != 5 && field != 6) || field <= previous) return false;
    previous = field;
    std::uint64_t value = 0;
    if (field == 1) {
      if ((tag & 7) != kLengthDelimited || !ReadVarint(p, end, value) ||
          value > static_cast<std::uint64_t>(end - p)) {
        return false;
      }
      key.tenant = std::string_view(p, static_cast<std::size_t>(value));
      p += value;
      continue;
    }
    if ((tag & 7) != kVarint || !ReadVarint(p, end, value)) return false;
    // As protobuf reads them: int32 keeps the low 32 bits.
    if (field == 5) key.resolution_seconds = static_cast<std::int32_t>(static_cast<std::uint32_t>(value));
    if (field == 6) key.window_unix_seconds = static_cast<std::int64_t>(value);
  }
  return true;
}
}  // namespace

void ElementReader::Reset(std::string_view element) {
  at_ = element.data();
  end_ = element.data() + element.size();
  index_ = 0;
  const char tag = element.empty() ? '\xff' : element.front();
  keyed_ = tag == kKeyedBatchElementTag;
  compact_ = keyed_ || tag == kCompactBatchElementTag;
  batch_ = compact_ || tag == kBatchElementTag;
  single_left_ = !batch_;
  if (batch_) ++at_;
  if (!keyed_) return;
  // The header: its length, then fields 1, 5, 6. Broken: at_ stays before it, and Next
  // reports the element once (header_ with a null data()).
  header_ = {};
  const char* p = at_;
  std::uint64_t size = 0;
  if (!ReadVarint(p, end_, size) || size > static_cast<std::uint64_t>(end_ - p)) return;
  const std::string_view header(p, static_cast<std::size_t>(size));
  if (!ParseHeader(header, header_key_)) return;
  header_ = header;  // data() is not null: it points into the element
  at_ = p + size;
}

absl::StatusOr<bool> ElementReader::Next() {
  if (!batch_) {
    if (!single_left_) return false;
    single_left_ = false;
    if (absl::Status s = reader_.Decode(std::string_view(at_, static_cast<std::size_t>(end_ - at_)));
        !s.ok()) {
      return s;
    }
    return true;
  }
  if (at_ == end_) return false;
  if (keyed_ && header_.data() == nullptr) {
    const std::size_t rest = static_cast<std::size_t>(end_ - at_);
    at_ = end_;
    return Invalid("keyed batch element: its header is truncated or not fields 1, 5, 6 in order (" +
                   std::to_string(rest) + " bytes); the element skipped");
  }
  const std::uint64_t index = index_++;
  const char* p = at_;
  std::uint64_t size = 0;
  if (!ReadVarint(p, end_, size) || size > static_cast<std::uint64_t>(end_ - p)) {
    const std::size_t rest = static_cast<std::size_t>(end_ - at_);
    at_ = end_;  // The framing is lost: nothing after this point can be trusted.
    return Invalid(std::string(ElementKind()) + "batch element: record " + std::to_string(index) +
                   "'s length is truncated or past the end (" + std::to_string(rest) +
                   " bytes left); the rest of the element skipped");
  }
  at_ = p + size;
  const std::string_view record(p, static_cast<std::size_t>(size));
  const RecordForm accept = compact_ ? RecordForm::kCompact : RecordForm::kFull;
  if (absl::Status s = keyed_ ? reader_.DecodeWithHeader(header_, header_key_, record, accept)
                              : reader_.Decode(record, accept);
      !s.ok()) {
    return Invalid(std::string(ElementKind()) + "batch element: record " + std::to_string(index) + ": " +
                   std::string(s.message()));
  }
  return true;
}

absl::StatusOr<BucketRecord> DecodeRecord(std::string_view bytes) {
  RecordReader reader;
  if (absl::Status s = reader.Decode(bytes); !s.ok()) return s;
  const RecordKeyView& k = reader.key();
  return BucketRecord{BucketKey{std::string(k.tenant), std::string(k.name), std::string(k.source), k.kind,
                                k.resolution_seconds, k.window_unix_seconds},
                      std::move(reader.bucket())};
}

void AppendRecordToBatch(const BucketKey& key, const PartialBucket& bucket, std::string& out) {
  // A batch holding one record, appended: batches concatenate (partial_bucket.proto).
  // PartialBucketBatch.records = 1: tag, length, the record.
  const RecordKeyView view{
      key.tenant, key.name, key.source, key.kind, key.resolution_seconds, key.window_unix_seconds};
  const std::size_t size = RecordSize(view, bucket);
  const std::size_t at = out.size();
  out.resize(at + 1 + VarintSize(size) + size);
  char* p = out.data() + at;
  *p++ = static_cast<char>(Tag(1, kLengthDelimited));
  p = WriteVarint(size, p);
  WriteRecord(view, bucket, p);
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
    absl::StatusOr<BucketRecord> record = FromProto(*batch.mutable_records(i), RecordForm::kFull);
    if (!record.ok()) {
      return Invalid("record " + std::to_string(i) + ": " + std::string(record.status().message()));
    }
    records.push_back(*std::move(record));
  }
  return records;
}

}  // namespace drainmet::bucket
