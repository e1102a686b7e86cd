#pragma once
// A fake Librato API (FORMATS.md §5.1-5.2) for integration tests: an HTTP server on
// 127.0.0.1 (port 0) that records every request and answers from a script.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/http/server.h"
#include "nlohmann/json.hpp"

namespace drainmet::support {

/// One request as the fake received it.
struct RecordedRequest {
  std::chrono::steady_clock::time_point received;  ///< When its body was complete.
  std::string method;
  std::string target;  ///< "/v1/metrics".
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string remote_address;  ///< "127.0.0.1:port" of the client's connection.
  bool basic_auth = false;     ///< An `Authorization: Basic` header that decoded to user:password.
  std::string user;            ///< Basic-auth user (the account email); empty without basic_auth.
  std::string password;        ///< Basic-auth password (the API token).
  unsigned status = 0;         ///< The status the fake answered (or will answer, while delayed).

  /// The first header named `name` (ASCII case-insensitive), or std::nullopt.
  std::optional<std::string_view> Header(std::string_view name) const;
};

/// Thread-safe: all methods may be called from any thread while the server answers.
class FakeLibrato {
 public:
  /// One scripted answer.
  struct Answer {
    unsigned status = 200;
    std::string body = "{}";                 ///< Sent as application/json.
    std::optional<std::string> retry_after;  ///< Retry-After header value, when set.
    std::int64_t delay_ms = 0;               ///< Held this long before answering (cut short by Stop()).
  };

  /// Starts on 127.0.0.1:0 with 4 server threads (a delayed answer holds only its own).
  static absl::StatusOr<std::unique_ptr<FakeLibrato>> Start();
  ~FakeLibrato();  ///< Stops.
  FakeLibrato(const FakeLibrato&) = delete;
  FakeLibrato& operator=(const FakeLibrato&) = delete;

  std::uint16_t port() const;
  /// "http://127.0.0.1:<port>/v1/metrics".
  std::string Url() const;

  /// Replaces the script: each request consumes the next answer; once the script is used
  /// up, answers are the default again (200 with `{}`).
  void Script(std::vector<Answer> answers);

  /// Blocks until at least `count` requests have been received or `timeout` passes;
  /// true when they have.
  bool WaitForRequests(std::size_t count, std::chrono::milliseconds timeout) const;

  /// A copy of every request received so far, in arrival order.
  std::vector<RecordedRequest> Requests() const;

  /// Every entry of the "gauges" arrays of the requests answered 2xx, in arrival order.
  /// Bodies that are not JSON objects with a "gauges" array contribute nothing.
  std::vector<nlohmann::json> Gauges() const;

  /// Cuts delays short and stops the server (in-flight requests still get answers).
  /// Idempotent.
  void Stop();

 private:
  FakeLibrato() = default;
  http::Response Handle(const http::Request& request);

  mutable std::mutex mu_;
  mutable std::condition_variable arrived_;  // signalled on each request, under mu_
  std::condition_variable stopping_cv_;      // wakes delayed answers on Stop()
  bool stopping_ = false;                    // guarded by mu_
  std::vector<Answer> script_;               // guarded by mu_
  std::size_t next_answer_ = 0;              // guarded by mu_
  std::vector<RecordedRequest> requests_;    // guarded by mu_
  std::unique_ptr<http::Server> server_;     // set once in Start()
};

}  // namespace drainmet::support
