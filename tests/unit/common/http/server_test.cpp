#include "common/http/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/http_client.h"
#include "tests/support/raw_socket.h"

namespace drainmet::http {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

using support::RawSocket;

Response Echo(const Request& request) {
  Response response;
  response.body = request.method + " " + std::string(request.Path()) + " q=" + std::string(request.Query()) +
                  " body=" + request.body;
  response.headers.emplace_back("X-Remote", request.remote_address);
  return response;
}

std::unique_ptr<Server> StartServer(ServerOptions options, Handler handler, HeaderCheck check = nullptr) {
  auto server = Server::Start(options, std::move(handler), std::move(check));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

TEST(ServerTest, GetRoundTrip) {
  auto server = StartServer({}, Echo);
  ASSERT_NE(server, nullptr);
  ASSERT_NE(server->port(), 0);

  const support::HttpReply reply = support::HttpGet(server->port(), "/healthz?verbose=1");
  ASSERT_EQ(reply.status, 200u) << reply.error;
  EXPECT_EQ(reply.body, "GET /healthz q=verbose=1 body=");
  EXPECT_EQ(reply.Header("content-type"), "text/plain; charset=utf-8");
  EXPECT_EQ(reply.Header("Content-Length"), std::to_string(reply.body.size()));
  EXPECT_THAT(std::string(reply.Header("X-Remote").value_or("")), StartsWith("127.0.0.1:"));
}

TEST(ServerTest, PostRoundTripWithStatusContentTypeAndExtraHeaders) {
  auto server = StartServer({}, [](const Request& request) {
    Response response;
    response.status = 202;
    response.content_type = "application/json";
    response.body = "{\"got\":" + std::to_string(request.body.size()) + "}";
    response.headers.emplace_back("Retry-After", "7");
    response.headers.emplace_back("Content-Length", "999");  // the server's own: dropped
    return response;
  });
  ASSERT_NE(server, nullptr);

  const support::HttpReply reply = support::HttpPost(
      server->port(), "/logs", {{"Content-Type", "application/logplex-1"}}, "12 hello world!");
  ASSERT_EQ(reply.status, 202u) << reply.error;
  EXPECT_EQ(reply.body, "{\"got\":15}");
  EXPECT_EQ(reply.Header("Content-Type"), "application/json");
  EXPECT_EQ(reply.Header("Retry-After"), "7");
  EXPECT_EQ(reply.Header("Content-Length"), "10");
}

TEST(ServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  std::atomic<int> calls{0};
  auto server = StartServer({}, [&](const Request& request) {
    ++calls;
    return Echo(request);
  });
  ASSERT_NE(server, nullptr);
  auto connection = support::HttpConnection::Open(server->port());
  ASSERT_TRUE(connection.ok()) << connection.status();

  const support::HttpReply first = (*connection)->Send("POST", "/a", {}, "one");
  const support::HttpReply second = (*connection)->Send("GET", "/b", {}, "");
  ASSERT_EQ(first.status, 200u) << first.error;
  ASSERT_EQ(second.status, 200u) << second.error;
  EXPECT_EQ(first.body, "POST /a q= body=one");
  EXPECT_EQ(second.body, "GET /b q= body=");
  EXPECT_EQ(first.Header("X-Remote"), (*connection)->LocalAddress());
  EXPECT_EQ(second.Header("X-Remote"), (*connection)->LocalAddress());
  EXPECT_EQ(first.Header("Connection"), std::nullopt);  // HTTP/1.1: keep-alive by default
  EXPECT_EQ(calls.load(), 2);
}

TEST(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  auto server = StartServer({}, Echo);
  ASSERT_NE(server, nullptr);
  RawSocket socket(server->port());
  ASSERT_TRUE(socket.connected());
  ASSERT_TRUE(
      socket.Send("POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nA"
                  "GET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  const std::string answers = socket.ReadUntilClose();
  const std::size_t one = answers.find("POST /one q= body=A");
  const std::size_t two = answers.find("GET /two q= body=");
  ASSERT_NE(one, std::string::npos) << answers;
  ASSERT_NE(two, std::string::npos) << answers;
  EXPECT_LT(one, two);
}

// Bodies longer than the buffer a body is read with (64 KiB, then given back), each
// followed in the same write by the next request: every body arrives whole, and the bytes
// of the next request read with it are kept.
TEST(ServerTest, BodiesLongerThanTheReadBufferArriveWholeAndPipelinedBytesAreKept) {
  const auto pattern = [](std::size_t size) {
    std::string bytes(size, '\0');
    for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>('a' + (i * 7 + i / 26) % 26);
    return bytes;
  };
  const std::string big = pattern(200000);
  const std::string odd = pattern(65537);
  auto server = StartServer({}, [&](const Request& request) {
    const std::string& expected = request.Path() == "/big"   ? big
                                  : request.Path() == "/odd" ? odd
                                                             : std::string();
    Response response;
    response.body = std::string(request.Path()) + " " + std::to_string(request.body.size()) +
                    (request.body == expected ? " same" : " differs");
    return response;
  });
  ASSERT_NE(server, nullptr);
  RawSocket socket(server->port());
  ASSERT_TRUE(socket.connected());
  ASSERT_TRUE(socket.Send("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + big +
                          "POST /odd HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n" + odd +
                          "GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  const std::string answers = socket.ReadUntilClose();
  const std::size_t first = answers.find("/big 200000 same");
  const std::size_t second = answers.find("/odd 65537 same");
  const std::size_t third = answers.find("/small 0 same");
  ASSERT_NE(first, std::string::npos) << answers;
  ASSERT_NE(second, std::string::npos) << answers;
  ASSERT_NE(third, std::string::npos) << answers;
  EXPECT_LT(first, second);
  EXPECT_LT(second, third);
}

TEST(ServerTest, ChunkedBodyIsDechunked) {
  auto server = StartServer({}, Echo);
  ASSERT_NE(server, nullptr);
  RawSocket socket(server->port());
  ASSERT_TRUE(socket.connected());
  ASSERT_TRUE(
      socket.Send("POST /logs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                  "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
  EXPECT_THAT(socket.ReadUntilClose(), HasSubstr("POST /logs q= body=hello world"));
}

TEST(ServerTest, ContentLengthOverLimitIs413AndHandlerNotCalled) {
  std::atomic<int> calls{0};
  ServerOptions options;
  options.max_body_bytes = 1024;
  auto server = StartServer(options, [&](const Request& request) {
    ++calls;
    return Echo(request);
  });
  ASSERT_NE(server, nullptr);

  // A client that sends the whole body still reads the answer (the server drains it).
  const support::HttpReply reply = support::HttpPost(server->port(), "/logs", {}, std::string(4 << 20, 'x'));
  EXPECT_EQ(reply.status, 413u) << reply.error;
  EXPECT_EQ(reply.Header("Connection"), "close");

  // Announced only: answered at once, without waiting for the body.
  RawSocket socket(server->port());
  ASSERT_TRUE(socket.connected());
  ASSERT_TRUE(socket.Send("POST /logs HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"));
  EXPECT_THAT(socket.ReadUntilClose(), StartsWith("HTTP/1.1 413"));
  EXPECT_TRUE(socket.closed_by_peer());

  // At the limit is fine.
  EXPECT_EQ(support::HttpPost(server->port(), "/logs", {}, std::string(1024, 'x')).status, 200u);
  EXPECT_EQ(calls.load(), 1);
}

TEST(ServerTest, ChunkedBodyOverLimitIs413) {
  std::atomic<int> calls{0};
  ServerOptions options;
  options.max_body_bytes = 16;
  auto server = StartServer(options, [&](const Request& request) {
    ++calls;
    return Echo(request);
  });
  ASSERT_NE(server, nullptr);
  RawSocket socket(server->port());
  ASSERT_TRUE(socket.connected());
  ASSERT_TRUE(
      socket.Send("POST /logs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n"));
  EXPECT_THAT(socket.ReadUntilClose(), StartsWith("HTTP/1.1 413"));
  EXPECT_EQ(calls.load(), 0);
}

TEST(ServerTest, HugeHeaderIs431) {
  std::atomic<int> calls{0};
  ServerOptions options;
  options.max_header_bytes = 1024;
  auto server = StartServer(options, [&](const Request& request) {
    ++calls;
    return Echo(request);
  });
  ASSERT_NE(server, nullptr);
  const support::HttpReply reply =
      support::HttpPost(server->port(), "/logs", {{"X-Big", std::string(4096, 'a')}}, "body");
  EXPECT_EQ(reply.status, 431u) << reply.error;
  EXPECT_EQ(calls.load(), 0);
}

// Issue 5 "Limits": limits.max_header_count, a whole-request bound answered 431.
TEST(ServerTest, TooManyHeaderFieldsIs431) {
  std::atomic<int> calls{0};
  ServerOptions options;
  options.max_header_count = 8;
  auto server = StartServer(options, [&](const Request& request) {
    ++calls;
    return Echo(request);
  });
  ASSERT_NE(server, nullptr);
  support::Headers few;
  for (int i = 0; i < 3; ++i) few.emplace_back("X-H" + std::to_string(i), "v");
  EXPECT_EQ(support::HttpPost(server->port(), "/logs", few, "body").status, 200u);
  support::Headers many;
  for (int i = 0; i < 20; ++i) many.emplace_back("X-H" + std::to_string(i), "v");
  const support::HttpReply reply = support::HttpPost(server->port(), "/logs", many, "body");
  EXPECT_EQ(reply.status, 431u) << reply.error;
  EXPECT_EQ(calls.load(), 1);
}

TEST(ServerTest, BadSyntaxIs400) {
  auto server = StartServer({}, Echo);
  ASSERT_NE(server, nullptr);
  RawSocket socket(server->port());
  ASSERT_TRUE(socket.connected());
  ASSERT_TRUE(socket.Send("THIS IS NOT HTTP\r\n\r\n"));
  EXPECT_THAT(socket.ReadUntilClose(), StartsWith("HTTP/1.1 400"));
  EXPECT_TRUE(socket.closed_by_peer());
}

TEST(ServerTest, HeaderCheckAnswersWithoutReadingBodyOrCallingHandler) {
  std::atomic<int> calls{0};
  auto server = StartServer(
      {},
      [&](const Request& request) {
        ++calls;
        return Echo(request);
      },
      [](const Request& request) -> std::optional<Response> {
        EXPECT_TRUE(request.body.empty());
        if (request.Header("Authorization")) return std::nullopt;
        Response response;
        response.status = 401;
        response.body = "who are you";
        response.headers.emplace_back("WWW-Authenticate", "Basic realm=\"drainmet\"");
        return response;
      });
  ASSERT_NE(server, nullptr);

  // The body announced is never sent: the answer must not wait for it.
  RawSocket socket(server->port());
  ASSERT_TRUE(socket.connected());
  ASSERT_TRUE(socket.Send("POST /logs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"));
  const std::string answer = socket.ReadUntilClose();
  EXPECT_THAT(answer, StartsWith("HTTP/1.1 401"));
  EXPECT_THAT(answer, HasSubstr("WWW-Authenticate: Basic realm=\"drainmet\""));
  EXPECT_THAT(answer, HasSubstr("who are you"));
  EXPECT_EQ(calls.load(), 0);

  const support::HttpReply allowed =
      support::HttpPost(server->port(), "/logs", {{"Authorization", "Basic eDp5"}}, "data");
  EXPECT_EQ(allowed.status, 200u) << allowed.error;
  EXPECT_EQ(allowed.body, "POST /logs q= body=data");
  EXPECT_EQ(calls.load(), 1);
}

TEST(ServerTest, ExpectContinueGets100BeforeTheBody) {
  auto server = StartServer({}, Echo);
  ASSERT_NE(server, nullptr);
  RawSocket socket(server->port());
  ASSERT_TRUE(socket.connected());
  ASSERT_TRUE(
      socket.Send("POST /logs HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: "
                  "100-continue\r\nConnection: close\r\n\r\n"));
  EXPECT_THAT(socket.ReadUntil("\r\n\r\n"), StartsWith("HTTP/1.1 100 Continue\r\n"));
  ASSERT_TRUE(socket.Send("abcd"));
  EXPECT_THAT(socket.ReadUntilClose(), HasSubstr("POST /logs q= body=abcd"));
}

TEST(ServerTest, HandlerExceptionIs500AndServerKeepsServing) {
  auto server = StartServer({}, [](const Request& request) -> Response {
    if (request.Path() == "/throw") throw std::runtime_error("boom");
    return Echo(request);
  });
  ASSERT_NE(server, nullptr);
  const support::HttpReply failed = support::HttpGet(server->port(), "/throw");
  EXPECT_EQ(failed.status, 500u) << failed.error;
  const support::HttpReply next = support::HttpGet(server->port(), "/ok");
  EXPECT_EQ(next.status, 200u) << next.error;
}

TEST(ServerTest, InvalidStatusFromHandlerIs500) {
  auto server = StartServer({}, [](const Request&) {
    Response response;
    response.status = 42;
    return response;
  });
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(support::HttpGet(server->port(), "/").status, 500u);
}

TEST(ServerTest, ReadTimeoutClosesAConnectionWithHalfAHeader) {
  ServerOptions options;
  options.read_timeout_ms = 200;
  auto server = StartServer(options, Echo);
  ASSERT_NE(server, nullptr);
  RawSocket socket(server->port());
  ASSERT_TRUE(socket.connected());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(socket.Send("GET / HTTP/1.1\r\nHost: x\r\n"));
  EXPECT_EQ(socket.ReadUntilClose(), "");  // closed, no answer
  EXPECT_TRUE(socket.closed_by_peer());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
}

TEST(ServerTest, IdleTimeoutClosesAQuietConnection) {
  ServerOptions options;
  options.idle_timeout_ms = 200;
  auto server = StartServer(options, Echo);
  ASSERT_NE(server, nullptr);
  RawSocket socket(server->port());
  ASSERT_TRUE(socket.connected());
  EXPECT_EQ(socket.ReadUntilClose(), "");
  EXPECT_TRUE(socket.closed_by_peer());
}

TEST(ServerTest, StopLetsTheRequestInFlightAnswerAndRefusesNewConnections) {
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  ServerOptions options;
  options.threads = 2;
  auto server = StartServer(options, [&](const Request& request) {
    if (request.Path() == "/slow") {
      entered.set_value();
      released.wait();
    }
    return Echo(request);
  });
  ASSERT_NE(server, nullptr);
  const std::uint16_t port = server->port();

  auto in_flight = std::async(std::launch::async, [port] { return support::HttpGet(port, "/slow"); });
  entered.get_future().wait();
  auto stopped = std::async(std::launch::async, [&server] { server->Stop(5000); });

  // The acceptor closes at once; connections made just before it are reset.
  bool refused = false;
  for (int attempt = 0; attempt < 200 && !refused; ++attempt) {
    RawSocket probe(port);
    refused = !probe.connected() && probe.connect_errno() == ECONNREFUSED;
    if (!refused) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(refused);
  EXPECT_EQ(stopped.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);  // still waiting

  release.set_value();
  const support::HttpReply reply = in_flight.get();
  EXPECT_EQ(reply.status, 200u) << reply.error;
  EXPECT_EQ(reply.body, "GET /slow q= body=");
  EXPECT_EQ(reply.Header("Connection"), "close");
  EXPECT_EQ(stopped.wait_for(std::chrono::seconds(5)), std::future_status::ready);
}

TEST(ServerTest, StopClosesIdleKeepAliveConnectionsAtOnce) {
  auto server = StartServer({}, Echo);  // idle timeout 300 s
  ASSERT_NE(server, nullptr);
  auto connection = support::HttpConnection::Open(server->port());
  ASSERT_TRUE(connection.ok()) << connection.status();
  ASSERT_EQ((*connection)->Send("GET", "/", {}, "").status, 200u);

  const auto start = std::chrono::steady_clock::now();
  server->Stop(10000);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ((*connection)->Send("GET", "/", {}, "").status, 0u);
  server->Stop();  // idempotent
}

// An asynchronous handler keeps the responder and answers from another thread later; the
// server thread is free meanwhile (one thread serves a second request in between).
TEST(ServerTest, AsyncHandlerAnswersFromAnotherThreadWithoutHoldingAServerThread) {
  std::mutex mu;
  std::vector<Responder> waiting;  // guarded by mu
  ServerOptions options;
  options.threads = 1;
  auto server = Server::StartAsync(options, [&](const Request& request, Responder respond) {
    if (request.Path() == "/later") {
      std::lock_guard<std::mutex> lock(mu);
      waiting.push_back(std::move(respond));
      return;
    }
    respond(Echo(request));
  });
  ASSERT_TRUE(server.ok()) << server.status();
  const std::uint16_t port = (*server)->port();

  auto later = std::async(std::launch::async, [port] { return support::HttpGet(port, "/later"); });
  for (int i = 0; i < 500; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!waiting.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // The only server thread is not blocked by the waiting request.
  const support::HttpReply now = support::HttpGet(port, "/now");
  EXPECT_EQ(now.status, 200u) << now.error;
  EXPECT_EQ(now.body, "GET /now q= body=");
  EXPECT_EQ(later.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);

  std::thread answerer([&] {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(waiting.size(), 1u);
    Response response;
    response.status = 202;
    response.body = "done";
    waiting[0](response);
    waiting[0](Response{});  // a second call is ignored
    waiting.clear();
  });
  answerer.join();
  const support::HttpReply reply = later.get();
  EXPECT_EQ(reply.status, 202u) << reply.error;
  EXPECT_EQ(reply.body, "done");
}

TEST(ServerTest, AsyncResponderDroppedWithoutAnswerIs500) {
  auto server = Server::StartAsync({}, [](const Request&, Responder) {});
  ASSERT_TRUE(server.ok()) << server.status();
  const support::HttpReply reply = support::HttpGet((*server)->port(), "/x");
  EXPECT_EQ(reply.status, 500u) << reply.error;
}

TEST(ServerTest, StopWaitsForAnAsyncAnswer) {
  std::promise<Responder> handed;
  auto server = Server::StartAsync({}, [&](const Request&, Responder respond) { handed.set_value(respond); });
  ASSERT_TRUE(server.ok()) << server.status();
  const std::uint16_t port = (*server)->port();
  auto in_flight = std::async(std::launch::async, [port] { return support::HttpGet(port, "/wait"); });
  Responder respond = handed.get_future().get();
  auto stopped = std::async(std::launch::async, [&server] { (*server)->Stop(5000); });
  EXPECT_EQ(stopped.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  Response response;
  response.body = "late";
  respond(response);
  respond = nullptr;
  const support::HttpReply reply = in_flight.get();
  EXPECT_EQ(reply.status, 200u) << reply.error;
  EXPECT_EQ(reply.body, "late");
  EXPECT_EQ(reply.Header("Connection"), "close");
  EXPECT_EQ(stopped.wait_for(std::chrono::seconds(5)), std::future_status::ready);
}

TEST(ServerTest, StartRejectsBadAddressAndBusyPort) {
  ServerOptions bad;
  bad.address = "not-an-ip";
  EXPECT_EQ(Server::Start(bad, Echo).status().code(), absl::StatusCode::kInvalidArgument);

  ServerOptions no_threads;
  no_threads.threads = 0;
  EXPECT_EQ(Server::Start(no_threads, Echo).status().code(), absl::StatusCode::kInvalidArgument);

  auto first = StartServer({}, Echo);
  ASSERT_NE(first, nullptr);
  ServerOptions same;
  same.port = first->port();
  EXPECT_EQ(Server::Start(same, Echo).status().code(), absl::StatusCode::kUnavailable);
}

TEST(RequestTest, HeaderIsCaseInsensitiveAndFirstWins) {
  Request request;
  request.headers = {{"Content-Type", "application/logplex-1"}, {"X-Dup", "1"}, {"x-dup", "2"}};
  EXPECT_EQ(request.Header("content-type"), "application/logplex-1");
  EXPECT_EQ(request.Header("CONTENT-TYPE"), "application/logplex-1");
  EXPECT_EQ(request.Header("X-DUP"), "1");
  EXPECT_EQ(request.Header("Content-Length"), std::nullopt);
  EXPECT_EQ(request.Header("Content-Typ"), std::nullopt);
}

TEST(RequestTest, PathAndQuerySplitAtFirstQuestionMark) {
  struct Case {
    std::string target, path, query;
  };
  const Case cases[] = {
      {"/logs?resolution=60", "/logs", "resolution=60"},
      {"/logs", "/logs", ""},
      {"/?", "/", ""},
      {"/a?b?c", "/a", "b?c"},
      {"", "", ""},
      {"?x=1", "", "x=1"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.target);
    Request request;
    request.target = c.target;
    EXPECT_EQ(request.Path(), c.path);
    EXPECT_EQ(request.Query(), c.query);
  }
}

TEST(ParseListenAddressTest, AcceptsHostPortForms) {
  struct Case {
    std::string text, host;
    std::uint16_t port;
  };
  const Case cases[] = {
      {"0.0.0.0:8080", "0.0.0.0", 8080}, {"127.0.0.1:0", "127.0.0.1", 0},
      {":8080", "0.0.0.0", 8080},        {"[::1]:0", "::1", 0},
      {"[::]:65535", "::", 65535},       {"10.1.2.3:00080", "10.1.2.3", 80},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    auto parsed = ParseListenAddress(c.text);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->first, c.host);
    EXPECT_EQ(parsed->second, c.port);
  }
}

TEST(ParseListenAddressTest, RejectsMalformedWithInvalidArgument) {
  const char* cases[] = {
      "",           "8080",       "0.0.0.0",        "0.0.0.0:",     ":",        "1.2.3.4:65536",
      "1.2.3.4:-1", "1.2.3.4:8o", "1.2.3.4:123456", "localhost:80", "::1:80",   "[::1]",
      "[::1]80",    "[::1:80",    "[]:80",          "[1.2.3.4]:80", "1.2.3:80", "1.2.3.4 :80"};
  for (const char* text : cases) {
    SCOPED_TRACE(text);
    EXPECT_EQ(ParseListenAddress(text).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace drainmet::http
