#pragma once
// HTTP client for Librato's POST /v1/metrics (FORMATS.md §5.1-5.2) over libcurl, with the
// answer classified for retries (SEMANTICS.md §7.5).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace drainmet::librato {

/// What to do with a request after its answer.
enum class Delivery : std::uint8_t {
  kAccepted,  ///< 2xx: done.
  kRetry,     ///< 429, 5xx, timeout, transport error: retry with backoff.
  kRejected,  ///< Any other status: permanent; log the API's body, do not retry.
};

/// Classifies an HTTP status (0 = no answer: transport error or timeout).
Delivery Classify(long http_status);

/// The outcome of one POST.
struct PostResult {
  Delivery delivery = Delivery::kRetry;
  long http_status = 0;  ///< 0 when no answer arrived.
  std::string body;      ///< The answer's body, at most 4 KiB kept.
  std::optional<std::int64_t> retry_after_seconds;  ///< From Retry-After (seconds form).
  std::string error;     ///< curl's message when http_status == 0.
};

struct ClientOptions {
  std::string url = "https://metrics-api.librato.com/v1/metrics";
  std::string email;      ///< Basic-auth user.
  std::string api_token;  ///< Basic-auth password. Never logged.
  std::int64_t connect_timeout_ms = 3000;
  std::int64_t request_timeout_ms = 10000;
  std::string user_agent = "drainmet/0.1";
};

/// One keep-alive connection to the API (an easy handle). Not thread-safe: one per
/// thread. Post() blocks up to the request timeout and never throws.
class Client {
 public:
  /// InvalidArgument when the URL is empty or not http(s).
  static absl::StatusOr<std::unique_ptr<Client>> Create(const ClientOptions& options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// POSTs `json_body` with Content-Type application/json and Basic auth.
  PostResult Post(std::string_view json_body);

 private:
  explicit Client(const ClientOptions& options, void* curl);
  ClientOptions options_;
  void* curl_;  // CURL*
};

/// Parses a Retry-After value in seconds ("120"); std::nullopt for anything else
/// (HTTP-dates are not used by Librato).
std::optional<std::int64_t> ParseRetryAfterSeconds(std::string_view value);

}  // namespace drainmet::librato
