#pragma once
// HTTP client for Librato's POST /v1/metrics (FORMATS.md §5.1-5.2) over libcurl, with the
// answer classified for retries (SEMANTICS.md §7.5).

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace drainmet::librato {

/// What to do with a request after its answer.
enum class Delivery : std::uint8_t {
  kAccepted,  ///< 2xx: done.
  kRetry,     ///< 429, 5xx, timeout, transport error: retry with backoff.
  kRejected,  ///< Any other status: permanent; log the API's body, do not retry.
};

/// Classifies an HTTP status (SEMANTICS §7.5): 200-299 kAccepted; 0 (no answer: transport
/// error or timeout), 429 and 500-599 kRetry; anything else kRejected. 3xx is rejected: the
/// API never redirects and the client does not follow redirects, so a 3xx means a wrong URL
/// (or a proxy in the way), which no retry of the same request fixes.
Delivery Classify(long http_status);

/// The outcome of one POST.
struct PostResult {
  Delivery delivery = Delivery::kRetry;
  long http_status = 0;  ///< 0 when no complete answer arrived (then delivery is kRetry).
  std::string body;      ///< The answer's body, at most its first 4 KiB (kMaxBodyBytes).
  /// From the answer's Retry-After header (seconds form, RFC 9110 §10.2.3); unset when
  /// absent or not delta-seconds, and when http_status == 0.
  std::optional<std::int64_t> retry_after_seconds;
  std::string error;  ///< curl's message when http_status == 0; empty otherwise.

  static constexpr std::size_t kMaxBodyBytes = 4096;
};

struct ClientOptions {
  /// http:// or https:// (any case); the API itself is HTTPS only (FORMATS §5.1).
  std::string url = "https://metrics-api.librato.com/v1/metrics";
  std::string email;      ///< Basic-auth user.
  std::string api_token;  ///< Basic-auth password. Never logged.
  std::int64_t connect_timeout_ms = 3000;
  std::int64_t request_timeout_ms = 10000;
  std::string user_agent = "drainmet/0.1";
};

/// One keep-alive connection to the API (a libcurl easy handle). Not thread-safe: one per
/// thread. Post() blocks up to the request timeout and never throws. Neither the token nor
/// the Authorization header is ever logged.
class Client {
 public:
  /// InvalidArgument when the URL is empty, unparsable or not http(s), or a timeout is
  /// not > 0; Internal when libcurl cannot be initialised.
  static absl::StatusOr<std::unique_ptr<Client>> Create(const ClientOptions& options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// POSTs `json_body` with Content-Type application/json and Basic auth, on the kept-alive
  /// connection when there is one. Blocks up to connect_timeout_ms + request_timeout_ms at
  /// most; never throws. `json_body` is only read during the call.
  PostResult Post(std::string_view json_body);

 private:
  Client(const ClientOptions& options, void* curl, void* headers);
  ClientOptions options_;
  void* curl_;                     // CURL*, owned.
  void* headers_;                  // curl_slist* of the fixed request headers, owned; used by curl_.
  std::array<char, 256> error_{};  // CURLOPT_ERRORBUFFER (CURL_ERROR_SIZE bytes).
};

/// One finished POST of a MultiClient: the tag given to Start and the classified answer.
struct Completion {
  std::uint64_t tag = 0;
  PostResult result;
};

/// Many POSTs in flight at once over keep-alive connections (one libcurl multi handle).
/// Each endpoint (AddEndpoint: URL, credentials, timeouts) keeps its easy handles for
/// reuse, and every transfer draws on the multi handle's connection cache, so a connection
/// is reused by the next request to the same host once its answer is read: with at most
/// N requests in flight to a host, at most N connections are open to it. HTTP/1.1, one
/// request at a time per connection. The answers are classified as Client::Post does
/// (same headers, timeouts, Retry-After parsing, body kept up to 4 KiB).
///
/// Not thread-safe: one thread at a time (the outlet worker that owns it). Never throws.
class MultiClient {
 public:
  /// Internal when libcurl cannot be initialised.
  static absl::StatusOr<std::unique_ptr<MultiClient>> Create();
  ~MultiClient();  ///< Aborts what is in flight (CancelAll) and closes the connections.
  MultiClient(const MultiClient&) = delete;
  MultiClient& operator=(const MultiClient&) = delete;

  /// Registers a destination; returns its index (0, 1, ...) for Start. InvalidArgument
  /// for the options Client::Create refuses.
  absl::StatusOr<std::size_t> AddEndpoint(const ClientOptions& options);

  /// Starts POSTing `json_body` to `endpoint`. The bytes are not copied: they must stay
  /// valid and unchanged until the Completion carrying `tag` has been returned by Poll, or
  /// CancelAll returned. The transfer makes progress only inside Poll. Internal when
  /// libcurl refuses the transfer (nothing started); InvalidArgument for an unknown
  /// endpoint.
  absl::Status Start(std::size_t endpoint, std::string_view json_body, std::uint64_t tag);

  /// Drives every transfer; waits up to `timeout` (>= 0) for one to finish, returning
  /// sooner when one did, and appends each finished transfer to `out` (any order). Returns
  /// at once when nothing is in flight.
  void Poll(std::chrono::milliseconds timeout, std::vector<Completion>& out);

  /// Aborts every transfer in flight; their completions are never returned. Their
  /// connections are closed (a half-sent request cannot be reused). The bodies given to
  /// Start may be freed afterwards.
  void CancelAll();

  /// Transfers started and not yet returned by Poll.
  std::size_t in_flight() const { return in_flight_; }

  /// libcurl handles this client holds: each finished or cancelled transfer's handle is
  /// reused by the next Start to its endpoint, so this never exceeds the most transfers in
  /// flight at once per endpoint, summed (memory bounded however many requests are made).
  std::size_t handles() const;

 private:
  struct Transfer;
  struct Endpoint;
  explicit MultiClient(void* multi);
  void Finish(Transfer& transfer, int code, std::vector<Completion>& out);

  void* multi_;  // CURLM*, owned.
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  std::size_t in_flight_ = 0;
};

/// Parses a Retry-After value in delta-seconds ("120", surrounding spaces/tabs allowed;
/// RFC 9110 §10.2.3); std::nullopt for anything else, including negative, fractional and
/// out-of-range values and HTTP-dates (not used by Librato).
std::optional<std::int64_t> ParseRetryAfterSeconds(std::string_view value);

}  // namespace drainmet::librato
