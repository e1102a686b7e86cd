#include "common/store/pre_aggregator.h"

#include <algorithm>
#include <future>
#include <map>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "common/bucket/codec.h"
#include "common/telemetry/log.h"

namespace drainmet::store {

using Clock = std::chrono::steady_clock;

// The requests of one flush and their merged partial buckets. Owned by the flusher thread.
struct PreAggregator::Batch {
  struct Request {
    std::string tenant;
    std::string inflight_key;  // tenant NUL frame id; empty without a frame id
    IngestDone done;
    IngestResult result;
    absl::Status error;
  };
  // One (shard, window): one ingest.lua request at the flush.
  struct Group {
    bucket::BucketMap merged;
    std::vector<std::pair<std::string, std::string>> frames;          // tenant, de-dup id
    std::vector<std::pair<std::size_t, std::uint64_t>> contributors;  // request index, points
  };

  bool empty() const { return requests.empty(); }

  std::vector<Request> requests;
  std::map<ShardWindow, Group> groups;
  std::size_t buckets = 0;
  Clock::time_point first;
  absl::flat_hash_set<std::string> inflight;  // inflight_key of every request
};

PreAggregator::PreAggregator(RedisStore& redis, PreAggregatorOptions options)
    : redis_(redis), options_(options) {
  flusher_ = std::thread([this] { Run(); });
}

PreAggregator::~PreAggregator() { Stop(); }

void PreAggregator::Refuse(IngestDone& done, absl::Status status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.requests_refused;
  }
  done(std::move(status));
}

void PreAggregator::IngestAsync(std::string tenant, std::string frame_id, bucket::BucketMap partials,
                                IngestDone done) {
  if (partials.empty()) {
    done(IngestResult{});  // Nothing to write, nothing to de-duplicate.
    return;
  }
  const std::size_t buckets = partials.size();
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_) {
      lock.unlock();
      return Refuse(done, absl::UnavailableError("receiver is stopping"));
    }
    // One request alone may exceed the bound (else it could never be taken).
    if (!queue_.empty() && queued_buckets_ + buckets > options_.max_series) {
      lock.unlock();
      return Refuse(done, absl::UnavailableError("receiver pre-aggregation queue is full"));
    }
    const std::int64_t received = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count();
    queue_.push_back(
        Queued{std::move(tenant), std::move(frame_id), std::move(partials), std::move(done), received});
    queued_buckets_ += buckets;
  }
  cv_.notify_one();
}

absl::StatusOr<IngestResult> PreAggregator::Ingest(std::string_view tenant, std::string_view frame_id,
                                                   bucket::BucketMap& partials) {
  std::promise<absl::StatusOr<IngestResult>> promise;
  std::future<absl::StatusOr<IngestResult>> future = promise.get_future();
  IngestAsync(std::string(tenant), std::string(frame_id), std::move(partials),
              [&promise](absl::StatusOr<IngestResult> result) { promise.set_value(std::move(result)); });
  partials.clear();
  return future.get();
}

absl::StatusOr<bool> PreAggregator::SeenFrame(std::string_view, std::string_view) { return false; }

absl::StatusOr<std::vector<bucket::ClosedBucket>> PreAggregator::TakeClosed(bool) {
  return absl::UnimplementedError("pre-aggregator: outlets take windows with ShardProtocol::Seal");
}

void PreAggregator::FlushSoon() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    flush_soon_ = true;
  }
  cv_.notify_one();
}

void PreAggregator::Stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (flusher_.joinable()) flusher_.join();
}

PreAggregatorStats PreAggregator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  PreAggregatorStats stats = stats_;
  stats.queued_buckets = queued_buckets_;
  return stats;
}

std::chrono::milliseconds PreAggregator::FlushWait() const {
  return std::min(options_.flush_delay, options_.flush_interval);
}

void PreAggregator::Run() {
  Batch batch;
  std::vector<Queued> queued;
  for (;;) {
    bool stopping = false;
    bool soon = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      const auto wake = [&] { return !queue_.empty() || stopping_ || (flush_soon_ && !batch.empty()); };
      if (batch.empty()) {
        cv_.wait(lock, wake);
      } else {
        cv_.wait_until(lock, batch.first + FlushWait(), wake);
      }
      queued.swap(queue_);
      queued_buckets_ = 0;
      stopping = stopping_;
      soon = flush_soon_;
    }
    if (!queued.empty()) {
      Absorb(queued, batch);
      queued.clear();
    }
    if (!batch.empty() && (stopping || soon || batch.buckets >= options_.max_series ||
                           Clock::now() >= batch.first + FlushWait())) {
      Flush(batch);
      batch = Batch{};
    }
    merged_buckets_.store(batch.buckets, std::memory_order_relaxed);
    if (stopping && batch.empty()) {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.empty()) return;
    }
  }
}

void PreAggregator::Absorb(std::vector<Queued>& queued, Batch& batch) {
  const RedisStoreOptions& store = redis_.options();
  // Where each bucket goes, in each request's map iteration order, and each request's
  // distinct (shard, window) parts with their point counts.
  struct Split {
    std::vector<ShardWindow> where;
    std::map<ShardWindow, std::uint64_t> parts;
    std::string inflight_key;
    std::size_t applied = 0;  // parts an earlier copy already applied
    bool refused = false;
  };
  std::vector<Split> splits(queued.size());
  std::vector<std::string> dedupe_ids;  // storage for `checks`, per (request, part)
  std::vector<std::pair<std::size_t, ShardWindow>> check_of;
  bucket::BucketKey key;
  for (std::size_t q = 0; q < queued.size(); ++q) {
    Split& split = splits[q];
    Queued& request = queued[q];
    split.where.reserve(request.partials.size());
    for (const auto& [encoded, partial] : request.partials.map()) {
      ShardWindow where{};
      if (bucket::DecodeBucketKey(encoded, &key)) where = ShardWindowOf(key, store);
      split.where.push_back(where);
      split.parts[where] += partial.count;
    }
    if (request.frame_id.empty()) continue;
    split.inflight_key = request.tenant;
    split.inflight_key.push_back('\0');
    split.inflight_key.append(request.frame_id);
    if (!batch.inflight.insert(split.inflight_key).second) {
      // A copy of this frame waits in this batch: its result is not known yet.
      split.refused = true;
      telemetry::LogOnce("frame_in_flight",
                         "a retried frame arrived while its first copy was still waiting; answered 503",
                         {{"tenant", request.tenant}});
      Refuse(request.done, absl::AbortedError("the same frame is still being written; retry"));
      split.inflight_key.clear();
      continue;
    }
    for (const auto& [where, points] : split.parts) {
      dedupe_ids.push_back(DedupeId(request.frame_id, where.close));
      check_of.emplace_back(q, where);
    }
  }

  // The pre-check: (shard, window) parts a previous copy of the frame already applied.
  std::vector<ShardFrame> checks;
  checks.reserve(check_of.size());
  for (std::size_t c = 0; c < check_of.size(); ++c) {
    checks.push_back(ShardFrame{check_of[c].second.shard, queued[check_of[c].first].tenant, dedupe_ids[c]});
  }
  const std::vector<absl::StatusOr<bool>> applied = redis_.FramesApplied(checks);
  for (std::size_t c = 0; c < check_of.size(); ++c) {
    Split& split = splits[check_of[c].first];
    if (split.refused) continue;
    if (!applied[c].ok()) {
      split.refused = true;
      batch.inflight.erase(split.inflight_key);
      Refuse(queued[check_of[c].first].done,
             absl::UnavailableError("redis: " + std::string(applied[c].status().message())));
    } else if (*applied[c]) {
      split.parts.erase(check_of[c].second);
      ++split.applied;
    }
  }

  std::uint64_t merged = 0;
  for (std::size_t q = 0; q < queued.size(); ++q) {
    Split& split = splits[q];
    Queued& request = queued[q];
    if (split.refused) continue;
    if (split.parts.empty()) {
      // Every part was applied by an earlier copy: a duplicate request.
      batch.inflight.erase(split.inflight_key);
      IngestResult result;
      result.duplicate = true;
      request.done(result);
      continue;
    }
    if (batch.empty()) batch.first = Clock::now();
    const std::size_t index = batch.requests.size();
    batch.requests.push_back(
        Batch::Request{request.tenant, split.inflight_key, std::move(request.done), {}, {}});
    for (const auto& [where, points] : split.parts) {
      Batch::Group& group = batch.groups[where];
      if (!request.frame_id.empty())
        group.frames.emplace_back(request.tenant, DedupeId(request.frame_id, where.close));
      group.contributors.emplace_back(index, points);
    }
    std::size_t i = 0;
    for (auto& [encoded, partial] : request.partials.map()) {
      const ShardWindow& where = split.where[i++];
      if (!split.parts.contains(where)) continue;  // applied by an earlier copy
      bucket::BucketMap& target = batch.groups[where].merged;
      const std::size_t before = target.size();
      target.MergeBucket(encoded, std::move(partial));
      batch.buckets += target.size() - before;
    }
    ++merged;
  }
  std::lock_guard<std::mutex> lock(mu_);
  stats_.requests_merged += merged;
}

void PreAggregator::Flush(Batch& batch) {
  // Storage first (no reallocation afterwards), then the views ingest.lua's calls use.
  struct GroupWrite {
    ShardWindow where;
    Batch::Group* group = nullptr;
    std::vector<std::string> bytes;
    std::vector<IngestRecord> records;
    std::vector<FrameRef> frames;
  };
  std::vector<GroupWrite> writes;
  writes.reserve(batch.groups.size());
  bucket::BucketKey key;
  std::uint64_t records = 0;
  for (auto& [where, group] : batch.groups) {
    GroupWrite& write = writes.emplace_back();
    write.where = where;
    write.group = &group;
    write.bytes.reserve(group.merged.size());
    for (const auto& [encoded, partial] : group.merged.map()) {
      if (!bucket::DecodeBucketKey(encoded, &key)) continue;  // Cannot happen: we encoded it.
      bucket::EncodeRecord(key, partial, write.bytes.emplace_back());
    }
    for (const std::string& b : write.bytes) write.records.push_back(IngestRecord{where.close, b});
    for (const auto& [tenant, id] : group.frames) write.frames.push_back(FrameRef{tenant, id});
    records += write.records.size();
  }
  // One IngestRequest per group, grouped by shard (consecutive: the map is sorted by shard).
  std::vector<IngestRequest> requests;
  requests.reserve(writes.size());
  std::vector<ShardIngest> shards;
  std::vector<std::size_t> first_write;  // per ShardIngest: index of its first write
  for (std::size_t w = 0; w < writes.size(); ++w) {
    GroupWrite& write = writes[w];
    IngestRequest request;
    request.records = write.records;
    if (write.frames.empty()) {
      request.tenant = batch.requests[write.group->contributors.front().first].tenant;
    } else {
      request.tenant = write.frames.front().tenant;
      request.frame_id = write.frames.front().frame_id;
      request.more_frames = std::span<const FrameRef>(write.frames).subspan(1);
    }
    requests.push_back(request);
    if (shards.empty() || shards.back().shard != write.where.shard) {
      shards.push_back(ShardIngest{write.where.shard, {}});
      first_write.push_back(w);
    }
  }
  for (std::size_t s = 0; s < shards.size(); ++s) {
    const std::size_t end = s + 1 < shards.size() ? first_write[s + 1] : writes.size();
    shards[s].requests =
        std::span<const IngestRequest>(requests).subspan(first_write[s], end - first_write[s]);
  }

  const std::vector<absl::StatusOr<std::vector<ShardIngestResult>>> results = redis_.IngestShards(shards);
  bool failed = false;
  std::uint64_t conflicts = 0;
  for (std::size_t s = 0; s < shards.size(); ++s) {
    for (std::size_t r = 0; r < shards[s].requests.size(); ++r) {
      const Batch::Group& group = *writes[first_write[s] + r].group;
      absl::Status error;
      ShardIngestResult got;
      if (!results[s].ok()) {
        error = absl::UnavailableError("redis: " + std::string(results[s].status().message()));
      } else if (r >= results[s]->size()) {
        error = absl::InternalError("ingest.lua: fewer results than requests");
      } else {
        got = (*results[s])[r];
        if (got.duplicate) {
          error = absl::AbortedError("a frame of this batch was applied meanwhile by another copy; retry");
          ++conflicts;
        }
      }
      if (!error.ok()) failed = true;
      for (const auto& [index, points] : group.contributors) {
        Batch::Request& request = batch.requests[index];
        if (!error.ok()) {
          if (request.error.ok()) request.error = error;
        } else if (got.late > 0) {  // All records of one window share its fate.
          request.result.late_points += points;
        } else {
          request.result.applied_points += points;
        }
      }
    }
  }
  if (conflicts > 0) {
    telemetry::LogOnce(
        "frame_conflict",
        "a frame was applied by another copy while this receiver held it; its batch answered 503",
        {{"writes", std::to_string(conflicts)}});
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.flushes;
    if (failed) ++stats_.flush_errors;
    stats_.records_written += records;
    stats_.conflicts += conflicts;
  }
  for (Batch::Request& request : batch.requests) {
    if (request.error.ok()) {
      request.done(request.result);
    } else {
      request.done(request.error);
    }
  }
}

}  // namespace drainmet::store
