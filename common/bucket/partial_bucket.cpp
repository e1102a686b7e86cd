#include "common/bucket/partial_bucket.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/strings/string_view.h"

namespace drainmet::bucket {
namespace {

constexpr std::uint64_t kSignBit = std::uint64_t{1} << 63;

void TakeSmallerUnits(std::string_view candidate, std::string& units) {
  // Assign only on change, so the common case (same units every point) never allocates.
  if (!candidate.empty() && (units.empty() || candidate < std::string_view(units))) units.assign(candidate);
}

// Writes the low `kBytes` bytes of `value` at `out`, most significant first (the
// compiler makes this one byte swap and store).
template <int kBytes>
void StoreBigEndian(std::uint64_t value, char* out) {
  for (int i = 0; i < kBytes; ++i) out[i] = static_cast<char>((value >> ((kBytes - 1 - i) * 8)) & 0xff);
}

// Reads `kBytes` bytes at `in`, most significant first (StoreBigEndian's inverse; also
// one load and byte swap).
template <int kBytes>
std::uint64_t ReadBigEndian(const char* in) {
  std::uint64_t value = 0;
  for (int i = 0; i < kBytes; ++i) value = (value << 8) | static_cast<unsigned char>(in[i]);
  return value;
}

// Floor division for b > 0.
std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if (a % b != 0 && a < 0) --q;
  return q;
}

}  // namespace

void PartialBucket::Add(double value, std::int64_t unix_nanos, std::string_view point_units,
                        bool keep_distribution) {
  ++count;
  sum += value;
  sum_squares += value * value;
  if (TotalLess(value, min)) min = value;
  if (TotalLess(max, value)) max = value;
  // `>=`: on an equal timestamp the later point of the request wins (SEMANTICS §6.3).
  if (unix_nanos >= last_unix_nanos) {
    last = value;
    last_unix_nanos = unix_nanos;
  }
  TakeSmallerUnits(point_units, units);
  if (keep_distribution) values.Add(value);
}

void PartialBucket::Merge(const PartialBucket& other) {
  // An empty bucket is the identity; this also keeps its default `last` out of ties.
  if (other.count == 0) return;
  if (count == 0) {
    *this = other;
    return;
  }
  count += other.count;
  sum += other.sum;
  sum_squares += other.sum_squares;
  if (TotalLess(other.min, min)) min = other.min;
  if (TotalLess(max, other.max)) max = other.max;
  // Across requests arrival order means nothing: on equal timestamps the greater value
  // wins, so any merge order and grouping agrees (SEMANTICS §6.3).
  if (other.last_unix_nanos > last_unix_nanos ||
      (other.last_unix_nanos == last_unix_nanos && TotalLess(last, other.last))) {
    last = other.last;
    last_unix_nanos = other.last_unix_nanos;
  }
  TakeSmallerUnits(other.units, units);
  values.Merge(other.values);
}

namespace {
// EncodeBucketKey's size, and its bytes written at `p` (that many).
std::size_t BucketKeySize(std::string_view tenant, std::string_view name, std::string_view source) {
  return tenant.size() + name.size() + source.size() + 3 + kEncodedKeyTailBytes;
}
void WriteBucketKey(std::string_view tenant, std::string_view name, std::string_view source,
                    extract::Kind kind, std::int32_t resolution_seconds, std::int64_t window_unix_seconds,
                    char* p) {
  const auto put = [&p](std::string_view bytes) {
    if (!bytes.empty()) std::memcpy(p, bytes.data(), bytes.size());
    p += bytes.size();
    *p++ = '\0';
  };
  put(tenant);
  put(name);
  put(source);
  *p++ = static_cast<char>(kind);
  StoreBigEndian<4>(static_cast<std::uint32_t>(resolution_seconds), p);
  // Flipping the sign bit maps int64 order onto unsigned byte order.
  StoreBigEndian<8>(static_cast<std::uint64_t>(window_unix_seconds) ^ kSignBit, p + 4);
}
}  // namespace

void EncodeBucketKey(std::string_view tenant, std::string_view name, std::string_view source,
                     extract::Kind kind, std::int32_t resolution_seconds, std::int64_t window_unix_seconds,
                     std::string& out) {
  // Sized once and filled with memcpy: this runs once per point (BucketMap::Add).
  out.resize(BucketKeySize(tenant, name, source));
  WriteBucketKey(tenant, name, source, kind, resolution_seconds, window_unix_seconds, out.data());
}

bool KeyViewOf(std::string_view encoded, RecordKeyView* key) {
  if (encoded.size() < 3 + kEncodedKeyTailBytes) return false;
  const std::string_view strings = encoded.substr(0, encoded.size() - kEncodedKeyTailBytes);
  const std::string_view tail = encoded.substr(strings.size());
  const std::size_t end_tenant = strings.find('\0');
  if (end_tenant == std::string_view::npos) return false;
  const std::size_t end_name = strings.find('\0', end_tenant + 1);
  if (end_name == std::string_view::npos) return false;
  const std::size_t end_source = strings.find('\0', end_name + 1);
  if (end_source != strings.size() - 1) return false;

  const auto kind = static_cast<unsigned char>(tail[0]);
  if (kind > static_cast<unsigned char>(extract::Kind::kSample)) return false;
  const auto resolution =
      static_cast<std::int32_t>(static_cast<std::uint32_t>(ReadBigEndian<4>(tail.data() + 1)));
  if (resolution <= 0) return false;

  key->tenant = strings.substr(0, end_tenant);
  key->name = strings.substr(end_tenant + 1, end_name - end_tenant - 1);
  key->source = strings.substr(end_name + 1, end_source - end_name - 1);
  key->kind = static_cast<extract::Kind>(kind);
  key->resolution_seconds = resolution;
  key->window_unix_seconds = static_cast<std::int64_t>(ReadBigEndian<8>(tail.data() + 5) ^ kSignBit);
  return true;
}

bool DecodeBucketKey(std::string_view encoded, BucketKey* key) {
  RecordKeyView view;
  if (!KeyViewOf(encoded, &view)) return false;
  key->tenant.assign(view.tenant);
  key->name.assign(view.name);
  key->source.assign(view.source);
  key->kind = view.kind;
  key->resolution_seconds = view.resolution_seconds;
  key->window_unix_seconds = view.window_unix_seconds;
  return true;
}

std::int64_t WindowOf(std::int64_t unix_nanos, std::int32_t resolution_seconds) {
  const std::int64_t seconds = FloorDiv(unix_nanos, 1'000'000'000);
  const std::int64_t resolution = resolution_seconds > 0 ? resolution_seconds : 1;
  return FloorDiv(seconds, resolution) * resolution;
}

void EncodedKey::Assign(std::string_view bytes) {
  size_ = static_cast<std::uint32_t>(bytes.size());
  if (bytes.size() <= kInlineBytes) {
    heap_.reset();
    std::memcpy(inline_, bytes.data(), bytes.size());
  } else {
    heap_ = std::make_unique<char[]>(bytes.size());
    std::memcpy(heap_.get(), bytes.data(), bytes.size());
  }
}

void EncodedKey::Take(EncodedKey&& other) noexcept {
  size_ = other.size_;
  heap_ = std::move(other.heap_);
  if (heap_ == nullptr) std::memcpy(inline_, other.inline_, size_);
  other.size_ = 0;
}

void BucketMap::Add(std::string_view tenant, std::int32_t resolution_seconds, const extract::Point& point) {
  const std::int64_t window = WindowOf(point.time_unix_nanos, resolution_seconds);
  if (log_points_) {
    if (AddToLog(tenant, resolution_seconds, window, point)) return;  // else the key is in key_buffer_
  } else {
    EncodeBucketKey(tenant, point.name, point.source, point.kind, resolution_seconds, window, key_buffer_);
  }
  // One hash and probe: the slot of a new key is filled in place (lazy_emplace builds the
  // EncodedKey only when the key is not there yet).
  bool inserted = false;
  const std::string_view key(key_buffer_);
  auto it = map_.lazy_emplace(key, [&](const Map::constructor& construct) {
    construct(std::piecewise_construct, std::forward_as_tuple(key), std::forward_as_tuple());
    inserted = true;
  });
  if (inserted && point.kind == extract::Kind::kMeasure && !spare_values_.empty()) {
    it->second.values.AdoptStorage(std::move(spare_values_.back()));
    spare_values_.pop_back();
  }
  it->second.Add(point.value, point.time_unix_nanos, point.units, point.kind == extract::Kind::kMeasure);
}

bool BucketMap::AddToLog(std::string_view tenant, std::int32_t resolution_seconds,
                         std::int64_t window_unix_seconds, const extract::Point& point) {
  if (log_index_.empty()) {
    // Zeroed here (clear() and FoldLog only empty it, keeping its memory), on the thread
    // that fills it: one sequential pass brings the index into this core's cache just
    // before the request's random probes into it.
    log_index_.assign(std::size_t{1} << kLogIndexBits, 0);
  }
  // The key is written where a logged point's goes (at the log's end), and taken back
  // into key_buffer_ when the table gets the point.
  const std::size_t at = log_bytes_.size();
  const std::size_t key_size = BucketKeySize(tenant, point.name, point.source);
  const auto to_table = [&] {
    key_buffer_.assign(log_bytes_, at, key_size);
    log_bytes_.resize(at);
    return false;
  };
  log_bytes_.resize(at + key_size + point.units.size());
  WriteBucketKey(tenant, point.name, point.source, point.kind, resolution_seconds, window_unix_seconds,
                 log_bytes_.data() + at);
  if (!point.units.empty())
    std::memcpy(log_bytes_.data() + at + key_size, point.units.data(), point.units.size());
  const std::string_view key(log_bytes_.data() + at, key_size);
  const std::uint64_t hash = HashKeyBytes(key);
  std::uint16_t& slot = log_index_[hash >> (64 - kLogIndexBits)];
  if (slot != 0) {
    LoggedPoint& logged = log_[slot - 1];
    if (logged.key_size == key.size() &&
        std::memcmp(log_bytes_.data() + logged.key_offset, key.data(), key.size()) == 0) {
      // The series comes again: its logged point goes into the table first, then this one.
      // The slot keeps pointing at the emptied entry, so its later points go to the table.
      map_.try_emplace(key, LoggedBucket(logged));
      logged.key_size = 0;
      --live_logged_;
    }
    // Else another series holds (or held) the slot: the table takes this one, and so
    // every later point of its series, which finds the slot taken too.
    return to_table();
  }
  // Offsets are 32-bit: a log of 4 GiB (never: bodies are megabytes) leaves the rest to the table.
  if (log_bytes_.size() > std::numeric_limits<std::uint32_t>::max()) return to_table();
  LoggedPoint& logged = log_.emplace_back();
  logged.key_offset = static_cast<std::uint32_t>(at);
  logged.key_size = static_cast<std::uint32_t>(key.size());
  logged.units_size = static_cast<std::uint32_t>(point.units.size());
  logged.tenant_size = static_cast<std::uint32_t>(tenant.size());
  logged.name_size = static_cast<std::uint32_t>(point.name.size());
  logged.key_hash = hash;
  logged.kind = point.kind;
  logged.resolution_seconds = resolution_seconds;
  logged.window_unix_seconds = window_unix_seconds;
  logged.value = point.value;
  logged.time_unix_nanos = point.time_unix_nanos;
  slot = static_cast<std::uint16_t>(log_.size());
  ++live_logged_;
  return true;
}

PartialBucket BucketMap::LoggedBucket(const LoggedPoint& logged) const {
  PartialBucket bucket;
  bucket.Add(logged.value, logged.time_unix_nanos, LoggedUnits(logged),
             logged.kind == extract::Kind::kMeasure);
  return bucket;
}

void BucketMap::FoldLog() {
  for (const LoggedPoint& logged : log_) {
    if (logged.key_size == 0) continue;
    // Always new to the table: a series is either logged or in the table.
    map_.try_emplace(std::string_view(log_bytes_).substr(logged.key_offset, logged.key_size),
                     LoggedBucket(logged));
  }
  log_.clear();
  log_bytes_.clear();
  live_logged_ = 0;
  log_index_.clear();
}

std::uint64_t BucketMap::points() const {
  std::uint64_t points = live_logged_;
  for (const auto& entry : map_) points += entry.second.count;
  return points;
}

void BucketMap::clear() {
  if (!log_.empty()) {
    log_.clear();
    log_bytes_.clear();
    live_logged_ = 0;
    log_index_.clear();
  }
  // Erasing leaves tombstones that the next inserts reclaim in place (no reallocation
  // while the table is at most 25/32 full); the slot array stays.
  constexpr std::size_t kMaxSpare = 1024;
  for (auto it = map_.begin(); it != map_.end();) {
    if (spare_values_.size() < kMaxSpare) {
      std::vector<double> storage = it->second.values.TakeStorage();
      if (storage.capacity() > 0 && storage.capacity() <= Distribution::kExactCap) {
        spare_values_.push_back(std::move(storage));
      }
    }
    map_.erase(it++);
  }
}

namespace {
// This thread's spare table (BucketMap::GiveBack), if any.
thread_local std::optional<BucketMap> spare_table;
}  // namespace

BucketMap BucketMap::TakeSpare() {
  if (!spare_table.has_value()) return BucketMap();
  BucketMap table = std::move(*spare_table);
  spare_table.reset();
  return table;
}

void BucketMap::GiveBack(BucketMap&& table) {
  if (table.map_.capacity() > kMaxSpareSlots || table.log_.capacity() > kMaxSpareSlots ||
      table.log_bytes_.capacity() > kMaxSpareSlots * 128) {
    BucketMap dropped = std::move(table);  // freed now
    return;
  }
  table.clear();
  spare_table.emplace(std::move(table));
}

void BucketMap::Merge(BucketMap&& other) {
  other.map();  // its logged points too
  if (!log_.empty()) FoldLog();
  if (map_.empty()) {
    map_ = std::move(other.map_);
  } else {
    for (auto& [key, bucket] : other.map_) MergeBucket(key, std::move(bucket));
  }
  other.map_.clear();
}

void BucketMap::MergeBucket(std::string_view encoded_key, PartialBucket&& bucket) {
  if (!log_.empty()) FoldLog();  // the key may be logged
  // One hash and probe either way (the outlet inserts nearly every key it merges): the key
  // is built from the view, and the bucket moved, only when inserted.
  auto [it, inserted] = map_.try_emplace(encoded_key, std::move(bucket));
  if (!inserted) it->second.Merge(bucket);
}

std::vector<ClosedBucket> BucketMap::TakeAll() {
  if (!log_.empty()) FoldLog();
  std::vector<Map::value_type*> entries;
  entries.reserve(map_.size());
  for (auto& entry : map_) entries.push_back(&entry);
  std::sort(entries.begin(), entries.end(),
            [](const Map::value_type* a, const Map::value_type* b) { return a->first < b->first; });
  std::vector<ClosedBucket> closed;
  closed.reserve(entries.size());
  for (Map::value_type* entry : entries) {
    ClosedBucket out;
    // Keys come from EncodeBucketKey unless a caller passed garbage to MergeBucket; such a
    // bucket has no identity to emit under and is dropped.
    const bool decoded = DecodeBucketKey(entry->first, &out.key);
    assert(decoded);
    if (!decoded) continue;
    out.bucket = std::move(entry->second);
    closed.push_back(std::move(out));
  }
  map_.clear();
  return closed;
}

}  // namespace drainmet::bucket
