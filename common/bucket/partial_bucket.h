#pragma once
// What one request (or one receiver flush) saw of one series in one window, and the
// table of them. Buckets merge exactly and associatively (DESIGN.md rule 4, SEMANTICS §6).

#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "common/bucket/distribution.h"
#include "common/extract/extract.h"

namespace drainmet::bucket {

/// The aggregate of one bucket (SEMANTICS §6.3). Every kind keeps count/sum/min/max/
/// sum_squares/last; only measures keep the distribution. Not thread-safe.
struct PartialBucket {
  std::uint64_t count = 0;  ///< Points in the bucket.
  double sum = 0;
  double sum_squares = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  double last = 0;  ///< Value with the greatest last_unix_nanos (samples).
  std::int64_t last_unix_nanos = std::numeric_limits<std::int64_t>::min();
  std::string units;    ///< Lexicographically smallest non-empty units seen (§6.1).
  Distribution values;  ///< Measures only.

  /// Adds one point of the same request. On an equal timestamp the later call wins
  /// (arrival order within one request, §6.3). `keep_distribution` for measures.
  void Add(double value, std::int64_t unix_nanos, std::string_view point_units, bool keep_distribution);

  /// Merges a partial bucket of another request: on equal timestamps the greater `last`
  /// wins, so the result does not depend on merge order or grouping.
  void Merge(const PartialBucket& other);
};

/// The identity of a bucket: series (tenant, name, source, kind) + resolution + window.
struct BucketKey {
  std::string tenant;
  std::string name;
  std::string source;  ///< Empty: the series has no source.
  extract::Kind kind = extract::Kind::kMeasure;
  std::int32_t resolution_seconds = 60;
  std::int64_t window_unix_seconds = 0;  ///< floor(t / resolution) * resolution (§6.2).

  bool operator==(const BucketKey& other) const = default;
};

/// Bytes of an encoded key's fixed-width tail: kind (1), resolution (4), window (8).
inline constexpr std::size_t kEncodedKeyTailBytes = 1 + 4 + 8;

/// Encodes a key as one string (tenant NUL name NUL source NUL kind resolution window, the
/// integers in fixed-width big-endian so that encoded keys sort by window within a
/// series; the window with its sign bit flipped, so negative windows sort first). Clears
/// `out`, then appends: no allocation when `out` has the capacity. tenant, name and source
/// must not contain NUL.
void EncodeBucketKey(std::string_view tenant, std::string_view name, std::string_view source,
                     extract::Kind kind, std::int32_t resolution_seconds, std::int64_t window_unix_seconds,
                     std::string& out);
/// A BucketKey's fields as views, without owning them: for readers and writers that hold
/// the key elsewhere (an encoded key, a table). Valid while what it views is.
struct RecordKeyView {
  std::string_view tenant;
  std::string_view name;
  std::string_view source;
  extract::Kind kind = extract::Kind::kMeasure;
  std::int32_t resolution_seconds = 60;
  std::int64_t window_unix_seconds = 0;
};

/// The fields of an encoded BucketKey (EncodeBucketKey) as views into `encoded`, without
/// copying, for readers that only look. False when `encoded` is not such a key (wrong size
/// or number of NULs, kind out of range, resolution <= 0); `key` is untouched then.
bool KeyViewOf(std::string_view encoded, RecordKeyView* key);

/// Inverse of EncodeBucketKey: KeyViewOf, copied into `key`. False, and `key` untouched,
/// exactly when KeyViewOf fails.
bool DecodeBucketKey(std::string_view encoded, BucketKey* key);
/// The window of a point: floor(t / resolution) * resolution, Unix seconds (§6.2), also
/// for negative t. A resolution <= 0 is treated as 1.
std::int64_t WindowOf(std::int64_t unix_nanos, std::int32_t resolution_seconds);

/// A closed bucket handed to emission.
struct ClosedBucket {
  BucketKey key;
  PartialBucket bucket;
};

/// The bytes of an encoded BucketKey (EncodeBucketKey), inline up to kInlineBytes (nearly
/// every key: tenant, name and source of a few dozen bytes plus 13 fixed bytes) and on the
/// heap beyond, so a table of a request's buckets allocates nothing per bucket. Converts
/// implicitly to std::string_view; compares, orders and hashes as its bytes.
class EncodedKey {
 public:
  static constexpr std::size_t kInlineBytes = 76;

  EncodedKey() = default;
  EncodedKey(std::string_view bytes) { Assign(bytes); }  // NOLINT: implicit by design
  EncodedKey(const EncodedKey& other) { Assign(other.view()); }
  EncodedKey(EncodedKey&& other) noexcept { Take(std::move(other)); }
  EncodedKey& operator=(const EncodedKey& other) {
    if (this != &other) Assign(other.view());
    return *this;
  }
  EncodedKey& operator=(EncodedKey&& other) noexcept {
    if (this != &other) Take(std::move(other));
    return *this;
  }
  ~EncodedKey() = default;

  std::string_view view() const { return {heap_ != nullptr ? heap_.get() : inline_, size_}; }
  operator std::string_view() const { return view(); }  // NOLINT: implicit by design

  friend bool operator==(const EncodedKey& a, const EncodedKey& b) { return a.view() == b.view(); }
  friend bool operator<(const EncodedKey& a, const EncodedKey& b) { return a.view() < b.view(); }
  template <typename H>
  friend H AbslHashValue(H h, const EncodedKey& key) {
    const std::string_view v = key.view();
    return H::combine(std::move(h), absl::string_view(v.data(), v.size()));
  }

 private:
  void Assign(std::string_view bytes);
  void Take(EncodedKey&& other) noexcept;

  std::uint32_t size_ = 0;
  char inline_[kInlineBytes];
  std::unique_ptr<char[]> heap_;  // Set when size_ > kInlineBytes.
};

namespace internal {
// Its address seeds HashKeyBytes: it differs from process to process (ASLR), so which
// names collide cannot be worked out from outside.
inline const char kHashSeedAnchor = 0;
}  // namespace internal

/// A 64-bit hash of `bytes` for the tables of encoded keys: 16 bytes at a time in two
/// independent lanes (so the multiplies overlap), each 8-byte word mixed in by a
/// 64x64->128-bit multiply whose halves are folded, and the lanes folded together the same
/// way, so every output bit depends on every input bit (absl's flat_hash_map reads both
/// the low 7 bits and the high bits). Inline: the tables hash one key per point, and
/// Debian's Abseil hashes strings in a shared library behind two calls. Seeded per process
/// like absl::Hash: equal bytes hash equal within a process only (nothing depends on table
/// order: TakeAll sorts). Pure within a process; thread-safe.
inline std::uint64_t HashKeyBytes(std::string_view bytes) {
  static_assert(std::endian::native == std::endian::little, "the tail load assumes little-endian");
  constexpr std::uint64_t kMultiplier = 0x9E3779B97F4A7C15u;  // 2^64 / golden ratio, odd.
  constexpr std::uint64_t kOtherMultiplier = 0xD6E8FEB86659FD93u;
  const auto mix = [](std::uint64_t a, std::uint64_t b) {
    const unsigned __int128 product = static_cast<unsigned __int128>(a) * b;
    return static_cast<std::uint64_t>(product) ^ static_cast<std::uint64_t>(product >> 64);
  };
  const auto load = [](const char* p, std::size_t n) {
    std::uint64_t word = 0;
    std::memcpy(&word, p, n);
    return word;
  };
  const char* p = bytes.data();
  std::size_t n = bytes.size();
  const auto seed = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(&internal::kHashSeedAnchor));
  std::uint64_t a = mix(seed ^ n, kMultiplier);
  std::uint64_t b = mix(seed + n, kOtherMultiplier);
  for (; n >= 16; p += 16, n -= 16) {
    a = mix(a ^ load(p, 8), kMultiplier);
    b = mix(b ^ load(p + 8, 8), kOtherMultiplier);
  }
  if (n >= 8) {
    a = mix(a ^ load(p, 8), kMultiplier);
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    // The last 1-7 bytes. A memcpy of a variable size compiled to a byte loop whose
    // stores the load then waited for (10% of BucketMap::Add): take the 8 bytes that end
    // the key instead and shift out those already mixed in (little-endian).
    std::uint64_t tail = 0;
    if (bytes.size() >= 8) {
      tail = load(bytes.data() + bytes.size() - 8, 8) >> (8 * (8 - n));
    } else {
      for (std::size_t i = 0; i < n; ++i) tail |= std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
    }
    b = mix(b ^ tail, kOtherMultiplier);
  }
  return mix(a ^ kOtherMultiplier, b ^ kMultiplier);
}

/// Transparent hash and equality of EncodedKey and std::string_view (lookups by bytes).
struct EncodedKeyHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view bytes) const { return HashKeyBytes(bytes); }
};
struct EncodedKeyEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

/// A point of a series seen once so far in a BucketMap's point log (set_log_points): its
/// encoded key (EncodeBucketKey) at `key_offset` in the log's bytes, its units right after
/// it. It stands for a one-point bucket: PartialBucket::Add of value, time and units.
struct LoggedPoint {
  std::uint32_t key_offset = 0;
  std::uint32_t key_size = 0;  ///< 0: the point has moved into the table (its series came again).
  std::uint32_t units_size = 0;
  std::uint32_t tenant_size = 0;  ///< The key's fields: tenant NUL name NUL source NUL tail.
  std::uint32_t name_size = 0;
  std::uint64_t key_hash = 0;  ///< HashKeyBytes of the encoded key.
  extract::Kind kind = extract::Kind::kMeasure;
  std::int32_t resolution_seconds = 0;
  std::int64_t window_unix_seconds = 0;
  double value = 0;
  std::int64_t time_unix_nanos = 0;
};

/// Partial buckets keyed by encoded BucketKey: the pre-aggregation table of one request,
/// of one replay, or of the memory store. Not thread-safe.
///
/// Point log (set_log_points): at high cardinality a request sees nearly every series once,
/// and a table slot per point (hash, probe, ~224 bytes written, read back later) costs more
/// than the point. With the log on, the first point of a series is appended to a log
/// instead (its key and value, ~70 bytes, written in order), and only a series that comes
/// again in the same request moves into the table, its logged point first. So every bucket
/// is the PartialBucket::Add of its points in order, exactly as without the log, and no
/// series is ever in both. A direct-mapped index of 2^14 slots over the key's hash finds
/// the logged point of a series that comes again; a point whose slot holds another series
/// goes to the table at once. Readers that want buckets call map(), which moves the log
/// into the table first; store::PreAggregator reads the log itself (logged_points,
/// log_bytes, table).
class BucketMap {
 public:
  using Map = absl::flat_hash_map<EncodedKey, PartialBucket, EncodedKeyHash, EncodedKeyEq>;

  /// Adds one point of `tenant` at `resolution_seconds` (window from point.time_unix_nanos).
  void Add(std::string_view tenant, std::int32_t resolution_seconds, const extract::Point& point);
  /// Turns the point log on or off for the points added from now on (see the class
  /// comment). Off by default; clear() keeps the setting.
  void set_log_points(bool on) { log_points_ = on; }
  bool log_points() const { return log_points_; }
  /// The log: the first points of series seen once (LoggedPoint; key_size 0: moved into
  /// the table), in the order added, and the bytes their offsets point into. Empty after
  /// map() or clear().
  const std::vector<LoggedPoint>& logged_points() const { return log_; }
  std::string_view log_bytes() const { return log_bytes_; }
  /// A logged point as the one-point bucket it stands for, its key's fields (views into
  /// log_bytes()) and its units.
  PartialBucket LoggedBucket(const LoggedPoint& logged) const;
  RecordKeyView LoggedKey(const LoggedPoint& logged) const {
    // The encoded key: tenant NUL name NUL source NUL, then kind, resolution and window
    // (kEncodedKeyTailBytes), whose values the LoggedPoint holds.
    const char* key = log_bytes_.data() + logged.key_offset;
    const std::size_t source_at = logged.tenant_size + logged.name_size + 2;
    RecordKeyView view;
    view.tenant = std::string_view(key, logged.tenant_size);
    view.name = std::string_view(key + logged.tenant_size + 1, logged.name_size);
    view.source = std::string_view(key + source_at, logged.key_size - kEncodedKeyTailBytes - 1 - source_at);
    view.kind = logged.kind;
    view.resolution_seconds = logged.resolution_seconds;
    view.window_unix_seconds = logged.window_unix_seconds;
    return view;
  }
  std::string_view LoggedUnits(const LoggedPoint& logged) const {
    return std::string_view(log_bytes_.data() + logged.key_offset + logged.key_size, logged.units_size);
  }
  /// The table without the log: the series that came more than once, or whose index slot
  /// was taken, for readers that read the log themselves.
  Map& table() { return map_; }
  /// Points added since the last clear(): the table's counts plus the live logged points.
  std::uint64_t points() const;
  /// Merges every bucket of `other` into this one (PartialBucket::Merge).
  void Merge(BucketMap&& other);
  /// Merges one encoded bucket into this one. `encoded_key` must come from
  /// EncodeBucketKey (a key that does not decode is dropped by TakeAll).
  void MergeBucket(std::string_view encoded_key, PartialBucket&& bucket);

  /// Buckets: the table's and the live logged points'.
  std::size_t size() const { return map_.size() + live_logged_; }
  bool empty() const { return size() == 0; }
  /// Every bucket: moves the logged points into the table first (the log is empty after).
  Map& map() {
    if (!log_.empty()) FoldLog();
    return map_;
  }
  /// The table as it is, without logged points (call the non-const map() first when the
  /// log may be on).
  const Map& map() const { return map_; }
  /// Empties the table and keeps its capacity, so a table reused for request after
  /// request stops allocating its slot array (absl's clear() frees it past 127 slots),
  /// and keeps the measures' value vectors for its next buckets (at most 1024 of them).
  /// Empties the log too, keeping its buffers.
  void clear();

  /// Moves out every bucket, decoded, sorted by key (tenant, name, source, kind, ...).
  std::vector<ClosedBucket> TakeAll();

  /// A table for the calling thread's next request: the one this thread last gave back
  /// (GiveBack), empty with its slot array kept, so the request fills memory this core
  /// has in cache; else a new, empty table. Thread-safe (per-thread state).
  static BucketMap TakeSpare();
  /// Empties `table` (clear()) and keeps it for this thread's next TakeSpare, unless its
  /// slot array is larger than kMaxSpareSlots, or its log longer than that many points or
  /// 128 bytes each (then it is freed). Thread-safe.
  static void GiveBack(BucketMap&& table);
  /// 32,768 slots of ~224 bytes: ~7 MiB kept per thread at most (a request of ~100 KiB
  /// fills a few thousand buckets).
  static constexpr std::size_t kMaxSpareSlots = 1 << 15;

 private:
  /// 2^14 slots of 2 bytes: 32 KiB, within L1 (48 KiB here) while a request fills it. A
  /// request of a few thousand series leaves most slots free, so few of its points go to
  /// the table for a collision.
  static constexpr std::size_t kLogIndexBits = 14;
  /// Logs the point (true), or, when its series is logged already, moves that point into
  /// the table (false: the table takes this one too), or leaves it to the table when its
  /// slot holds another series (false). False: its encoded key is in key_buffer_.
  bool AddToLog(std::string_view tenant, std::int32_t resolution_seconds, std::int64_t window_unix_seconds,
                const extract::Point& point);
  /// Moves every live logged point into the table and empties the log.
  void FoldLog();

  Map map_;
  bool log_points_ = false;
  std::vector<LoggedPoint> log_;
  std::string log_bytes_;
  std::size_t live_logged_ = 0;
  /// Per slot (key hash mod 2^kLogIndexBits): 1 + the index in log_ of the point there; 0 free.
  /// Empty until AddToLog zeroes it for the request's first logged point.
  std::vector<std::uint16_t> log_index_;
  // Each logged point holds its own slot, so 1 + its index fits a slot's 16 bits.
  static_assert((std::size_t{1} << kLogIndexBits) <= std::numeric_limits<std::uint16_t>::max());
  std::string key_buffer_;
  std::vector<std::vector<double>> spare_values_;  // emptied vectors for new measure buckets
};

}  // namespace drainmet::bucket
