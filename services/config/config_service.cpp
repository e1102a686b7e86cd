#include "services/config/config_service.h"

#include <sys/stat.h>

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <iterator>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/base/strings.h"
#include "common/config/auth.h"
#include "common/config/snapshot.h"
#include "common/health/health_server.h"
#include "common/telemetry/log.h"
#include "grpcpp/server_builder.h"
#include "proto/drainmet/v1/config.grpc.pb.h"

namespace drainmet::config_service {
namespace {

using telemetry::Level;
using telemetry::Log;
using SnapshotPtr = std::shared_ptr<const v1::ConfigSnapshot>;

constexpr char kServiceName[] = "drainmet.v1.ConfigService";
// A file larger than this is not a config file; config.cpp refuses it too.
constexpr std::size_t kMaxFileBytes = 16 << 20;

// What the file looked like at the last check. Two fingerprints are equal when nothing
// observable changed; the content hash catches a rewrite within the mtime granularity.
struct FileFingerprint {
  bool readable = false;
  std::int64_t mtime_nanos = 0;
  std::int64_t size = 0;
  std::string content_hash;

  bool operator==(const FileFingerprint&) const = default;
};

FileFingerprint Fingerprint(const std::string& path) {
  FileFingerprint print;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return print;
  print.mtime_nanos =
      static_cast<std::int64_t>(st.st_mtim.tv_sec) * base::kNanosPerSecond + st.st_mtim.tv_nsec;
  print.size = static_cast<std::int64_t>(st.st_size);
  std::ifstream in(path, std::ios::binary);
  if (!in) return print;
  std::string bytes;
  bytes.reserve(static_cast<std::size_t>(std::min<std::int64_t>(print.size, kMaxFileBytes)));
  char buffer[65536];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    bytes.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (bytes.size() > kMaxFileBytes) break;
  }
  print.readable = true;
  // "sha256:" + hex of the bytes (HashToken hashes any byte string).
  print.content_hash = config::HashToken(bytes);
  return print;
}

class WatchReactor;

// The snapshot being served and the open Watch streams. Thread-safe. Reactor methods are
// called outside `mu_`, so a reactor's reactions never wait on it while it is held.
class SnapshotHub {
 public:
  SnapshotPtr Current() const {
    std::lock_guard<std::mutex> lock(mu_);
    return current_;
  }

  // Makes `snapshot` current and offers it to every stream.
  void Publish(SnapshotPtr snapshot);

  // Registers a new stream and returns the snapshot to send first (null while stopping:
  // the stream is then ended by the caller).
  SnapshotPtr Add(const std::shared_ptr<WatchReactor>& reactor, bool* stopping);

  void Remove(WatchReactor* reactor) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = reactors_.begin(); it != reactors_.end(); ++it) {
      if (it->get() == reactor) {
        reactors_.erase(it);
        break;
      }
    }
  }

  // Ends every stream (UNAVAILABLE) and every later one at once.
  void Shutdown();

 private:
  mutable std::mutex mu_;
  SnapshotPtr current_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<WatchReactor>> reactors_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

// One Watch stream. Writes one snapshot at a time; a snapshot offered while a write is in
// flight replaces any older one waiting (a slow reader gets the newest, versions never go
// backwards). Owned by itself (self_) from creation until gRPC's OnDone, and shared with
// the hub meanwhile. gRPC calls (StartWrite, Finish) are made outside `mu_`.
class WatchReactor final : public grpc::ServerWriteReactor<v1::ConfigSnapshot> {
 public:
  // Creates the reactor for one Watch call and sends the current snapshot.
  static WatchReactor* Create(SnapshotHub& hub) {
    auto reactor = std::shared_ptr<WatchReactor>(new WatchReactor(hub));
    reactor->self_ = reactor;
    bool stopping = false;
    SnapshotPtr first = hub.Add(reactor, &stopping);
    if (stopping) {
      reactor->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "config service shutting down"));
    } else if (first != nullptr) {
      reactor->Offer(std::move(first));
    }
    return reactor.get();
  }

  // Sends `snapshot` unless a newer one was already sent or queued.
  void Offer(SnapshotPtr snapshot) {
    std::unique_lock<std::mutex> lock(mu_);
    if (finishing_ || snapshot->version() <= offered_version_) return;
    offered_version_ = snapshot->version();
    if (in_flight_ != nullptr) {
      next_ = std::move(snapshot);
      return;
    }
    in_flight_ = std::move(snapshot);
    const v1::ConfigSnapshot* message = in_flight_.get();
    lock.unlock();
    StartWrite(message);
  }

  // Ends the stream with `status` (after the write in flight, if any).
  void End(grpc::Status status) {
    std::unique_lock<std::mutex> lock(mu_);
    if (finishing_) return;
    finishing_ = true;
    finish_status_ = std::move(status);
    if (in_flight_ != nullptr) return;  // OnWriteDone finishes
    lock.unlock();
    Finish(finish_status_);
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    in_flight_.reset();
    if (!ok && !finishing_) {
      // The client went away or the call was cancelled.
      finishing_ = true;
      finish_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream broken");
    }
    if (finishing_) {
      next_.reset();
      lock.unlock();
      Finish(finish_status_);
      return;
    }
    if (next_ == nullptr) return;
    in_flight_ = std::move(next_);
    const v1::ConfigSnapshot* message = in_flight_.get();
    lock.unlock();
    StartWrite(message);
  }

  void OnCancel() override { End(grpc::Status::CANCELLED); }

  void OnDone() override {
    hub_.Remove(this);
    // The last owner may be this local: the reactor is destroyed when it goes out of scope.
    std::shared_ptr<WatchReactor> self = std::move(self_);
  }

 private:
  explicit WatchReactor(SnapshotHub& hub) : hub_(hub) {}

  SnapshotHub& hub_;
  std::shared_ptr<WatchReactor> self_;  // set by Create, dropped by OnDone
  std::mutex mu_;
  SnapshotPtr in_flight_ ABSL_GUARDED_BY(mu_);  // the message of the write in flight
  SnapshotPtr next_ ABSL_GUARDED_BY(mu_);       // newest snapshot waiting for it
  std::uint64_t offered_version_ ABSL_GUARDED_BY(mu_) = 0;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
};

void SnapshotHub::Publish(SnapshotPtr snapshot) {
  std::vector<std::shared_ptr<WatchReactor>> reactors;
  {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = snapshot;
    if (stopping_) return;
    reactors = reactors_;
  }
  for (const std::shared_ptr<WatchReactor>& reactor : reactors) reactor->Offer(snapshot);
}

SnapshotPtr SnapshotHub::Add(const std::shared_ptr<WatchReactor>& reactor, bool* stopping) {
  std::lock_guard<std::mutex> lock(mu_);
  *stopping = stopping_;
  if (stopping_) return nullptr;
  reactors_.push_back(reactor);
  return current_;
}

void SnapshotHub::Shutdown() {
  std::vector<std::shared_ptr<WatchReactor>> reactors;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    reactors = reactors_;
  }
  for (const std::shared_ptr<WatchReactor>& reactor : reactors) {
    reactor->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "config service shutting down"));
  }
}

class ConfigServiceImpl final : public v1::ConfigService::CallbackService {
 public:
  explicit ConfigServiceImpl(SnapshotHub& hub) : hub_(hub) {}

  grpc::ServerUnaryReactor* GetConfig(grpc::CallbackServerContext* context, const v1::GetConfigRequest*,
                                      v1::ConfigSnapshot* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    SnapshotPtr current = hub_.Current();
    if (current == nullptr) {
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "no configuration loaded"));
    } else {
      *response = *current;
      reactor->Finish(grpc::Status::OK);
    }
    return reactor;
  }

  grpc::ServerWriteReactor<v1::ConfigSnapshot>* Watch(grpc::CallbackServerContext*,
                                                      const v1::WatchRequest*) override {
    return WatchReactor::Create(hub_);
  }

 private:
  SnapshotHub& hub_;
};

}  // namespace

struct ConfigServer::Impl {
  explicit Impl(ConfigServerOptions opts) : options(std::move(opts)), service(hub) {}

  std::uint64_t NowMillis() const {
    const std::int64_t millis = options.clock->NowUnixNanos() / 1'000'000;
    return millis > 0 ? static_cast<std::uint64_t>(millis) : 0;
  }

  // Publishes `config` as a new version unless its content is the one served.
  void Serve(const config::Config& config);
  // One check of the file (what the watcher thread does every reload_interval).
  void CheckFile();
  void WatchFile();

  const ConfigServerOptions options;
  SnapshotHub hub;
  ConfigServiceImpl service;
  // The gRPC server: ConfigService and grpc.health.v1.
  std::unique_ptr<health::HealthServer> server;
  std::uint16_t port = 0;
  std::thread file_thread;

  // Owned by the file thread after Start.
  FileFingerprint fingerprint;

  mutable std::mutex mu;
  std::condition_variable stop_cv;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  bool stopped ABSL_GUARDED_BY(mu) = false;
};

void ConfigServer::Impl::Serve(const config::Config& config) {
  v1::ConfigSnapshot snapshot = config::ToProto(config, 0);
  SnapshotPtr current = hub.Current();
  if (current != nullptr && current->content_hash() == snapshot.content_hash()) {
    Log(Level::kDebug, "config file changed, configuration did not", {{"file", options.config_path}});
    return;
  }
  const std::uint64_t previous = current == nullptr ? 0 : current->version();
  snapshot.set_version(std::max({previous + 1, NowMillis(), std::uint64_t{1}}));
  Log(Level::kInfo, current == nullptr ? "config loaded" : "config reloaded",
      {{"file", options.config_path},
       {"version", std::to_string(snapshot.version())},
       {"content_hash", snapshot.content_hash()},
       {"tenants", std::to_string(snapshot.tenants_size())}});
  hub.Publish(std::make_shared<const v1::ConfigSnapshot>(std::move(snapshot)));
}

void ConfigServer::Impl::CheckFile() {
  FileFingerprint now = Fingerprint(options.config_path);
  if (now == fingerprint) return;
  fingerprint = std::move(now);
  absl::StatusOr<config::Config> config = config::LoadConfigFile(options.config_path, options.env);
  if (!config.ok()) {
    // Logged once per distinct file state; the last good snapshot stays served.
    Log(Level::kError, "config reload failed; serving the last good config",
        {{"file", options.config_path},
         {"version", std::to_string(hub.Current()->version())},
         {"error", config.status().ToString()}});
    return;
  }
  Serve(*config);
}

void ConfigServer::Impl::WatchFile() {
  std::unique_lock<std::mutex> lock(mu);
  while (!stop_cv.wait_for(lock, options.reload_interval, [&] { return stopping; })) {
    lock.unlock();
    CheckFile();
    lock.lock();
  }
}

ConfigServer::ConfigServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ConfigServer::~ConfigServer() { Stop(); }

absl::StatusOr<std::unique_ptr<ConfigServer>> ConfigServer::Start(ConfigServerOptions options) {
  if (options.config_path.empty()) return absl::InvalidArgumentError("--config: required");
  if (options.reload_interval.count() <= 0)
    return absl::InvalidArgumentError("--reload-interval-ms: must be > 0");
  if (absl::StatusOr<config::HostPort> listen = config::ParseHostPort(options.listen); !listen.ok()) {
    return absl::InvalidArgumentError(base::Cat("--listen: ", std::string(listen.status().message())));
  }
  if (!options.env) options.env = config::ProcessEnv();
  if (options.clock == nullptr) options.clock = &base::SystemClock::Get();
  auto impl = std::make_unique<Impl>(std::move(options));
  const ConfigServerOptions& opts = impl->options;

  // The fingerprint is taken before the load: a change racing with it is seen next time.
  impl->fingerprint = Fingerprint(opts.config_path);
  absl::StatusOr<config::Config> config = config::LoadConfigFile(opts.config_path, opts.env);
  if (!config.ok()) return config.status();
  impl->Serve(*config);

  health::HealthServerOptions grpc_options;
  grpc_options.listen = opts.listen;
  grpc_options.service_names = {kServiceName};
  grpc_options.initially_serving = true;  // a configuration is loaded by now
  grpc_options.services = {&impl->service};
  grpc_options.configure = [](grpc::ServerBuilder& builder) {
    // Clients ping every 10 s to notice a vanished service (common/config/watcher.cpp);
    // accept that, and ping idle clients ourselves so dead Watch streams are reaped.
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  };
  absl::StatusOr<std::unique_ptr<health::HealthServer>> server =
      health::HealthServer::Start(std::move(grpc_options));
  if (!server.ok()) {
    if (absl::IsUnavailable(server.status())) {
      return absl::UnavailableError(base::Cat("--listen: cannot listen on ", opts.listen));
    }
    return server.status();
  }
  impl->server = *std::move(server);
  impl->port = impl->server->port();

  Impl* raw = impl.get();
  impl->file_thread = std::thread([raw] { raw->WatchFile(); });
  return std::unique_ptr<ConfigServer>(new ConfigServer(std::move(impl)));
}

std::uint16_t ConfigServer::port() const { return impl_->port; }

std::uint64_t ConfigServer::version() const { return impl_->hub.Current()->version(); }

std::string ConfigServer::content_hash() const { return impl_->hub.Current()->content_hash(); }

void ConfigServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
    impl_->stopping = true;
  }
  impl_->stop_cv.notify_all();
  if (impl_->file_thread.joinable()) impl_->file_thread.join();
  if (impl_->server != nullptr) {
    impl_->server->ShutdownHealth();  // NOT_SERVING for every service, and stays so
    impl_->hub.Shutdown();
    impl_->server->Stop(impl_->options.shutdown_grace);
  }
}

}  // namespace drainmet::config_service
