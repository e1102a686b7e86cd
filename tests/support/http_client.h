#pragma once
// Blocking HTTP/1.1 test clients (Boost.Beast) for integration tests: talk to a server on
// 127.0.0.1 and get its answer as values. Test-only: errors become a reply with status 0.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace drainmet::support {

using Headers = std::vector<std::pair<std::string, std::string>>;

/// One answer, or why there was none.
struct HttpReply {
  unsigned status = 0;  ///< 0: no answer arrived (see `error`).
  Headers headers;      ///< In arrival order, names as sent.
  std::string body;
  std::string error;  ///< Transport or parse error when status == 0.

  /// The first header named `name` (ASCII case-insensitive), or std::nullopt.
  std::optional<std::string_view> Header(std::string_view name) const;
};

/// One client connection to 127.0.0.1:`port`, kept alive across Send() calls. Every
/// operation is bounded by `timeout`. Not thread-safe.
class HttpConnection {
 public:
  /// Connects; Unavailable when the connection is refused or times out.
  static absl::StatusOr<std::unique_ptr<HttpConnection>> Open(
      std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  /// Sends one request and reads its answer. `headers` are sent as given; Host, User-Agent
  /// and Content-Length are added unless `headers` has them (a Transfer-Encoding given
  /// means the caller frames `body` itself). After a transport error the connection is
  /// unusable.
  HttpReply Send(std::string_view method, std::string_view target, const Headers& headers,
                 std::string_view body);

  /// The local "127.0.0.1:port" of this connection (what the server sees as remote).
  std::string LocalAddress() const;

 private:
  struct State;
  explicit HttpConnection(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

/// POSTs `body` to http://127.0.0.1:`port``target` on a fresh connection.
HttpReply HttpPost(std::uint16_t port, std::string_view target, const Headers& headers,
                   std::string_view body);

/// GETs http://127.0.0.1:`port``target` on a fresh connection.
HttpReply HttpGet(std::uint16_t port, std::string_view target);

}  // namespace drainmet::support
