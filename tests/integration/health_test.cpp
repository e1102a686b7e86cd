// grpc.health.v1 of the distributed services over real gRPC on loopback (issue "Distributed
// drainmet": "Every service: grpc.health.v1 (SERVING only when its dependencies are)"):
// health::HealthServer on its own; drainmet-receiver and drainmet-outlet in process against
// a private redis-server (SERVING while Redis answers, NOT_SERVING while it is down, SERVING
// again once it is back, NOT_SERVING or gone after Stop); both binaries as child processes
// (--grpc-listen, the bound port in the listening line, exit 1 on a taken port). Every wait
// is a poll bounded by a deadline.

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
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

#include "common/base/clock.h"
#include "common/config/auth.h"
#include "common/config/config.h"
#include "common/health/health_server.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "services/outlet/service.h"
#include "services/receiver/service.h"
#include "tests/support/child_process.h"
#include "tests/support/eventually.h"
#include "tests/support/http_client.h"
#include "tests/support/redis_server.h"

namespace drainmet::health {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using grpc::health::v1::HealthCheckResponse;
using std::chrono::milliseconds;

// Bound of every wait for a status change. The receiver pings Redis every second; the outlet
// notices a silent Redis after max(3 s, 2 x lease_renew_ms) (ShardOutlet::RedisHealthy).
constexpr milliseconds kWait{8000};

// One grpc.health.v1 Check: the RPC's code and, when OK, the status.
struct Answer {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  HealthCheckResponse::ServingStatus status = HealthCheckResponse::UNKNOWN;

  bool Serving() const { return code == grpc::StatusCode::OK && status == HealthCheckResponse::SERVING; }
  bool NotServing() const {
    return code == grpc::StatusCode::OK && status == HealthCheckResponse::NOT_SERVING;
  }
};

std::ostream& operator<<(std::ostream& out, const Answer& a) {
  return out << "code=" << a.code << " status=" << HealthCheckResponse::ServingStatus_Name(a.status);
}

// A fresh channel per call, so that a reconnection backoff never delays an answer.
Answer Check(std::uint16_t port, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + milliseconds(2000));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  Answer answer;
  answer.code = status.error_code();
  if (status.ok()) answer.status = response.status();
  return answer;
}

// Every name in `names` answers `want` (polled up to kWait).
bool EventuallyAll(std::uint16_t port, const std::vector<std::string>& names, bool (Answer::*want)() const) {
  return support::Eventually(
      [&] {
        for (const std::string& name : names) {
          if (!(Check(port, name).*want)()) return false;
        }
        return true;
      },
      kWait);
}

// ---------------------------------------------------------------------------------------
// health::HealthServer

HealthServerOptions Loopback(bool initially_serving) {
  HealthServerOptions options;
  options.listen = "127.0.0.1:0";
  options.service_names = {"drainmet.v1.Test"};
  options.initially_serving = initially_serving;
  return options;
}

TEST(HealthServerTest, StartsWithTheInitialStatusForEveryName) {
  for (const bool initially : {false, true}) {
    SCOPED_TRACE(initially);
    auto server = HealthServer::Start(Loopback(initially));
    ASSERT_TRUE(server.ok()) << server.status();
    EXPECT_EQ((*server)->serving(), initially);
    const HealthCheckResponse::ServingStatus want =
        initially ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
    for (const std::string name : {"", "drainmet.v1.Test"}) {
      SCOPED_TRACE(name);
      const Answer answer = Check((*server)->port(), name);
      EXPECT_EQ(answer.code, grpc::StatusCode::OK);
      EXPECT_EQ(answer.status, want) << answer;
    }
  }
}

TEST(HealthServerTest, UnknownNameIsNotFound) {
  auto server = HealthServer::Start(Loopback(true));
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(Check((*server)->port(), "no.such.Service").code, grpc::StatusCode::NOT_FOUND);
}

TEST(HealthServerTest, SetServingChangesEveryName) {
  auto server = HealthServer::Start(Loopback(false));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::uint16_t port = (*server)->port();
  (*server)->SetServing(true);
  EXPECT_TRUE(Check(port, "").Serving()) << Check(port, "");
  EXPECT_TRUE(Check(port, "drainmet.v1.Test").Serving()) << Check(port, "drainmet.v1.Test");
  (*server)->SetServing(false);
  EXPECT_TRUE(Check(port, "").NotServing()) << Check(port, "");
  EXPECT_TRUE(Check(port, "drainmet.v1.Test").NotServing()) << Check(port, "drainmet.v1.Test");
}

TEST(HealthServerTest, ShutdownHealthIsNotServingForGoodWhileStillAnswering) {
  auto server = HealthServer::Start(Loopback(true));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::uint16_t port = (*server)->port();
  (*server)->ShutdownHealth();
  (*server)->SetServing(true);  // ignored from now on
  EXPECT_FALSE((*server)->serving());
  EXPECT_TRUE(Check(port, "").NotServing()) << Check(port, "");
  EXPECT_TRUE(Check(port, "drainmet.v1.Test").NotServing()) << Check(port, "drainmet.v1.Test");
  (*server)->Stop(milliseconds(500));
  EXPECT_EQ(Check(port, "").code, grpc::StatusCode::UNAVAILABLE);
  (*server)->Stop(milliseconds(500));  // idempotent
}

TEST(HealthServerTest, WatchSeesEveryChange) {
  auto server = HealthServer::Start(Loopback(false));
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string((*server)->port()), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kWait);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service("drainmet.v1.Test");
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> reader = stub->Watch(&context, request);
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  (*server)->SetServing(true);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  (*server)->ShutdownHealth();
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  context.TryCancel();
  reader->Finish();
}

TEST(HealthServerTest, AddressNamesTheBoundPort) {
  auto server = HealthServer::Start(Loopback(false));
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_GT((*server)->port(), 0);
  EXPECT_EQ((*server)->address(), "127.0.0.1:" + std::to_string((*server)->port()));
}

TEST(HealthServerTest, TakenPortIsUnavailableNamingTheAddress) {
  auto first = HealthServer::Start(Loopback(false));
  ASSERT_TRUE(first.ok()) << first.status();
  HealthServerOptions options = Loopback(false);
  options.listen = "127.0.0.1:" + std::to_string((*first)->port());
  auto second = HealthServer::Start(options);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(std::string(second.status().message()), "cannot listen for gRPC on " + options.listen);
  // The first one is untouched.
  EXPECT_TRUE(Check((*first)->port(), "").NotServing());
}

TEST(HealthServerTest, MalformedAddressIsInvalidArgument) {
  const struct {
    const char* listen;
    const char* message;
  } cases[] = {
      {"localhost", "gRPC listen address \"localhost\": must be HOST:PORT"},
      {":9090", "gRPC listen address \":9090\": host is empty"},
      {"127.0.0.1:65536", "gRPC listen address \"127.0.0.1:65536\": port must be a decimal number 0..65535"},
      {"", "gRPC listen address \"\": must be HOST:PORT"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.listen);
    HealthServerOptions options = Loopback(false);
    options.listen = c.listen;
    auto server = HealthServer::Start(options);
    ASSERT_FALSE(server.ok());
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(server.status().message()), c.message);
  }
}

// ---------------------------------------------------------------------------------------
// Receiver and outlet in process, against a private redis-server.

config::Config ServiceConfig(const std::string& socket_path) {
  config::Config c;
  c.listen = "127.0.0.1:0";
  c.threads = 1;
  c.grace_seconds = 1;
  c.redis.shards = 4;
  c.redis.servers = {"unix:" + socket_path};
  c.redis.connect_timeout_ms = 200;
  c.redis.command_timeout_ms = 500;
  c.outlet.interval_ms = 100;
  c.outlet.lease_ttl_ms = 1500;
  c.outlet.lease_renew_ms = 300;
  config::Tenant t;
  t.id = "acme";
  t.token_hashes.push_back(config::HashToken("tok"));
  t.output = config::OutputKind::kStdout;
  c.tenants.push_back(t);
  return c;
}

class ServiceHealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = support::RedisServer::Start();
    if (absl::IsNotFound(server.status())) GTEST_SKIP() << "no redis-server; deploy/bootstrap.sh installs it";
    ASSERT_TRUE(server.ok()) << server.status();
    redis_ = *std::move(server);
  }

  // SERVING while Redis answers; NOT_SERVING within kWait of Redis stopping; SERVING again
  // within kWait of its restart. `names` are "" and the service's own name.
  void ExpectHealthFollowsRedis(std::uint16_t port, const std::vector<std::string>& names) {
    ASSERT_TRUE(EventuallyAll(port, names, &Answer::Serving)) << Check(port, "");
    EXPECT_EQ(Check(port, "drainmet.v1.NoSuchService").code, grpc::StatusCode::NOT_FOUND);
    ASSERT_TRUE(redis_->Stop().ok());
    EXPECT_TRUE(EventuallyAll(port, names, &Answer::NotServing)) << Check(port, "");
    ASSERT_TRUE(redis_->Restart().ok());
    EXPECT_TRUE(EventuallyAll(port, names, &Answer::Serving)) << Check(port, "");
  }

  std::unique_ptr<support::RedisServer> redis_;
};

bool NotServingOrGone(const Answer& a) { return a.NotServing() || a.code == grpc::StatusCode::UNAVAILABLE; }

TEST_F(ServiceHealthTest, ReceiverIsServingOnlyWhileRedisAnswers) {
  auto service = receiver::Service::Start(ServiceConfig(redis_->socket_path()), base::SystemClock::Get());
  ASSERT_TRUE(service.ok()) << service.status();
  const std::uint16_t port = (*service)->grpc_port();
  ASSERT_GT(port, 0);
  ASSERT_NE(port, (*service)->port());
  ExpectHealthFollowsRedis(port, {"", receiver::kHealthServiceName});
  // /readyz agrees once both have seen Redis back.
  EXPECT_TRUE(support::Eventually(
      [&] { return support::HttpGet((*service)->port(), "/readyz").status == 200; }, kWait));
}

TEST_F(ServiceHealthTest, ReceiverStopIsNotServingOrUnreachable) {
  auto service = receiver::Service::Start(ServiceConfig(redis_->socket_path()), base::SystemClock::Get());
  ASSERT_TRUE(service.ok()) << service.status();
  const std::uint16_t port = (*service)->grpc_port();
  ASSERT_TRUE(EventuallyAll(port, {"", receiver::kHealthServiceName}, &Answer::Serving));
  (*service)->Stop();
  for (const std::string name : {"", receiver::kHealthServiceName}) {
    const Answer answer = Check(port, name);
    EXPECT_TRUE(NotServingOrGone(answer)) << name << ": " << answer;
  }
}

TEST_F(ServiceHealthTest, ReceiverTakenGrpcPortIsUnavailable) {
  auto holder = HealthServer::Start(Loopback(false));
  ASSERT_TRUE(holder.ok()) << holder.status();
  receiver::ServiceOptions options;
  options.grpc_listen = "127.0.0.1:" + std::to_string((*holder)->port());
  auto service =
      receiver::Service::Start(ServiceConfig(redis_->socket_path()), base::SystemClock::Get(), options);
  ASSERT_FALSE(service.ok());
  EXPECT_EQ(service.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(std::string(service.status().message()), "cannot listen for gRPC on " + options.grpc_listen);
}

outlet::ServiceOptions OutletServiceOptions() {
  outlet::ServiceOptions options;
  options.listen = "127.0.0.1:0";
  options.grpc_listen = "127.0.0.1:0";
  options.outlet.threads = 1;
  options.outlet.shutdown_timeout_ms = 2000;
  return options;
}

TEST_F(ServiceHealthTest, OutletIsServingOnlyWhileRedisAnswers) {
  auto service = outlet::Service::Start(ServiceConfig(redis_->socket_path()), OutletServiceOptions(),
                                        base::SystemClock::Get());
  ASSERT_TRUE(service.ok()) << service.status();
  const std::uint16_t port = (*service)->grpc_port();
  ASSERT_GT(port, 0);
  ASSERT_NE(port, (*service)->port());
  ExpectHealthFollowsRedis(port, {"", outlet::kHealthServiceName});
  EXPECT_TRUE(support::Eventually(
      [&] { return support::HttpGet((*service)->port(), "/readyz").status == 200; }, kWait));
}

TEST_F(ServiceHealthTest, OutletStopIsNotServingOrUnreachable) {
  auto service = outlet::Service::Start(ServiceConfig(redis_->socket_path()), OutletServiceOptions(),
                                        base::SystemClock::Get());
  ASSERT_TRUE(service.ok()) << service.status();
  const std::uint16_t port = (*service)->grpc_port();
  ASSERT_TRUE(EventuallyAll(port, {"", outlet::kHealthServiceName}, &Answer::Serving));
  (*service)->Stop();
  for (const std::string name : {"", outlet::kHealthServiceName}) {
    const Answer answer = Check(port, name);
    EXPECT_TRUE(NotServingOrGone(answer)) << name << ": " << answer;
  }
}

TEST_F(ServiceHealthTest, OutletTakenGrpcPortIsUnavailable) {
  auto holder = HealthServer::Start(Loopback(false));
  ASSERT_TRUE(holder.ok()) << holder.status();
  outlet::ServiceOptions options = OutletServiceOptions();
  options.grpc_listen = "127.0.0.1:" + std::to_string((*holder)->port());
  auto service =
      outlet::Service::Start(ServiceConfig(redis_->socket_path()), options, base::SystemClock::Get());
  ASSERT_FALSE(service.ok());
  EXPECT_EQ(service.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(std::string(service.status().message()), "cannot listen for gRPC on " + options.grpc_listen);
}

// ---------------------------------------------------------------------------------------
// The binaries: --grpc-listen, the bound port in the listening line, exit 1 on a taken port.

using support::ChildProcess;

struct BinaryCase {
  const char* name;
  const char* path;
  const char* listening;  // msg of the listening line
  const char* service_name;
};

void PrintTo(const BinaryCase& binary, std::ostream* out) { *out << binary.name; }

const BinaryCase kBinaries[] = {
    {"receiver", DRAINMET_BINARY_DIR "/services/receiver/drainmet-receiver",
     "msg=\"drainmet-receiver listening\"", receiver::kHealthServiceName},
    {"outlet", DRAINMET_BINARY_DIR "/services/outlet/drainmet-outlet", "msg=\"drainmet-outlet listening\"",
     outlet::kHealthServiceName},
};

class BinaryHealthTest : public ServiceHealthTest, public ::testing::WithParamInterface<BinaryCase> {
 protected:
  void SetUp() override {
    ServiceHealthTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    char pattern[] = "/tmp/drainmet_health_test_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    config_path_ = dir_ + "/config.yaml";
    std::ofstream out(config_path_);
    out << "listen: \"127.0.0.1:0\"\nthreads: 1\ngrace_seconds: 1\n"
        << "redis:\n  shards: 4\n  servers: [\"unix:" << redis_->socket_path() << "\"]\n"
        << "outlet:\n  lease_ttl_ms: 1500\n  lease_renew_ms: 300\n"
        << "tenants:\n  - id: acme\n    token_hashes: [\"" << config::HashToken("tok") << "\"]\n"
        << "    output: stdout\n";
    ASSERT_TRUE(out.good());
  }
  void TearDown() override {
    std::error_code ignored;
    if (!dir_.empty()) fs::remove_all(dir_, ignored);
  }

  std::string dir_;
  std::string config_path_;
};

TEST_P(BinaryHealthTest, ServesHealthOnGrpcListenAndStopsOnSigterm) {
  const BinaryCase& binary = GetParam();
  ChildProcess child;
  ASSERT_TRUE(child
                  .Start({binary.path, "--config", config_path_, "--listen", "127.0.0.1:0", "--grpc-listen",
                          "127.0.0.1:0"})
                  .ok());
  const std::optional<std::string> line = child.WaitForLine(binary.listening, kWait);
  ASSERT_TRUE(line.has_value()) << child.Stderr();
  std::smatch match;
  ASSERT_TRUE(std::regex_search(*line, match, std::regex(" grpc=127\\.0\\.0\\.1:([0-9]+)"))) << *line;
  const auto port = static_cast<std::uint16_t>(std::stoi(match[1]));
  ASSERT_GT(port, 0);
  EXPECT_TRUE(EventuallyAll(port, {"", binary.service_name}, &Answer::Serving)) << Check(port, "");
  EXPECT_EQ(Check(port, "drainmet.v1.NoSuchService").code, grpc::StatusCode::NOT_FOUND);
  child.Signal(SIGTERM);
  EXPECT_EQ(child.WaitExitCode(kWait), std::optional<int>(0)) << child.Stderr();
  EXPECT_EQ(Check(port, "").code, grpc::StatusCode::UNAVAILABLE);
}

TEST_P(BinaryHealthTest, TakenGrpcPortExitsOneSayingWhy) {
  const BinaryCase& binary = GetParam();
  auto holder = HealthServer::Start(Loopback(false));
  ASSERT_TRUE(holder.ok()) << holder.status();
  const std::string taken = "127.0.0.1:" + std::to_string((*holder)->port());
  ChildProcess child;
  ASSERT_TRUE(
      child.Start({binary.path, "--config", config_path_, "--listen", "127.0.0.1:0", "--grpc-listen", taken})
          .ok());
  EXPECT_EQ(child.WaitExitCode(kWait), std::optional<int>(1)) << child.Stderr();
  const std::optional<std::string> line = child.WaitForLine("cannot listen for gRPC on " + taken, kWait);
  ASSERT_TRUE(line.has_value()) << child.Stderr();
  EXPECT_NE(line->find("level=error"), std::string::npos) << *line;
  EXPECT_NE(line->find(std::string("msg=\"drainmet-") + binary.name + " failed\""), std::string::npos)
      << *line;
}

INSTANTIATE_TEST_SUITE_P(Binaries, BinaryHealthTest, ::testing::ValuesIn(kBinaries),
                         [](const ::testing::TestParamInfo<BinaryCase>& info) { return info.param.name; });

}  // namespace
}  // namespace drainmet::health
