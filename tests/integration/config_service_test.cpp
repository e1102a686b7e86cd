// The config service (services/config, proto/drainmet/v1/config.proto) over real gRPC on
// loopback: GetConfig, Watch across reloads (valid and invalid files), grpc.health.v1,
// ConfigWatcher riding out a stopped service and a revoked token (issue "Distributed
// drainmet": "Config service down: receivers and outlets keep serving with the last
// config; a token revoked in the file stops working within seconds of reload"), and the
// drainmet-config binary as a child process (port from its log, SIGTERM -> exit 0).
// Every wait is bounded.

#include "services/config/config_service.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "common/config/auth.h"
#include "common/config/config.h"
#include "common/config/snapshot.h"
#include "common/config/watcher.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "proto/drainmet/v1/config.grpc.pb.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/eventually.h"
#include "tests/support/temp_dir.h"

namespace drainmet::config_service {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const char kConfigBinary[] = DRAINMET_BINARY_DIR "/services/config/drainmet-config";
constexpr milliseconds kReloadInterval{50};
// Bound of every wait for something that should happen within a few reload intervals.
constexpr milliseconds kWait{5000};

const std::string kTokenA = "token-a-0123456789";
const std::string kTokenB = "token-b-0123456789";

// A config file with tenant "acme" accepting `tokens`.
std::string ConfigText(const std::vector<std::string>& tokens, int shards = 64) {
  std::string hashes;
  for (const std::string& token : tokens) hashes += "      - " + config::HashToken(token) + "\n";
  return "grace_seconds: 2\n"
         "redis:\n"
         "  shards: " +
         std::to_string(shards) +
         "\n"
         "  servers: [\"127.0.0.1:6379\", \"unix:/tmp/redis.sock\"]\n"
         "tenants:\n"
         "  - id: acme\n"
         "    token_hashes:\n" +
         (tokens.empty() ? std::string("      []\n") : hashes) +
         "    librato: {email: ops@acme.example, api_token: api-secret-1}\n"
         "  - id: local\n"
         "    output: stdout\n";
}

using support::TempDir;

void WriteFile(const std::string& path, const std::string& text) {
  ASSERT_TRUE(support::ReplaceFile(path, text)) << path;
}

std::unique_ptr<v1::ConfigService::Stub> ConfigStub(std::uint16_t port) {
  return v1::ConfigService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
}

grpc::Status GetConfig(std::uint16_t port, v1::ConfigSnapshot* snapshot) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kWait);
  return ConfigStub(port)->GetConfig(&context, v1::GetConfigRequest(), snapshot);
}

// A raw Watch stream read on a thread into a queue.
class WatchClient {
 public:
  explicit WatchClient(std::uint16_t port) : stub_(ConfigStub(port)) {
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    reader_ = stub_->Watch(&context_, v1::WatchRequest());
    thread_ = std::thread([this] {
      v1::ConfigSnapshot snapshot;
      while (reader_->Read(&snapshot)) {
        std::lock_guard<std::mutex> lock(mu_);
        received_.push_back(snapshot);
        cv_.notify_all();
      }
      grpc::Status status = reader_->Finish();
      std::lock_guard<std::mutex> lock(mu_);
      status_ = status;
      cv_.notify_all();
    });
  }
  ~WatchClient() {
    context_.TryCancel();
    thread_.join();
  }

  // The next snapshot not yet taken, or nullopt after `timeout` / the end of the stream.
  std::optional<v1::ConfigSnapshot> Next(milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return taken_ < received_.size() || status_.has_value(); });
    if (taken_ >= received_.size()) return std::nullopt;
    return received_[taken_++];
  }

  // The status the stream ended with, once it has (within `timeout`).
  std::optional<grpc::Status> Ended(milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return status_.has_value(); });
    return status_;
  }

 private:
  std::unique_ptr<v1::ConfigService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1::ConfigSnapshot>> reader_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<v1::ConfigSnapshot> received_;
  std::size_t taken_ = 0;
  std::optional<grpc::Status> status_;
};

std::unique_ptr<ConfigServer> StartServer(const std::string& path,
                                          const std::string& listen = "127.0.0.1:0") {
  ConfigServerOptions options;
  options.config_path = path;
  options.listen = listen;
  options.reload_interval = kReloadInterval;
  absl::StatusOr<std::unique_ptr<ConfigServer>> server = ConfigServer::Start(std::move(options));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

config::Config Load(const std::string& path) {
  absl::StatusOr<config::Config> config = config::LoadConfigFile(path, config::ProcessEnv());
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : config::Config{};
}

std::vector<std::string> HashesOf(const config::Config& config, const std::string& tenant) {
  for (const config::Tenant& t : config.tenants) {
    if (t.id == tenant) return t.token_hashes;
  }
  return {};
}

TEST(ConfigServiceTest, GetConfigServesTheFile) {
  TempDir dir;
  const std::string path = dir.File("config.yaml");
  WriteFile(path, ConfigText({kTokenA}));
  std::unique_ptr<ConfigServer> server = StartServer(path);
  ASSERT_NE(server, nullptr);
  ASSERT_GT(server->port(), 0);

  v1::ConfigSnapshot snapshot;
  grpc::Status status = GetConfig(server->port(), &snapshot);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(snapshot.version(), server->version());
  EXPECT_GE(snapshot.version(), 1u);
  EXPECT_EQ(snapshot.content_hash(), server->content_hash());
  EXPECT_EQ(snapshot.content_hash(), config::ContentHash(snapshot));
  absl::StatusOr<config::Config> served = config::FromProto(snapshot);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(*served, Load(path));
  EXPECT_EQ(served->redis.servers, (std::vector<std::string>{"127.0.0.1:6379", "unix:/tmp/redis.sock"}));
  EXPECT_EQ(served->tenants[0].librato.api_token, "api-secret-1");
}

TEST(ConfigServiceTest, StartFailsOnInvalidFileOrAddress) {
  TempDir dir;
  const std::string path = dir.File("config.yaml");
  WriteFile(path, "treads: 4\n" + ConfigText({kTokenA}));
  ConfigServerOptions options;
  options.config_path = path;
  options.listen = "127.0.0.1:0";
  absl::StatusOr<std::unique_ptr<ConfigServer>> server = ConfigServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(server.status().message()), path + ": treads: unknown key");

  options.config_path = dir.File("missing.yaml");
  EXPECT_EQ(ConfigServer::Start(options).status().code(), absl::StatusCode::kNotFound);

  WriteFile(path, ConfigText({kTokenA}));
  options.config_path = path;
  options.listen = "127.0.0.1";
  EXPECT_EQ(ConfigServer::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ConfigServiceTest, StartFailsWhenThePortIsTaken) {
  TempDir dir;
  const std::string path = dir.File("config.yaml");
  WriteFile(path, ConfigText({kTokenA}));
  std::unique_ptr<ConfigServer> first = StartServer(path);
  ASSERT_NE(first, nullptr);
  ConfigServerOptions options;
  options.config_path = path;
  options.listen = "127.0.0.1:" + std::to_string(first->port());
  absl::StatusOr<std::unique_ptr<ConfigServer>> second = ConfigServer::Start(options);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

TEST(ConfigServiceTest, WatchDeliversCurrentThenEachValidReload) {
  TempDir dir;
  const std::string path = dir.File("config.yaml");
  WriteFile(path, ConfigText({kTokenA}));
  std::unique_ptr<ConfigServer> server = StartServer(path);
  ASSERT_NE(server, nullptr);

  WatchClient watch(server->port());
  std::optional<v1::ConfigSnapshot> first = watch.Next(kWait);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->version(), server->version());
  ASSERT_EQ(first->tenants_size(), 2);
  EXPECT_EQ(first->tenants(0).token_hashes_size(), 1);

  // A valid change: a new, higher version within ~2 s.
  WriteFile(path, ConfigText({kTokenA, kTokenB}));
  std::optional<v1::ConfigSnapshot> second = watch.Next(milliseconds(2000));
  ASSERT_TRUE(second.has_value());
  EXPECT_GT(second->version(), first->version());
  EXPECT_NE(second->content_hash(), first->content_hash());
  EXPECT_EQ(second->tenants(0).token_hashes_size(), 2);
  EXPECT_EQ(server->version(), second->version());

  // An invalid file is not served: no snapshot, version unchanged, GetConfig unchanged.
  WriteFile(path, ConfigText({kTokenA}) + "bogus_key: 1\n");
  EXPECT_FALSE(watch.Next(kReloadInterval * 10).has_value());
  EXPECT_EQ(server->version(), second->version());
  v1::ConfigSnapshot got;
  ASSERT_TRUE(GetConfig(server->port(), &got).ok());
  EXPECT_EQ(got.version(), second->version());
  EXPECT_EQ(got.tenants(0).token_hashes_size(), 2);

  // The same content rewritten (touched) is not a new version.
  WriteFile(path, ConfigText({kTokenA, kTokenB}));
  EXPECT_FALSE(watch.Next(kReloadInterval * 10).has_value());
  EXPECT_EQ(server->version(), second->version());

  // The next valid change is served.
  WriteFile(path, ConfigText({kTokenB}, 128));
  std::optional<v1::ConfigSnapshot> third = watch.Next(milliseconds(2000));
  ASSERT_TRUE(third.has_value());
  EXPECT_GT(third->version(), second->version());
  EXPECT_EQ(third->redis().shards(), 128u);
  EXPECT_EQ(third->tenants(0).token_hashes(0), config::HashToken(kTokenB));
}

TEST(ConfigServiceTest, StopEndsWatchStreamsWithUnavailable) {
  TempDir dir;
  const std::string path = dir.File("config.yaml");
  WriteFile(path, ConfigText({kTokenA}));
  std::unique_ptr<ConfigServer> server = StartServer(path);
  ASSERT_NE(server, nullptr);
  WatchClient watch(server->port());
  ASSERT_TRUE(watch.Next(kWait).has_value());

  const auto start = Clock::now();
  server->Stop();
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
  std::optional<grpc::Status> ended = watch.Ended(kWait);
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->error_code(), grpc::StatusCode::UNAVAILABLE);
  server->Stop();  // idempotent
}

TEST(ConfigServiceTest, HealthIsServing) {
  TempDir dir;
  const std::string path = dir.File("config.yaml");
  WriteFile(path, ConfigText({kTokenA}));
  std::unique_ptr<ConfigServer> server = StartServer(path);
  ASSERT_NE(server, nullptr);
  auto health = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(server->port()), grpc::InsecureChannelCredentials()));
  for (const std::string service : {"", "drainmet.v1.ConfigService"}) {
    SCOPED_TRACE(service);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kWait);
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = health->Check(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  request.set_service("no.such.Service");
  grpc::health::v1::HealthCheckResponse response;
  EXPECT_EQ(health->Check(&context, request, &response).error_code(), grpc::StatusCode::NOT_FOUND);
}

config::ConfigWatcherOptions WatcherOptions(std::uint16_t port) {
  config::ConfigWatcherOptions options;
  options.target = "127.0.0.1:" + std::to_string(port);
  options.initial_backoff = milliseconds(50);
  options.max_backoff = milliseconds(200);
  return options;
}

// The issue's "Config service down: ... keep serving with the last config; a token revoked
// in the file stops working within seconds of reload".
TEST(ConfigWatcherTest, KeepsLastCopyWhileServiceIsDownAndFollowsRestarts) {
  TempDir dir;
  const std::string path = dir.File("config.yaml");
  WriteFile(path, ConfigText({kTokenA, kTokenB}));
  std::unique_ptr<ConfigServer> server = StartServer(path);
  ASSERT_NE(server, nullptr);
  const std::uint16_t port = server->port();

  std::mutex changes_mu;
  std::vector<std::uint64_t> changes;
  config::ConfigWatcherOptions options = WatcherOptions(port);
  options.on_change = [&](const config::ServedConfig& served) {
    std::lock_guard<std::mutex> lock(changes_mu);
    changes.push_back(served.version);
  };
  absl::StatusOr<std::unique_ptr<config::ConfigWatcher>> started = config::ConfigWatcher::Start(options);
  ASSERT_TRUE(started.ok()) << started.status();
  config::ConfigWatcher& watcher = **started;
  ASSERT_TRUE(watcher.WaitForVersion(server->version(), kWait));
  EXPECT_TRUE(watcher.HasConfig());
  EXPECT_TRUE(support::Eventually([&] { return watcher.Connected(); }, kWait));
  EXPECT_TRUE(watcher.LastError().ok()) << watcher.LastError();
  EXPECT_EQ(*watcher.Current(), Load(path));
  const std::uint64_t first_version = watcher.CurrentServed().version;

  // Revoke token B: gone from the watcher's copy within seconds, and a TokenIndex built
  // from it no longer authenticates it.
  WriteFile(path, ConfigText({kTokenA}));
  ASSERT_TRUE(support::Eventually([&] { return HashesOf(*watcher.Current(), "acme").size() == 1; }, kWait));
  {
    config::TokenIndex index(*watcher.Current());
    EXPECT_TRUE(index.Find(kTokenA).has_value());
    EXPECT_FALSE(index.Find(kTokenB).has_value());
  }
  const std::uint64_t revoked_version = watcher.CurrentServed().version;
  EXPECT_GT(revoked_version, first_version);

  // Service down: the last copy stays, the error says so.
  server->Stop();
  server.reset();
  ASSERT_TRUE(support::Eventually([&] { return !watcher.Connected(); }, kWait));
  EXPECT_TRUE(support::Eventually(
      [&] { return watcher.LastError().code() == absl::StatusCode::kUnavailable; }, kWait))
      << watcher.LastError();
  std::this_thread::sleep_for(milliseconds(500));  // several reconnection attempts
  ASSERT_TRUE(watcher.HasConfig());
  EXPECT_EQ(watcher.CurrentServed().version, revoked_version);
  EXPECT_EQ(HashesOf(*watcher.Current(), "acme"), std::vector<std::string>{config::HashToken(kTokenA)});

  // Changed while down, restarted on the same port: the watcher picks the new version up.
  WriteFile(path, ConfigText({kTokenB}, 32));
  server = StartServer(path, "127.0.0.1:" + std::to_string(port));
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(watcher.WaitForVersion(server->version(), kWait)) << watcher.LastError();
  EXPECT_GT(watcher.CurrentServed().version, revoked_version);
  EXPECT_EQ(watcher.Current()->redis.shards, 32u);
  EXPECT_EQ(HashesOf(*watcher.Current(), "acme"), std::vector<std::string>{config::HashToken(kTokenB)});
  EXPECT_TRUE(support::Eventually([&] { return watcher.LastError().ok(); }, kWait));

  watcher.Stop();
  std::lock_guard<std::mutex> lock(changes_mu);
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0], first_version);
  EXPECT_EQ(changes[1], revoked_version);
  EXPECT_EQ(changes[2], server->version());
}

TEST(ConfigWatcherTest, StartsFromALocalFileUntilTheServiceAnswers) {
  TempDir dir;
  const std::string local = dir.File("local.yaml");
  WriteFile(local, ConfigText({kTokenA}));
  // Nothing listens on this port (taken and released just now).
  std::uint16_t port = 0;
  {
    const std::string path = dir.File("config.yaml");
    WriteFile(path, ConfigText({kTokenB}));
    std::unique_ptr<ConfigServer> probe = StartServer(path);
    ASSERT_NE(probe, nullptr);
    port = probe->port();
  }
  config::ConfigWatcherOptions options = WatcherOptions(port);
  options.initial_file = local;
  absl::StatusOr<std::unique_ptr<config::ConfigWatcher>> watcher = config::ConfigWatcher::Start(options);
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  ASSERT_TRUE((*watcher)->HasConfig());
  EXPECT_EQ((*watcher)->CurrentServed().version, 0u);
  EXPECT_EQ(*(*watcher)->Current(), Load(local));
  EXPECT_TRUE(support::Eventually(
      [&] { return (*watcher)->LastError().code() == absl::StatusCode::kUnavailable; }, kWait));
  EXPECT_FALSE((*watcher)->Connected());

  const std::string path = dir.File("config.yaml");
  WriteFile(path, ConfigText({kTokenB}));
  std::unique_ptr<ConfigServer> server = StartServer(path, "127.0.0.1:" + std::to_string(port));
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE((*watcher)->WaitForVersion(1, kWait)) << (*watcher)->LastError();
  EXPECT_EQ(*(*watcher)->Current(), Load(path));
}

TEST(ConfigWatcherTest, RejectsBadOptionsAndInitialFile) {
  config::ConfigWatcherOptions options;
  EXPECT_EQ(config::ConfigWatcher::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.target = "127.0.0.1:1";
  options.initial_file = "/nonexistent/drainmet.yaml";
  EXPECT_EQ(config::ConfigWatcher::Start(options).status().code(), absl::StatusCode::kNotFound);
  options.initial_file = "";
  options.initial_backoff = milliseconds(0);
  EXPECT_EQ(config::ConfigWatcher::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ConfigWatcherTest, StopReturnsPromptlyWithoutService) {
  config::ConfigWatcherOptions options = WatcherOptions(1);  // nothing listens on port 1
  absl::StatusOr<std::unique_ptr<config::ConfigWatcher>> watcher = config::ConfigWatcher::Start(options);
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  EXPECT_FALSE((*watcher)->WaitForConfig(milliseconds(100)));
  EXPECT_FALSE((*watcher)->HasConfig());
  EXPECT_EQ((*watcher)->Current(), nullptr);
  const auto start = Clock::now();
  (*watcher)->Stop();
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
}

using support::ChildProcess;

TEST(ConfigBinaryTest, ServesLogsItsPortAndExitsZeroOnSigterm) {
  TempDir dir;
  const std::string path = dir.File("config.yaml");
  WriteFile(path, ConfigText({kTokenA}));
  ChildProcess child;
  ASSERT_TRUE(
      child.Start({kConfigBinary, "--config", path, "--listen", "127.0.0.1:0", "--reload-interval-ms", "50"})
          .ok());
  std::optional<std::string> line = child.WaitForLine("msg=\"config service listening\"", kWait);
  ASSERT_TRUE(line.has_value()) << child.Stderr();
  std::smatch match;
  ASSERT_TRUE(std::regex_search(*line, match, std::regex(" port=([0-9]+)"))) << *line;
  const auto port = static_cast<std::uint16_t>(std::stoi(match[1]));
  ASSERT_GT(port, 0);

  v1::ConfigSnapshot snapshot;
  grpc::Status status = GetConfig(port, &snapshot);
  ASSERT_TRUE(status.ok()) << status.error_message();
  absl::StatusOr<config::Config> served = config::FromProto(snapshot);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(*served, Load(path));

  // A broken file is logged with its error; a Watch still gets the last good config.
  WriteFile(path, "tenants: [{id: x, colour: red}]\n");
  ASSERT_TRUE(
      child.WaitForLine("msg=\"config reload failed; serving the last good config\"", kWait).has_value())
      << child.Stderr();
  EXPECT_TRUE(child.WaitForLine("tenants[0].colour: unknown key", kWait).has_value()) << child.Stderr();
  {
    WatchClient watch(port);
    std::optional<v1::ConfigSnapshot> current = watch.Next(kWait);
    ASSERT_TRUE(current.has_value());
    EXPECT_EQ(current->version(), snapshot.version());
  }

  child.Signal(SIGTERM);
  EXPECT_EQ(child.WaitExitCode(kWait), std::optional<int>(0)) << child.Stderr();
  EXPECT_EQ(child.Stderr().find("api-secret-1"), std::string::npos) << "a secret was logged";
}

TEST(ConfigBinaryTest, ExitCodes) {
  TempDir dir;
  {
    ChildProcess child;  // missing config file: 1
    ASSERT_TRUE(
        child.Start({kConfigBinary, "--config", dir.File("missing.yaml"), "--listen", "127.0.0.1:0"}).ok());
    EXPECT_EQ(child.WaitExitCode(kWait), std::optional<int>(1)) << child.Stderr();
    EXPECT_NE(child.Stderr().find("level=error"), std::string::npos) << child.Stderr();
  }
  {
    ChildProcess child;  // no --config: command-line error, 2
    ASSERT_TRUE(child.Start({kConfigBinary, "--listen", "127.0.0.1:0"}).ok());
    EXPECT_EQ(child.WaitExitCode(kWait), std::optional<int>(2)) << child.Stderr();
  }
}

}  // namespace
}  // namespace drainmet::config_service
