#pragma once
// The Redis shard protocol of distributed drainmet (docs/redis-layout.md, after
// RELIABILITY.md §3.3): receivers ingest opaque records into windows of a shard; outlets
// lease a shard, seal its due windows, read them, mark tenants sent and ack. Every call
// is one Lua script or one plain command, atomic on the shard's Redis server.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/store/redis_client.h"

namespace drainmet::store {

/// One record for one window of one shard: an encoded partial bucket (opaque here).
struct IngestRecord {
  /// The window's close time, unix seconds: window start + resolution + grace, chosen by
  /// the receiver. Windows are grouped by it; at that second (Redis TIME) the window closes.
  std::int64_t close_unix_s = 0;
  std::string_view bytes;  ///< Binary-safe; viewed only during the call.
};

/// A de-duplication unit: one drain request's frame id under its tenant.
struct FrameRef {
  std::string_view tenant;    ///< Tenant id (config: A-Z a-z 0-9 . _ -); never empty or with ':'.
  std::string_view frame_id;  ///< Logplex-Frame-Id (or a body digest); empty: no de-dup.
};

/// The records of one drain request that fall into one shard, or the merge of several
/// requests' records (a receiver's flush, store::PreAggregator): then `more_frames` names
/// the other requests, and all frames share the records' fate (all applied or none).
struct IngestRequest {
  std::string_view tenant;                ///< Tenant id (config: A-Z a-z 0-9 . _ -); never empty or with ':'.
  std::string_view frame_id;              ///< Logplex-Frame-Id (or a body digest); empty: no de-dup.
  std::span<const IngestRecord> records;  ///< Viewed only during the call.
  std::span<const FrameRef> more_frames = {};  ///< Further frames merged into `records`; viewed only.
};

/// A frame's de-dup key on one shard, for ShardProtocol::FramesApplied.
struct ShardFrame {
  std::uint32_t shard = 0;
  std::string_view tenant;
  std::string_view frame_id;  ///< Non-empty.
};

/// What ingest did with one request on one shard.
struct ShardIngestResult {
  std::int64_t applied = 0;  ///< Records appended to their window.
  std::int64_t late = 0;     ///< Records refused: their window had closed (or was sealed).
  /// (tenant, frame id), or one of `more_frames`, was already applied to this shard:
  /// nothing of the request was done.
  bool duplicate = false;
  friend bool operator==(const ShardIngestResult&, const ShardIngestResult&) = default;
};

/// A receiver's batch for one shard: one ingest.lua call.
struct ShardIngest {
  std::uint32_t shard = 0;
  std::span<const IngestRequest> requests;
};

/// An outlet's claim on a shard. `token` is the fencing token: it grows with every
/// acquisition of the shard's lease, and every fenced call checks that the lease key still
/// holds exactly "<owner>:<token>".
struct Lease {
  std::string owner;
  std::int64_t token = 0;
  /// "<owner>:<token>", the lease key's value.
  std::string Value() const;
};

/// What one seal.lua call found and did. Close times, ascending.
struct SealResult {
  std::vector<std::int64_t> sealed;   ///< Windows this call sealed (pts:<close> → proc:<close>).
  std::vector<std::int64_t> ready;    ///< Sealed, not acked: the work to do (`sealed` included,
                                      ///< and windows a dead holder left).
  std::vector<std::int64_t> expired;  ///< Records expired (window TTL) before an ack: lost.
  /// How many of `sealed` were due by the receivers' watermarks only (close + allowance
  /// still in the future); the others were due by the allowance.
  std::int64_t sealed_early = 0;
};

/// One shard's seal.lua call in ShardProtocol::SealPipelined.
struct ShardSeal {
  std::uint32_t shard = 0;
  const Lease* lease = nullptr;  ///< Must outlive the call.
};

/// The receivers' watermarks on each Redis server (docs/redis-layout.md "Receivers'
/// watermarks"): a hash receiver id -> watermark (the server's TIME, ms), and a sorted set
/// receiver id -> expiry (the server's TIME, ms). Global keys of each server, not per shard.
inline constexpr std::string_view kWatermarksKey = "dm:wm";
inline constexpr std::string_view kWatermarkExpiryKey = "dm:wm_exp";

/// A request of gauges the outlet gave up on: the API rejected it for good (4xx other than
/// 429) or its retries passed the horizon (RELIABILITY.md §3.3 step 4). Kept in the shard's
/// `dlq` stream for operators; the gauges themselves are not (their hash identifies them).
struct DeadLetter {
  std::string tenant;
  std::int64_t close = 0;      ///< The window's close time (filled when read back).
  std::int64_t status = 0;     ///< The API's last HTTP status; 0 for a transport error.
  std::string reason;          ///< "rejected" or "expired".
  std::int64_t gauges = 0;     ///< Gauges in the request.
  std::string payload_sha256;  ///< Lowercase hex SHA-256 of the request body.
  std::string detail;          ///< The API's answer or the error, at most 512 bytes.
  friend bool operator==(const DeadLetter&, const DeadLetter&) = default;
};

/// The TTLs of the protocol's keys (docs/architecture.md, "Redis keys").
struct ShardProtocolOptions {
  /// dedupe:<tenant>:<frame> lifetime: how long a retried request is recognised.
  std::chrono::seconds dedupe_ttl{3600};
  /// pts:<close> and proc:<close> expire this long after their close time: a safety net
  /// for windows no outlet ever acks (Librato refuses measurements older than ~2 h anyway).
  std::chrono::seconds window_ttl{7200};
  /// sealed:<close>, sent:<close> and done:<close> lifetime.
  std::chrono::seconds marker_ttl{7200};
  /// Write allowance (config::ReceiverWriteAllowance): a window is sealed, and its records
  /// refused as late by ingest, only once close + write_allowance <= Redis TIME (or, for
  /// ingest, once it is sealed). Receivers and outlets of one deployment must agree.
  std::chrono::seconds write_allowance{0};
  /// Approximate cap (XADD MAXLEN ~) of each shard's dead-letter stream `dlq`.
  std::int64_t dead_letter_maxlen = 1000;
  /// How many shards' batches IngestPipelined writes in one ingest.lua call; 0 = all
  /// (one call, one AOF write and fsync, one reply per server and flush). A call names
  /// the keys of several shards, which a Redis Cluster would refuse (CROSSSLOT); 1 writes
  /// each shard with its own call, as drainmet did before (docs/redis-layout.md).
  std::size_t shards_per_ingest_call = 0;
};

/// The shard protocol's calls. Stateless apart from its options: one instance may be
/// shared by all threads, each using its own RedisClient. The client must talk to the
/// Redis server the shard maps to.
///
/// Errors: those of RedisClient (Unavailable: retry later, the call may or may not have
/// run; FailedPrecondition: a Redis error reply such as OOM), plus Aborted for a fenced
/// call whose lease is no longer held with the given value (script error "FENCED"): the
/// caller must stop working on that shard at once and acquire it again. Internal when a
/// reply has an unexpected shape.
class ShardProtocol {
 public:
  explicit ShardProtocol(ShardProtocolOptions options = {});

  /// "dm:{s<shard>}:": the prefix of every key of `shard`. The braces are a Redis Cluster
  /// hash tag, so all keys of a shard hash to one slot and live on one server.
  static std::string KeyPrefix(std::uint32_t shard);
  /// KeyPrefix(shard) + suffix, e.g. Key(3, "pending") = "dm:{s3}:pending".
  static std::string Key(std::uint32_t shard, std::string_view suffix);
  /// True for the status of a fenced call (Aborted).
  static bool IsFenced(const absl::Status& status);

  /// The server's clock (TIME), microseconds since the epoch: the clock windows close by.
  static absl::StatusOr<std::chrono::microseconds> ServerTime(RedisClient& client);

  /// Receiver write (ingest.lua), atomic for the whole batch: per request, in order, de-dup
  /// on (tenant, frame id, shard) for each of its non-empty frame ids (the request is a
  /// duplicate when any of them was applied; else all are marked), then each record is late
  /// when its close time <= Redis TIME or the window is sealed, else appended to its window
  /// and the window registered as pending. One result per request, in order.
  /// InvalidArgument (nothing sent) when a tenant is empty or holds ':'.
  absl::StatusOr<std::vector<ShardIngestResult>> Ingest(RedisClient& client, std::uint32_t shard,
                                                        std::span<const IngestRequest> requests) const;

  /// Several shards of one server in one round trip: one ingest.lua call per
  /// ShardProtocolOptions::shards_per_ingest_call batches (by default one call for all),
  /// each atomic as Ingest's. One entry per batch, in order; a transport error is repeated
  /// in every entry, and an error reply of a call in every entry of that call.
  std::vector<absl::StatusOr<std::vector<ShardIngestResult>>> IngestPipelined(
      RedisClient& client, std::span<const ShardIngest> batches) const;
  /// Read-only pre-check: whether each frame was already applied to its shard, i.e.
  /// whether Ingest would find it a duplicate now. One EXISTS per shard naming all its
  /// entries' de-dup keys, pipelined (one round trip); for a shard where some exist, one
  /// EXISTS per entry (a second round trip). Every entry's shard must live on `client`'s
  /// server. One bool per entry, in order.
  absl::StatusOr<std::vector<bool>> FramesApplied(RedisClient& client,
                                                  std::span<const ShardFrame> frames) const;

  /// Claims `shard` for `owner` (non-empty; unique per process incarnation) for `ttl`:
  /// the lease with a new, higher fencing token, or nullopt when the lease is held.
  absl::StatusOr<std::optional<Lease>> AcquireLease(RedisClient& client, std::uint32_t shard,
                                                    std::string_view owner,
                                                    std::chrono::milliseconds ttl) const;

  /// Extends `lease` to `ttl` from now. Aborted (fenced) when it expired or was taken over.
  absl::Status RenewLease(RedisClient& client, std::uint32_t shard, const Lease& lease,
                          std::chrono::milliseconds ttl) const;

  /// Gives `lease` up: true when deleted, false when it was no longer held with that value.
  absl::StatusOr<bool> ReleaseLease(RedisClient& client, std::uint32_t shard, const Lease& lease) const;

  /// Fenced (seal.lua): seals up to `limit` due windows, oldest first, and reports up to
  /// `limit` sealed windows not yet acked (see SealResult). A window is due once
  /// close + write_allowance <= Redis TIME, or, while at least one receiver's watermark on
  /// this server is live (kWatermarksKey; expired entries are removed first), once
  /// close * 1000 <= the smallest live watermark (ms).
  absl::StatusOr<SealResult> Seal(RedisClient& client, std::uint32_t shard, const Lease& lease,
                                  std::int64_t limit = 100) const;
  /// Seal for several shards of `client`'s server in one pipeline (one round trip). One
  /// entry per shard, in order; a transport error is repeated in every entry.
  std::vector<absl::StatusOr<SealResult>> SealPipelined(RedisClient& client,
                                                        std::span<const ShardSeal> shards,
                                                        std::int64_t limit = 100) const;

  /// watermark.lua: sets receiver `receiver`'s watermark on `client`'s server to
  /// `watermark_ms` (that server's clock, ms; 0 = unknown: it blocks early sealing there)
  /// and its entry's expiry to the server's TIME + `ttl`. `receiver` non-empty.
  absl::Status PublishWatermark(RedisClient& client, std::string_view receiver, std::int64_t watermark_ms,
                                std::chrono::milliseconds ttl) const;
  /// watermark.lua: removes receiver `receiver`'s entry (a clean stop). Idempotent.
  absl::Status WithdrawWatermark(RedisClient& client, std::string_view receiver) const;

  /// Records [offset, offset + max_records) of sealed window `close` (LRANGE on
  /// proc:<close>), in append order; fewer (possibly none) at the end of the window or
  /// when it does not exist. Not fenced: reading is harmless. `max_records` > 0.
  absl::StatusOr<std::vector<std::string>> ReadWindow(RedisClient& client, std::uint32_t shard,
                                                      std::int64_t close, std::int64_t offset,
                                                      std::int64_t max_records) const;

  /// Tenants of sealed window `close` already marked sent (SMEMBERS), unordered.
  absl::StatusOr<std::vector<std::string>> SentTenants(RedisClient& client, std::uint32_t shard,
                                                       std::int64_t close) const;

  /// Fenced (mark_sent.lua): adds `tenants` to sent:<close> and, in the same step, appends
  /// `dead_letters` to the shard's dead-letter stream dlq (capped near
  /// ShardProtocolOptions::dead_letter_maxlen). How many tenants were new.
  absl::StatusOr<std::int64_t> MarkSent(RedisClient& client, std::uint32_t shard, const Lease& lease,
                                        std::int64_t close, std::span<const std::string_view> tenants,
                                        std::span<const DeadLetter> dead_letters = {}) const;

  /// The newest `count` entries of the shard's dead-letter stream, newest first (XREVRANGE).
  /// For operators and tests.
  absl::StatusOr<std::vector<DeadLetter>> DeadLetters(RedisClient& client, std::uint32_t shard,
                                                      std::int64_t count) const;

  /// Fenced (ack.lua): deletes window `close` (proc, sent, index entry) and sets done:<close>.
  /// True when it was still there; false when already acked (acking again is harmless).
  absl::StatusOr<bool> Ack(RedisClient& client, std::uint32_t shard, const Lease& lease,
                           std::int64_t close) const;

  /// Close times of the pending (open or due, unsealed) windows of `shard`, ascending.
  /// For monitoring and tests.
  absl::StatusOr<std::vector<std::int64_t>> PendingCloses(RedisClient& client, std::uint32_t shard) const;

 private:
  ShardProtocolOptions options_;
};

}  // namespace drainmet::store
