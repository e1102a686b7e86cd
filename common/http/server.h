#pragma once
// A small HTTP/1.1 server on Boost.Beast for drainmet's own endpoints (POST /logs,
// /healthz, /readyz, /metrics) and for test peers (the fake Librato API).
// Keep-alive, a body limit answered 413, read timeouts, graceful stop; optionally over TLS
// (http/tls.h) with the certificate reloaded on demand (SIGHUP).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/telemetry/metrics.h"

namespace drainmet::http {

class TlsContextHolder;  // common/http/tls.h

/// A request as the handler sees it. Header names are matched case-insensitively.
struct Request {
  std::string method;  ///< "POST", "GET", ... as sent (the token is case-sensitive, RFC 9110 §9.1).
  std::string target;  ///< Path and query as sent ("/logs?resolution=60").
  std::vector<std::pair<std::string, std::string>> headers;  ///< In arrival order, names as sent.
  std::string body;                                          ///< De-chunked when sent chunked.
  std::string remote_address;                                ///< "127.0.0.1:51234" or "[::1]:51234".

  /// The first header named `name` (ASCII case-insensitive), or std::nullopt. The view
  /// points into `headers` and lives as long as this request is not modified.
  std::optional<std::string_view> Header(std::string_view name) const;
  /// The path part of target (before '?'); the whole target when it has no '?'.
  std::string_view Path() const;
  /// The query part of target (after '?', without it); empty when none.
  std::string_view Query() const;
};

struct Response {
  unsigned status = 200;  ///< 200..599 (anything else is answered 500 and logged). 204/304 send no body.
  std::string content_type = "text/plain; charset=utf-8";  ///< Empty: no Content-Type.
  std::string body;
  /// Extra headers, written as given. Content-Length and Connection are the server's own.
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Called once per request on a server thread; must not throw (an exception is logged
/// and answered 500). May block (the thread serves nothing else meanwhile).
using Handler = std::function<Response(const Request&)>;
/// Answers one request: call it once, from any thread, at any time (later calls are
/// ignored). When every copy is destroyed without a call, the request is answered 500.
/// Every copy must be called or destroyed before the Server is destroyed.
using Responder = std::function<void(Response)>;
/// A handler that answers later (e.g. once a batched write completed) without holding a
/// server thread: it may keep `respond` and return at once. `request` is valid only during
/// the call. Must not throw (an exception is logged and answered 500 if `respond` was not
/// called yet). Server::Stop waits (up to its timeout) for requests not yet answered.
using AsyncHandler = std::function<void(const Request& request, Responder respond)>;
/// Called after the headers are read and before the body is: return a response to
/// answer at once without reading the body (e.g. 401, 405), or std::nullopt to go on.
/// `request.body` is empty at that point. After an early answer the connection closes.
/// Same threading and exception rules as Handler.
using HeaderCheck = std::function<std::optional<Response>(const Request&)>;

struct ServerOptions {
  std::string address = "127.0.0.1";           ///< An IP literal (v4 or v6, no brackets).
  std::uint16_t port = 0;                      ///< 0: any free port (see Server::port()).
  int threads = 1;                             ///< Threads running the io_context; at least 1.
  std::uint64_t max_body_bytes = 1 << 20;      ///< Larger bodies are answered 413 (also chunked ones).
  std::uint32_t max_header_bytes = 16 * 1024;  ///< Larger headers are answered 431.
  std::uint32_t max_header_count = 100;        ///< More header fields are answered 431.
  /// A whole request (header and body) must arrive within this many ms of its first byte
  /// (slowloris); otherwise the connection is closed without an answer. Also bounds the
  /// write of each response.
  std::int64_t read_timeout_ms = 30000;
  std::int64_t idle_timeout_ms = 300000;  ///< Keep-alive connections idle this long close.
  /// TLS (http/tls.h): PEM certificate chain and private key. Both empty: plain HTTP;
  /// both set: every connection is TLS 1.2 or later (no compression), its handshake bound
  /// by read_timeout_ms (a client that does not finish it is closed; counted
  /// drainmet_tls_handshake_failures_total{listener="http",reason}). One without the
  /// other, or a pair that does not load: InvalidArgument from Start.
  std::string tls_cert_file;
  std::string tls_key_file;
  /// Where the TLS counters are registered; optional (null: none). Must outlive the server.
  telemetry::Metrics* metrics = nullptr;
};

/// The server: an acceptor and `threads` threads running one io_context. Each connection
/// is served by one session whose steps never run concurrently (a strand per session).
///
/// Per request: header (431 when over max_header_bytes or max_header_count, 400 on bad syntax) -> HeaderCheck
/// -> Content-Length check (413) -> `Expect: 100-continue` answered -> body -> Handler ->
/// response with Content-Length; the connection is kept alive when the client asked for it.
/// Error answers (400, 413, 431, early HeaderCheck answers) close the connection.
///
/// Thread-safe: Stop() may be called from any thread (e.g. a signal watcher) except a
/// server thread (a Handler must not call it: it joins the threads).
class Server {
 public:
  /// Binds (SO_REUSEADDR) and starts serving. InvalidArgument for a bad address or a
  /// thread count < 1; Unavailable when the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options, Handler handler,
                                                       HeaderCheck header_check = nullptr);
  /// As above with a handler that answers asynchronously.
  static absl::StatusOr<std::unique_ptr<Server>> StartAsync(const ServerOptions& options,
                                                            AsyncHandler handler,
                                                            HeaderCheck header_check = nullptr);
  ~Server();  ///< Stops (gracefully, 10 s at most) if still running.
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// The bound port.
  std::uint16_t port() const;

  /// Stops accepting (new connections are refused), closes connections idle between
  /// requests, lets requests in flight finish and answer with `Connection: close`, waits up
  /// to `timeout_ms` for them, then closes everything and joins the threads. A handler
  /// still running after the timeout delays the join until it returns. Idempotent.
  void Stop(std::int64_t timeout_ms = 10000);

  /// True when the server speaks TLS.
  bool tls() const;

  /// Reads tls_cert_file and tls_key_file again (SIGHUP): connections accepted afterwards
  /// use the new pair, connections already open keep theirs. A pair that does not load is
  /// logged (error), counted drainmet_tls_reloads_total{listener="http",result="error"}
  /// and returned, and the old pair stays in use. OK without TLS. Thread-safe.
  absl::Status ReloadTls();

  /// The TLS context holder (counters for tests); null without TLS.
  std::shared_ptr<TlsContextHolder> tls_context() const;

  class Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Parses "host:port" / "[v6]:port" / ":port" (host "0.0.0.0") into (host, port); the host
/// must be an IP literal and is returned without brackets; the port is decimal 0..65535.
/// InvalidArgument otherwise.
absl::StatusOr<std::pair<std::string, std::uint16_t>> ParseListenAddress(std::string_view text);

}  // namespace drainmet::http
