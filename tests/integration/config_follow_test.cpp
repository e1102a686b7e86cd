// Receivers and outlets following drainmet-config (issue "Distributed drainmet": "Config
// service down: receivers and outlets keep serving with the last config; a token revoked
// in the file stops working within seconds of reload"). In-process config service on
// loopback gRPC, a private redis-server, the receiver and outlet services in-process, the
// fake Librato. Every wait is bounded.

#include <stdlib.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "common/config/auth.h"
#include "gtest/gtest.h"
#include "services/config/config_service.h"
#include "services/outlet/service.h"
#include "services/receiver/service.h"
#include "tests/support/drain_text.h"
#include "tests/support/eventually.h"
#include "tests/support/fake_librato.h"
#include "tests/support/http_client.h"
#include "tests/support/redis_server.h"
#include "tests/support/temp_dir.h"

namespace drainmet {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr milliseconds kReloadInterval{50};
// Bound of every wait for something that should happen within a few reload intervals or
// reconnection attempts.
constexpr milliseconds kWait{8000};

const std::string kTokenA = "token-a-0123456789";
const std::string kTokenB = "token-b-0123456789";
const std::string kTokenC = "token-c-0123456789";

using support::TempDir;

void WriteFile(const std::string& path, const std::string& text) {
  ASSERT_TRUE(support::ReplaceFile(path, text)) << path;
}

struct FileSettings {
  std::vector<std::string> tokens;  // of tenant acme
  std::string redis_socket;
  std::uint32_t shards = 4;
  std::string librato_url = "http://127.0.0.1:1/v1/metrics";
  std::string api_token = "api-one";
};

// A config file: tenant acme (Librato output at `librato_url`) accepting `tokens`.
std::string ConfigText(const FileSettings& s) {
  std::string hashes;
  for (const std::string& token : s.tokens) hashes += "      - " + config::HashToken(token) + "\n";
  return "listen: 127.0.0.1:0\n"
         "threads: 2\n"
         "grace_seconds: 1\n"
         "outlet: {interval_ms: 50, lease_ttl_ms: 1500, lease_renew_ms: 300, retry_initial_backoff_ms: 50}\n"
         "redis:\n"
         "  shards: " +
         std::to_string(s.shards) +
         "\n"
         "  servers: [\"unix:" +
         s.redis_socket +
         "\"]\n"
         "  connect_timeout_ms: 200\n"
         "  command_timeout_ms: 500\n"
         "tenants:\n"
         "  - id: acme\n"
         "    token_hashes:\n" +
         (s.tokens.empty() ? std::string("      []\n") : hashes) + "    librato: {url: \"" + s.librato_url +
         "\", email: ops@acme.example, api_token: " + s.api_token + "}\n";
}

using support::Framed;

std::string NowBody() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char ts[64];
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
  return Framed(std::string("<190>1 ") + ts + " host app web.1 - count#hits=2 source=web.1");
}

unsigned Drain(std::uint16_t port, const std::string& token) {
  const support::Headers headers = {{"Authorization", "Basic " + absl::Base64Escape(token + ":")},
                                    {"Content-Type", "application/logplex-1"}};
  return support::HttpPost(port, "/logs?resolution=1", headers, NowBody()).status;
}

class ConfigFollowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto redis = support::RedisServer::Start();
    if (absl::IsNotFound(redis.status())) GTEST_SKIP() << "no redis-server; deploy/bootstrap.sh installs it";
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    settings_.redis_socket = redis_->socket_path();
    path_ = dir_.File("config.yaml");
  }

  std::unique_ptr<config_service::ConfigServer> StartConfigService(
      const std::string& listen = "127.0.0.1:0") {
    config_service::ConfigServerOptions options;
    options.config_path = path_;
    options.listen = listen;
    options.reload_interval = kReloadInterval;
    options.shutdown_grace = milliseconds(500);
    absl::StatusOr<std::unique_ptr<config_service::ConfigServer>> server =
        config_service::ConfigServer::Start(std::move(options));
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  receiver::FollowOptions Follow(std::uint16_t port) {
    receiver::FollowOptions follow;
    follow.target = "127.0.0.1:" + std::to_string(port);
    follow.first_config_timeout = kWait;
    follow.initial_backoff = milliseconds(50);
    follow.max_backoff = milliseconds(200);
    return follow;
  }

  TempDir dir_;
  std::string path_;
  FileSettings settings_;
  std::unique_ptr<support::RedisServer> redis_;
};

// The receiver serves the service's tokens, follows a revocation within seconds, keeps
// the last good copy while the service is down, and follows it again after a restart on
// the same port. Restart-only keys (redis.shards) keep their first value.
TEST_F(ConfigFollowTest, ReceiverFollowsRevocationAndKeepsLastCopyWhileServiceIsDown) {
  settings_.tokens = {kTokenA};
  WriteFile(path_, ConfigText(settings_));
  std::unique_ptr<config_service::ConfigServer> server = StartConfigService();
  ASSERT_NE(server, nullptr);
  const std::uint16_t config_port = server->port();

  absl::StatusOr<std::unique_ptr<receiver::Service>> started =
      receiver::Service::StartFollowing(Follow(config_port), base::SystemClock::Get());
  ASSERT_TRUE(started.ok()) << started.status();
  receiver::Service& receiver = **started;
  EXPECT_EQ(receiver.config_version(), server->version());
  ASSERT_TRUE(
      support::Eventually([&] { return support::HttpGet(receiver.port(), "/readyz").status == 200; }, kWait));
  EXPECT_EQ(Drain(receiver.port(), kTokenA), 204u);
  EXPECT_EQ(Drain(receiver.port(), kTokenB), 401u);

  // Token A revoked, token B added in the file: within seconds of the reload.
  settings_.tokens = {kTokenB};
  WriteFile(path_, ConfigText(settings_));
  EXPECT_TRUE(support::Eventually([&] { return Drain(receiver.port(), kTokenA) == 401u; }, kWait));
  EXPECT_EQ(Drain(receiver.port(), kTokenB), 204u);
  EXPECT_EQ(receiver.config_version(), server->version());
  const std::uint64_t revoked_version = receiver.config_version();

  // Config service down: the last good copy keeps serving.
  server->Stop();
  server.reset();
  std::this_thread::sleep_for(milliseconds(600));  // several reconnection attempts
  EXPECT_EQ(Drain(receiver.port(), kTokenB), 204u);
  EXPECT_EQ(Drain(receiver.port(), kTokenA), 401u);
  EXPECT_EQ(receiver.config_version(), revoked_version);
  EXPECT_EQ(support::HttpGet(receiver.port(), "/readyz").status, 200u);

  // Changed while down (token C instead of B, and a restart-only key), restarted on the
  // same port: picked up; the shard count stays what the receiver started with.
  settings_.tokens = {kTokenC};
  settings_.shards = 8;
  WriteFile(path_, ConfigText(settings_));
  server = StartConfigService("127.0.0.1:" + std::to_string(config_port));
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(support::Eventually([&] { return Drain(receiver.port(), kTokenC) == 204u; }, kWait));
  EXPECT_EQ(Drain(receiver.port(), kTokenB), 401u);
  EXPECT_TRUE(support::Eventually([&] { return receiver.config_version() == server->version(); }, kWait));
  EXPECT_GT(receiver.config_version(), revoked_version);
  EXPECT_EQ(receiver.directory()->config.redis.shards, 4u);

  // An invalid file is not served: the last good copy stays.
  WriteFile(path_, ConfigText(settings_) + "bogus_key: 1\n");
  std::this_thread::sleep_for(kReloadInterval * 6);
  EXPECT_EQ(Drain(receiver.port(), kTokenC), 204u);
  receiver.Stop();
}

TEST_F(ConfigFollowTest, ReceiverWithoutAnyConfigGivesUpAfterTheBound) {
  // Nothing listens on this port (a config service started and stopped there).
  settings_.tokens = {kTokenA};
  WriteFile(path_, ConfigText(settings_));
  std::unique_ptr<config_service::ConfigServer> server = StartConfigService();
  ASSERT_NE(server, nullptr);
  const std::uint16_t port = server->port();
  server->Stop();
  server.reset();

  receiver::FollowOptions follow = Follow(port);
  follow.first_config_timeout = milliseconds(500);
  const auto before = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<receiver::Service>> started =
      receiver::Service::StartFollowing(std::move(follow), base::SystemClock::Get());
  EXPECT_EQ(started.status().code(), absl::StatusCode::kDeadlineExceeded) << started.status();
  EXPECT_NE(started.status().message().find("no configuration from the config service 127.0.0.1:"),
            std::string::npos)
      << started.status();
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(5));
}

// --config FILE with --config-service: the file's copy serves until the service answers.
TEST_F(ConfigFollowTest, ReceiverStartsFromTheFileThenFollowsTheService) {
  settings_.tokens = {kTokenA};
  WriteFile(path_, ConfigText(settings_));
  std::unique_ptr<config_service::ConfigServer> server = StartConfigService();
  ASSERT_NE(server, nullptr);
  const std::uint16_t port = server->port();
  server->Stop();
  server.reset();

  const std::string local = dir_.File("local.yaml");
  WriteFile(local, ConfigText(settings_));
  receiver::FollowOptions follow = Follow(port);
  follow.initial_file = local;
  follow.first_config_timeout = milliseconds(500);
  absl::StatusOr<std::unique_ptr<receiver::Service>> started =
      receiver::Service::StartFollowing(std::move(follow), base::SystemClock::Get());
  ASSERT_TRUE(started.ok()) << started.status();
  receiver::Service& receiver = **started;
  EXPECT_EQ(receiver.config_version(), 0u);
  EXPECT_EQ(Drain(receiver.port(), kTokenA), 204u);

  settings_.tokens = {kTokenB};
  WriteFile(path_, ConfigText(settings_));
  server = StartConfigService("127.0.0.1:" + std::to_string(port));
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(support::Eventually([&] { return Drain(receiver.port(), kTokenB) == 204u; }, kWait));
  EXPECT_EQ(Drain(receiver.port(), kTokenA), 401u);
  EXPECT_EQ(receiver.config_version(), server->version());
}

// The outlet posts later windows with the credentials and URL of the new copy, and keeps
// its copy while the service is down.
TEST_F(ConfigFollowTest, OutletUsesNewCredentialsForLaterWindows) {
  auto fake_one = support::FakeLibrato::Start();
  auto fake_two = support::FakeLibrato::Start();
  ASSERT_TRUE(fake_one.ok() && fake_two.ok());
  settings_.tokens = {kTokenA};
  settings_.librato_url = (*fake_one)->Url();
  settings_.api_token = "api-one";
  WriteFile(path_, ConfigText(settings_));
  std::unique_ptr<config_service::ConfigServer> server = StartConfigService();
  ASSERT_NE(server, nullptr);

  absl::StatusOr<std::unique_ptr<receiver::Service>> receiver =
      receiver::Service::StartFollowing(Follow(server->port()), base::SystemClock::Get());
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  outlet::FollowOptions follow;
  follow.target = "127.0.0.1:" + std::to_string(server->port());
  follow.first_config_timeout = kWait;
  follow.initial_backoff = milliseconds(50);
  follow.max_backoff = milliseconds(200);
  outlet::ServiceOptions options;
  options.listen = "127.0.0.1:0";
  options.outlet.threads = 2;
  options.outlet.shutdown_timeout_ms = 2000;
  absl::StatusOr<std::unique_ptr<outlet::Service>> outlet =
      outlet::Service::StartFollowing(std::move(follow), std::move(options), base::SystemClock::Get());
  ASSERT_TRUE(outlet.ok()) << outlet.status();
  EXPECT_EQ((*outlet)->config_version(), server->version());
  ASSERT_TRUE(support::Eventually([&] { return (*outlet)->outlet().HeldShards().size() == 4; }, kWait));

  ASSERT_TRUE(support::Eventually([&] { return Drain((*receiver)->port(), kTokenA) == 204u; }, kWait));
  ASSERT_TRUE((*fake_one)->WaitForRequests(1, milliseconds(10000)));
  {
    const auto requests = (*fake_one)->Requests();
    ASSERT_FALSE(requests.empty());
    EXPECT_EQ(requests[0].password, "api-one");
  }

  // New API token and URL: later windows go there with them.
  settings_.librato_url = (*fake_two)->Url();
  settings_.api_token = "api-two";
  WriteFile(path_, ConfigText(settings_));
  ASSERT_TRUE(support::Eventually(
      [&] { return (*outlet)->outlet().CurrentConfig()->tenants[0].librato.api_token == "api-two"; }, kWait));
  // Config service down from here: the outlet keeps its (new) copy.
  server->Stop();
  server.reset();
  std::this_thread::sleep_for(milliseconds(1100));  // the next window
  EXPECT_EQ(Drain((*receiver)->port(), kTokenA), 204u);
  ASSERT_TRUE((*fake_two)->WaitForRequests(1, milliseconds(10000)));
  for (const support::RecordedRequest& r : (*fake_two)->Requests()) {
    EXPECT_EQ(r.user, "ops@acme.example");
    EXPECT_EQ(r.password, "api-two");
  }
  (*outlet)->Stop();
  (*receiver)->Stop();
}

}  // namespace
}  // namespace drainmet
