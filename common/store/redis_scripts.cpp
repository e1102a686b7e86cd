#include "common/store/redis_scripts.h"

#include <algorithm>
#include <charconv>
#include <deque>
#include <iterator>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "ack_lua.h"
#include "common/base/status_macros.h"
#include "common/base/strings.h"
#include "ingest_lua.h"
#include "lease_acquire_lua.h"
#include "lease_release_lua.h"
#include "lease_renew_lua.h"
#include "mark_sent_lua.h"
#include "seal_lua.h"
#include "watermark_lua.h"

namespace drainmet::store {
namespace {

// The scripts, built once (their SHA-1 is computed on first use).
const RedisScript& IngestScript() {
  static const RedisScript script("ingest.lua", std::string(lua::kIngest));
  return script;
}
const RedisScript& LeaseAcquireScript() {
  static const RedisScript script("lease_acquire.lua", std::string(lua::kLeaseAcquire));
  return script;
}
const RedisScript& LeaseRenewScript() {
  static const RedisScript script("lease_renew.lua", std::string(lua::kLeaseRenew));
  return script;
}
const RedisScript& LeaseReleaseScript() {
  static const RedisScript script("lease_release.lua", std::string(lua::kLeaseRelease));
  return script;
}
const RedisScript& SealScript() {
  static const RedisScript script("seal.lua", std::string(lua::kSeal));
  return script;
}
const RedisScript& WatermarkScript() {
  static const RedisScript script("watermark.lua", std::string(lua::kWatermark));
  return script;
}
const RedisScript& MarkSentScript() {
  static const RedisScript script("mark_sent.lua", std::string(lua::kMarkSent));
  return script;
}
const RedisScript& AckScript() {
  static const RedisScript script("ack.lua", std::string(lua::kAck));
  return script;
}

// Arguments of one call: views, plus storage for the numbers formatted here (a deque
// never moves its elements, so views into them stay valid).
class Args {
 public:
  void Add(std::string_view value) { views_.push_back(value); }
  void Add(std::int64_t value) {
    owned_.push_back(std::to_string(value));
    views_.push_back(owned_.back());
  }
  /// Adds the argument `back` places before the end again.
  void Repeat(std::size_t back) {
    const std::string_view again = views_[views_.size() - back];
    views_.push_back(again);
  }
  void Reserve(std::size_t count) { views_.reserve(count); }
  absl::Span<const std::string_view> views() const { return views_; }

 private:
  std::deque<std::string> owned_;
  std::vector<std::string_view> views_;
};

absl::Status Fenced(absl::Status status) {
  if (RedisErrorCode(status) == "FENCED") return absl::AbortedError(status.message());
  return status;
}

absl::Status BadShape(std::string_view script, const Reply& reply) {
  return absl::InternalError(base::Cat("redis ", script, ": unexpected reply ", reply.DebugString()));
}

absl::StatusOr<std::vector<std::int64_t>> ParseCloses(std::string_view script, const Reply& reply) {
  if (!reply.is_array()) return BadShape(script, reply);
  std::vector<std::int64_t> closes;
  closes.reserve(reply.elements.size());
  for (const Reply& element : reply.elements) {
    std::int64_t close = 0;
    if (!element.is_string() || !absl::SimpleAtoi(element.str, &close)) {
      return BadShape(script, reply);
    }
    closes.push_back(close);
  }
  return closes;
}

// The bulk strings of an array reply, moved out of it (a window's records: no copy).
absl::StatusOr<std::vector<std::string>> ParseStrings(std::string_view command, Reply&& reply) {
  if (!reply.is_array()) return BadShape(command, reply);
  for (const Reply& element : reply.elements) {
    if (!element.is_string()) return BadShape(command, reply);
  }
  std::vector<std::string> strings;
  strings.reserve(reply.elements.size());
  for (Reply& element : reply.elements) strings.push_back(std::move(element.str));
  return strings;
}

absl::StatusOr<std::vector<ShardIngestResult>> ParseIngest(const Reply& reply, std::size_t requests) {
  if (reply.is_error()) return ErrorReplyStatus(reply.str);
  if (!reply.is_array() || reply.elements.size() != requests) return BadShape("ingest.lua", reply);
  std::vector<ShardIngestResult> results;
  results.reserve(requests);
  for (const Reply& element : reply.elements) {
    if (!element.is_array() || element.elements.size() != 3) return BadShape("ingest.lua", reply);
    for (const Reply& field : element.elements) {
      if (!field.is_integer()) return BadShape("ingest.lua", reply);
    }
    results.push_back(ShardIngestResult{element.elements[0].integer, element.elements[1].integer,
                                        element.elements[2].integer != 0});
  }
  return results;
}

/// A tenant usable in a de-dup key "dedupe:<tenant>:<frame>": non-empty, without ':'
/// (which could make two keys collide).
bool IsKeyTenant(std::string_view tenant) {
  return !tenant.empty() && tenant.find(':') == std::string_view::npos;
}

}  // namespace

std::string Lease::Value() const { return base::Cat(owner, ":", token); }

ShardProtocol::ShardProtocol(ShardProtocolOptions options) : options_(options) {}

namespace {
// Appends KeyPrefix(shard) to `out` (no formatting library: FramesApplied builds one key per
// request and part).
void AppendKeyPrefix(std::uint32_t shard, std::string& out) {
  char digits[std::numeric_limits<std::uint32_t>::digits10 + 1];
  const auto [end, ec] = std::to_chars(std::begin(digits), std::end(digits), shard);
  out.append("dm:{s", 5);
  out.append(digits, static_cast<std::size_t>(end - digits));
  out.append("}:", 2);
}
}  // namespace

std::string ShardProtocol::KeyPrefix(std::uint32_t shard) {
  std::string prefix;
  AppendKeyPrefix(shard, prefix);
  return prefix;
}

std::string ShardProtocol::Key(std::uint32_t shard, std::string_view suffix) {
  return base::Cat("dm:{s", shard, "}:", suffix);
}

bool ShardProtocol::IsFenced(const absl::Status& status) {
  return status.code() == absl::StatusCode::kAborted;
}

absl::StatusOr<std::chrono::microseconds> ShardProtocol::ServerTime(RedisClient& client) {
  DRAINMET_ASSIGN_OR_RETURN(Reply reply, client.Command({"TIME"}));
  std::int64_t seconds = 0;
  std::int64_t micros = 0;
  if (!reply.is_array() || reply.elements.size() != 2 || !reply.elements[0].is_string() ||
      !reply.elements[1].is_string() || !absl::SimpleAtoi(reply.elements[0].str, &seconds) ||
      !absl::SimpleAtoi(reply.elements[1].str, &micros)) {
    return BadShape("TIME", reply);
  }
  return std::chrono::microseconds(seconds * 1'000'000 + micros);
}

std::vector<absl::StatusOr<std::vector<ShardIngestResult>>> ShardProtocol::IngestPipelined(
    RedisClient& client, std::span<const ShardIngest> batches) const {
  if (client.pending() != 0) {
    return std::vector<absl::StatusOr<std::vector<ShardIngestResult>>>(
        batches.size(), absl::InternalError("ShardProtocol::Ingest: the client has "
                                            "uncollected commands"));
  }
  for (const ShardIngest& batch : batches) {
    for (const IngestRequest& request : batch.requests) {
      std::optional<std::string_view> bad;
      if (!IsKeyTenant(request.tenant)) bad = request.tenant;
      for (const FrameRef& frame : request.more_frames) {
        if (!IsKeyTenant(frame.tenant)) bad = frame.tenant;
      }
      if (bad) {
        return std::vector<absl::StatusOr<std::vector<ShardIngestResult>>>(
            batches.size(),
            absl::InvalidArgumentError(base::Cat("ShardProtocol::Ingest: bad tenant \"", *bad, "\"")));
      }
    }
  }
  // One call of up to shards_per_ingest_call batches (0: all of them). The calls' own
  // strings stay until GetReplies: AppendEvalReferencing writes the long ones (the records)
  // from where they are.
  const std::size_t per_call =
      options_.shards_per_ingest_call == 0 ? batches.size() : options_.shards_per_ingest_call;
  std::deque<std::string> prefixes;
  std::deque<Args> all_args;
  std::vector<std::string_view> keys;
  for (std::size_t first = 0; first < batches.size(); first += per_call) {
    const std::span<const ShardIngest> call =
        batches.subspan(first, std::min(per_call, batches.size() - first));
    Args& args = all_args.emplace_back();
    keys.clear();
    args.Add(static_cast<std::int64_t>(options_.dedupe_ttl.count()));
    args.Add(static_cast<std::int64_t>(options_.window_ttl.count()));
    args.Add(static_cast<std::int64_t>(options_.write_allowance.count()));
    args.Add(static_cast<std::int64_t>(call.size()));
    std::size_t count = 4;
    for (const ShardIngest& batch : call) {
      count += 2;
      for (const IngestRequest& request : batch.requests) {
        count += 3 + 2 * request.more_frames.size() + 2 * request.records.size();
      }
    }
    args.Reserve(count);
    for (const ShardIngest& batch : call) {
      const std::string& prefix = prefixes.emplace_back(KeyPrefix(batch.shard));
      keys.push_back(prefixes.emplace_back(prefix + "pending"));
      args.Add(prefix);
      args.Add(static_cast<std::int64_t>(batch.requests.size()));
      for (const IngestRequest& request : batch.requests) {
        args.Add(static_cast<std::int64_t>(1 + request.more_frames.size()));
        args.Add(request.tenant);
        args.Add(request.frame_id);
        for (const FrameRef& frame : request.more_frames) {
          args.Add(frame.tenant);
          args.Add(frame.frame_id);
        }
        args.Add(static_cast<std::int64_t>(request.records.size()));
        for (std::size_t r = 0; r < request.records.size(); ++r) {
          // A request's records nearly always share their close: formatted once.
          if (r > 0 && request.records[r].close_unix_s == request.records[r - 1].close_unix_s) {
            args.Repeat(2);
          } else {
            args.Add(request.records[r].close_unix_s);
          }
          args.Add(request.records[r].bytes);
        }
      }
    }
    client.AppendEvalReferencing(IngestScript(), keys, args.views());
  }

  std::vector<absl::StatusOr<std::vector<ShardIngestResult>>> results;
  results.reserve(batches.size());
  absl::StatusOr<std::vector<Reply>> replies = client.GetReplies();
  for (std::size_t first = 0, c = 0; first < batches.size(); first += per_call, ++c) {
    const std::size_t size = std::min(per_call, batches.size() - first);
    // A transport error, an error reply (the whole call did nothing, or, for an error
    // raised while running, what it did is unknown) or a reply of the wrong shape is
    // every batch's of the call.
    absl::Status failed;
    if (!replies.ok()) {
      failed = replies.status();
    } else if (const Reply& reply = (*replies)[c]; reply.is_error()) {
      failed = ErrorReplyStatus(reply.str);
    } else if (!reply.is_array() || reply.elements.size() != size) {
      failed = BadShape("ingest.lua", reply);
    }
    for (std::size_t b = first; b < first + size; ++b) {
      if (!failed.ok()) {
        results.push_back(failed);
      } else {
        results.push_back(ParseIngest((*replies)[c].elements[b - first], batches[b].requests.size()));
      }
    }
  }
  return results;
}

absl::StatusOr<std::vector<ShardIngestResult>> ShardProtocol::Ingest(
    RedisClient& client, std::uint32_t shard, std::span<const IngestRequest> requests) const {
  const ShardIngest batch{shard, requests};
  return std::move(IngestPipelined(client, std::span<const ShardIngest>(&batch, 1))[0]);
}

absl::StatusOr<std::vector<bool>> ShardProtocol::FramesApplied(RedisClient& client,
                                                               std::span<const ShardFrame> frames) const {
  if (client.pending() != 0) {
    return absl::InternalError("ShardProtocol::FramesApplied: the client has uncollected commands");
  }
  std::vector<bool> applied(frames.size(), false);
  if (frames.empty()) return applied;
  // The keys ingest.lua writes (<prefix>dedupe:<tenant>:<frame>), back to back.
  std::string bytes;
  std::vector<std::size_t> ends;
  ends.reserve(frames.size());
  for (const ShardFrame& frame : frames) {
    AppendKeyPrefix(frame.shard, bytes);
    bytes.append("dedupe:");
    bytes.append(frame.tenant);
    bytes.push_back(':');
    bytes.append(frame.frame_id);
    ends.push_back(bytes.size());
  }
  const auto key = [&](std::size_t f) {
    const std::size_t begin = f == 0 ? 0 : ends[f - 1];
    return std::string_view(bytes).substr(begin, ends[f] - begin);
  };
  // The frames by shard (a shard's keys share its hash tag, so one command may name them all).
  std::vector<std::size_t> order(frames.size());
  for (std::size_t f = 0; f < order.size(); ++f) order[f] = f;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return frames[a].shard < frames[b].shard; });
  std::vector<std::pair<std::size_t, std::size_t>> runs;  // [begin, end) of `order`, one shard each
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (i == 0 || frames[order[i]].shard != frames[order[i - 1]].shard) runs.emplace_back(i, i);
    runs.back().second = i + 1;
  }
  const auto exists = [](const Reply& reply) -> absl::StatusOr<std::int64_t> {
    if (reply.is_error()) return ErrorReplyStatus(reply.str);
    if (!reply.is_integer()) return BadShape("EXISTS", reply);
    return reply.integer;
  };
  // Nearly always none is applied (only a retry's are): one EXISTS of all a shard's keys
  // answers 0 then. Only a shard with some applied is asked key by key.
  std::vector<std::string_view> argv;
  for (const auto& [begin, end] : runs) {
    argv.assign(1, "EXISTS");
    for (std::size_t i = begin; i < end; ++i) argv.push_back(key(order[i]));
    client.Append(argv);
  }
  DRAINMET_ASSIGN_OR_RETURN(std::vector<Reply> counts, client.GetReplies());
  if (counts.size() != runs.size()) return absl::InternalError("EXISTS: reply count differs");
  std::vector<std::size_t> asked;  // frames asked one by one, in order
  for (std::size_t r = 0; r < runs.size(); ++r) {
    DRAINMET_ASSIGN_OR_RETURN(const std::int64_t count, exists(counts[r]));
    if (count == 0) continue;
    for (std::size_t i = runs[r].first; i < runs[r].second; ++i) {
      const std::string_view one[] = {"EXISTS", key(order[i])};
      client.Append(one);
      asked.push_back(order[i]);
    }
  }
  if (asked.empty()) return applied;
  DRAINMET_ASSIGN_OR_RETURN(std::vector<Reply> replies, client.GetReplies());
  if (replies.size() != asked.size()) return absl::InternalError("EXISTS: reply count differs");
  for (std::size_t k = 0; k < asked.size(); ++k) {
    DRAINMET_ASSIGN_OR_RETURN(const std::int64_t count, exists(replies[k]));
    applied[asked[k]] = count != 0;
  }
  return applied;
}

absl::StatusOr<std::optional<Lease>> ShardProtocol::AcquireLease(RedisClient& client, std::uint32_t shard,
                                                                 std::string_view owner,
                                                                 std::chrono::milliseconds ttl) const {
  if (owner.empty()) return absl::InvalidArgumentError("AcquireLease: owner must not be empty");
  if (ttl.count() <= 0) return absl::InvalidArgumentError("AcquireLease: ttl must be > 0");
  const std::string lease = Key(shard, "lease");
  const std::string fence = Key(shard, "fence");
  const std::string_view keys[] = {lease, fence};
  Args args;
  args.Add(owner);
  args.Add(static_cast<std::int64_t>(ttl.count()));
  DRAINMET_ASSIGN_OR_RETURN(Reply reply, client.Eval(LeaseAcquireScript(), keys, args.views()));
  if (reply.is_nil()) return std::optional<Lease>();
  if (!reply.is_integer()) return BadShape("lease_acquire.lua", reply);
  return std::optional<Lease>(Lease{std::string(owner), reply.integer});
}

absl::Status ShardProtocol::RenewLease(RedisClient& client, std::uint32_t shard, const Lease& lease,
                                       std::chrono::milliseconds ttl) const {
  if (ttl.count() <= 0) return absl::InvalidArgumentError("RenewLease: ttl must be > 0");
  const std::string key = Key(shard, "lease");
  const std::string value = lease.Value();
  const std::string_view keys[] = {key};
  Args args;
  args.Add(value);
  args.Add(static_cast<std::int64_t>(ttl.count()));
  absl::StatusOr<Reply> reply = client.Eval(LeaseRenewScript(), keys, args.views());
  if (!reply.ok()) return Fenced(reply.status());
  if (!reply->is_integer()) return BadShape("lease_renew.lua", *reply);
  return absl::OkStatus();
}

absl::StatusOr<bool> ShardProtocol::ReleaseLease(RedisClient& client, std::uint32_t shard,
                                                 const Lease& lease) const {
  const std::string key = Key(shard, "lease");
  const std::string value = lease.Value();
  const std::string_view keys[] = {key};
  const std::string_view args[] = {value};
  DRAINMET_ASSIGN_OR_RETURN(Reply reply, client.Eval(LeaseReleaseScript(), keys, args));
  if (!reply.is_integer()) return BadShape("lease_release.lua", reply);
  return reply.integer == 1;
}

namespace {

// seal.lua's reply: {sealed, ready, expired, early}.
absl::StatusOr<SealResult> ParseSeal(const Reply& reply) {
  if (reply.is_error()) return Fenced(ErrorReplyStatus(reply.str));
  if (!reply.is_array() || reply.elements.size() != 4 || !reply.elements[3].is_integer()) {
    return BadShape("seal.lua", reply);
  }
  SealResult result;
  DRAINMET_ASSIGN_OR_RETURN(result.sealed, ParseCloses("seal.lua", reply.elements[0]));
  DRAINMET_ASSIGN_OR_RETURN(result.ready, ParseCloses("seal.lua", reply.elements[1]));
  DRAINMET_ASSIGN_OR_RETURN(result.expired, ParseCloses("seal.lua", reply.elements[2]));
  result.sealed_early = reply.elements[3].integer;
  return result;
}

}  // namespace

absl::StatusOr<SealResult> ShardProtocol::Seal(RedisClient& client, std::uint32_t shard, const Lease& lease,
                                               std::int64_t limit) const {
  const ShardSeal one[] = {{shard, &lease}};
  return std::move(SealPipelined(client, one, limit).front());
}

std::vector<absl::StatusOr<SealResult>> ShardProtocol::SealPipelined(RedisClient& client,
                                                                     std::span<const ShardSeal> shards,
                                                                     std::int64_t limit) const {
  if (limit <= 0) {
    return std::vector<absl::StatusOr<SealResult>>(shards.size(),
                                                   absl::InvalidArgumentError("Seal: limit must be > 0"));
  }
  if (client.pending() != 0) {
    return std::vector<absl::StatusOr<SealResult>>(
        shards.size(), absl::InternalError("ShardProtocol::Seal: the client has uncollected commands"));
  }
  for (const ShardSeal& one : shards) {
    const std::string prefix = KeyPrefix(one.shard);
    const std::string lease_key = prefix + "lease";
    const std::string pending = prefix + "pending";
    const std::string sealed_index = prefix + "sealed_index";
    const std::string value = one.lease->Value();
    const std::string_view keys[] = {lease_key, pending, sealed_index};
    Args args;  // views: AppendEval encodes the call at once
    args.Add(prefix);
    args.Add(value);
    args.Add(limit);
    args.Add(static_cast<std::int64_t>(options_.marker_ttl.count()));
    args.Add(static_cast<std::int64_t>(options_.write_allowance.count()));
    args.Add(kWatermarksKey);
    args.Add(kWatermarkExpiryKey);
    client.AppendEval(SealScript(), keys, args.views());
  }
  std::vector<absl::StatusOr<SealResult>> results;
  results.reserve(shards.size());
  absl::StatusOr<std::vector<Reply>> replies = client.GetReplies();
  for (std::size_t i = 0; i < shards.size(); ++i) {
    if (!replies.ok()) {
      results.push_back(replies.status());
    } else {
      results.push_back(ParseSeal((*replies)[i]));
    }
  }
  return results;
}

absl::Status ShardProtocol::PublishWatermark(RedisClient& client, std::string_view receiver,
                                             std::int64_t watermark_ms, std::chrono::milliseconds ttl) const {
  if (receiver.empty()) return absl::InvalidArgumentError("PublishWatermark: empty receiver id");
  const std::string_view keys[] = {kWatermarksKey, kWatermarkExpiryKey};
  Args args;
  args.Add(receiver);
  args.Add(std::string_view("set"));
  args.Add(std::max<std::int64_t>(0, watermark_ms));
  args.Add(static_cast<std::int64_t>(ttl.count()));
  DRAINMET_ASSIGN_OR_RETURN(Reply reply, client.Eval(WatermarkScript(), keys, args.views()));
  if (!reply.is_integer()) return BadShape("watermark.lua", reply);
  return absl::OkStatus();
}

absl::Status ShardProtocol::WithdrawWatermark(RedisClient& client, std::string_view receiver) const {
  if (receiver.empty()) return absl::InvalidArgumentError("WithdrawWatermark: empty receiver id");
  const std::string_view keys[] = {kWatermarksKey, kWatermarkExpiryKey};
  const std::string_view args[] = {receiver, "del"};
  DRAINMET_ASSIGN_OR_RETURN(Reply reply, client.Eval(WatermarkScript(), keys, args));
  if (!reply.is_integer()) return BadShape("watermark.lua", reply);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ShardProtocol::ReadWindow(RedisClient& client, std::uint32_t shard,
                                                                   std::int64_t close, std::int64_t offset,
                                                                   std::int64_t max_records) const {
  if (offset < 0 || max_records <= 0) {
    return absl::InvalidArgumentError("ReadWindow: offset must be >= 0 and max_records > 0");
  }
  const std::string key = Key(shard, base::Cat("proc:", close));
  const std::string start = std::to_string(offset);
  const std::string stop = std::to_string(offset + max_records - 1);
  DRAINMET_ASSIGN_OR_RETURN(Reply reply, client.Command({"LRANGE", key, start, stop}));
  return ParseStrings("LRANGE", std::move(reply));
}

absl::StatusOr<std::vector<std::string>> ShardProtocol::SentTenants(RedisClient& client, std::uint32_t shard,
                                                                    std::int64_t close) const {
  const std::string key = Key(shard, base::Cat("sent:", close));
  DRAINMET_ASSIGN_OR_RETURN(Reply reply, client.Command({"SMEMBERS", key}));
  return ParseStrings("SMEMBERS", std::move(reply));
}

absl::StatusOr<std::int64_t> ShardProtocol::MarkSent(RedisClient& client, std::uint32_t shard,
                                                     const Lease& lease, std::int64_t close,
                                                     std::span<const std::string_view> tenants,
                                                     std::span<const DeadLetter> dead_letters) const {
  const std::string prefix = KeyPrefix(shard);
  const std::string lease_key = prefix + "lease";
  const std::string value = lease.Value();
  const std::string_view keys[] = {lease_key};
  Args args;
  args.Add(prefix);
  args.Add(value);
  args.Add(close);
  args.Add(static_cast<std::int64_t>(options_.marker_ttl.count()));
  args.Add(options_.dead_letter_maxlen);
  args.Add(static_cast<std::int64_t>(tenants.size()));
  for (std::string_view tenant : tenants) args.Add(tenant);
  for (const DeadLetter& letter : dead_letters) {
    args.Add(letter.tenant);
    args.Add(letter.status);
    args.Add(letter.reason);
    args.Add(letter.gauges);
    args.Add(letter.payload_sha256);
    args.Add(std::string_view(letter.detail).substr(0, 512));
  }
  absl::StatusOr<Reply> reply = client.Eval(MarkSentScript(), keys, args.views());
  if (!reply.ok()) return Fenced(reply.status());
  if (!reply->is_integer()) return BadShape("mark_sent.lua", *reply);
  return reply->integer;
}

absl::StatusOr<std::vector<DeadLetter>> ShardProtocol::DeadLetters(RedisClient& client, std::uint32_t shard,
                                                                   std::int64_t count) const {
  const std::string key = Key(shard, "dlq");
  const std::string n = std::to_string(count);
  const std::string_view argv[] = {"XREVRANGE", key, "+", "-", "COUNT", n};
  DRAINMET_ASSIGN_OR_RETURN(Reply reply, client.Command(argv));
  if (!reply.is_array()) return BadShape("XREVRANGE", reply);
  std::vector<DeadLetter> letters;
  for (const Reply& entry : reply.elements) {
    // [id, [field, value, ...]]
    if (!entry.is_array() || entry.elements.size() != 2 || !entry.elements[1].is_array())
      return BadShape("XREVRANGE", reply);
    const std::vector<Reply>& fields = entry.elements[1].elements;
    DeadLetter letter;
    for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
      const std::string& name = fields[i].str;
      const std::string& value = fields[i + 1].str;
      if (name == "tenant") {
        letter.tenant = value;
      } else if (name == "close") {
        if (!absl::SimpleAtoi(value, &letter.close)) return BadShape("XREVRANGE close", reply);
      } else if (name == "status") {
        if (!absl::SimpleAtoi(value, &letter.status)) return BadShape("XREVRANGE status", reply);
      } else if (name == "reason") {
        letter.reason = value;
      } else if (name == "gauges") {
        if (!absl::SimpleAtoi(value, &letter.gauges)) return BadShape("XREVRANGE gauges", reply);
      } else if (name == "payload_sha256") {
        letter.payload_sha256 = value;
      } else if (name == "detail") {
        letter.detail = value;
      }
    }
    letters.push_back(std::move(letter));
  }
  return letters;
}

absl::StatusOr<bool> ShardProtocol::Ack(RedisClient& client, std::uint32_t shard, const Lease& lease,
                                        std::int64_t close) const {
  const std::string prefix = KeyPrefix(shard);
  const std::string lease_key = prefix + "lease";
  const std::string sealed_index = prefix + "sealed_index";
  const std::string value = lease.Value();
  const std::string_view keys[] = {lease_key, sealed_index};
  Args args;
  args.Add(prefix);
  args.Add(value);
  args.Add(close);
  args.Add(static_cast<std::int64_t>(options_.marker_ttl.count()));
  absl::StatusOr<Reply> reply = client.Eval(AckScript(), keys, args.views());
  if (!reply.ok()) return Fenced(reply.status());
  if (!reply->is_integer()) return BadShape("ack.lua", *reply);
  return reply->integer == 1;
}

absl::StatusOr<std::vector<std::int64_t>> ShardProtocol::PendingCloses(RedisClient& client,
                                                                       std::uint32_t shard) const {
  const std::string key = Key(shard, "pending");
  DRAINMET_ASSIGN_OR_RETURN(Reply reply, client.Command({"ZRANGE", key, "0", "-1"}));
  return ParseCloses("ZRANGE", reply);
}

}  // namespace drainmet::store
