#include "common/store/memory_store.h"

#include <algorithm>
#include <tuple>

namespace drainmet::store {
namespace {

std::string FrameKey(std::string_view tenant, std::string_view frame_id) {
  std::string key;
  key.reserve(tenant.size() + 1 + frame_id.size());
  key.append(tenant).push_back('\0');
  key.append(frame_id);
  return key;
}

/// The key of series_: one tenant's window of one resolution.
std::string SeriesKey(std::string_view tenant, std::int64_t window, std::int32_t resolution) {
  std::string key;
  key.reserve(tenant.size() + 24);
  key.append(tenant).push_back('\0');
  key.append(std::to_string(window)).push_back('\0');
  key.append(std::to_string(resolution));
  return key;
}

}  // namespace

MemoryStore::MemoryStore(const base::Clock& clock, const MemoryStoreOptions& options)
    : clock_(clock), options_(options) {}

std::int64_t MemoryStore::CloseTimeNanos(std::int64_t window, std::int32_t resolution) const {
  return (window + resolution + options_.grace_seconds) * base::kNanosPerSecond;
}

void MemoryStore::ExpireFramesLocked(std::int64_t now) {
  while (!frames_fifo_.empty() &&
         (frames_fifo_.front().first <= now || frames_fifo_.size() > options_.dedupe_max_entries)) {
    auto it = frames_.find(frames_fifo_.front().second);
    // A re-inserted id has a later expiry; only erase the entry this record made.
    if (it != frames_.end() && it->second == frames_fifo_.front().first) frames_.erase(it);
    frames_fifo_.pop_front();
  }
}

bool MemoryStore::SeenLocked(const std::string& key, std::int64_t now) const {
  auto it = frames_.find(key);
  return it != frames_.end() && it->second > now;
}

absl::StatusOr<bool> MemoryStore::SeenFrame(std::string_view tenant, std::string_view frame_id) {
  if (frame_id.empty()) return false;
  const std::string key = FrameKey(tenant, frame_id);
  std::lock_guard<std::mutex> lock(mu_);
  return SeenLocked(key, clock_.NowUnixNanos());
}

absl::StatusOr<IngestResult> MemoryStore::Ingest(std::string_view tenant, std::string_view frame_id,
                                                 bucket::BucketMap& partials) {
  IngestResult result;
  const std::int64_t now = clock_.NowUnixNanos();
  std::string frame_key;
  if (!frame_id.empty()) frame_key = FrameKey(tenant, frame_id);

  std::lock_guard<std::mutex> lock(mu_);
  if (!frame_key.empty()) {
    ExpireFramesLocked(now);
    if (SeenLocked(frame_key, now)) {
      result.duplicate = true;
      partials.clear();
      return result;
    }
    const std::int64_t expiry = now + options_.dedupe_window_seconds * base::kNanosPerSecond;
    frames_[frame_key] = expiry;
    frames_fifo_.emplace_back(expiry, frame_key);
    ExpireFramesLocked(now);
  }

  const std::int64_t closed_through = std::max(now, closed_through_nanos_);
  bucket::BucketKey key;
  for (auto& [encoded, partial] : partials.map()) {
    if (!bucket::DecodeBucketKey(encoded, &key)) continue;  // Cannot happen: we encoded it.
    const std::int64_t close = CloseTimeNanos(key.window_unix_seconds, key.resolution_seconds);
    if (close <= closed_through) {
      result.late_points += partial.count;
      continue;
    }
    auto it = open_.map().find(encoded);
    if (it == open_.map().end()) {
      if (open_.size() >= options_.max_open_buckets) {
        result.series_limit_points += partial.count;
        continue;
      }
      std::uint64_t& series = series_[SeriesKey(key.tenant, key.window_unix_seconds, key.resolution_seconds)];
      if (series >= options_.max_series_per_tenant) {
        result.series_limit_points += partial.count;
        continue;
      }
      ++series;
      closing_[close].emplace_back(encoded.view());
      result.applied_points += partial.count;
      open_.map().emplace(encoded, std::move(partial));
      continue;
    }
    result.applied_points += partial.count;
    it->second.Merge(partial);
  }
  partials.clear();
  return result;
}

absl::StatusOr<std::vector<bucket::ClosedBucket>> MemoryStore::TakeClosed(bool all) {
  const std::int64_t now = clock_.NowUnixNanos();
  std::vector<bucket::ClosedBucket> closed;
  std::lock_guard<std::mutex> lock(mu_);
  auto end = all ? closing_.end() : closing_.upper_bound(now);
  for (auto it = closing_.begin(); it != end; ++it) {
    closed_through_nanos_ = std::max(closed_through_nanos_, it->first);
    for (const std::string& encoded : it->second) {
      auto node = open_.map().extract(encoded);
      if (node.empty()) continue;
      bucket::ClosedBucket c;
      if (!bucket::DecodeBucketKey(node.key(), &c.key)) continue;
      c.bucket = std::move(node.mapped());
      if (auto series =
              series_.find(SeriesKey(c.key.tenant, c.key.window_unix_seconds, c.key.resolution_seconds));
          series != series_.end() && --series->second == 0) {
        series_.erase(series);
      }
      closed.push_back(std::move(c));
    }
  }
  closing_.erase(closing_.begin(), end);
  std::sort(closed.begin(), closed.end(), [](const bucket::ClosedBucket& a, const bucket::ClosedBucket& b) {
    return std::tie(a.key.tenant, a.key.name, a.key.source, a.key.kind, a.key.resolution_seconds,
                    a.key.window_unix_seconds) < std::tie(b.key.tenant, b.key.name, b.key.source, b.key.kind,
                                                          b.key.resolution_seconds,
                                                          b.key.window_unix_seconds);
  });
  return closed;
}

std::size_t MemoryStore::OpenBuckets() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_.size();
}

}  // namespace drainmet::store
