#pragma once
// Partial buckets on the wire: a receiver encodes what it aggregated, an outlet decodes it
// from Redis and merges. The format is drainmet.v1.PartialBucketRecord
// (proto/drainmet/v1/partial_bucket.proto, the reference for every field and constraint);
// docs/redis-layout.md "Record encoding" says how records sit in Redis values.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/bucket/partial_bucket.h"

namespace drainmet::bucket {

/// A decoded record: a partial bucket and its identity.
struct BucketRecord {
  BucketKey key;
  PartialBucket bucket;
};

/// Serialises `key` + `bucket` as one PartialBucketRecord into `out` (cleared first; its
/// capacity is reused). Never fails, but only a bucket that satisfies the proto's
/// constraints decodes again: count >= 1, finite values within [min, max], key
/// strings without NUL, resolution > 0, window a multiple of it, and a distribution only
/// for measures (all true of buckets built by PartialBucket::Add/Merge from points of
/// SEMANTICS §3.3). Deterministic: equal inputs give equal bytes. Thread-safe (no shared
/// state).
void EncodeRecord(const BucketKey& key, const PartialBucket& bucket, std::string& out);

/// Appends one PartialBucketRecord (the bytes EncodeRecord gives) to `out`, which is not
/// cleared: writers encode many records into one reused buffer, one allocation at most
/// (when `out` must grow). Same contract as EncodeRecord.
void AppendRecord(const BucketKey& key, const PartialBucket& bucket, std::string& out);
/// AppendRecord with the key as views.
void AppendRecord(const RecordKeyView& key, const PartialBucket& bucket, std::string& out);

/// The size in bytes of the record AppendRecord writes for `key` + `bucket`.
std::size_t RecordSize(const RecordKeyView& key, const PartialBucket& bucket);
/// Writes that record at `out`, which must have RecordSize(key, bucket) bytes; returns the
/// end of what was written (out + RecordSize). For writers that frame records themselves
/// (e.g. a Redis command's bulk strings): size, then write in place.
char* WriteRecord(const RecordKeyView& key, const PartialBucket& bucket, char* out);

/// Decodes PartialBucketRecords one after another into storage it keeps, for readers of
/// many records (an outlet merging a window): the records WriteRecord writes (fields in
/// order, no sketch) are read by hand, without a message object, the key as views into the
/// bytes; any other encoding (a sketch, another writer's field order, unknown fields) goes
/// through protobuf's parser. Either way the same checks as DecodeRecord, which is built on
/// it. Not thread-safe (one per thread).
class RecordReader {
 public:
  /// Decodes `bytes` (untrusted: InvalidArgument naming the violated constraint, never a
  /// crash). After OK, key() and bucket() hold the record until the next Decode; key()'s
  /// views point into `bytes` (or into the reader), so `bytes` must outlive them. After an
  /// error both are unspecified.
  absl::Status Decode(std::string_view bytes);

  const RecordKeyView& key() const { return key_; }
  /// May be moved from (the next Decode fills every field again).
  PartialBucket& bucket() { return bucket_; }

 private:
  absl::Status DecodeGeneral(std::string_view bytes);

  RecordKeyView key_;
  PartialBucket bucket_;
  BucketKey general_key_;  // the key's storage when protobuf's parser decoded the record
};

/// Inverse of EncodeRecord: DecodeRecord(EncodeRecord(k, b)) gives k and b back field for
/// field, doubles bit-exact and the distribution identical (same exact values in the same
/// order, or the same sketch buckets), so merging decoded records equals merging the
/// originals. `bytes` is untrusted (Redis content): InvalidArgument, with the violated
/// constraint in the message, when it does not parse or breaks any constraint of
/// partial_bucket.proto; it never crashes and never returns a bucket PartialBucket could
/// not have built. Unknown fields are ignored. Thread-safe.
absl::StatusOr<BucketRecord> DecodeRecord(std::string_view bytes);

/// Appends `key` + `bucket` as one more record of a PartialBucketBatch to `out` (not
/// cleared): the batch holding the records already in `out` and this one. Same contract as
/// EncodeRecord. Batches concatenate, so a writer may also append whole batches.
void AppendRecordToBatch(const BucketKey& key, const PartialBucket& bucket, std::string& out);

/// Every record of a serialised PartialBucketBatch, in order; empty bytes are an empty
/// batch. All or nothing: InvalidArgument naming the first bad record's position (and why)
/// when the bytes do not parse or any record breaks a constraint. Thread-safe.
absl::StatusOr<std::vector<BucketRecord>> DecodeBatch(std::string_view bytes);

}  // namespace drainmet::bucket
