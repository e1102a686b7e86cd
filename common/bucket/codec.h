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
