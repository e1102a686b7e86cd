#include "common/config/watcher.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "common/base/strings.h"
#include "common/config/snapshot.h"
#include "common/telemetry/log.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "proto/drainmet/v1/config.grpc.pb.h"

namespace drainmet::config {
namespace {

using telemetry::Level;
using telemetry::Log;

// HTTP/2 keepalive on the Watch stream, so that a config service that vanished without
// closing the connection (host down, partition) is noticed. drainmet-config accepts pings
// this often (services/config/config_service.cpp).
constexpr int kKeepaliveTimeMs = 10'000;
constexpr int kKeepaliveTimeoutMs = 5'000;

absl::Status FromGrpc(const grpc::Status& status, const std::string& target) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      base::Cat("config service ", target, ": ", status.error_message()));
}

}  // namespace

struct ConfigWatcher::Impl {
  explicit Impl(ConfigWatcherOptions opts) : options(std::move(opts)) {}

  void Run();
  // Reads one Watch stream to its end; returns why it ended. `delivered`: whether it
  // brought at least one snapshot.
  absl::Status WatchOnce(bool* delivered);
  void Apply(const v1::ConfigSnapshot& snapshot);

  const ConfigWatcherOptions options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::ConfigService::Stub> stub;
  std::thread thread;

  mutable std::mutex mu;
  mutable std::condition_variable changed;  // served, stopping or connected changed
  ServedConfig served ABSL_GUARDED_BY(mu);
  absl::Status last_error ABSL_GUARDED_BY(mu) = absl::UnavailableError("config service: not connected yet");
  bool connected ABSL_GUARDED_BY(mu) = false;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  grpc::ClientContext* call ABSL_GUARDED_BY(mu) = nullptr;  // the open Watch, for Stop
};

void ConfigWatcher::Impl::Apply(const v1::ConfigSnapshot& snapshot) {
  absl::StatusOr<Config> config = FromProto(snapshot);
  const std::string version = std::to_string(snapshot.version());
  if (!config.ok()) {
    // The service validates what it serves, so this is a version skew or a bug; keep the
    // last good copy.
    Log(Level::kError, "config snapshot rejected; keeping the last good config",
        {{"version", version}, {"error", config.status().ToString()}});
    std::lock_guard<std::mutex> lock(mu);
    connected = true;
    last_error = absl::InvalidArgumentError(
        base::Cat("config snapshot ", version, " rejected: ", std::string(config.status().message())));
    return;
  }
  ServedConfig next{std::make_shared<const Config>(*std::move(config)), snapshot.version(),
                    snapshot.content_hash()};
  bool content_changed = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    content_changed = served.config == nullptr || served.content_hash != next.content_hash;
    if (content_changed) {
      served = next;
    } else {
      served.version = next.version;
    }
    connected = true;
    last_error = absl::OkStatus();
  }
  changed.notify_all();
  if (!content_changed) return;
  Log(Level::kInfo, "config updated",
      {{"version", version},
       {"content_hash", next.content_hash},
       {"tenants", std::to_string(next.config->tenants.size())}});
  if (options.on_change) options.on_change(next);
}

absl::Status ConfigWatcher::Impl::WatchOnce(bool* delivered) {
  grpc::ClientContext context;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (stopping) return absl::CancelledError("stopping");
    call = &context;
  }
  std::unique_ptr<grpc::ClientReader<v1::ConfigSnapshot>> reader = stub->Watch(&context, v1::WatchRequest());
  v1::ConfigSnapshot snapshot;
  while (reader->Read(&snapshot)) {
    *delivered = true;
    Apply(snapshot);
  }
  const grpc::Status status = reader->Finish();
  {
    std::lock_guard<std::mutex> lock(mu);
    call = nullptr;
    connected = false;
  }
  changed.notify_all();
  if (status.ok())
    return absl::UnavailableError(base::Cat("config service ", options.target, ": stream ended"));
  return FromGrpc(status, options.target);
}

void ConfigWatcher::Impl::Run() {
  std::minstd_rand random(std::random_device{}());
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  std::chrono::milliseconds backoff = options.initial_backoff;
  bool outage_logged = false;
  for (;;) {
    bool delivered = false;
    const absl::Status status = WatchOnce(&delivered);
    if (delivered) {
      // The stream worked: a new outage starts, backing off from the start.
      backoff = options.initial_backoff;
      outage_logged = false;
    }
    std::unique_lock<std::mutex> lock(mu);
    if (stopping) return;
    last_error = status;
    lock.unlock();
    Log(outage_logged ? Level::kDebug : Level::kWarn,
        "config service unreachable; keeping the last good config",
        {{"target", options.target}, {"error", status.ToString()}});
    outage_logged = true;

    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(backoff * jitter(random));
    lock.lock();
    if (changed.wait_for(lock, wait, [&] { return stopping; })) return;
    lock.unlock();
    backoff = std::min(backoff * 2, options.max_backoff);
  }
}

ConfigWatcher::ConfigWatcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ConfigWatcher::~ConfigWatcher() { Stop(); }

absl::StatusOr<std::unique_ptr<ConfigWatcher>> ConfigWatcher::Start(ConfigWatcherOptions options) {
  if (options.target.empty()) return absl::InvalidArgumentError("config watcher: target is required");
  if (options.initial_backoff.count() <= 0 || options.max_backoff < options.initial_backoff) {
    return absl::InvalidArgumentError("config watcher: want 0 < initial_backoff <= max_backoff");
  }
  if (!options.env) options.env = ProcessEnv();
  auto impl = std::make_unique<Impl>(std::move(options));
  const ConfigWatcherOptions& opts = impl->options;

  if (!opts.initial_file.empty()) {
    absl::StatusOr<Config> config = LoadConfigFile(opts.initial_file, opts.env);
    if (!config.ok()) return config.status();
    std::lock_guard<std::mutex> lock(impl->mu);
    impl->served.config = std::make_shared<const Config>(*config);
    impl->served.version = 0;
    impl->served.content_hash = ContentHash(ToProto(*config, 0));
    Log(Level::kInfo, "config loaded from a local file until the config service answers",
        {{"file", opts.initial_file}, {"content_hash", impl->served.content_hash}});
  }

  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveTimeMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // A Watch stream is silent while the configuration does not change: keep pinging anyway
  // (gRPC stops after 2 pings without data by default).
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // gRPC's own reconnection backoff (default up to 120 s) would fail our Watch calls fast
  // without trying to connect; keep it within ours.
  const int max_backoff_ms = static_cast<int>(std::min<std::int64_t>(opts.max_backoff.count(), 1 << 30));
  const int initial_backoff_ms =
      static_cast<int>(std::min<std::int64_t>(opts.initial_backoff.count(), 1 << 30));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, initial_backoff_ms);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_backoff_ms);
  impl->channel = grpc::CreateCustomChannel(opts.target, grpc::InsecureChannelCredentials(), args);
  impl->stub = v1::ConfigService::NewStub(impl->channel);

  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<ConfigWatcher>(new ConfigWatcher(std::move(impl)));
}

std::shared_ptr<const Config> ConfigWatcher::Current() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->served.config;
}

ServedConfig ConfigWatcher::CurrentServed() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->served;
}

bool ConfigWatcher::HasConfig() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->served.config != nullptr;
}

bool ConfigWatcher::Connected() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->connected;
}

absl::Status ConfigWatcher::LastError() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->last_error;
}

bool ConfigWatcher::WaitForVersion(std::uint64_t min_version, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->changed.wait_for(lock, timeout,
                                 [&] {
                                   return impl_->stopping || (impl_->served.config != nullptr &&
                                                              impl_->served.version >= min_version);
                                 }) &&
         impl_->served.config != nullptr && impl_->served.version >= min_version;
}

void ConfigWatcher::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
    if (impl_->call != nullptr) impl_->call->TryCancel();
  }
  impl_->changed.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace drainmet::config
