#pragma once
// A small HTTP/1.1 server on Boost.Beast for drainmet's own endpoints (POST /logs,
// /healthz, /readyz, /metrics) and for test peers (the fake Librato API).
// Keep-alive, a body limit answered 413, read timeouts, graceful stop.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace drainmet::http {

/// A request as the handler sees it. Header names are matched case-insensitively.
struct Request {
  std::string method;   ///< "POST", "GET", ...
  std::string target;   ///< Path and query as sent ("/logs?resolution=60").
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string remote_address;  ///< "127.0.0.1:51234".

  /// The first header named `name` (case-insensitive), or std::nullopt.
  std::optional<std::string_view> Header(std::string_view name) const;
  /// The path part of target (before '?').
  std::string_view Path() const;
  /// The query part of target (after '?', without it); empty when none.
  std::string_view Query() const;
};

struct Response {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< Extra headers.
};

/// Called once per request on a server thread; must not throw (an exception is logged
/// and answered 500). May block (the thread serves nothing else meanwhile).
using Handler = std::function<Response(const Request&)>;
/// Called after the headers are read and before the body is: return a response to
/// answer at once without reading the body (e.g. 401, 405), or std::nullopt to go on.
/// `request.body` is empty at that point.
using HeaderCheck = std::function<std::optional<Response>(const Request&)>;

struct ServerOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0: any free port (see Server::port()).
  int threads = 1;
  std::uint64_t max_body_bytes = 1 << 20;  ///< Larger bodies are answered 413.
  std::uint32_t max_header_bytes = 16 * 1024;  ///< Larger headers are answered 431.
  std::int64_t read_timeout_ms = 30000;  ///< A request must arrive within this (slowloris).
  std::int64_t idle_timeout_ms = 300000;  ///< Keep-alive connections idle this long close.
};

/// The server: an acceptor and `threads` threads running one io_context.
/// Thread-safe: Stop() may be called from any thread (e.g. a signal watcher).
class Server {
 public:
  /// Binds and starts serving. InvalidArgument for a bad address; Unavailable when the
  /// port cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options, Handler handler,
                                                       HeaderCheck header_check = nullptr);
  ~Server();  ///< Stops (gracefully, 10 s at most) if still running.

  /// The bound port.
  std::uint16_t port() const;

  /// Stops accepting, lets requests in flight finish and answer (closing their
  /// connections afterwards), waits up to `timeout_ms` for them, then closes everything
  /// and joins the threads. Idempotent.
  void Stop(std::int64_t timeout_ms = 10000);

  class Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Parses "host:port" / "[v6]:port" / ":port"; InvalidArgument otherwise.
absl::StatusOr<std::pair<std::string, std::uint16_t>> ParseListenAddress(std::string_view text);

}  // namespace drainmet::http
