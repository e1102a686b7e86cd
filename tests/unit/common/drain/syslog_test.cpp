// Syslog drains (FORMATS.md §2, issue 7): the stream splitter (RFC 6587 octet counting and
// LF framing), and the listener over real TCP and TLS sockets on 127.0.0.1:0 with the
// memory store: tenant from the drain token in HOSTNAME, unknown tokens counted, bounded
// lines, graceful stop.

#include "common/drain/syslog.h"

#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "common/drain/handler.h"
#include "common/store/memory_store.h"
#include "gtest/gtest.h"
#include "tests/support/drain_text.h"
#include "tests/support/eventually.h"

namespace drainmet::drain {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using support::Framed;

constexpr std::int64_t kSec = 1'000'000'000;
constexpr std::int64_t kNow = 1709633760;  // 2024-03-05T10:16:00Z
constexpr char kToken[] = "d.01234567-89ab-cdef-0123-456789abcdef";
constexpr char kOtherToken[] = "d.fedcba98-7654-3210-fedc-ba9876543210";

// One message as Logplex writes it on a syslog drain: token in HOSTNAME, MSGID and SD
// both "-", LF at the end (FORMATS.md §2).
std::string Msg(std::string_view token, std::string_view line,
                std::string_view time = "2024-03-05T10:15:58.000000+00:00") {
  return "<190>1 " + std::string(time) + " " + std::string(token) + " app web.1 - - " + std::string(line) +
         "\n";
}

// ---- SyslogSplitter -------------------------------------------------------------------

// All messages of `stream` given in pieces of `piece` bytes (as reads would).
std::vector<std::string> SplitAll(std::string_view stream, std::size_t piece, std::size_t max,
                                  int* too_long = nullptr) {
  SyslogSplitter splitter(max);
  std::vector<std::string> out;
  std::string pending;
  std::size_t fed = 0;
  for (;;) {
    const bool eof = fed == stream.size();
    for (;;) {
      const SyslogSplitter::Result r = splitter.Next(pending, eof);
      if (r.kind == SyslogSplitter::Kind::kMessage) out.emplace_back(r.message);  // before the erase
      pending.erase(0, r.consumed);
      if (r.kind == SyslogSplitter::Kind::kNeedMore) break;
      if (r.kind == SyslogSplitter::Kind::kTooLong && too_long != nullptr) ++*too_long;
    }
    if (eof) break;
    const std::size_t n = std::min(piece, stream.size() - fed);
    pending.append(stream.substr(fed, n));
    fed += n;
  }
  return out;
}

TEST(SyslogSplitterTest, OctetCountedAndLineFramedInAnyPieces) {
  struct Case {
    const char* name;
    std::string stream;
    std::vector<std::string> messages;
  };
  const std::vector<Case> cases = {
      {"OctetCounted", Framed("<1>1 a\n") + Framed("<1>1 b\n"), {"<1>1 a\n", "<1>1 b\n"}},
      {"OctetCountedNoLf", Framed("<1>1 a") + Framed("<1>1 b"), {"<1>1 a", "<1>1 b"}},
      {"OctetCountKeepsEmbeddedLf", Framed("<1>1 a\nb\n"), {"<1>1 a\nb\n"}},
      {"LeadingBlanksSkipped", "\r\n  " + Framed("<1>1 a"), {"<1>1 a"}},
      // RFC 6587 §3.4.2: a message that does not start with digits ends at LF.
      {"LineFraming", "<1>1 a\n<1>1 b\r\n", {"<1>1 a", "<1>1 b"}},
      {"LineAtEndOfStreamWithoutLf", "<1>1 a\n<1>1 b", {"<1>1 a", "<1>1 b"}},
      {"MixedFraming", "<1>1 a\n" + Framed("<1>1 b\n") + "<1>1 c\n", {"<1>1 a", "<1>1 b\n", "<1>1 c"}},
      {"DigitsWithoutSpaceAreALine", "123abc\n", {"123abc"}},
      {"SevenDigitsAreALine", "1234567 x\n", {"1234567 x"}},
      {"ZeroLengthIsAnEmptyMessage", "0 " + Framed("<1>1 a"), {"", "<1>1 a"}},
      {"IncompleteFrameAtEndIsNotAMessage", Framed("<1>1 a") + "40 <1>1 cut", {"<1>1 a"}},
  };
  for (const Case& c : cases) {
    for (std::size_t piece : {std::size_t{1}, std::size_t{3}, std::size_t{1000}}) {
      SCOPED_TRACE(std::string(c.name) + " piece=" + std::to_string(piece));
      EXPECT_EQ(SplitAll(c.stream, piece, 1000), c.messages);
    }
  }
}

TEST(SyslogSplitterTest, OverLongMessagesAreSkippedWhole) {
  const std::string long_line(50, 'x');
  const std::string stream = Framed("<1>1 a") + Framed(long_line) + Framed("<1>1 b") + long_line + "\n" +
                             "<1>1 c\n" + long_line + long_line + "\n" + Framed("<1>1 d");
  for (std::size_t piece : {std::size_t{1}, std::size_t{7}, std::size_t{1000}}) {
    SCOPED_TRACE(piece);
    int too_long = 0;
    EXPECT_EQ(SplitAll(stream, piece, 20, &too_long),
              (std::vector<std::string>{"<1>1 a", "<1>1 b", "<1>1 c", "<1>1 d"}));
    EXPECT_EQ(too_long, 3);
  }
}

// ---- SyslogListener over sockets ------------------------------------------------------

bool WaitFor(const std::function<bool()>& done,
             std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  return support::Eventually(done, timeout, std::chrono::milliseconds(5));
}

config::Config SyslogConfig() {
  config::Config c;
  c.listen = "127.0.0.1:0";
  for (const char* id : {"acme", "globex"}) {
    config::Tenant t;
    t.id = id;
    t.token_hashes.push_back(config::HashToken(std::string("token-") + id));
    t.output = config::OutputKind::kStdout;
    c.tenants.push_back(t);
  }
  c.syslog.listen = "127.0.0.1:0";
  c.syslog.max_line_bytes = 1024;
  c.syslog.drains.push_back({kToken, "acme", 10, "eu", ""});
  c.syslog.drains.push_back({kOtherToken, "globex", 0, "", "sp"});
  return c;
}

class SyslogListenerTest : public ::testing::Test {
 protected:
  void Start(config::Config c = SyslogConfig()) {
    holder_ = std::make_shared<DirectoryHolder>(std::make_shared<const TenantDirectory>(std::move(c)));
    auto listener = SyslogListener::Start(holder_, store_, clock_, metrics_, 2);
    ASSERT_TRUE(listener.ok()) << listener.status();
    listener_ = *std::move(listener);
  }

  tcp::socket Connect(std::uint16_t port) {
    tcp::socket socket(io_);
    socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    return socket;
  }

  // The closed buckets, keyed "tenant/name/source/resolution" -> sum.
  std::map<std::string, double> Sums() {
    std::map<std::string, double> sums;
    absl::StatusOr<std::vector<bucket::ClosedBucket>> closed = store_.TakeClosed(true);
    if (!closed.ok()) return sums;
    for (const auto& b : *closed) {
      sums[b.key.tenant + "/" + b.key.name + "/" + b.key.source + "/" +
           std::to_string(b.key.resolution_seconds)] += b.bucket.sum;
    }
    return sums;
  }

  std::string MetricsText() { return metrics_.RenderText(); }

  net::io_context io_;
  base::FakeClock clock_{kNow * kSec};
  store::MemoryStore store_{clock_, {}};
  telemetry::Metrics metrics_;
  std::shared_ptr<DirectoryHolder> holder_;
  std::unique_ptr<SyslogListener> listener_;
};

TEST_F(SyslogListenerTest, OffWhenNotConfigured) {
  config::Config c = SyslogConfig();
  c.syslog.listen.clear();
  Start(c);
  EXPECT_EQ(listener_->tcp_port(), 0);
  EXPECT_EQ(listener_->tls_port(), 0);
}

// FORMATS.md §2: tenant and drain options (resolution, prefix, source-prefix) from the
// token in HOSTNAME; octet counting and LF framing on one connection.
TEST_F(SyslogListenerTest, TokenSelectsTenantAndDrainOptions) {
  Start();
  tcp::socket socket = Connect(listener_->tcp_port());
  const std::string stream = Framed(Msg(kToken, "count#orders=2")) +
                             Framed(Msg(kOtherToken, "count#orders=5")) +
                             Msg(kToken, "source=web count#orders=3");  // LF-framed
  net::write(socket, net::buffer(stream));
  ASSERT_TRUE(WaitFor([&] { return metrics_.Snapshot().points == 3; })) << metrics_.Snapshot().ToJson();
  EXPECT_EQ(Sums(),
            (std::map<std::string, double>{
                {"acme/eu.orders//10", 2}, {"acme/eu.orders/web/10", 3}, {"globex/orders/sp/60", 5}}));
  EXPECT_EQ(metrics_.Snapshot().frames, 3u);
}

// Unknown drain tokens: counted, their lines dropped, the connection stays open.
TEST_F(SyslogListenerTest, UnknownTokenIsCountedAndConnectionStaysOpen) {
  Start();
  tcp::socket socket = Connect(listener_->tcp_port());
  net::write(socket, net::buffer(Framed(Msg("d.unknown", "count#orders=7"))));
  ASSERT_TRUE(WaitFor([&] {
    return MetricsText().find("drainmet_input_rejected_total{reason=\"unknown_drain_token\"} 1") !=
           std::string::npos;
  }));
  net::write(socket, net::buffer(Framed(Msg(kToken, "count#orders=1"))));
  ASSERT_TRUE(WaitFor([&] { return metrics_.Snapshot().points == 1; }));
  EXPECT_EQ(Sums(), (std::map<std::string, double>{{"acme/eu.orders//10", 1}}));
}

// Bounded lines (syslog.max_line_bytes): skipped and counted; the stream goes on.
TEST_F(SyslogListenerTest, OverLongMessageIsSkippedAndCounted) {
  Start();
  tcp::socket socket = Connect(listener_->tcp_port());
  const std::string big = Msg(kToken, "count#big=1 pad=" + std::string(2000, 'x'));
  net::write(socket, net::buffer(Framed(big) + big + Framed(Msg(kToken, "count#orders=4"))));
  ASSERT_TRUE(WaitFor([&] { return metrics_.Snapshot().points == 1; }));
  EXPECT_NE(MetricsText().find("drainmet_input_rejected_total{reason=\"line_too_long\"} 2"),
            std::string::npos);
  EXPECT_EQ(Sums(), (std::map<std::string, double>{{"acme/eu.orders//10", 4}}));
}

// Malformed headers are bad frames (SEMANTICS §1.5), not a reason to drop the connection.
TEST_F(SyslogListenerTest, MalformedMessagesAreBadFrames) {
  Start();
  tcp::socket socket = Connect(listener_->tcp_port());
  net::write(socket,
             net::buffer("not syslog at all\n" + Framed("<1>x") + Framed(Msg(kToken, "count#orders=1"))));
  ASSERT_TRUE(WaitFor([&] { return metrics_.Snapshot().points == 1; }));
  const telemetry::Counters c = metrics_.Snapshot();
  EXPECT_EQ(c.frames, 3u);
  EXPECT_EQ(c.bad_frame, 2u);
}

// A drain map change (config service) applies to the next read.
TEST_F(SyslogListenerTest, DirectorySetChangesTheDrainMap) {
  Start();
  tcp::socket socket = Connect(listener_->tcp_port());
  config::Config next = SyslogConfig();
  next.syslog.drains[0].prefix = "us";
  holder_->Set(std::make_shared<const TenantDirectory>(next));
  net::write(socket, net::buffer(Framed(Msg(kToken, "count#orders=1"))));
  ASSERT_TRUE(WaitFor([&] { return metrics_.Snapshot().points == 1; }));
  EXPECT_EQ(Sums(), (std::map<std::string, double>{{"acme/us.orders//10", 1}}));
}

// A store that refuses stops the reads and is retried with the same bytes.
class FlakyStore : public store::Store {
 public:
  explicit FlakyStore(const base::Clock& clock) : inner_(clock, {}) {}
  std::atomic<int> refusals{2};
  absl::StatusOr<store::IngestResult> Ingest(std::string_view tenant, std::string_view frame_id,
                                             bucket::BucketMap& partials) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      frame_ids_[std::string(tenant)].insert(std::string(frame_id));
    }
    if (refusals.fetch_sub(1) > 0) return absl::UnavailableError("busy");
    return inner_.Ingest(tenant, frame_id, partials);
  }
  absl::StatusOr<bool> SeenFrame(std::string_view tenant, std::string_view frame_id) override {
    return inner_.SeenFrame(tenant, frame_id);
  }
  absl::StatusOr<std::vector<bucket::ClosedBucket>> TakeClosed(bool all) override {
    return inner_.TakeClosed(all);
  }
  std::size_t OpenBuckets() const override { return inner_.OpenBuckets(); }

  /// Per tenant, the distinct frame ids its ingests (refused or not) carried.
  std::map<std::string, std::set<std::string>> frame_ids() const {
    std::lock_guard<std::mutex> lock(mu_);
    return frame_ids_;
  }

 private:
  store::MemoryStore inner_;
  mutable std::mutex mu_;
  std::map<std::string, std::set<std::string>> frame_ids_;
};

TEST(SyslogListenerRetryTest, RefusedPointsAreRetriedNotLost) {
  base::FakeClock clock{kNow * kSec};
  FlakyStore store{clock};
  telemetry::Metrics metrics;
  auto holder = std::make_shared<DirectoryHolder>(std::make_shared<const TenantDirectory>(SyslogConfig()));
  auto listener = SyslogListener::Start(holder, store, clock, metrics, 1);
  ASSERT_TRUE(listener.ok()) << listener.status();
  net::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), (*listener)->tcp_port()));
  net::write(socket,
             net::buffer(Framed(Msg(kToken, "count#orders=2")) + Framed(Msg(kOtherToken, "count#x=1"))));
  ASSERT_TRUE(WaitFor([&] { return metrics.Snapshot().points == 2; })) << metrics.Snapshot().ToJson();
  EXPECT_LE(store.refusals.load(), 0);
  EXPECT_EQ(metrics.Snapshot().frames, 2u);  // counted once, not per attempt
  // A retry carries its batch's frame id (a write that applied some shards before failing
  // is then not applied twice); batches of different tenants have their own.
  const std::map<std::string, std::set<std::string>> ids = store.frame_ids();
  ASSERT_EQ(ids.size(), 2u);
  std::set<std::string> all;
  for (const auto& [tenant, tenant_ids] : ids) {
    ASSERT_EQ(tenant_ids.size(), 1u) << tenant;
    EXPECT_TRUE(tenant_ids.begin()->starts_with("syslog-")) << *tenant_ids.begin();
    all.insert(*tenant_ids.begin());
  }
  EXPECT_EQ(all.size(), 2u);
  double sum = 0;
  absl::StatusOr<std::vector<bucket::ClosedBucket>> closed = store.TakeClosed(true);
  ASSERT_TRUE(closed.ok());
  for (const auto& b : *closed) sum += b.bucket.sum;
  EXPECT_EQ(sum, 3);
}

// Graceful stop loses nothing already read: every complete message written before Stop is
// in the store when Stop returns; a message cut in the middle is a bad frame.
TEST_F(SyslogListenerTest, StopStoresEverythingAlreadyRead) {
  Start();
  tcp::socket socket = Connect(listener_->tcp_port());
  std::string stream;
  for (int i = 0; i < 2000; ++i) stream += Framed(Msg(kToken, "count#orders=1"));
  net::write(socket, net::buffer(stream + "300 <190>1 cut"));
  // Everything was read once the listener's socket holds no more bytes: wait for the
  // frames of the complete messages up to the last read, then stop.
  ASSERT_TRUE(WaitFor([&] { return metrics_.Snapshot().frames >= 1900; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the last read of the cut tail
  listener_->Stop();
  const telemetry::Counters c = metrics_.Snapshot();
  EXPECT_EQ(c.points, 2000u) << c.ToJson();
  EXPECT_EQ(c.bad_frame, 1u);
  EXPECT_EQ(Sums(), (std::map<std::string, double>{{"acme/eu.orders//10", 2000}}));
}

TEST_F(SyslogListenerTest, ConnectionsOverTheLimitAreRefused) {
  config::Config c = SyslogConfig();
  c.syslog.max_connections = 1;
  Start(c);
  tcp::socket first = Connect(listener_->tcp_port());
  net::write(first, net::buffer(Framed(Msg(kToken, "count#orders=1"))));
  ASSERT_TRUE(WaitFor([&] { return metrics_.Snapshot().points == 1; }));
  tcp::socket second = Connect(listener_->tcp_port());
  char byte;
  boost::system::error_code ec;
  second.read_some(net::buffer(&byte, 1), ec);  // closed by the listener
  EXPECT_TRUE(ec);
  EXPECT_NE(MetricsText().find("drainmet_syslog_connections_total{result=\"refused\",transport=\"tcp\"} 1"),
            std::string::npos)
      << MetricsText();
}

// ---- TLS (syslog+tls://) ---------------------------------------------------------------

// A self-signed certificate and key made with the openssl CLI in a fresh directory;
// empty when openssl is not installed.
std::filesystem::path SelfSignedPair() {
  if (std::system("command -v openssl >/dev/null 2>&1") != 0) return {};
  char pattern[] = "/tmp/drainmet-syslog-tls-XXXXXX";
  const char* dir = mkdtemp(pattern);
  if (dir == nullptr) return {};
  const std::string command =
      std::string("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost ") + "-keyout " +
      dir + "/key.pem -out " + dir + "/cert.pem >/dev/null 2>&1";
  if (std::system(command.c_str()) != 0) return {};
  return dir;
}

TEST_F(SyslogListenerTest, TlsWithSelfSignedPair) {
  const std::filesystem::path dir = SelfSignedPair();
  if (dir.empty()) GTEST_SKIP() << "no openssl CLI to make a certificate";
  config::Config c = SyslogConfig();
  c.syslog.listen.clear();
  c.syslog.tls_listen = "127.0.0.1:0";
  c.syslog.tls_cert_file = (dir / "cert.pem").string();
  c.syslog.tls_key_file = (dir / "key.pem").string();
  Start(c);
  ASSERT_NE(listener_->tls_port(), 0);
  EXPECT_EQ(listener_->tcp_port(), 0);

  net::ssl::context client(net::ssl::context::tls_client);
  client.load_verify_file((dir / "cert.pem").string());
  client.set_verify_mode(net::ssl::verify_peer);
  net::ssl::stream<tcp::socket> stream(io_, client);
  stream.next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), listener_->tls_port()));
  stream.handshake(net::ssl::stream_base::client);
  net::write(stream, net::buffer(Framed(Msg(kToken, "count#orders=6")) + Msg(kOtherToken, "count#orders=1")));
  ASSERT_TRUE(WaitFor([&] { return metrics_.Snapshot().points == 2; })) << metrics_.Snapshot().ToJson();
  EXPECT_EQ(Sums(), (std::map<std::string, double>{{"acme/eu.orders//10", 6}, {"globex/orders/sp/60", 1}}));
  EXPECT_NE(MetricsText().find("drainmet_syslog_connections_total{result=\"accepted\",transport=\"tls\"} 1"),
            std::string::npos);

  // A plain-text client on the TLS port: refused at the handshake, nothing stored.
  tcp::socket plain = Connect(listener_->tls_port());
  net::write(plain, net::buffer(Framed(Msg(kToken, "count#orders=100"))));
  char byte;
  boost::system::error_code ec;
  plain.read_some(net::buffer(&byte, 1), ec);
  EXPECT_TRUE(ec);
  EXPECT_EQ(metrics_.Snapshot().points, 2u);
  std::filesystem::remove_all(dir);
}

TEST(SyslogListenerStartTest, BadCertificateIsInvalidArgument) {
  base::FakeClock clock{kNow * kSec};
  store::MemoryStore store{clock, {}};
  telemetry::Metrics metrics;
  config::Config c = SyslogConfig();
  c.syslog.tls_listen = "127.0.0.1:0";
  c.syslog.tls_cert_file = "/nonexistent/cert.pem";
  c.syslog.tls_key_file = "/nonexistent/key.pem";
  auto holder = std::make_shared<DirectoryHolder>(std::make_shared<const TenantDirectory>(c));
  auto listener = SyslogListener::Start(holder, store, clock, metrics, 1);
  ASSERT_FALSE(listener.ok());
  EXPECT_EQ(listener.status().code(), absl::StatusCode::kInvalidArgument) << listener.status();
}

}  // namespace
}  // namespace drainmet::drain
