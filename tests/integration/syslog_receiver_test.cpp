// Syslog drains into drainmet-receiver's service against a private redis-server (issue 7):
// points reach Redis through the pre-aggregator; Stop() writes every complete message
// already read before the pre-aggregator stops; while Redis is down the connection is not
// read and its points are retried, not lost.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "common/config/auth.h"
#include "common/store/redis_scripts.h"
#include "gtest/gtest.h"
#include "services/receiver/service.h"
#include "tests/support/drain_text.h"
#include "tests/support/eventually.h"
#include "tests/support/redis_server.h"

namespace drainmet::receiver {
namespace {

namespace net = boost::asio;
using std::chrono::milliseconds;
using tcp = net::ip::tcp;

constexpr char kToken[] = "d.01234567-89ab-cdef-0123-456789abcdef";

/// `n` octet-counted syslog messages (FORMATS.md §2) stamped now, each count#hits=1.
std::string Messages(int n) {
  const std::string now = support::Rfc3339Micros(base::SystemClock::Get().NowUnixNanos());
  std::string out;
  for (int i = 0; i < n; ++i) {
    out += support::Framed("<190>1 " + now + " " + kToken + " app web.1 - - count#hits=1\n");
  }
  return out;
}

using support::Eventually;

class SyslogReceiverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = support::RedisServer::Start();
    if (absl::IsNotFound(server.status())) GTEST_SKIP() << "no redis-server; deploy/bootstrap.sh installs it";
    ASSERT_TRUE(server.ok()) << server.status();
    redis_ = *std::move(server);
    config::Config c;
    c.receiver.flush_interval_ms = 5000;  // long: only Stop (or the delay) writes
    c.receiver.flush_delay_ms = 5000;
    c.listen = "127.0.0.1:0";
    c.threads = 2;
    c.redis.shards = 4;
    c.redis.servers = {"unix:" + redis_->socket_path()};
    c.redis.connect_timeout_ms = 200;
    c.redis.command_timeout_ms = 500;
    config::Tenant t;
    t.id = "acme";
    t.output = config::OutputKind::kStdout;
    c.tenants.push_back(t);
    c.syslog.listen = "127.0.0.1:0";
    c.syslog.drains.push_back({kToken, "acme", 60, "", ""});
    auto service = Service::Start(c, base::SystemClock::Get());
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);
    ASSERT_NE(service_->syslog_port(), 0);
  }

  std::size_t PendingWindows() {
    store::RedisClient::Options o;
    o.unix_socket = redis_->socket_path();
    store::RedisClient client(o);
    store::ShardProtocol protocol;
    std::size_t n = 0;
    for (std::uint32_t shard = 0; shard < 4; ++shard) {
      auto closes = protocol.PendingCloses(client, shard);
      if (closes.ok()) n += closes->size();
    }
    return n;
  }

  tcp::socket Connect() {
    tcp::socket socket(io_);
    socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), service_->syslog_port()));
    return socket;
  }

  net::io_context io_;
  std::unique_ptr<support::RedisServer> redis_;
  std::unique_ptr<Service> service_;
};

// Graceful shutdown (issue 7): what was read is in Redis when Stop returns, though the
// flush interval had not come and the sender's connection is still open.
TEST_F(SyslogReceiverTest, StopWritesWhatWasReadToRedis) {
  tcp::socket socket = Connect();
  net::write(socket, net::buffer(Messages(300)));
  // Read and parsed at once (30 KB on loopback); its counters move only once the points
  // are written, which the 5 s flush delay holds back.
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(service_->metrics().Snapshot().points, 0u);  // waiting for the flush
  const auto before = std::chrono::steady_clock::now();
  service_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, milliseconds(4000));  // not the flush delay
  EXPECT_EQ(service_->metrics().Snapshot().points, 300u);
  EXPECT_GE(PendingWindows(), 1u);
}

// Redis down: the store refuses, the connection is not read meanwhile, and the same points
// are written once Redis is back (best effort within the connection's life).
TEST_F(SyslogReceiverTest, PointsWaitForRedisInsteadOfBeingDropped) {
  ASSERT_TRUE(redis_->Stop().ok());
  tcp::socket socket = Connect();
  net::write(socket, net::buffer(Messages(50)));
  std::this_thread::sleep_for(milliseconds(1500));  // a few refused attempts
  EXPECT_EQ(service_->metrics().Snapshot().points, 0u);
  ASSERT_TRUE(redis_->Restart().ok());
  ASSERT_TRUE(Eventually([&] { return service_->metrics().Snapshot().points == 50; }, milliseconds(15000)))
      << service_->metrics().Snapshot().ToJson();
  EXPECT_EQ(service_->metrics().Snapshot().frames, 50u);  // counted once, not per attempt
  EXPECT_GE(PendingWindows(), 1u);
}

}  // namespace
}  // namespace drainmet::receiver
