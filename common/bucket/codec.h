#pragma once
// Partial buckets on the wire: a receiver encodes what it aggregated, an outlet decodes it
// from Redis and merges. The format is drainmet.v1.PartialBucketRecord
// (proto/drainmet/v1/partial_bucket.proto, the reference for every field and constraint);
// docs/redis-layout.md "Record encoding" says how records sit in Redis values.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
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

/// Which encodings of a record a writer may use or a reader accepts.
///   kFull: every field as it is (fields 7-11, 14, 15, 16): what any reader reads; the
///     only form allowed in a single-record element or a 0x00 batch element.
///   kCompact: also the compact form of a one-point bucket (field 17 `value` with count 1
///     and fields 7-11, 14 absent; partial_bucket.proto), allowed only inside compact batch
///     elements (kCompactBatchElementTag) and keyed batch elements (kKeyedBatchElementTag).
///     A writer uses it exactly when CompactValue says it gives the bucket back bit for bit
///     and is shorter; otherwise the full form.
///   kKeyed (ElementWriter only): kCompact, in keyed batch elements, whose records leave
///     the tenant, resolution and window (fields 1, 5, 6) to the element's header.
enum class RecordForm { kFull, kCompact, kKeyed };

/// The value `v` for which the compact form (field 17) of `bucket`, a bucket of a series
/// of kind `kind`, decodes to `bucket` bit for bit, when there is one: count 1, `bucket` is
/// exactly what PartialBucket::Add(v, ...) gives an empty bucket (sum == +0 + v and
/// sum_squares == +0 + v * v bitwise, so -0 and NaN payloads matter; min, max, last
/// bitwise v; measures' exact values bitwise [v], counts and samples none; no sketch), and
/// v finite. nullopt otherwise, and also when v is +0, whose full form (every field at its
/// default) is never longer. Thread-safe.
std::optional<double> CompactValue(extract::Kind kind, const PartialBucket& bucket);

/// The size in bytes of the record AppendRecord writes for `key` + `bucket` (`form`
/// kFull), or of the compact form when `form` is kCompact and CompactValue gives a value.
std::size_t RecordSize(const RecordKeyView& key, const PartialBucket& bucket,
                       RecordForm form = RecordForm::kFull);
/// Writes that record at `out`, which must have RecordSize(key, bucket, form) bytes;
/// returns the end of what was written (out + RecordSize). For writers that frame records
/// themselves (e.g. a Redis command's bulk strings): size, then write in place. A record
/// written with kCompact may only be stored inside a compact batch element.
char* WriteRecord(const RecordKeyView& key, const PartialBucket& bucket, char* out,
                  RecordForm form = RecordForm::kFull);

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
  /// error both are unspecified. `accept` kFull (a single-record element, a 0x00 batch
  /// element): a record carrying field 17 (`value`) is InvalidArgument naming `value`.
  /// kCompact (a record of a compact batch element): the compact form is read too.
  absl::Status Decode(std::string_view bytes, RecordForm accept = RecordForm::kFull);
  /// Decode of a record of a keyed batch element whose header is `header` (the header's
  /// bytes: fields 1, 5 and 6 only, as ElementReader checked them): the record is what
  /// protobuf parses from the header's bytes followed by the record's (a field the record
  /// carries replaces the header's). `accept` as above; key().tenant may point into
  /// `header`, which must outlive it too.
  absl::Status DecodeWithHeader(std::string_view header, const RecordKeyView& header_key,
                                std::string_view bytes, RecordForm accept);

  const RecordKeyView& key() const { return key_; }
  /// May be moved from (the next Decode fills every field again).
  PartialBucket& bucket() { return bucket_; }

 private:
  absl::Status DecodeFrom(std::string_view bytes, RecordForm accept, const RecordKeyView* header_key,
                          std::string_view header);
  absl::Status DecodeGeneral(std::string_view bytes, RecordForm accept);

  RecordKeyView key_;
  PartialBucket bucket_;
  BucketKey general_key_;  // the key's storage when protobuf's parser decoded the record
};

// ---- Redis list elements (docs/redis-layout.md "Record encoding"): an element of a
// window's list is either one PartialBucketRecord (as EncodeRecord writes it) or a batch
// element: the byte 0x00 (kBatchElementTag), then its records one after another, each as
// its length in bytes (a protobuf base-128 varint) followed by the PartialBucketRecord's
// bytes. A compact batch element is framed alike after the byte 0x01
// (kCompactBatchElementTag), and its records may use the compact form of a one-point
// bucket (RecordForm::kCompact). A record never starts with 0x00 or 0x01 (that would be
// field number 0, which protobuf forbids), so the first byte tells the three apart; a
// "\x00" or "\x01" alone is an empty batch. A reader that predates compact elements takes
// a 0x01 element for one record and rejects it (field number 0): it counts the element
// corrupt and never misreads it.
//
// A keyed batch element (0x02, kKeyedBatchElementTag) is a compact batch element of one
// tenant, resolution and window: after the byte 0x02 comes a header, its length as a
// varint followed by a PartialBucketRecord holding only fields 1, 5 and 6 (tenant,
// resolution_seconds, window_unix_seconds, in that order, each at most once), then records
// framed as in a batch that omit those fields. A record means what protobuf parses from the
// header's bytes followed by the record's. Every record of a one-window flush part shares
// them: ~18 of a compact record's ~62 bytes. Readers that predate it reject it like 0x01.

/// The first byte of a batch element.
inline constexpr char kBatchElementTag = '\x00';
/// The first byte of a compact batch element.
inline constexpr char kCompactBatchElementTag = '\x01';
/// The first byte of a keyed batch element.
inline constexpr char kKeyedBatchElementTag = '\x02';

/// The bound ElementWriter keeps by default: no element it writes is longer than this many
/// bytes, unless it holds one record alone that is longer (a sketch of a widely spread
/// measure can be ~1 MiB; then that record is its own element). 8,000 bytes: with Redis's
/// listpack headers an element fills one 8 KiB list node (list-max-listpack-size -2) and
/// one 8 KiB allocation, where 64 KiB elements cost ~5% more memory (allocator size
/// classes) for no less CPU: ~80 one-point records an element (~124 in the compact form)
/// already make Redis's cost per element (~1 µs) negligible per record
/// (docs/redis-layout.md "Record encoding").
inline constexpr std::size_t kMaxElementBytes = 8000;

/// Writes records as list elements into one reused buffer: the records go into the open
/// element until the next one would take it past `max_bytes`, which closes it and opens
/// another. With `form` kCompact (the default), a record whose bucket has a CompactValue
/// is written in the compact form, and an element holding at least one such record is a
/// compact batch element (0x01), even with one record alone; every other element is a
/// 0x00 batch element, or, when it ends up with one record, that record alone (no tag,
/// no length): what single-record writers write, and 2-3 bytes shorter. `form` kFull:
/// never the compact form (elements an outlet that predates it reads). Each closed element's
/// end offset in `bytes` is appended to `ends` (an element begins where the previous one
/// ended, or where `bytes` ended when the writer was made). `form` kKeyed: every element is
/// a keyed batch element (0x02), records in the compact form where kCompact would use it,
/// and a record of another tenant, resolution or window than the open element's closes it
/// and opens one with its own header (so add records grouped by those, as a flush part's
/// are). No allocation but the buffers' growth. Not thread-safe; `bytes` and `ends` must
/// outlive it and must not be touched by others until Close.
class ElementWriter {
 public:
  /// Appends to `bytes` and `ends`, which are not cleared. `max_bytes` > 0.
  ElementWriter(std::string& bytes, std::vector<std::size_t>& ends, std::size_t max_bytes = kMaxElementBytes,
                RecordForm form = RecordForm::kCompact);

  /// Appends `key` + `bucket` as one record (AppendRecord's encoding and contract, or the
  /// compact form; see the class comment).
  void Add(const RecordKeyView& key, const PartialBucket& bucket);
  /// Add of the one-point bucket that PartialBucket::Add(value, unix_nanos, units, key.kind
  /// is a measure) gives, byte for byte, without making it in the usual case (a finite value
  /// other than +0, written in the compact form). `unix_nanos` is the point's time.
  void AddPoint(const RecordKeyView& key, double value, std::int64_t unix_nanos, std::string_view units);
  /// Closes the open element, if any (later records open a new one). Call once all are added.
  void Close();

  /// Records added so far, and elements closed so far.
  std::uint64_t records() const { return records_; }
  std::uint64_t elements() const { return elements_; }

 private:
  /// Makes room for a record of `framed` bytes (its length varint included) in the open
  /// element, opening one (or closing a full one, or with kKeyed one of another header
  /// than `key`'s, first); returns where it goes.
  char* Open(std::size_t framed, const RecordKeyView& key);
  /// kKeyed: whether the open element's header is `key`'s tenant, resolution and window.
  bool SameHeader(const RecordKeyView& key) const;

  std::string& bytes_;
  std::vector<std::size_t>& ends_;
  std::size_t max_bytes_;
  RecordForm form_;
  std::size_t start_ = 0;         // where the open element begins in bytes_
  std::size_t open_records_ = 0;  // records in the open element; 0: none is open
  std::size_t open_compact_ = 0;  // of which in the compact form
  // kKeyed: the open element's header (its tenant at bytes_[header_tenant_, + size)).
  std::size_t header_tenant_ = 0;
  std::size_t header_tenant_size_ = 0;
  std::int32_t header_resolution_ = 0;
  std::int64_t header_window_ = 0;
  std::uint64_t records_ = 0;
  std::uint64_t elements_ = 0;
};

/// Reads the records of list elements (batch, compact batch, keyed batch or single record) one by one into a
/// RecordReader's reused storage: no allocation per record. Not thread-safe (one per
/// thread). Typical use:
///
///     reader.Reset(element);
///     for (;;) {
///       absl::StatusOr<bool> next = reader.Next();
///       if (!next.ok()) { count and log next.status(); continue; }
///       if (!*next) break;
///       use reader.key(), reader.bucket();
///     }
class ElementReader {
 public:
  /// Starts on `element` (untrusted Redis content), which must outlive the reads and the
  /// key()'s views.
  void Reset(std::string_view element);

  /// Decodes the next record of the element. true: key() and bucket() hold it (until the
  /// next call; RecordReader::Decode's contract). false: the element has no more records.
  /// InvalidArgument: either that record does not decode (a single element's only record,
  /// or one record of a batch: the following records are still read by the next call), or
  /// the batch's framing is broken (a length that is truncated or runs past the element's
  /// end) or a keyed element's header is (truncated, or not fields 1, 5, 6 in order): then
  /// the rest of the element is given up, reported by this one error, and the next call
  /// returns false. Never crashes.
  absl::StatusOr<bool> Next();

  const RecordKeyView& key() const { return reader_.key(); }
  /// May be moved from (the next record fills every field again).
  PartialBucket& bucket() { return reader_.bucket(); }

 private:
  // "keyed ", "compact " or "" (a 0x00 batch), for messages.
  const char* ElementKind() const { return keyed_ ? "keyed " : compact_ ? "compact " : ""; }

  RecordReader reader_;
  const char* at_ = nullptr;   // the next record's framing (batch) or bytes (single)
  const char* end_ = nullptr;  // the element's end
  std::uint64_t index_ = 0;    // the next record's position in the batch
  bool batch_ = false;
  bool compact_ = false;      // a compact or keyed batch element: its records may use the compact form
  bool keyed_ = false;        // a keyed batch element: header_ / header_key_ hold its header
  bool single_left_ = false;  // a single-record element whose record is still to read
  std::string_view header_;   // a keyed element's header bytes; empty data(): it is broken
  RecordKeyView header_key_;  // its tenant, resolution and window
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
