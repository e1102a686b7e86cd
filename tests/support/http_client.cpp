#include "tests/support/http_client.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/status/status.h"
#include "common/base/strings.h"
#include "fmt/format.h"

namespace drainmet::support {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

constexpr std::uint64_t kMaxReplyBodyBytes = 64ull << 20;

std::string_view ToStd(beast::string_view view) { return std::string_view(view.data(), view.size()); }
beast::string_view ToBeast(std::string_view view) { return beast::string_view(view.data(), view.size()); }

HttpReply Failed(std::string what, const beast::error_code& ec) {
  HttpReply reply;
  reply.error = fmt::format("{}: {}", what, ec.message());
  return reply;
}

}  // namespace

std::optional<std::string_view> HttpReply::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (base::EqualsIgnoreCase(key, name)) return std::string_view(value);
  }
  return std::nullopt;
}

// Async operations on a private io_context, run to completion: the stream's timer gives
// every step a deadline, which the synchronous Beast API lacks.
struct HttpConnection::State {
  explicit State(std::chrono::milliseconds op_timeout) : timeout(op_timeout), stream(ioc) {}

  template <typename Start>
  beast::error_code Run(Start&& start) {
    beast::error_code result = net::error::would_block;
    stream.expires_after(timeout);
    start([&result](beast::error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    ioc.run();
    return result;
  }

  std::chrono::milliseconds timeout;
  std::uint16_t port = 0;
  net::io_context ioc;
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
};

absl::StatusOr<std::unique_ptr<HttpConnection>> HttpConnection::Open(std::uint16_t port,
                                                                     std::chrono::milliseconds timeout) {
  auto state = std::make_unique<State>(timeout);
  state->port = port;
  const tcp::endpoint endpoint(net::ip::address_v4::loopback(), port);
  const beast::error_code ec =
      state->Run([&](auto handler) { state->stream.async_connect(endpoint, handler); });
  if (ec) return absl::UnavailableError(fmt::format("connect to 127.0.0.1:{}: {}", port, ec.message()));
  return std::unique_ptr<HttpConnection>(new HttpConnection(std::move(state)));
}

HttpConnection::HttpConnection(std::unique_ptr<State> state) : state_(std::move(state)) {}

HttpConnection::~HttpConnection() {
  beast::error_code ec;
  state_->stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  state_->stream.close();
}

std::string HttpConnection::LocalAddress() const {
  beast::error_code ec;
  const tcp::endpoint local = state_->stream.socket().local_endpoint(ec);
  if (ec) return "";
  return fmt::format("{}:{}", local.address().to_string(), local.port());
}

HttpReply HttpConnection::Send(std::string_view method, std::string_view target, const Headers& headers,
                               std::string_view body) {
  bhttp::request<bhttp::string_body> request;
  request.method_string(ToBeast(method));
  request.target(ToBeast(target));
  request.version(11);
  for (const auto& [name, value] : headers) request.insert(ToBeast(name), ToBeast(value));
  if (request.find(bhttp::field::host) == request.end()) {
    request.set(bhttp::field::host, fmt::format("127.0.0.1:{}", state_->port));
  }
  if (request.find(bhttp::field::user_agent) == request.end())
    request.set(bhttp::field::user_agent, "drainmet-test");
  request.body() = std::string(body);
  const bool framed = request.find(bhttp::field::content_length) != request.end() ||
                      request.find(bhttp::field::transfer_encoding) != request.end();
  if (!framed && (!body.empty() || method == "POST" || method == "PUT")) request.content_length(body.size());

  beast::error_code ec =
      state_->Run([&](auto handler) { bhttp::async_write(state_->stream, request, handler); });
  if (ec) return Failed("write", ec);

  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(kMaxReplyBodyBytes);
  ec = state_->Run([&](auto handler) { bhttp::async_read(state_->stream, state_->buffer, parser, handler); });
  if (ec) return Failed("read", ec);

  auto& response = parser.get();
  HttpReply reply;
  reply.status = response.result_int();
  for (const auto& field : response) {
    reply.headers.emplace_back(std::string(ToStd(field.name_string())), std::string(ToStd(field.value())));
  }
  reply.body = std::move(response.body());
  return reply;
}

namespace {

HttpReply OneShot(std::uint16_t port, std::string_view method, std::string_view target,
                  const Headers& headers, std::string_view body) {
  auto connection = HttpConnection::Open(port);
  if (!connection.ok()) {
    HttpReply reply;
    reply.error = std::string(connection.status().message());
    return reply;
  }
  return (*connection)->Send(method, target, headers, body);
}

}  // namespace

HttpReply HttpPost(std::uint16_t port, std::string_view target, const Headers& headers,
                   std::string_view body) {
  return OneShot(port, "POST", target, headers, body);
}

HttpReply HttpGet(std::uint16_t port, std::string_view target) {
  return OneShot(port, "GET", target, {}, "");
}

}  // namespace drainmet::support
