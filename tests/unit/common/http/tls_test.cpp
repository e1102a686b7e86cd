// http::Server over TLS (issue 5, Security: optional TLS on the receiver's listener, the
// certificate reloaded on SIGHUP), with self-signed pairs made by the openssl CLI at test
// time, real sockets on 127.0.0.1 and an Asio SSL client.

#include "common/http/tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/http/server.h"
#include "common/telemetry/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/eventually.h"
#include "tests/support/raw_socket.h"

namespace drainmet::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A fresh temporary directory, removed with the object.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/drainmet-http-tls-XXXXXX";
    const char* dir = ::mkdtemp(pattern);
    if (dir != nullptr) path_ = dir;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Makes a self-signed RSA pair with subject CN=`cn` as `dir`/`name`.cert.pem and .key.pem
// (openssl CLI). False when openssl is missing or fails.
bool MakePair(const std::filesystem::path& dir, const std::string& name, const std::string& cn) {
  const std::string command = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=" + cn +
                              " -keyout " + (dir / (name + ".key.pem")).string() + " -out " +
                              (dir / (name + ".cert.pem")).string() + " >/dev/null 2>&1";
  return std::system(command.c_str()) == 0;
}

void CopyFile(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
}

void WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

// A blocking TLS/HTTP client for one connection; every step gives up after 5 s. The
// server's certificate is verified against `ca_file` (the self-signed certificates of the
// test), so a wrong pair fails the handshake.
class TlsClient {
 public:
  TlsClient(std::uint16_t port, const std::vector<std::string>& ca_files)
      : context_(ssl::context::tls_client) {
    for (const std::string& ca : ca_files) context_.load_verify_file(ca);
    context_.set_verify_mode(ssl::verify_peer);
    stream_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ioc_, context_);
    Lowest().expires_after(std::chrono::seconds(5));
    bool connected = false;
    Lowest().async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port),
                           [&](beast::error_code ec) {
                             error_ = ec;
                             connected = !ec;
                           });
    Run();
    if (!connected) return;
    Lowest().expires_after(std::chrono::seconds(5));
    stream_->async_handshake(ssl::stream_base::client, [&](beast::error_code ec) { error_ = ec; });
    Run();
    handshaken_ = !error_;
  }

  bool ok() const { return handshaken_; }
  std::string error() const { return error_.message(); }

  // The subject of the server's certificate, e.g. "/CN=first"; empty before a handshake.
  std::string PeerSubject() {
    if (!handshaken_) return "";
    X509* cert = SSL_get_peer_certificate(stream_->native_handle());
    if (cert == nullptr) return "";
    char buffer[256];
    X509_NAME_oneline(X509_get_subject_name(cert), buffer, sizeof buffer);
    X509_free(cert);
    return buffer;
  }

  // Sends one request on this connection and reads the answer; status 0 on a failure.
  bhttp::response<bhttp::string_body> Send(bhttp::verb method, const std::string& target,
                                           const std::string& body, bool keep_alive = true) {
    bhttp::request<bhttp::string_body> request(method, target, 11);
    request.set(bhttp::field::host, "localhost");
    request.keep_alive(keep_alive);
    request.body() = body;
    request.prepare_payload();
    bhttp::response<bhttp::string_body> response;
    response.result(0);
    Lowest().expires_after(std::chrono::seconds(5));
    bhttp::async_write(*stream_, request, [&](beast::error_code ec, std::size_t) { error_ = ec; });
    Run();
    if (error_) return response;
    Lowest().expires_after(std::chrono::seconds(5));
    bhttp::async_read(*stream_, buffer_, response, [&](beast::error_code ec, std::size_t) { error_ = ec; });
    Run();
    if (error_) response.result(0);
    return response;
  }

  // Sends raw bytes over TLS (a request the well-formed Send cannot make).
  bool SendRaw(const std::string& bytes) {
    Lowest().expires_after(std::chrono::seconds(5));
    net::async_write(*stream_, net::buffer(bytes), [&](beast::error_code ec, std::size_t) { error_ = ec; });
    Run();
    return !error_;
  }

  bhttp::response<bhttp::string_body> ReadResponse() {
    bhttp::response<bhttp::string_body> response;
    Lowest().expires_after(std::chrono::seconds(5));
    bhttp::async_read(*stream_, buffer_, response, [&](beast::error_code ec, std::size_t) { error_ = ec; });
    Run();
    if (error_) response.result(0);
    return response;
  }

  // True when the server closed the connection (EOF, truncation or reset) within 5 s.
  bool ClosedByServer() {
    char byte;
    bool closed = false;
    Lowest().expires_after(std::chrono::seconds(5));
    stream_->async_read_some(net::buffer(&byte, 1), [&](beast::error_code ec, std::size_t) {
      closed = ec && ec != beast::error::timeout;
    });
    Run();
    return closed;
  }

 private:
  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(*stream_); }
  void Run() {
    ioc_.restart();
    ioc_.run();
  }

  net::io_context ioc_;
  ssl::context context_;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> stream_;
  beast::flat_buffer buffer_;
  beast::error_code error_;
  bool handshaken_ = false;
};

using support::RawSocket;

Response Echo(const Request& request) {
  Response response;
  response.body = request.method + " " + std::string(request.Path()) + " body=" + request.body;
  return response;
}

// Fixture: pairs "first" (CN=first) and "second" (CN=second) in a temp dir; the server
// serves dir/cert.pem + dir/key.pem, which start as the first pair.
class TlsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v openssl >/dev/null 2>&1") != 0) GTEST_SKIP() << "no openssl CLI";
    ASSERT_FALSE(dir_.path().empty());
    ASSERT_TRUE(MakePair(dir_.path(), "first", "first"));
    ASSERT_TRUE(MakePair(dir_.path(), "second", "second"));
    CopyFile(File("first.cert.pem"), File("cert.pem"));
    CopyFile(File("first.key.pem"), File("key.pem"));
  }

  std::string File(const std::string& name) const { return (dir_.path() / name).string(); }

  ServerOptions TlsOptions() {
    ServerOptions options;
    options.tls_cert_file = File("cert.pem");
    options.tls_key_file = File("key.pem");
    options.metrics = &metrics_;
    return options;
  }

  std::unique_ptr<Server> StartTls(ServerOptions options, Handler handler = Echo) {
    auto server = Server::Start(options, std::move(handler));
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  // Trusts both test certificates: the subject tells which one the server used.
  std::vector<std::string> BothCas() const { return {File("first.cert.pem"), File("second.cert.pem")}; }

  bool MetricsHave(const std::string& line) const {
    return metrics_.RenderText().find(line) != std::string::npos;
  }

  TempDir dir_;
  telemetry::Metrics metrics_;
};

TEST_F(TlsServerTest, PostOverTlsIsAnsweredAndKeepAliveServesASecondRequest) {
  auto server = StartTls(TlsOptions());
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(server->tls());
  TlsClient client(server->port(), {File("first.cert.pem")});
  ASSERT_TRUE(client.ok()) << client.error();
  EXPECT_EQ(client.PeerSubject(), "/CN=first");

  const auto first = client.Send(bhttp::verb::post, "/logs", "12 hello world!");
  ASSERT_EQ(first.result_int(), 200u) << client.error();
  EXPECT_EQ(first.body(), "POST /logs body=12 hello world!");
  EXPECT_TRUE(first.keep_alive());
  const auto second = client.Send(bhttp::verb::get, "/healthz", "");  // same connection
  ASSERT_EQ(second.result_int(), 200u) << client.error();
  EXPECT_EQ(second.body(), "GET /healthz body=");
  EXPECT_EQ(server->tls_context()->handshake_failures(), 0u);
}

TEST_F(TlsServerTest, BodyOverLimitIs413OverTlsToo) {
  ServerOptions options = TlsOptions();
  options.max_body_bytes = 16;
  std::atomic<int> calls{0};
  auto server = StartTls(options, [&](const Request& r) {
    ++calls;
    return Echo(r);
  });
  ASSERT_NE(server, nullptr);
  TlsClient client(server->port(), {File("first.cert.pem")});
  ASSERT_TRUE(client.ok()) << client.error();
  const auto reply = client.Send(bhttp::verb::post, "/logs", std::string(17, 'x'));
  EXPECT_EQ(reply.result_int(), 413u) << client.error();
  EXPECT_EQ(calls.load(), 0);
  EXPECT_TRUE(client.ClosedByServer());  // error answers close the connection
}

TEST_F(TlsServerTest, AsyncHandlerAnswersOverTls) {
  std::mutex mu;
  std::vector<std::thread> answerers;
  auto server = Server::StartAsync(TlsOptions(), [&](const Request& request, Responder respond) {
    std::lock_guard<std::mutex> lock(mu);
    answerers.emplace_back([respond = std::move(respond), body = request.body]() {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      Response response;
      response.status = 202;
      response.body = "later:" + body;
      respond(std::move(response));
    });
  });
  ASSERT_TRUE(server.ok()) << server.status();
  {
    TlsClient client((*server)->port(), {File("first.cert.pem")});
    ASSERT_TRUE(client.ok()) << client.error();
    const auto reply = client.Send(bhttp::verb::post, "/logs", "abc");
    EXPECT_EQ(reply.result_int(), 202u) << client.error();
    EXPECT_EQ(reply.body(), "later:abc");
  }
  std::lock_guard<std::mutex> lock(mu);
  for (std::thread& t : answerers) t.join();
}

TEST_F(TlsServerTest, PlainHttpToTheTlsPortGetsNoAnswerAndTheServerGoesOn) {
  auto server = StartTls(TlsOptions());
  ASSERT_NE(server, nullptr);
  RawSocket plain(server->port());
  ASSERT_TRUE(plain.connected());
  ASSERT_TRUE(plain.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_THAT(plain.ReadUntilClose(), Not(HasSubstr("HTTP/1.1")));
  EXPECT_TRUE(plain.closed_by_peer());  // closed, not left hanging

  TlsClient client(server->port(), {File("first.cert.pem")});
  ASSERT_TRUE(client.ok()) << client.error();
  EXPECT_EQ(client.Send(bhttp::verb::get, "/healthz", "").result_int(), 200u);
  EXPECT_EQ(server->tls_context()->handshake_failures(), 1u);
  EXPECT_TRUE(MetricsHave("drainmet_tls_handshake_failures_total{listener=\"http\",reason=\"protocol\"} 1"))
      << metrics_.RenderText();
}

TEST_F(TlsServerTest, ClientThatNeverHandshakesIsClosedAfterTheReadTimeoutOthersServed) {
  ServerOptions options = TlsOptions();
  options.read_timeout_ms = 400;
  options.threads = 1;  // the silent client must not hold the only thread
  auto server = StartTls(options);
  ASSERT_NE(server, nullptr);
  const auto start = std::chrono::steady_clock::now();
  RawSocket silent(server->port());
  ASSERT_TRUE(silent.connected());

  // Meanwhile another client is served.
  TlsClient client(server->port(), {File("first.cert.pem")});
  ASSERT_TRUE(client.ok()) << client.error();
  EXPECT_EQ(client.Send(bhttp::verb::post, "/logs", "x").result_int(), 200u);

  const std::string got = silent.ReadUntilClose();
  EXPECT_TRUE(silent.closed_by_peer());
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, std::chrono::milliseconds(350));
  EXPECT_LT(elapsed, std::chrono::milliseconds(4000));
  EXPECT_TRUE(got.empty());
  // The timer closes the socket first; the handshake's handler (which counts) runs after.
  EXPECT_TRUE(support::Eventually(
      [&] {
        return MetricsHave("drainmet_tls_handshake_failures_total{listener=\"http\",reason=\"timeout\"} 1");
      },
      std::chrono::seconds(3)))
      << metrics_.RenderText();
}

TEST_F(TlsServerTest, ReloadServesTheNewPairToNewConnectionsOldOnesKeepWorking) {
  auto server = StartTls(TlsOptions());
  ASSERT_NE(server, nullptr);
  TlsClient old_connection(server->port(), BothCas());
  ASSERT_TRUE(old_connection.ok()) << old_connection.error();
  EXPECT_EQ(old_connection.PeerSubject(), "/CN=first");
  EXPECT_EQ(old_connection.Send(bhttp::verb::post, "/logs", "before").result_int(), 200u);

  // Rotate the files in place, as an operator (or cert-manager) does, then SIGHUP's call.
  CopyFile(File("second.cert.pem"), File("cert.pem"));
  CopyFile(File("second.key.pem"), File("key.pem"));
  ASSERT_TRUE(server->ReloadTls().ok());

  TlsClient new_connection(server->port(), BothCas());
  ASSERT_TRUE(new_connection.ok()) << new_connection.error();
  EXPECT_EQ(new_connection.PeerSubject(), "/CN=second");
  EXPECT_EQ(new_connection.Send(bhttp::verb::post, "/logs", "new").body(), "POST /logs body=new");

  const auto after = old_connection.Send(bhttp::verb::post, "/logs", "after");
  EXPECT_EQ(after.result_int(), 200u);
  EXPECT_EQ(after.body(), "POST /logs body=after");
  EXPECT_EQ(server->tls_context()->reloads_ok(), 1u);
  EXPECT_TRUE(MetricsHave("drainmet_tls_reloads_total{listener=\"http\",result=\"ok\"} 1"))
      << metrics_.RenderText();

  // A client that trusts only the first certificate cannot connect any more.
  TlsClient only_first(server->port(), {File("first.cert.pem")});
  EXPECT_FALSE(only_first.ok());
}

TEST_F(TlsServerTest, BadPairOnReloadKeepsTheOldOneAndCountsAnError) {
  auto server = StartTls(TlsOptions());
  ASSERT_NE(server, nullptr);

  struct Case {
    const char* name;
    std::string cert_from, key_from;  // files copied over cert.pem / key.pem ("" = garbage)
    const char* error;                // start of the error message
  };
  const Case cases[] = {
      {"garbage certificate", "", "first.key.pem", "tls_cert_file: "},
      {"key of another certificate", "second.cert.pem", "first.key.pem", "tls_key_file: "},
      {"garbage key", "first.cert.pem", "", "tls_key_file: "},
  };
  std::uint64_t errors = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    if (c.cert_from.empty()) {
      WriteFile(File("cert.pem"), "not a certificate\n");
    } else {
      CopyFile(File(c.cert_from), File("cert.pem"));
    }
    if (c.key_from.empty()) {
      WriteFile(File("key.pem"), "-----BEGIN PRIVATE KEY-----\nnot base64 !!\n-----END PRIVATE KEY-----\n");
    } else {
      CopyFile(File(c.key_from), File("key.pem"));
    }
    const absl::Status reloaded = server->ReloadTls();
    EXPECT_EQ(reloaded.code(), absl::StatusCode::kInvalidArgument) << reloaded;
    EXPECT_THAT(std::string(reloaded.message()), StartsWith(c.error));
    ++errors;
    TlsClient client(server->port(), BothCas());
    ASSERT_TRUE(client.ok()) << client.error();
    EXPECT_EQ(client.PeerSubject(), "/CN=first");  // the old pair is still served
    EXPECT_EQ(client.Send(bhttp::verb::get, "/healthz", "").result_int(), 200u);
  }
  // A file removed (rotation half done) is an error too, with the reason.
  std::filesystem::remove(File("key.pem"));
  const absl::Status missing = server->ReloadTls();
  EXPECT_THAT(std::string(missing.message()), HasSubstr("tls_key_file: cannot read"));
  ++errors;
  EXPECT_EQ(server->tls_context()->reloads_failed(), errors);
  EXPECT_EQ(server->tls_context()->reloads_ok(), 0u);
  EXPECT_TRUE(MetricsHave("drainmet_tls_reloads_total{listener=\"http\",result=\"error\"} 4"))
      << metrics_.RenderText();
}

TEST_F(TlsServerTest, StartRefusesHalfOrBadTlsOptions) {
  struct Case {
    const char* name;
    std::string cert, key;
    const char* error;
  };
  const Case cases[] = {
      {"certificate only", File("cert.pem"), "", "tls_key_file: required"},
      {"key only", "", File("key.pem"), "tls_cert_file: required"},
      {"missing certificate", File("none.pem"), File("key.pem"), "tls_cert_file: cannot read"},
      {"key does not match", File("second.cert.pem"), File("key.pem"), "tls_key_file: "},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ServerOptions options;
    options.tls_cert_file = c.cert;
    options.tls_key_file = c.key;
    auto server = Server::Start(options, Echo);
    ASSERT_FALSE(server.ok());
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(server.status().message()), StartsWith(c.error));
  }
}

TEST_F(TlsServerTest, StopClosesIdleTlsConnectionsAndFinishesRequestsInFlight) {
  std::atomic<bool> release{false};
  std::atomic<bool> entered{false};
  ServerOptions options = TlsOptions();
  options.threads = 2;  // one thread stays free while the handler blocks the other
  auto server = StartTls(options, [&](const Request& r) {
    if (r.Path() == "/slow") {
      entered = true;
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return Echo(r);
  });
  ASSERT_NE(server, nullptr);
  TlsClient idle(server->port(), {File("first.cert.pem")});
  ASSERT_TRUE(idle.ok()) << idle.error();
  EXPECT_EQ(idle.Send(bhttp::verb::get, "/a", "").result_int(), 200u);
  TlsClient busy(server->port(), {File("first.cert.pem")});
  ASSERT_TRUE(busy.ok()) << busy.error();
  std::thread request([&] {
    const auto reply = busy.Send(bhttp::verb::post, "/slow", "work");
    EXPECT_EQ(reply.result_int(), 200u);
    EXPECT_EQ(reply.body(), "POST /slow body=work");
    EXPECT_FALSE(reply.keep_alive());  // answered with Connection: close while stopping
  });
  while (!entered) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::thread stopper([&] { server->Stop(5000); });
  EXPECT_TRUE(idle.ClosedByServer());
  release = true;
  request.join();
  stopper.join();
}

TEST(TlsHelperTest, HandshakeFailureReasons) {
  EXPECT_EQ(HandshakeFailureReason(beast::error::timeout), "timeout");
  EXPECT_EQ(HandshakeFailureReason(net::error::eof), "closed");
  EXPECT_EQ(HandshakeFailureReason(net::error::connection_reset), "closed");
  EXPECT_EQ(HandshakeFailureReason(ssl::error::stream_truncated), "closed");
  EXPECT_EQ(HandshakeFailureReason(net::error::invalid_argument), "protocol");
}

}  // namespace
}  // namespace drainmet::http
