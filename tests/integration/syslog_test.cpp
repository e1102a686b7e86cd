// Syslog drains through the whole standalone service (issue 7): the shared data sets of
// tests/fixtures/data, rewritten as a Logplex syslog drain writes them (FORMATS.md §2:
// drain token in HOSTNAME, SD "-", LF at the end, RFC 6587 octet counting, some messages
// LF-framed) and sent over one TCP connection, give exactly the gauges of the HTTPS drain
// (expected.jsonl, SEMANTICS §7) and the same counters (expected-stats.json, §8). Also:
// `Service::Stop` stores and posts every complete message already read.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/base/clock.h"
#include "common/config/auth.h"
#include "common/extract/extract.h"
#include "common/logplex/frame_reader.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/standalone/service.h"
#include "tests/golden/gauge_compare.h"
#include "tests/support/drain_text.h"
#include "tests/support/fake_librato.h"

namespace drainmet::standalone {
namespace {

namespace fs = std::filesystem;
namespace net = boost::asio;
using nlohmann::json;
using tcp = net::ip::tcp;

constexpr char kDrainToken[] = "d.0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const fs::path kData = fs::path(DRAINMET_FIXTURES_DIR) / "data";

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// One HTTPS-drain frame (`<PRI>1 TS host APP PROCID MSGID MSG`, FORMATS.md §1.3) as a
/// syslog drain sends it (`<PRI>1 TS TOKEN APP PROCID MSGID - MSG\n`, FORMATS.md §2).
std::string AsSyslogMessage(std::string_view frame) {
  std::size_t pos = 0;
  std::size_t fields[6];  // end of each of the six header fields
  for (std::size_t& end : fields) {
    end = frame.find(' ', pos);
    if (end == std::string_view::npos) return std::string(frame);  // malformed: as is
    pos = end + 1;
  }
  std::string out;
  out.append(frame.substr(0, fields[1] + 1));  // <PRI>1 TS
  out.append(kDrainToken);
  out.append(frame.substr(fields[2], fields[5] - fields[2]));  // " APP PROCID MSGID"
  out.append(" - ");
  out.append(frame.substr(fields[5] + 1));
  if (out.back() != '\n') out.push_back('\n');  // Logplex adds the LF (FORMATS.md §2)
  return out;
}

/// The whole data set as one syslog stream: octet counting, and LF framing for every
/// seventh message that has no LF but its last (RFC 6587 §3.4.2 fallback).
std::string SyslogStream(const fs::path& set, std::size_t* frames) {
  std::vector<fs::path> bodies;
  for (const auto& entry : fs::directory_iterator(set)) {
    if (entry.path().extension() == ".logplex") bodies.push_back(entry.path());
  }
  std::sort(bodies.begin(), bodies.end());
  std::string stream;
  std::size_t n = 0;
  for (const fs::path& path : bodies) {
    const std::string body = ReadAll(path);
    logplex::FrameReader reader(body);
    std::string_view frame;
    while (reader.Next(&frame) == logplex::FrameStatus::kFrame) {
      const std::string message = AsSyslogMessage(frame);
      const bool one_line = message.find('\n') == message.size() - 1;
      stream += (++n % 7 == 0 && one_line) ? message : support::Framed(message);
    }
  }
  *frames = n;
  return stream;
}

/// The standalone service on a FakeClock with syslog on 127.0.0.1:0, posting to a fake
/// Librato; the drain's options from the set's drain.json query.
class SyslogServiceTest : public ::testing::Test {
 protected:
  void Start(const json& drain, std::int64_t clock_nanos) {
    clock_.SetUnixNanos(clock_nanos);
    auto fake = support::FakeLibrato::Start();
    ASSERT_TRUE(fake.ok()) << fake.status();
    fake_ = *std::move(fake);
    config::Config c;
    c.listen = "127.0.0.1:0";
    c.threads = 2;
    c.outlet.interval_ms = 20;
    // The whole set is sent at once with the clock at its start: nothing may be future
    // (SEMANTICS §6.5); windows close only when the test moves the clock.
    c.limits.future_tolerance_seconds = 3 * 3600;
    config::Tenant t;
    t.id = drain.at("tenant").get<std::string>();
    t.token_hashes.push_back(config::HashToken("http-token"));
    t.output = config::OutputKind::kLibrato;
    t.librato.url = fake_->Url();
    t.librato.email = "ops@example.com";
    t.librato.api_token = "api-token";
    c.tenants.push_back(t);
    absl::StatusOr<extract::DrainOptions> options =
        extract::ParseDrainQuery(drain.at("query").get<std::string>(), t.default_resolution_seconds);
    ASSERT_TRUE(options.ok()) << options.status();
    c.syslog.listen = "127.0.0.1:0";
    c.syslog.drains.push_back(
        {kDrainToken, t.id, options->resolution_seconds, options->prefix, options->source_prefix});
    ServiceOptions service_options;
    service_options.shutdown_timeout_ms = 5000;
    auto service = Service::Start(std::move(c), clock_, service_options);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);
    ASSERT_NE(service_->syslog_port(), 0);
  }

  void Send(const std::string& stream) {
    net::io_context io;
    tcp::socket socket(io);
    socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), service_->syslog_port()));
    net::write(socket, net::buffer(stream));
    socket.shutdown(tcp::socket::shutdown_send);
    // The listener closes its side once it has stored everything (end of stream).
    char byte;
    boost::system::error_code ec;
    socket.read_some(net::buffer(&byte, 1), ec);
  }

  base::FakeClock clock_{0};
  std::unique_ptr<support::FakeLibrato> fake_;
  std::unique_ptr<Service> service_;
};

class DataSetOverSyslogTest : public SyslogServiceTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(DataSetOverSyslogTest, SameGaugesAndCountersAsHttps) {
  const fs::path set = kData / GetParam();
  const json drain = json::parse(ReadAll(set / "drain.json"));
  const json stats = json::parse(ReadAll(set / "expected-stats.json"));
  std::vector<json> want;
  {
    std::ifstream in(set / "expected.jsonl");
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) want.push_back(json::parse(line));
    }
  }
  const std::optional<std::int64_t> start = logplex::ParseRfc3339Nanos(drain.at("start").get<std::string>());
  ASSERT_TRUE(start.has_value());
  Start(drain, *start);
  std::size_t frames = 0;
  const std::string stream = SyslogStream(set, &frames);
  ASSERT_EQ(frames, stats.at("frames").get<std::size_t>());
  Send(stream);

  const telemetry::Counters c = service_->metrics().Snapshot();
  EXPECT_EQ(c.frames, stats.at("frames").get<std::uint64_t>());
  EXPECT_EQ(c.bad_frame, stats.at("bad_frame").get<std::uint64_t>());
  EXPECT_EQ(c.bad_timestamp, stats.at("bad_timestamp").get<std::uint64_t>());
  EXPECT_EQ(c.bad_value, stats.at("bad_value").get<std::uint64_t>());
  EXPECT_EQ(c.bad_name, stats.at("bad_name").get<std::uint64_t>());
  EXPECT_EQ(c.points, stats.at("points").get<std::uint64_t>());
  EXPECT_EQ(c.late + c.future, 0u);

  clock_.AdvanceNanos(2 * 3600 * base::kNanosPerSecond);  // past every window's close
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (fake_->Gauges().size() < want.size() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  service_->Stop();
  const std::vector<std::string> diffs = testing::DiffGauges(want, fake_->Gauges());
  EXPECT_TRUE(diffs.empty()) << diffs.size() << " differences, first: " << diffs.front();
}

INSTANTIATE_TEST_SUITE_P(Sets, DataSetOverSyslogTest, ::testing::Values("heroku-sample", "legacy-runtime"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// Graceful shutdown (issue 7): messages the listener has read are stored and posted by
// Service::Stop, though the sender never closed its connection.
TEST_F(SyslogServiceTest, StopPostsWhatWasAlreadyRead) {
  const json drain = {{"tenant", "acme"}, {"query", ""}};
  const std::int64_t now = *logplex::ParseRfc3339Nanos("2024-03-05T10:15:30Z");
  Start(drain, now);
  net::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), service_->syslog_port()));
  std::string stream;
  for (int i = 0; i < 500; ++i) {
    stream += support::Framed(std::string("<190>1 2024-03-05T10:15:20+00:00 ") + kDrainToken +
                              " app web.1 - - count#orders=1\n");
  }
  net::write(socket, net::buffer(stream));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (service_->metrics().Snapshot().frames < 500 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  service_->Stop();  // the connection is still open
  const std::vector<json> gauges = fake_->Gauges();
  ASSERT_EQ(gauges.size(), 1u);
  EXPECT_EQ(gauges[0].at("name"), "orders");
  EXPECT_EQ(gauges[0].at("value").get<double>(), 500);
}

}  // namespace
}  // namespace drainmet::standalone
