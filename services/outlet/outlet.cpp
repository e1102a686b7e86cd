#include "services/outlet/outlet.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/bucket/codec.h"
#include "common/bucket/partial_bucket.h"
#include "common/config/auth.h"
#include "common/emit/outlet.h"
#include "common/emit/retry.h"
#include "common/librato/gauge.h"
#include "common/telemetry/log.h"

namespace drainmet::outlet {
namespace {

using telemetry::Level;
using telemetry::Log;

constexpr std::int64_t kNanosPerMilli = 1'000'000;
constexpr auto kSlice = std::chrono::milliseconds(50);

std::int64_t SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Sleeps `total` in short slices, returning early once `stop` is set.
void SleepUnless(std::chrono::milliseconds total, const std::atomic<bool>& stop) {
  while (total.count() > 0 && !stop.load()) {
    const auto step = std::min<std::chrono::milliseconds>(total, kSlice);
    std::this_thread::sleep_for(step);
    total -= step;
  }
}

std::string Num(std::int64_t v) { return std::to_string(v); }

// drainmet_outlet_lease_renewals_total on `metrics`' registry (the registry merges a family
// registered again, e.g. by a second outlet of one process).
prometheus::Family<prometheus::Counter>& RenewalFamily(telemetry::Metrics& metrics) {
  return prometheus::BuildCounter()
      .Name("drainmet_outlet_lease_renewals_total")
      .Help(
          "Shard lease renewals by result: ok, refused (fenced: the lease expired or was taken over; "
          "the shard is dropped), failed (Redis did not answer).")
      .Register(metrics.registry());
}

}  // namespace

std::string NewOwnerId() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof host, "unknown");
  std::random_device device;
  const std::uint64_t random = (static_cast<std::uint64_t>(device()) << 32) ^ device();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(random));
  return std::string(host) + ":" + std::to_string(getpid()) + ":" + hex;
}

struct ShardOutlet::Worker {
  int index = 0;
  std::vector<store::RedisClient> clients;
  std::shared_ptr<const TenantView> view;  // The copy `sink` was made from (TenantSink refers to it).
  std::unique_ptr<emit::Sink> sink;        // Declared after `view`: destroyed first.
  std::mt19937_64 rng;
  std::size_t last_buckets = 0;  // Buckets of this worker's last window: the next table's reserve.
  bucket::ElementReader reader;  // Decodes the window's records, reusing its storage.
  bucket::BucketMap merged;      // The window's buckets; cleared, not freed, between windows.
};

ShardOutlet::ShardOutlet(config::Config config, OutletOptions options, const base::Clock& clock,
                         telemetry::Metrics& metrics)
    : config_(std::move(config)),
      options_(std::move(options)),
      clock_(clock),
      metrics_(metrics),
      owner_(options_.owner.empty() ? NewOwnerId() : options_.owner),
      protocol_(store::ShardProtocolOptions{.write_allowance = config::ReceiverWriteAllowance(config_)}),
      shards_(std::max<std::uint32_t>(1, config_.redis.shards)),
      view_(MakeView(std::make_shared<const config::Config>(config_), 0)),
      states_(shards_),
      renewals_ok_(&RenewalFamily(metrics_).Add({{"result", "ok"}})),
      renewals_refused_(&RenewalFamily(metrics_).Add({{"result", "refused"}})),
      renewals_failed_(&RenewalFamily(metrics_).Add({{"result", "failed"}})) {}

std::shared_ptr<const ShardOutlet::TenantView> ShardOutlet::MakeView(
    std::shared_ptr<const config::Config> config, std::uint64_t generation) {
  auto view = std::make_shared<TenantView>();
  view->config = std::move(config);
  for (std::size_t i = 0; i < view->config->tenants.size(); ++i)
    view->tenant_index[view->config->tenants[i].id] = i;
  view->generation = generation;
  return view;
}

std::shared_ptr<const ShardOutlet::TenantView> ShardOutlet::View() const {
  std::lock_guard<std::mutex> lock(view_mu_);
  return view_;
}

std::shared_ptr<const config::Config> ShardOutlet::CurrentConfig() const { return View()->config; }

absl::Status ShardOutlet::UpdateConfig(config::Config config) {
  DRAINMET_RETURN_IF_ERROR(config::Validate(config));
  std::string restart;
  auto note = [&](bool differs, const char* key) {
    if (!differs) return;
    if (!restart.empty()) restart += ',';
    restart += key;
  };
  note(config.redis != config_.redis, "redis");
  note(config.outlet.lease_ttl_ms != config_.outlet.lease_ttl_ms, "outlet.lease_ttl_ms");
  note(config.outlet.lease_renew_ms != config_.outlet.lease_renew_ms, "outlet.lease_renew_ms");
  note(config.outlet.seal_interval_ms != config_.outlet.seal_interval_ms, "outlet.seal_interval_ms");
  if (!restart.empty())
    Log(Level::kWarn, "config change needs restart; keeping the values in use", {{"keys", restart}});
  // Keep what the manager and the clients use, so the view describes what runs.
  config.redis = config_.redis;
  config.outlet.lease_ttl_ms = config_.outlet.lease_ttl_ms;
  config.outlet.lease_renew_ms = config_.outlet.lease_renew_ms;
  config.outlet.seal_interval_ms = config_.outlet.seal_interval_ms;
  const std::size_t tenants = config.tenants.size();
  {
    std::lock_guard<std::mutex> lock(view_mu_);
    view_ = MakeView(std::make_shared<const config::Config>(std::move(config)), view_->generation + 1);
  }
  Log(Level::kInfo, "config applied: later windows use its tenants",
      {{"tenants", Num(static_cast<std::int64_t>(tenants))}});
  return absl::OkStatus();
}

void ShardOutlet::RefreshSink(Worker& worker, std::shared_ptr<const TenantView> view) const {
  if (worker.sink != nullptr && worker.view != nullptr && worker.view->generation == view->generation) return;
  worker.sink.reset();  // Before its config goes.
  worker.view = std::move(view);
  worker.sink = options_.make_sink ? options_.make_sink(*worker.view->config)
                                   : std::make_unique<emit::TenantSink>(*worker.view->config);
}

ShardOutlet::~ShardOutlet() { Stop(); }

absl::StatusOr<std::vector<store::RedisClient>> ShardOutlet::MakeClients() const {
  std::vector<store::RedisClient> clients;
  for (const std::string& server : config_.redis.servers) {
    absl::StatusOr<config::RedisAddress> address = config::ParseRedisAddress(server);
    if (!address.ok()) return address.status();
    store::RedisClient::Options o;
    o.unix_socket = address->unix_socket;
    if (o.unix_socket.empty()) {
      o.host = address->host;
      o.port = address->port;
    }
    o.connect_timeout = std::chrono::milliseconds(config_.redis.connect_timeout_ms);
    o.command_timeout = std::chrono::milliseconds(config_.redis.command_timeout_ms);
    clients.emplace_back(std::move(o));
  }
  if (clients.empty()) return absl::InvalidArgumentError("redis.servers: empty");
  return clients;
}

store::RedisClient& ShardOutlet::ClientFor(std::vector<store::RedisClient>& clients,
                                           std::uint32_t shard) const {
  return clients[config::ServerOfShard(config_, shard) % clients.size()];
}

void ShardOutlet::NoteRedisOk() { redis_ok_ns_.store(SteadyNanos()); }

bool ShardOutlet::RedisHealthy() const {
  const std::int64_t window =
      std::max<std::int64_t>(3000, 2 * config_.outlet.lease_renew_ms) * kNanosPerMilli;
  const std::int64_t ok = redis_ok_ns_.load();
  return ok > 0 && SteadyNanos() - ok < window;
}

std::vector<std::uint32_t> ShardOutlet::HeldShards() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::uint32_t> held;
  for (std::uint32_t s = 0; s < shards_; ++s)
    if (states_[s].lease) held.push_back(s);
  return held;
}

absl::Status ShardOutlet::Start() {
  if (started_.exchange(true)) return absl::FailedPreconditionError("already started");
  if (options_.threads < 1) return absl::InvalidArgumentError("threads: must be >= 1");
  absl::StatusOr<std::vector<store::RedisClient>> manager_clients = MakeClients();
  if (!manager_clients.ok()) return manager_clients.status();
  std::vector<Worker> workers(static_cast<std::size_t>(options_.threads));
  const std::uint64_t seed = options_.seed != 0 ? options_.seed : std::random_device{}();
  for (int i = 0; i < options_.threads; ++i) {
    Worker& w = workers[static_cast<std::size_t>(i)];
    w.index = i;
    w.clients = *MakeClients();
    RefreshSink(w, View());
    w.rng.seed(seed + static_cast<std::uint64_t>(i) + 1);
  }
  Log(Level::kInfo, "outlet starting",
      {{"owner", owner_},
       {"shards", Num(shards_)},
       {"threads", Num(options_.threads)},
       {"lease_ttl_ms", Num(config_.outlet.lease_ttl_ms)},
       {"lease_renew_ms", Num(config_.outlet.lease_renew_ms)}});
  manager_ = std::thread([this, clients = std::move(*manager_clients), seed]() mutable {
    std::mt19937_64 rng(seed);
    while (!manager_stop_.load()) {
      if (!manager_paused_.load()) ManagerTick(clients, rng);
      SleepUnless(std::chrono::milliseconds(config_.outlet.lease_renew_ms), manager_stop_);
    }
    // Shutdown: give every lease up so other outlets take the shards at once.
    std::vector<std::pair<std::uint32_t, store::Lease>> held;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (std::uint32_t s = 0; s < shards_; ++s) {
        if (states_[s].lease) held.emplace_back(s, *states_[s].lease);
        states_[s].lease.reset();
      }
    }
    int released = 0;
    for (const auto& [shard, lease] : held) {
      absl::StatusOr<bool> r = protocol_.ReleaseLease(ClientFor(clients, shard), shard, lease);
      if (r.ok() && *r) ++released;
      if (!r.ok())
        Log(Level::kWarn, "lease release failed", {{"shard", Num(shard)}, {"error", r.status().ToString()}});
    }
    const std::string_view zrem[] = {"ZREM", kOutletsKey, owner_};
    (void)clients[0].Command(zrem);
    PublishLeaseCount();
    Log(Level::kInfo, "leases released",
        {{"released", Num(released)}, {"held", Num(static_cast<std::int64_t>(held.size()))}});
  });
  for (Worker& w : workers) {
    workers_.emplace_back([this, worker = std::move(w)]() mutable {
      Worker local = std::move(worker);
      WorkerLoop(local);
    });
  }
  return absl::OkStatus();
}

void ShardOutlet::Stop() {
  if (!started_.load() || stopped_.exchange(true)) return;
  Log(Level::kInfo, "outlet stopping: finishing the windows in progress",
      {{"timeout_ms", Num(options_.shutdown_timeout_ms)}});
  shutdown_deadline_ns_.store(SteadyNanos() + options_.shutdown_timeout_ms * kNanosPerMilli);
  stopping_.store(true);
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  // The manager kept renewing while the workers finished; now it releases everything.
  manager_stop_.store(true);
  if (manager_.joinable()) manager_.join();
}

void ShardOutlet::PublishLeaseCount() {
  std::size_t held = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const ShardState& s : states_) held += s.lease ? 1 : 0;
  }
  metrics_.SetLeasesHeld(static_cast<double>(held));
}

void ShardOutlet::DropLease(std::uint32_t shard, std::int64_t token, std::string_view why) {
  bool dropped = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ShardState& s = states_[shard];
    if (s.lease && s.lease->token == token) {
      s.lease.reset();
      s.release_wanted = false;
      dropped = true;
    }
  }
  if (dropped) {
    Log(Level::kWarn, "shard lease lost; work on it stopped",
        {{"shard", Num(shard)}, {"token", Num(token)}, {"why", why}});
    PublishLeaseCount();
  }
}

bool ShardOutlet::StillHeld(std::uint32_t shard, std::int64_t token) const {
  std::lock_guard<std::mutex> lock(mu_);
  const ShardState& s = states_[shard];
  return s.lease && s.lease->token == token;
}

std::optional<std::int64_t> ShardOutlet::Heartbeat(store::RedisClient& c0) {
  absl::StatusOr<std::chrono::microseconds> server_time = store::ShardProtocol::ServerTime(c0);
  if (!server_time.ok()) {
    Log(Level::kWarn, "Redis server 0 unavailable: no heartbeat; the last outlet count stands",
        {{"error", server_time.status().ToString()}});
    return std::nullopt;
  }
  const std::int64_t now_ms = server_time->count() / 1000;
  const std::string score = Num(now_ms);
  // Built by append: `"(" + std::string` trips GCC 12's -Wrestrict false positive at -O3.
  std::string cutoff = "(";
  // An outlet is live while its heartbeat (written every lease_renew_ms) is younger than
  // max(3 renewals, one lease time): a dead outlet leaves the count about when its leases
  // expire, so the others' share grows and its shards are taken over in about one lease time.
  cutoff +=
      Num(now_ms - std::max<std::int64_t>(3 * config_.outlet.lease_renew_ms, config_.outlet.lease_ttl_ms));
  const std::string_view zadd[] = {"ZADD", kOutletsKey, score, owner_};
  const std::string_view zrem[] = {"ZREMRANGEBYSCORE", kOutletsKey, "-inf", cutoff};
  const std::string_view zcard[] = {"ZCARD", kOutletsKey};
  c0.Append(zadd);
  c0.Append(zrem);
  c0.Append(zcard);
  absl::StatusOr<std::vector<store::Reply>> replies = c0.GetReplies();
  if (!replies.ok() || replies->size() != 3 || !(*replies)[2].is_integer()) {
    Log(Level::kWarn, "heartbeat failed; the last outlet count stands",
        {{"error", replies.ok() ? std::string("unexpected reply") : replies.status().ToString()}});
    return std::nullopt;
  }
  NoteRedisOk();
  return (*replies)[2].integer;
}

void ShardOutlet::ManagerTick(std::vector<store::RedisClient>& clients, std::mt19937_64& rng) {
  const auto ttl = std::chrono::milliseconds(config_.outlet.lease_ttl_ms);

  // 1. Renew every held lease.
  std::vector<std::pair<std::uint32_t, store::Lease>> held;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::uint32_t s = 0; s < shards_; ++s)
      if (states_[s].lease) held.emplace_back(s, *states_[s].lease);
  }
  for (const auto& [shard, lease] : held) {
    const absl::Status status = protocol_.RenewLease(ClientFor(clients, shard), shard, lease, ttl);
    const auto now = std::chrono::steady_clock::now();
    if (status.ok()) {
      renewals_ok_->Increment();
      NoteRedisOk();
      std::lock_guard<std::mutex> lock(mu_);
      ShardState& s = states_[shard];
      if (s.lease && s.lease->token == lease.token) s.renewed = now;
    } else if (store::ShardProtocol::IsFenced(status)) {
      renewals_refused_->Increment();
      NoteRedisOk();
      // Logged once, by DropLease ("shard lease lost", why = this): the lease is no longer
      // held afterwards, so it is not renewed (nor refused) again.
      DropLease(shard, lease.token, "fenced at renewal: the lease expired or was taken over");
    } else {
      renewals_failed_->Increment();
      Log(Level::kWarn, "lease renewal failed", {{"shard", Num(shard)}, {"error", status.ToString()}});
      std::chrono::steady_clock::time_point renewed;
      {
        std::lock_guard<std::mutex> lock(mu_);
        renewed = states_[shard].renewed;
      }
      if (now - renewed >= ttl) DropLease(shard, lease.token, "not renewed for a whole lease time");
    }
  }
  PublishLeaseCount();
  if (stopping_.load()) return;  // Shutting down: claim nothing new.

  // 2. Heartbeat on server 0; live outlets = members seen recently (below). While server 0
  // is unreachable, the last count stands: shards of the other servers can still be
  // claimed (a dead outlet's shards there are taken over as orphans).
  const std::int64_t live = std::max<std::int64_t>(1, Heartbeat(clients[0]).value_or(last_live_));
  last_live_ = live;
  const std::int64_t share = (static_cast<std::int64_t>(shards_) + live - 1) / live;

  // 3. Claim free shards up to the share (plus shards free for over a lease time).
  std::int64_t holding = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const ShardState& s : states_) holding += s.lease ? 1 : 0;
  }
  std::int64_t free_seen = 0;
  std::vector<std::uint32_t> acquired;  // this pass's new leases (logged once below)
  std::int64_t orphans = 0;
  const std::uint32_t offset = static_cast<std::uint32_t>(rng() % shards_);
  for (std::uint32_t i = 0; i < shards_; ++i) {
    const std::uint32_t shard = (offset + i) % shards_;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (states_[shard].lease) continue;
    }
    store::RedisClient& client = ClientFor(clients, shard);
    bool orphan = false;
    if (holding >= share) {
      const std::string key = store::ShardProtocol::Key(shard, "lease");
      const std::string_view exists[] = {"EXISTS", key};
      absl::StatusOr<store::Reply> r = client.Command(exists);
      if (!r.ok() || !r->is_integer()) continue;
      const auto now = std::chrono::steady_clock::now();
      std::lock_guard<std::mutex> lock(mu_);
      ShardState& s = states_[shard];
      if (r->integer != 0) {
        s.seen_free_since.reset();
        continue;
      }
      ++free_seen;
      if (!s.seen_free_since) s.seen_free_since = now;
      if (now - *s.seen_free_since <= ttl) continue;
      orphan = true;
    }
    absl::StatusOr<std::optional<store::Lease>> lease = protocol_.AcquireLease(client, shard, owner_, ttl);
    if (!lease.ok()) {
      Log(Level::kWarn, "lease acquisition failed",
          {{"shard", Num(shard)}, {"error", lease.status().ToString()}});
      continue;
    }
    NoteRedisOk();
    std::lock_guard<std::mutex> lock(mu_);
    ShardState& s = states_[shard];
    s.seen_free_since.reset();
    if (!lease->has_value()) continue;
    if (orphan) --free_seen;
    s.lease = std::move(**lease);
    s.renewed = std::chrono::steady_clock::now();
    s.release_wanted = false;
    ++holding;
    acquired.push_back(shard);
    if (orphan) ++orphans;
    Log(Level::kDebug, "shard lease acquired",
        {{"shard", Num(shard)}, {"token", Num(s.lease->token)}, {"orphan", orphan ? "true" : "false"}});
  }
  // One line a pass at info (a start-up takes dozens of shards at once).
  if (!acquired.empty()) {
    Log(Level::kInfo, "shard leases acquired",
        {{"count", Num(static_cast<std::int64_t>(acquired.size()))},
         {"shards", absl::StrJoin(acquired, ",")},
         {"orphans", Num(orphans)},
         {"holding", Num(holding)}});
  }

  // 4. Over the share while every shard is held: an outlet joined; give the excess up
  // (each after its window in progress).
  if (holding > share && free_seen == 0) {
    std::int64_t excess = holding - share;
    std::vector<std::uint32_t> releasing;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (std::uint32_t s = shards_; s-- > 0 && excess > 0;) {
        if (!states_[s].lease) continue;
        if (!states_[s].release_wanted) {
          states_[s].release_wanted = true;
          releasing.push_back(s);
        }
        --excess;
      }
    }
    if (!releasing.empty()) {
      Log(Level::kInfo, "releasing shards to rebalance",
          {{"count", Num(static_cast<std::int64_t>(releasing.size()))},
           {"shards", absl::StrJoin(releasing, ",")},
           {"share", Num(share)},
           {"live_outlets", Num(live)}});
    }
  }
  PublishLeaseCount();
}

void ShardOutlet::WorkerLoop(Worker& worker) {
  const auto stride = static_cast<std::uint32_t>(options_.threads);
  struct Held {
    std::uint32_t shard = 0;
    store::Lease lease;
    std::optional<absl::StatusOr<store::SealResult>> sealed;
  };
  std::vector<Held> held;
  std::vector<std::vector<std::size_t>> by_server(worker.clients.size());
  std::vector<store::ShardSeal> seals;
  while (!stopping_.load()) {
    bool worked = false;
    held.clear();
    for (std::uint32_t shard = static_cast<std::uint32_t>(worker.index); shard < shards_ && !stopping_.load();
         shard += stride) {
      std::optional<store::Lease> lease;
      bool release = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        lease = states_[shard].lease;
        release = states_[shard].release_wanted;
      }
      if (!lease) continue;
      if (release) {
        absl::StatusOr<bool> r = protocol_.ReleaseLease(ClientFor(worker.clients, shard), shard, *lease);
        if (!r.ok()) {
          Log(Level::kWarn, "lease release failed",
              {{"shard", Num(shard)}, {"error", r.status().ToString()}});
          continue;
        }
        NoteRedisOk();
        {
          std::lock_guard<std::mutex> lock(mu_);
          ShardState& s = states_[shard];
          if (s.lease && s.lease->token == lease->token) {
            s.lease.reset();
            s.release_wanted = false;
          }
        }
        Log(Level::kDebug, "shard lease released (rebalance)", {{"shard", Num(shard)}});
        PublishLeaseCount();
        continue;
      }
      held.push_back(Held{shard, std::move(*lease), std::nullopt});
    }
    // Seal every held shard of a server in one round trip (a pass over 64 idle shards is
    // then one pipelined call per server, cheap enough for outlet.seal_interval_ms).
    for (auto& indices : by_server) indices.clear();
    for (std::size_t i = 0; i < held.size(); ++i) {
      by_server[config::ServerOfShard(config_, held[i].shard) % by_server.size()].push_back(i);
    }
    for (std::size_t server = 0; server < by_server.size() && !stopping_.load(); ++server) {
      if (by_server[server].empty()) continue;
      seals.clear();
      for (std::size_t i : by_server[server])
        seals.push_back(store::ShardSeal{held[i].shard, &held[i].lease});
      std::vector<absl::StatusOr<store::SealResult>> results =
          protocol_.SealPipelined(worker.clients[server], seals, options_.seal_limit);
      for (std::size_t k = 0; k < results.size(); ++k) {
        Held& h = held[by_server[server][k]];
        // Counted as soon as sealed (the windows are worked one shard after the other).
        if (results[k].ok()) CountSealed(h.shard, *results[k]);
        h.sealed = std::move(results[k]);
      }
    }
    for (Held& h : held) {
      if (stopping_.load()) break;
      if (!h.sealed) continue;
      worked |= WorkShard(worker, h.shard, h.lease, std::move(*h.sealed));
    }
    if (!worked) SleepUnless(std::chrono::milliseconds(config_.outlet.seal_interval_ms), stopping_);
  }
}

void ShardOutlet::CountSealed(std::uint32_t shard, const store::SealResult& sealed) {
  if (sealed.sealed.empty()) return;
  const auto early = static_cast<std::uint64_t>(std::max<std::int64_t>(0, sealed.sealed_early));
  if (early > 0) metrics_.CountSealed("watermark", early);
  if (sealed.sealed.size() > early) metrics_.CountSealed("allowance", sealed.sealed.size() - early);
  for (std::int64_t close : sealed.sealed) {
    Log(Level::kDebug, "window sealed",
        {{"shard", Num(shard)}, {"close", Num(close)}, {"early", early > 0 ? "true" : "false"}});
  }
}

bool ShardOutlet::WorkShard(Worker& worker, std::uint32_t shard, const store::Lease& lease,
                            absl::StatusOr<store::SealResult> sealed) {
  if (!sealed.ok()) {
    if (store::ShardProtocol::IsFenced(sealed.status())) {
      NoteRedisOk();
      DropLease(shard, lease.token, "fenced at seal");
    } else {
      Log(Level::kWarn, "seal failed; retried next pass",
          {{"shard", Num(shard)}, {"error", sealed.status().ToString()}});
    }
    return false;
  }
  NoteRedisOk();
  for (std::int64_t close : sealed->expired) {
    metrics_.CountWindow("lost");
    Log(Level::kError, "window lost: its records expired in Redis before it was acked",
        {{"shard", Num(shard)}, {"close", Num(close)}});
  }
  if (sealed->ready.empty()) return false;
  const absl::flat_hash_set<std::int64_t> sealed_now(sealed->sealed.begin(), sealed->sealed.end());
  for (std::int64_t close : sealed->ready) {
    if (stopping_.load() || !StillHeld(shard, lease.token)) break;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (states_[shard].release_wanted) break;  // Released by the worker loop.
    }
    // Abandoned (lease lost, Redis error, shutdown): the caller idles before the next pass
    // instead of hammering a failing Redis.
    if (WorkWindow(worker, shard, lease, close, !sealed_now.contains(close)) == WindowOutcome::kAbandoned)
      return false;
  }
  return true;
}

ShardOutlet::WindowOutcome ShardOutlet::WorkWindow(Worker& worker, std::uint32_t shard,
                                                   const store::Lease& lease, std::int64_t close,
                                                   bool takeover) {
  store::RedisClient& client = ClientFor(worker.clients, shard);
  auto abandon = [&](std::string_view why, const absl::Status& status) {
    if (store::ShardProtocol::IsFenced(status)) DropLease(shard, lease.token, why);
    metrics_.CountWindow("abandoned");
    Log(Level::kWarn, "window abandoned; the next pass or holder redoes it",
        {{"shard", Num(shard)}, {"close", Num(close)}, {"why", why}, {"error", status.ToString()}});
    return WindowOutcome::kAbandoned;
  };

  // Read and merge in list order (deterministic floats on every re-aggregation).
  // Sized like this worker's last window (the shards' windows are alike), so the table
  // does not grow, rehashing, through every power of two on the way.
  constexpr std::size_t kMaxReserve = std::size_t{1} << 20;
  bucket::BucketMap& merged = worker.merged;
  merged.clear();  // Keeps its slot array: the pages are not faulted in again every window.
  merged.map().reserve(std::min(worker.last_buckets, kMaxReserve));
  std::string key;
  std::uint64_t bad = 0;
  // Elements per LRANGE: as many as fit read_bytes when each is a batch of the maximum
  // size (OutletOptions::read_bytes), at most read_chunk.
  const std::int64_t chunk =
      std::clamp<std::int64_t>(options_.read_bytes / static_cast<std::int64_t>(bucket::kMaxElementBytes), 1,
                               std::max<std::int64_t>(1, options_.read_chunk));
  for (std::int64_t offset = 0;; offset += chunk) {
    absl::StatusOr<std::vector<std::string>> elements =
        protocol_.ReadWindow(client, shard, close, offset, chunk);
    if (!elements.ok()) return abandon("read failed", elements.status());
    for (const std::string& bytes : *elements) {
      worker.reader.Reset(bytes);
      for (;;) {
        absl::StatusOr<bool> next = worker.reader.Next();
        if (!next.ok()) {
          ++bad;
          telemetry::LogOnce("bad_record", "a record in Redis does not decode; skipped",
                             {{"shard", Num(shard)},
                              {"close", Num(close)},
                              {"error", std::string(next.status().message())}});
          continue;
        }
        if (!*next) break;
        const bucket::RecordKeyView& k = worker.reader.key();
        bucket::EncodeBucketKey(k.tenant, k.name, k.source, k.kind, k.resolution_seconds,
                                k.window_unix_seconds, key);
        merged.MergeBucket(key, std::move(worker.reader.bucket()));
      }
    }
    if (static_cast<std::int64_t>(elements->size()) < chunk) break;
  }
  NoteRedisOk();
  if (bad > 0) metrics_.AddBadRecords(bad);
  worker.last_buckets = merged.size();
  telemetry::Counters build_counters;
  // Straight from the table: the keys as views, no sort of the buckets (BuildGauges sorts
  // the gauges), no decoded copies.
  const std::vector<librato::Gauge> gauges = librato::BuildGauges(merged, build_counters);
  metrics_.Add(build_counters);
  // The gauges hold copies: the buckets go now (the slot array stays for the next window).
  merged.clear();

  absl::StatusOr<std::vector<std::string>> sent = protocol_.SentTenants(client, shard, close);
  if (!sent.ok()) return abandon("sent tenants unreadable", sent.status());
  const absl::flat_hash_set<std::string> already(sent->begin(), sent->end());

  struct Request {
    std::size_t tenant = 0;
    std::string body;
    std::uint64_t gauges = 0;
    std::int64_t window_end_nanos = 0;  // Earliest (window + period) of its gauges, unix ns.
    int attempts = 0;
    std::int64_t next_attempt_ns = 0;  // Steady clock.
    bool in_flight = false;            // Started in the sink, answer not yet handled.
    bool done = false;
  };
  struct TenantWork {
    std::string id;
    std::vector<Request> requests;
    std::vector<store::DeadLetter> dead_letters;  // recorded with the tenant's mark
    bool marked = false;
    std::size_t in_flight = 0;  // its requests started and not yet answered
  };
  std::vector<TenantWork> tenants;
  // One copy of the tenants for the whole window (UpdateConfig applies to later windows).
  RefreshSink(worker, View());
  const TenantView& view = *worker.view;
  const config::Config& config = *view.config;
  const auto max_per_request = static_cast<std::size_t>(config.outlet.max_gauges_per_request);
  emit::ForEachRequest(gauges, max_per_request, [&](std::span<const librato::Gauge> chunk) {
    const std::string& id = chunk.front().tenant;
    if (already.contains(id)) return;
    auto index = view.tenant_index.find(id);
    if (index == view.tenant_index.end()) {
      telemetry::LogOnce("unknown_tenant", "window holds gauges of a tenant not in the config; dropped",
                         {{"tenant", id}});
      return;
    }
    if (tenants.empty() || tenants.back().id != id) tenants.push_back(TenantWork{id, {}, {}, false, 0});
    Request r;
    r.tenant = index->second;
    r.body = librato::RenderRequestBody(chunk);
    r.gauges = chunk.size();
    r.window_end_nanos = INT64_MAX;
    for (const librato::Gauge& g : chunk)
      r.window_end_nanos = std::min(r.window_end_nanos, (g.measure_time + g.period) * base::kNanosPerSecond);
    tenants.back().requests.push_back(std::move(r));
  });
  if (takeover && !tenants.empty()) {
    Log(Level::kInfo, "re-emitting a window sealed earlier (tenants not marked sent; posts may repeat)",
        {{"shard", Num(shard)},
         {"close", Num(close)},
         {"tenants", Num(static_cast<std::int64_t>(tenants.size()))},
         {"already_sent", Num(static_cast<std::int64_t>(already.size()))}});
  }

  const std::int64_t horizon = config.retry_horizon_seconds * base::kNanosPerSecond;
  // A request given up on leaves a dead letter (RELIABILITY.md §3.3), written with its
  // tenant's mark.
  auto dead_letter = [&](TenantWork& t, const Request& r, const librato::PostResult& result,
                         const char* reason) {
    store::DeadLetter letter;
    letter.tenant = t.id;
    letter.close = close;
    letter.status = result.http_status;
    letter.reason = reason;
    letter.gauges = static_cast<std::int64_t>(r.gauges);
    letter.payload_sha256 = config::Sha256Hex(r.body);
    letter.detail = emit::FailureText(result);
    t.dead_letters.push_back(std::move(letter));
    metrics_.CountDeadLetter(reason);
  };
  // The answer to one attempt of `r` (SEMANTICS §7.5).
  auto complete = [&](TenantWork& t, Request& r, const librato::PostResult& result) {
    telemetry::Counters counters;
    if (r.attempts > 0 || takeover) counters.retried += r.gauges;
    ++r.attempts;
    r.in_flight = false;
    --t.in_flight;
    metrics_.CountOutputRequest(worker.sink->OutputName(r.tenant), emit::ResultLabel(result));
    const std::string& tenant = config.tenants[r.tenant].id;
    const std::int64_t after = clock_.NowUnixNanos();
    switch (result.delivery) {
      case librato::Delivery::kAccepted:
        counters.posted += r.gauges;
        r.done = true;
        metrics_.ObserveEmissionDelaySeconds(static_cast<double>(after - r.window_end_nanos) /
                                             static_cast<double>(base::kNanosPerSecond));
        break;
      case librato::Delivery::kRejected:
        counters.rejected += r.gauges;
        r.done = true;
        dead_letter(t, r, result, "rejected");
        Log(Level::kError, "Librato rejected a request; its gauges are dropped",
            {{"tenant", tenant},
             {"status", emit::StatusText(result)},
             {"gauges", Num(static_cast<std::int64_t>(r.gauges))},
             {"body", emit::FailureText(result)}});
        break;
      case librato::Delivery::kRetry: {
        const std::int64_t wait = emit::RetryDelayNanos(config.outlet, r.attempts - 1, result, worker.rng);
        if (after + wait - r.window_end_nanos > horizon) {
          counters.expired += r.gauges;
          r.done = true;
          dead_letter(t, r, result, "expired");
          Log(Level::kError, "gauges expired: retry horizon passed",
              {{"tenant", tenant},
               {"status", emit::StatusText(result)},
               {"gauges", Num(static_cast<std::int64_t>(r.gauges))},
               {"error", emit::FailureText(result)}});
          break;
        }
        r.next_attempt_ns = SteadyNanos() + wait;
        Log(Level::kWarn, "Librato request failed; will retry",
            {{"tenant", tenant},
             {"status", emit::StatusText(result)},
             {"attempt", Num(r.attempts)},
             {"retry_in_ms", Num(wait / kNanosPerMilli)},
             {"error", emit::FailureText(result)}});
        break;
      }
    }
    metrics_.Add(counters);
  };

  // Requests in flight hold pointers into `tenants`' bodies: whatever way this function
  // returns, the sink lets go of them first.
  struct CancelGuard {
    emit::Sink& sink;
    ~CancelGuard() { sink.CancelAll(); }
  } cancel_guard{*worker.sink};
  const auto max_in_flight = static_cast<std::size_t>(config.outlet.max_inflight_requests);
  // Tag of a request: tenant position << 32 | request position.
  auto tag_of = [](std::size_t t, std::size_t r) { return (static_cast<std::uint64_t>(t) << 32) | r; };
  std::vector<librato::Completion> completions;

  // Post (up to max_inflight_requests per tenant at once), mark and ack; every round
  // re-checks the lease and the shutdown deadline, and rounds last at most kSlice.
  for (;;) {
    if (!StillHeld(shard, lease.token))
      return abandon("lease lost", absl::AbortedError("lease no longer held"));
    if (SteadyNanos() > shutdown_deadline_ns_.load())
      return abandon("shutdown deadline passed", absl::DeadlineExceededError("shutdown"));

    for (librato::Completion& c : completions) {
      TenantWork& t = tenants[c.tag >> 32];
      complete(t, t.requests[c.tag & 0xffffffffu], c.result);
    }
    completions.clear();

    bool redis_trouble = false;
    bool all_marked = true;
    for (TenantWork& t : tenants) {
      if (t.marked) continue;
      const bool resolved =
          std::all_of(t.requests.begin(), t.requests.end(), [](const Request& r) { return r.done; });
      if (resolved && !redis_trouble) {
        const std::string_view ids[] = {t.id};
        absl::StatusOr<std::int64_t> marked =
            protocol_.MarkSent(client, shard, lease, close, ids, t.dead_letters);
        if (marked.ok()) {
          NoteRedisOk();
          t.marked = true;
        } else if (store::ShardProtocol::IsFenced(marked.status())) {
          return abandon("fenced at mark sent", marked.status());
        } else {
          redis_trouble = true;
          Log(Level::kWarn, "mark sent failed; retrying",
              {{"shard", Num(shard)}, {"error", marked.status().ToString()}});
        }
      }
      if (!t.marked) all_marked = false;
    }
    if (all_marked) {
      absl::StatusOr<bool> acked = protocol_.Ack(client, shard, lease, close);
      if (acked.ok()) {
        NoteRedisOk();
        metrics_.CountWindow("acked");
        Log(Level::kDebug, "window acked", {{"shard", Num(shard)}, {"close", Num(close)}});
        return WindowOutcome::kAcked;
      }
      if (store::ShardProtocol::IsFenced(acked.status())) return abandon("fenced at ack", acked.status());
      Log(Level::kWarn, "ack failed; retrying",
          {{"shard", Num(shard)}, {"error", acked.status().ToString()}});
      redis_trouble = true;
    }

    // Start every due request, in order, while its tenant has room in flight.
    const std::int64_t now = SteadyNanos();
    std::int64_t earliest = INT64_MAX;
    for (std::size_t ti = 0; ti < tenants.size(); ++ti) {
      TenantWork& t = tenants[ti];
      for (std::size_t ri = 0; ri < t.requests.size() && t.in_flight < max_in_flight; ++ri) {
        Request& r = t.requests[ri];
        if (r.done || r.in_flight) continue;
        if (r.next_attempt_ns > now) {
          earliest = std::min(earliest, r.next_attempt_ns);
          continue;
        }
        r.in_flight = true;
        ++t.in_flight;
        worker.sink->Start(r.tenant, r.body, tag_of(ti, ri));
      }
    }
    if (worker.sink->InFlight() > 0) {
      // Answers, or a retry falling due, or the next lease check.
      const std::int64_t wait_ns = std::clamp<std::int64_t>(earliest - now, 0, 50 * kNanosPerMilli);
      worker.sink->Poll(std::chrono::milliseconds((wait_ns + kNanosPerMilli - 1) / kNanosPerMilli),
                        completions);
      continue;
    }
    std::int64_t wait_ns = redis_trouble ? 100 * kNanosPerMilli : earliest - now;
    wait_ns = std::clamp<std::int64_t>(wait_ns, 0, 50 * kNanosPerMilli);
    std::this_thread::sleep_for(std::chrono::nanoseconds(wait_ns));
  }
}

}  // namespace drainmet::outlet
