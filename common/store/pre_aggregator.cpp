#include "common/store/pre_aggregator.h"

#include <algorithm>
#include <array>
#include <deque>
#include <future>
#include <map>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/base/strings.h"
#include "common/bucket/codec.h"
#include "common/bucket/shard.h"
#include "common/telemetry/log.h"

namespace drainmet::store {

using Clock = std::chrono::steady_clock;

namespace {
// Element `e` of those bucket::ElementWriter wrote into `bytes`, ending at `ends`.
std::string_view ElementAt(std::string_view bytes, const std::vector<std::size_t>& ends, std::size_t e) {
  const std::size_t begin = e == 0 ? 0 : ends[e - 1];
  return bytes.substr(begin, ends[e] - begin);
}
}  // namespace

// The requests of one flush and their merged partial buckets. Owned by the flusher thread
// and reused from flush to flush: the groups and their vectors stay allocated (a group
// unused for kIdleFlushes flushes goes), and the index is sized once per flush for the
// previous one, so a flush does not regrow its tables (Reset).
//
// No bucket is copied to merge: the requests' own tables are kept (`held`) until the write,
// the index maps each encoded key to the first request's PartialBucket of it, and later
// requests' buckets of the same key are merged into that one.
//
// The merge only pays when requests of one flush share buckets (few series: at 10 sources
// a flush merges ~1,100 points a record). When the last merged flush folded away fewer than
// 1 in 10 of the buckets it was given (high cardinality: a series is seen about once a
// flush), the flush is not indexed: each request's buckets go to their groups as they are
// (a key may then be written twice in one flush; the outlet merges records anyway, RELIABILITY
// §3.3), and `series` holds upper bounds (every bucket counted). Such a flush estimates
// what its merge would have folded away from a sample of its keys (one in 16, by key hash,
// so a key is sampled in every request or in none: Prepared::sampled) and merges the next
// flush as soon as that reaches 1 in 10; a flush too small for the sample (< kMinSampled
// sampled keys) is merged every kProbeEvery-th time instead, to measure. When an upper
// bound would pass max_series_per_tenant the
// flush is indexed on the spot (Promote), so the limit still keeps exactly as many series
// per tenant window as the merged path. Which new series a request that alone passes the
// bound keeps is in the order of its buckets: its table's order on the merged path, its
// records' order when encoded ahead (PrepareEncoded: mostly series seen more than once first).
struct PreAggregator::Batch {
  struct Request {
    std::string tenant;
    std::string inflight_key;  // tenant NUL frame id; empty without a frame id
    IngestDone done;
    IngestResult result;
    absl::Status error;
  };
  // One merged bucket: its encoded key (a view into a held request's table) and the
  // request bucket the others were merged into.
  struct Entry {
    std::string_view encoded;   // the encoded key, in a held request's table
    bucket::RecordKeyView key;  // views into `encoded`
    bucket::PartialBucket* bucket = nullptr;
  };
  // A frame's de-dup id ("<frame id>/<close>"): offset and size in `dedupe_ids`.
  struct FrameId {
    std::size_t request = 0;
    std::size_t offset = 0;
    std::size_t size = 0;
  };
  // One (shard, window): one ingest.lua request at the flush.
  struct Group {
    std::vector<Entry> entries;
    std::vector<std::string_view> elements;  // encoded ahead (Prepared), written as they are
    std::uint64_t element_records = 0;       // records in `elements`
    // Per merged frame: the request's index and its de-dup id's bytes in `dedupe_ids`.
    std::vector<FrameId> frames;
    std::vector<std::pair<std::size_t, std::uint64_t>> contributors;  // request index, points
    std::uint64_t last_used = 0;                                      // flush number
    bool active() const { return !contributors.empty(); }
  };
  using Index = absl::flat_hash_map<std::string_view, bucket::PartialBucket*, bucket::EncodedKeyHash,
                                    bucket::EncodedKeyEq>;
  /// One tenant's window of one resolution (views into a held request's table).
  struct TenantWindow {
    std::string_view tenant;
    std::int32_t resolution = 0;
    std::int64_t window = 0;
    bool operator==(const TenantWindow&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const TenantWindow& w) {
      return H::combine(std::move(h), absl::string_view(w.tenant.data(), w.tenant.size()), w.resolution,
                        w.window);
    }
  };

  bool empty() const { return requests.empty(); }

  /// Indexes a flush that was not: merges the buckets of equal keys its groups hold (into
  /// the first one placed), and counts `series` exactly.
  void Promote() {
    indexed = true;
    series.clear();
    index.reserve(offered);
    for (auto& [where, group] : groups) {
      group.elements.clear();
      group.element_records = 0;
    }
    for (Prepared& prepared : passed) {
      if (!prepared.table) Rebuild(prepared, held.emplace_back());
      std::vector<Group*> part_groups(prepared.parts.size(), nullptr);
      for (std::size_t p = 0; p < prepared.parts.size(); ++p) {
        if (!prepared.parts[p].skip) part_groups[p] = &groups[prepared.parts[p].where];
      }
      for (std::size_t b = 0; b < prepared.buckets.size(); ++b) {
        Group* group = part_groups[prepared.part_of[b]];
        if (group != nullptr)
          group->entries.push_back(Entry{prepared.encoded[b], prepared.keys[b], prepared.buckets[b]});
      }
    }
    passed.clear();
    for (auto& [where, group] : groups) {
      std::size_t kept = 0;
      for (const Entry& entry : group.entries) {
        const auto [it, inserted] = index.try_emplace(entry.encoded, entry.bucket);
        if (!inserted) {
          it->second->Merge(*entry.bucket);
          continue;
        }
        ++series[TenantWindow{entry.key.tenant, entry.key.resolution_seconds, entry.key.window_unix_seconds}];
        group.entries[kept++] = entry;
      }
      group.entries.resize(kept);
    }
    buckets = index.size();
  }

  /// Forgets the flush's requests and buckets; keeps the storage for the next flush.
  void Reset() {
    // Whether the next flush merges: as the last one would have paid, measured by its merge
    // or, not merged, estimated from its sample of keys when that is large enough; without
    // either, every kProbeEvery-th flush merges to measure again.
    bool measured = false;
    if (indexed && offered > 0) {
      merge_pays = buckets * 10 < offered * 9;
      measured = true;
    } else if (!indexed && sampled_offered >= kMinSampled) {
      merge_pays = sampled.size() * 10 < sampled_offered * 9;
      measured = true;
    }
    ++flush_number;
    indexed = merge_pays || (!measured && flush_number % kProbeEvery == 0);
    sampled.clear();
    sampled_offered = 0;
    for (auto it = groups.begin(); it != groups.end();) {
      Group& group = it->second;
      if (group.active()) group.last_used = flush_number;
      if (flush_number - group.last_used > kIdleFlushes) {
        groups.erase(it++);  // a window no request has had for a while
        continue;
      }
      group.entries.clear();
      group.elements.clear();
      group.element_records = 0;
      group.frames.clear();
      group.contributors.clear();
      ++it;
    }
    // absl's clear() frees a large slot array: size it again for a flush like this one
    // (one allocation, no regrowth while the next flush fills it).
    series.clear();
    if (!index.empty()) index_size = index.size();
    index.clear();
    if (indexed) index.reserve(index_size);
    requests.clear();
    held.clear();
    passed.clear();
    buckets = 0;
    offered = 0;
    inflight.clear();
    dedupe_ids.clear();
  }

  static constexpr std::uint64_t kIdleFlushes = 64;
  static constexpr std::uint64_t kProbeEvery = 16;
  // An unmerged flush that holds this many sampled keys (~16 times as many records: one in
  // 16 keys is sampled, Prepared::sampled) estimates its merge instead of a probe.
  static constexpr std::uint64_t kMinSampled = 256;

  std::vector<Request> requests;
  std::deque<bucket::BucketMap> held;  // the merged requests' tables, until the write (never relocated)
  // The Prepared of requests whose encoded elements went to the groups as they were (their
  // `bytes` back the groups' `elements`); Promote places their buckets one by one.
  std::deque<Prepared> passed;
  Index index;
  // Buckets per tenant window this flush (upper bounds while not indexed).
  absl::flat_hash_map<TenantWindow, std::uint64_t> series;
  std::map<ShardWindow, Group> groups;
  std::size_t buckets = 0;     // in the groups: index.size() when indexed
  std::size_t offered = 0;     // placed in this flush (before merging)
  std::size_t index_size = 0;  // the last indexed flush's, to size the index
  bool indexed = true;         // this flush merges equal keys (see above)
  bool merge_pays = true;      // the last measured flush folded away >= 1 in 10 buckets
  // Not indexed: the distinct sampled keys of the requests passed as encoded, and how many
  // they offered; distinct / offered estimates buckets / offered.
  absl::flat_hash_set<std::uint64_t> sampled;
  std::uint64_t sampled_offered = 0;
  Clock::time_point first;
  absl::flat_hash_set<std::string> inflight;  // inflight_key of every request
  // The de-dup ids of the flush's (request, part)s, back to back (one buffer instead of a
  // string each; Group::frames and the pre-check refer to them by offset).
  std::string dedupe_ids;
  std::uint64_t flush_number = 0;
  // Flush's reused storage.
  std::string records;                   // every list element of the flush, back to back
  std::vector<std::size_t> record_ends;  // end offset of each element in `records`
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
  Prepared prepared;
  prepared.tenant = tenant;
  if (encode_ahead_.load(std::memory_order_relaxed)) {
    // The records say it all: the table goes back to this thread's next request (its
    // memory stays in this core's cache), and the flusher rebuilds one from the records in
    // the rare case it must merge them (Rebuild).
    PrepareEncoded(partials, prepared);
    prepared.table = false;
    bucket::BucketMap::GiveBack(std::move(partials));
  } else {
    Prepare(partials, prepared);
  }
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
    std::int64_t received = 0;
    if (options_.registry != nullptr) {
      // In flight from now until `done` has run: the watermark waits for this request.
      const auto [ticket, receipt] = options_.registry->Register();
      received = receipt;
      done = [registry = options_.registry, ticket = ticket,
              done = std::move(done)](absl::StatusOr<IngestResult> result) {
        done(std::move(result));
        registry->Release(ticket);
      };
    } else {
      received = std::chrono::duration_cast<std::chrono::nanoseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
    }
    queue_.push_back(Queued{std::move(tenant), std::move(frame_id), std::move(partials), std::move(prepared),
                            std::move(done), received});
    queued_buckets_ += buckets;
  }
  cv_.notify_one();
}

void PreAggregator::Prepare(bucket::BucketMap& partials, Prepared& prepared) const {
  const RedisStoreOptions& store = redis_.options();
  bucket::BucketMap::Map& table = partials.map();  // the logged points too
  const std::size_t n = table.size();
  prepared.part_of.reserve(n);
  prepared.encoded.reserve(n);
  prepared.keys.reserve(n);
  prepared.buckets.reserve(n);
  // (shard, window) -> index of its part.
  absl::flat_hash_map<ShardWindow, std::uint32_t> part_index;
  bucket::RecordKeyView key;
  for (auto& [encoded, partial] : table) {
    // A key that does not decode cannot happen (the handler encoded it); it would go to a
    // part of its own (close 0) that is never written.
    ShardWindow where{};
    key = bucket::RecordKeyView{};
    const bool valid = bucket::KeyViewOf(encoded, &key);
    if (valid) where = ShardWindowOf(key, store);
    const auto [it, inserted] =
        part_index.try_emplace(where, static_cast<std::uint32_t>(prepared.parts.size()));
    if (inserted) prepared.parts.push_back(Part{where, 0, 0, !valid});
    Part& part = prepared.parts[it->second];
    part.points += partial.count;
    ++part.buckets;
    prepared.part_of.push_back(it->second);
    prepared.encoded.push_back(encoded.view());
    prepared.keys.push_back(key);
    prepared.buckets.push_back(&partial);
  }
}

void PreAggregator::PrepareEncoded(bucket::BucketMap& partials, Prepared& prepared) const {
  const RedisStoreOptions& store = redis_.options();
  // Per thread and reused request after request (their memory stays in this core's
  // cache): each part's elements, written in one pass over the request's buckets and then
  // joined, and per close time the part of each shard (1 + its index; 0: none yet).
  struct PartBuffer {
    std::string bytes;
    std::vector<std::size_t> ends;
  };
  struct CloseParts {
    std::int64_t close = 0;
    std::vector<std::uint32_t> by_shard;
  };
  thread_local std::deque<PartBuffer> buffers;
  thread_local std::vector<CloseParts> closes;
  std::size_t closes_used = 0;
  std::size_t last_close = 0;
  std::vector<bucket::ElementWriter> writers;
  writers.reserve(store.shards);
  // The shard hash of a series is FNV over tenant, name and source: the part over tenant
  // and name is worked out once per name (a request has few), the source's bytes per bucket.
  struct NamePrefix {
    std::string_view tenant;
    std::string_view name;
    std::uint64_t hash = 0;
  };
  std::array<NamePrefix, 8> prefixes{};
  std::size_t prefixes_used = 0;
  std::size_t next_prefix = 0;
  std::uint32_t invalid_part = UINT32_MAX;
  const std::size_t shards = std::max<std::uint32_t>(store.shards, 1);

  const auto open_part = [&](ShardWindow where, bool skip) {
    const auto p = static_cast<std::uint32_t>(prepared.parts.size());
    prepared.parts.push_back(Part{where, 0, 0, skip});
    if (buffers.size() <= p) buffers.emplace_back();
    buffers[p].bytes.clear();
    buffers[p].ends.clear();
    writers.emplace_back(buffers[p].bytes, buffers[p].ends, bucket::kMaxElementBytes,
                         bucket::RecordForm::kKeyed);
    return p;
  };
  const auto part_of = [&](const bucket::RecordKeyView& key) -> std::uint32_t {
    std::size_t i = 0;
    while (i < prefixes_used && !(base::BytesEqual(prefixes[i].name, key.name) &&
                                  base::BytesEqual(prefixes[i].tenant, key.tenant))) {
      ++i;
    }
    if (i == prefixes_used) {
      i = prefixes_used < prefixes.size() ? prefixes_used++ : next_prefix++ % prefixes.size();
      prefixes[i] = NamePrefix{key.tenant, key.name, bucket::SeriesHashPrefix(key.tenant, key.name)};
    }
    const std::uint32_t shard =
        bucket::ShardOfHash(bucket::Fnv1a64(key.source, prefixes[i].hash), store.shards);
    // ShardWindowOf's close time.
    const std::int64_t close = key.window_unix_seconds + key.resolution_seconds + store.grace_seconds;
    if (last_close >= closes_used || closes[last_close].close != close) {
      last_close = 0;
      while (last_close < closes_used && closes[last_close].close != close) ++last_close;
      if (last_close == closes_used) {
        if (closes.size() <= closes_used) closes.emplace_back();
        closes[closes_used].close = close;
        closes[closes_used].by_shard.assign(shards, 0);
        ++closes_used;
      }
    }
    std::uint32_t& slot = closes[last_close].by_shard[shard];
    if (slot == 0) slot = open_part(ShardWindow{shard, close}, false) + 1;
    return slot - 1;
  };
  // The part of a bucket of `key` with `points`, counted in its part and window.
  const auto place = [&](const bucket::RecordKeyView& key, std::uint64_t points) {
    const std::uint32_t p = part_of(key);
    prepared.parts[p].points += points;
    ++prepared.parts[p].buckets;
    // Nearly every bucket of a request shares the previous one's window.
    if (prepared.windows.empty() || prepared.windows.back().resolution != key.resolution_seconds ||
        prepared.windows.back().window != key.window_unix_seconds) {
      const auto same = [&key](const Prepared::Window& w) {
        return w.resolution == key.resolution_seconds && w.window == key.window_unix_seconds;
      };
      auto found = std::find_if(prepared.windows.begin(), prepared.windows.end(), same);
      if (found == prepared.windows.end()) {
        prepared.windows.push_back(Prepared::Window{key.resolution_seconds, key.window_unix_seconds, 0});
      } else {
        std::iter_swap(found, prepared.windows.end() - 1);  // the one to compare first
      }
    }
    ++prepared.windows.back().buckets;
    return p;
  };
  // The keys the flusher's estimate of its merge samples (Batch::Reset): one in kSampleEvery
  // by the key's hash.
  constexpr std::uint64_t kSampleEvery = 16;
  const auto sample = [&prepared](std::uint64_t key_hash) {
    if (key_hash % kSampleEvery == 0) prepared.sampled.push_back(key_hash);
  };
  // The table (series seen more than once) first, then the logged points (series seen
  // once); a series is in one of them. The order matters only when a flush is merged on
  // the spot for the tenant bound (Promote, Rebuild): a request that alone passes it keeps
  // its buckets part by part in this order, and the parts the table's series opened come
  // first, so those series are kept before most series seen once (fewer points dropped).
  for (const auto& [encoded, partial] : partials.table()) {
    sample(bucket::HashKeyBytes(encoded.view()));
    bucket::RecordKeyView key;
    if (!bucket::KeyViewOf(encoded, &key)) {
      // Cannot happen (the handler encoded it): a part of its own that is never written.
      if (invalid_part == UINT32_MAX) invalid_part = open_part(ShardWindow{}, true);
      prepared.parts[invalid_part].points += partial.count;
      ++prepared.parts[invalid_part].buckets;
      continue;
    }
    writers[place(key, partial.count)].Add(key, partial);
  }
  for (const bucket::LoggedPoint& logged : partials.logged_points()) {
    if (logged.key_size == 0) continue;  // moved into the table
    const bucket::RecordKeyView key = partials.LoggedKey(logged);
    writers[place(key, 1)].AddPoint(key, logged.value, logged.time_unix_nanos, partials.LoggedUnits(logged));
    sample(logged.key_hash);
  }
  std::size_t bytes = 0;
  for (std::size_t p = 0; p < prepared.parts.size(); ++p) {
    writers[p].Close();
    bytes += buffers[p].bytes.size();
  }
  prepared.bytes.reserve(bytes);
  prepared.first_element.assign(prepared.parts.size() + 1, 0);
  for (std::size_t p = 0; p < prepared.parts.size(); ++p) {
    PartBuffer& buffer = buffers[p];
    const std::size_t offset = prepared.bytes.size();
    prepared.bytes.append(buffer.bytes);
    for (std::size_t end : buffer.ends) prepared.element_ends.push_back(offset + end);
    prepared.first_element[p + 1] = prepared.element_ends.size();
    // A buffer that held a very large part is not kept for the thread's life.
    constexpr std::size_t kMaxKeptBytes = 1 << 20;
    if (buffer.bytes.capacity() > kMaxKeptBytes) std::string().swap(buffer.bytes);
  }
  prepared.records_encoded = true;
}

void PreAggregator::Rebuild(Prepared& prepared, bucket::BucketMap& table) {
  std::size_t records = 0;
  for (const Part& part : prepared.parts) records += part.buckets;
  // Reserved first: no rehash while filling, so the views and pointers taken stay valid.
  table.map().reserve(records);
  prepared.part_of.clear();
  prepared.encoded.clear();
  prepared.keys.clear();
  prepared.buckets.clear();
  bucket::ElementReader reader;
  std::string key;
  for (std::size_t p = 0; p < prepared.parts.size(); ++p) {
    for (std::size_t e = prepared.first_element[p]; e < prepared.first_element[p + 1]; ++e) {
      reader.Reset(ElementAt(prepared.bytes, prepared.element_ends, e));
      for (;;) {
        const absl::StatusOr<bool> next = reader.Next();
        if (!next.ok()) {
          // Cannot happen: this process encoded them a moment ago.
          telemetry::LogOnce("rebuild_decode", "a record encoded ahead did not decode; its bucket is lost",
                             {{"error", std::string(next.status().message())}});
          break;
        }
        if (!*next) break;
        const bucket::RecordKeyView& k = reader.key();
        bucket::EncodeBucketKey(k.tenant, k.name, k.source, k.kind, k.resolution_seconds,
                                k.window_unix_seconds, key);
        const auto [it, inserted] = table.map().try_emplace(key);
        if (!inserted) continue;  // cannot happen either: one table's keys are distinct
        it->second = std::move(reader.bucket());
        bucket::RecordKeyView view;
        bucket::KeyViewOf(it->first.view(), &view);
        prepared.part_of.push_back(static_cast<std::uint32_t>(p));
        prepared.encoded.push_back(it->first.view());
        prepared.keys.push_back(view);
        prepared.buckets.push_back(&it->second);
      }
    }
  }
  prepared.table = true;
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
      batch.Reset();
      encode_ahead_.store(!batch.merge_pays, std::memory_order_relaxed);
    }
    merged_buckets_.store(batch.buckets, std::memory_order_relaxed);
    if (stopping && batch.empty()) {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.empty()) return;
    }
  }
}

void PreAggregator::Absorb(std::vector<Queued>& queued, Batch& batch) {
  // Per request: its parts (Prepared) and how they fare here.
  // Per part of a request: its group, once placed, and its de-dup id (Batch::dedupe_ids).
  struct PartState {
    Batch::Group* group = nullptr;
    std::size_t id_offset = 0;
    std::size_t id_size = 0;
  };
  struct Split {
    std::vector<PartState> parts;
    std::string inflight_key;
    std::uint64_t late_points = 0;  // in parts late at receipt that no earlier copy applied
    std::size_t live_parts = 0;     // parts neither late nor applied
    std::size_t applied_parts = 0;  // parts an earlier copy of the frame applied
    bool refused = false;
  };
  std::vector<Split> splits(queued.size());
  std::string& ids = batch.dedupe_ids;
  std::vector<std::pair<std::size_t, std::size_t>> check_of;  // (request, part) per check
  for (std::size_t q = 0; q < queued.size(); ++q) {
    Split& split = splits[q];
    Queued& request = queued[q];
    std::vector<Part>& parts = request.prepared.parts;
    split.parts.assign(parts.size(), PartState{});
    // SEMANTICS §6.5 at receipt: a part whose window had closed (on its server's clock)
    // when the request arrived is late, whenever the flush comes.
    for (Part& part : parts) {
      if (part.skip) continue;  // not a key
      if (redis_.ClosedAt(part.where.shard, part.where.close, request.received_unix_nanos)) {
        part.skip = true;
        part.late = true;
        split.late_points += part.points;
      } else {
        ++split.live_parts;
      }
    }
    if (request.frame_id.empty()) continue;
    // Late parts are checked too: a retry of a frame applied before its window closed is a
    // duplicate, not late (nothing is written for either; only the answer's class differs).
    const auto check_parts = [&] {
      for (std::size_t p = 0; p < parts.size(); ++p) {
        if (parts[p].skip && !parts[p].late) continue;  // not a key
        PartState& state = split.parts[p];
        state.id_offset = ids.size();
        AppendDedupeId(request.frame_id, parts[p].where.close, ids);
        state.id_size = ids.size() - state.id_offset;
        check_of.emplace_back(q, p);
      }
    };
    if (split.live_parts == 0) {
      check_parts();  // Nothing to write, so nothing in flight.
      continue;
    }
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
    check_parts();
  }

  // The pre-check: (shard, window) parts a previous copy of the frame already applied.
  std::vector<ShardFrame> checks;
  checks.reserve(check_of.size());
  for (std::size_t c = 0; c < check_of.size(); ++c) {
    const auto [q, p] = check_of[c];
    const PartState& state = splits[q].parts[p];
    checks.push_back(ShardFrame{queued[q].prepared.parts[p].where.shard, queued[q].tenant,
                                std::string_view(ids).substr(state.id_offset, state.id_size)});
  }
  const std::vector<absl::StatusOr<bool>> applied = redis_.FramesApplied(checks);
  for (std::size_t c = 0; c < check_of.size(); ++c) {
    const auto [q, p] = check_of[c];
    Split& split = splits[q];
    if (split.refused) continue;
    Part& part = queued[q].prepared.parts[p];
    if (!applied[c].ok()) {
      // A request with nothing to write stays late: Redis down is no reason to refuse it.
      if (split.live_parts == 0) continue;
      split.refused = true;
      batch.inflight.erase(split.inflight_key);
      Refuse(queued[q].done, absl::UnavailableError("redis: " + std::string(applied[c].status().message())));
    } else if (*applied[c]) {
      if (part.late) {
        split.late_points -= part.points;
      } else {
        part.skip = true;
        --split.live_parts;
      }
      ++split.applied_parts;
    }
  }

  std::uint64_t merged = 0;
  for (std::size_t q = 0; q < queued.size(); ++q) {
    Split& split = splits[q];
    Queued& request = queued[q];
    if (split.refused) continue;
    if (split.live_parts == 0) {
      // Nothing left to write: every part was late at receipt or applied by an earlier
      // copy. A retry (some part applied before) is a duplicate, as RedisStore::Ingest
      // answers it; a request whose every part was late is late again.
      batch.inflight.erase(split.inflight_key);
      IngestResult result;
      result.late_points = split.late_points;
      result.duplicate = split.applied_parts > 0;
      request.done(result);
      continue;
    }
    if (batch.empty()) batch.first = Clock::now();
    const std::size_t index = batch.requests.size();
    batch.requests.push_back(
        Batch::Request{request.tenant, split.inflight_key, std::move(request.done), {}, {}});
    batch.requests.back().result.late_points = split.late_points;
    const Prepared& prepared = request.prepared;
    for (std::size_t p = 0; p < prepared.parts.size(); ++p) {
      const Part& part = prepared.parts[p];
      if (part.skip) continue;
      Batch::Group& group = batch.groups[part.where];
      PartState& state = split.parts[p];
      state.group = &group;
      if (!request.frame_id.empty())
        group.frames.push_back(Batch::FrameId{index, state.id_offset, state.id_size});
      group.contributors.emplace_back(index, part.points);
    }
    // The table moves into the batch (its slots, and so the buckets' addresses, stay).
    if (request.prepared.table) batch.held.emplace_back(std::move(request.partials));
    // Not merging, the records encoded ahead, and every window's upper bound within the
    // tenant limit: the request's elements go to their groups as they are.
    const auto fits = [&] {
      for (const Prepared::Window& w : prepared.windows) {
        const auto it = batch.series.find(Batch::TenantWindow{prepared.tenant, w.resolution, w.window});
        const std::uint64_t now = it == batch.series.end() ? 0 : it->second;
        if (now + w.buckets > options_.max_series_per_tenant) return false;
      }
      return true;
    };
    if (!batch.indexed && prepared.records_encoded && fits()) {
      // (With or without its table: nothing below reads it.) `series` views the tenant
      // where it stays: in `passed`.
      const Prepared& kept = batch.passed.emplace_back(std::move(request.prepared));
      for (const Prepared::Window& w : kept.windows) {
        batch.series[Batch::TenantWindow{kept.tenant, w.resolution, w.window}] += w.buckets;
      }
      for (const std::uint64_t key : kept.sampled) batch.sampled.insert(key);
      batch.sampled_offered += kept.sampled.size();
      for (std::size_t p = 0; p < kept.parts.size(); ++p) {
        if (kept.parts[p].skip) continue;
        Batch::Group& group = *split.parts[p].group;
        for (std::size_t e = kept.first_element[p]; e < kept.first_element[p + 1]; ++e) {
          group.elements.push_back(ElementAt(kept.bytes, kept.element_ends, e));
        }
        group.element_records += kept.parts[p].buckets;
        batch.buckets += kept.parts[p].buckets;
        batch.offered += kept.parts[p].buckets;
      }
      ++merged;
      continue;
    }
    if (!prepared.table) Rebuild(request.prepared, batch.held.emplace_back());
    // The tenant window of the previous bucket and its count: the buckets of a request
    // nearly all share one (a lookup hashes the tenant).
    Batch::TenantWindow last_window;
    std::uint64_t* last_series = nullptr;
    for (std::size_t b = 0; b < prepared.buckets.size(); ++b) {
      const std::uint32_t p = prepared.part_of[b];
      if (prepared.parts[p].skip) continue;
      Batch::Group& group = *split.parts[p].group;
      bucket::PartialBucket& partial = *prepared.buckets[b];
      const std::string_view bytes = prepared.encoded[b];
      const bucket::RecordKeyView& k = prepared.keys[b];
      const Batch::TenantWindow window{k.tenant, k.resolution_seconds, k.window_unix_seconds};
      for (;;) {
        // One hash and probe: inserted now, taken out again in the rare case the tenant
        // bound refuses the bucket.
        Batch::Index::iterator slot;
        if (batch.indexed) {
          bool inserted = false;
          std::tie(slot, inserted) = batch.index.try_emplace(bytes, &partial);
          if (!inserted) {
            slot->second->Merge(partial);
            ++batch.offered;
            break;
          }
        }
        if (last_series == nullptr || !(window == last_window)) {
          last_series = &batch.series[window];
          last_window = window;
        }
        if (*last_series >= options_.max_series_per_tenant) {
          if (!batch.indexed) {
            // An upper bound reached: count exactly, then place this bucket again.
            batch.Promote();
            last_series = nullptr;
            continue;
          }
          // limits.max_series_per_tenant: a bucket new to this flush beyond the bound.
          // This request's entry is the group's last: its parts were added just above.
          batch.index.erase(slot);
          std::uint64_t& points = group.contributors.back().second;
          points -= std::min(points, partial.count);
          batch.requests[index].result.series_limit_points += partial.count;
          break;
        }
        ++*last_series;
        ++batch.buckets;
        ++batch.offered;
        group.entries.push_back(Batch::Entry{bytes, k, &partial});
        break;
      }
    }
    ++merged;
  }
  std::lock_guard<std::mutex> lock(mu_);
  stats_.requests_merged += merged;
}

void PreAggregator::Flush(Batch& batch) {
  // Every record into one reused buffer first (no allocation per record), then the views
  // ingest.lua's calls use (the buffer no longer moves). Few list elements per (shard,
  // window) hold all its records (bucket::ElementWriter: batch elements, split at
  // bucket::kMaxElementBytes), so Redis, hiredis and the outlet pay per element, not per
  // record (docs/redis-layout.md "Record encoding").
  struct GroupWrite {
    ShardWindow where;
    Batch::Group* group = nullptr;
    std::size_t first_element = 0;  // of those encoded here, in `ends`
    std::size_t elements = 0;
    std::size_t first_view = 0;  // in `record_views`: those encoded here, then the group's own
    std::size_t views = 0;
  };
  std::vector<GroupWrite> writes;
  std::string& bytes = batch.records;
  std::vector<std::size_t>& ends = batch.record_ends;
  bytes.clear();
  ends.clear();
  bucket::ElementWriter writer(bytes, ends, bucket::kMaxElementBytes, bucket::RecordForm::kKeyed);
  for (auto& [where, group] : batch.groups) {
    if (!group.active()) continue;
    GroupWrite& write = writes.emplace_back();
    write.where = where;
    write.group = &group;
    write.first_element = ends.size();
    // The buckets lie scattered over the requests' tables: each one's first touch is a
    // cache miss, so fetch a few ahead (the bucket's both ends and its key's bytes).
    const std::vector<Batch::Entry>& entries = group.entries;
    constexpr std::size_t kAhead = 6;
    const auto prefetch = [&entries](std::size_t i) {
      const char* bucket = reinterpret_cast<const char*>(entries[i].bucket);
      __builtin_prefetch(bucket);
      __builtin_prefetch(bucket + sizeof(bucket::PartialBucket) - 1);
      __builtin_prefetch(entries[i].key.tenant.data());
    };
    for (std::size_t i = 0; i < std::min(kAhead, entries.size()); ++i) prefetch(i);
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (i + kAhead < entries.size()) prefetch(i + kAhead);
      writer.Add(entries[i].key, *entries[i].bucket);
    }
    writer.Close();
    write.elements = ends.size() - write.first_element;
  }
  std::uint64_t records = writer.records();
  std::uint64_t elements = writer.elements();
  std::vector<IngestRecord> record_views;
  record_views.reserve(ends.size());
  for (GroupWrite& write : writes) {
    write.first_view = record_views.size();
    for (std::size_t r = write.first_element; r < write.first_element + write.elements; ++r) {
      record_views.push_back(IngestRecord{write.where.close, ElementAt(bytes, ends, r)});
    }
    for (const std::string_view element : write.group->elements) {
      record_views.push_back(IngestRecord{write.where.close, element});
    }
    write.views = record_views.size() - write.first_view;
    records += write.group->element_records;
    elements += write.group->elements.size();
  }
  std::vector<std::vector<FrameRef>> frames(writes.size());
  // One IngestRequest per group, grouped by shard (consecutive: the map is sorted by shard).
  std::vector<IngestRequest> requests;
  requests.reserve(writes.size());
  std::vector<ShardIngest> shards;
  std::vector<std::size_t> first_write;  // per ShardIngest: index of its first write
  for (std::size_t w = 0; w < writes.size(); ++w) {
    GroupWrite& write = writes[w];
    for (const Batch::FrameId& id : write.group->frames) {
      frames[w].push_back(FrameRef{batch.requests[id.request].tenant,
                                   std::string_view(batch.dedupe_ids).substr(id.offset, id.size)});
    }
    IngestRequest request;
    request.records = std::span<const IngestRecord>(record_views).subspan(write.first_view, write.views);
    if (frames[w].empty()) {
      request.tenant = batch.requests[write.group->contributors.front().first].tenant;
    } else {
      request.tenant = frames[w].front().tenant;
      request.frame_id = frames[w].front().frame_id;
      request.more_frames = std::span<const FrameRef>(frames[w]).subspan(1);
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
    if (!batch.indexed) ++stats_.flushes_unmerged;
    if (failed) ++stats_.flush_errors;
    stats_.records_written += records;
    stats_.elements_written += elements;
    stats_.conflicts += conflicts;
  }
  // Written (or failed): nothing of this batch is open any more, and a caller that reads
  // OpenBuckets() once answered must see that.
  merged_buckets_.store(0, std::memory_order_relaxed);
  for (Batch::Request& request : batch.requests) {
    if (request.error.ok()) {
      request.done(request.result);
    } else {
      request.done(request.error);
    }
  }
}

}  // namespace drainmet::store
