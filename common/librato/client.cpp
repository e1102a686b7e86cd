#include "common/librato/client.h"

#include <curl/curl.h>

#include <algorithm>
#include <limits>
#include <mutex>

#include "absl/status/status.h"
#include "common/base/strings.h"
#include "fmt/format.h"

namespace drainmet::librato {
namespace {

static_assert(CURL_ERROR_SIZE <= 256, "Client::error_ must hold CURL_ERROR_SIZE bytes");

// Removes optional whitespace (RFC 9110 §5.6.3) and the CRLF libcurl leaves on header lines.
std::string_view Trim(std::string_view value) {
  constexpr std::string_view kSpace = " \t\r\n";
  const std::size_t first = value.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  return value.substr(first, value.find_last_not_of(kSpace) - first + 1);
}

// curl_global_init is not thread-safe and must run once per process, before any handle.
absl::Status GlobalInit() {
  static std::once_flag once;
  static CURLcode code = CURLE_OK;
  std::call_once(once, [] { code = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (code != CURLE_OK)
    return absl::InternalError(fmt::format("librato: curl_global_init: {}", curl_easy_strerror(code)));
  return absl::OkStatus();
}

// Scheme check with libcurl's own parser, so what we accept is what it will request.
absl::Status ValidateUrl(const std::string& url) {
  if (url.empty()) return absl::InvalidArgumentError("librato.url: required");
  CURLU* parsed = curl_url();
  if (parsed == nullptr) return absl::InternalError("librato: curl_url failed");
  absl::Status status = absl::OkStatus();
  char* scheme = nullptr;
  if (curl_url_set(parsed, CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
    status = absl::InvalidArgumentError("librato.url: not a valid URL");
  } else if (curl_url_get(parsed, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK || scheme == nullptr ||
             (!base::EqualsIgnoreCase(scheme, "http") && !base::EqualsIgnoreCase(scheme, "https"))) {
    status = absl::InvalidArgumentError("librato.url: scheme must be http or https");
  }
  curl_free(scheme);
  curl_url_cleanup(parsed);
  return status;
}

// CURLOPT_WRITEFUNCTION: keeps the first kMaxBodyBytes of the answer and discards the rest
// (returning less than given would abort the transfer). Must not throw into C code.
std::size_t OnBody(char* data, std::size_t size, std::size_t count, void* user) noexcept {
  const std::size_t bytes = size * count;
  auto* result = static_cast<PostResult*>(user);
  const std::size_t room =
      PostResult::kMaxBodyBytes - std::min(result->body.size(), PostResult::kMaxBodyBytes);
  try {
    result->body.append(data, std::min(bytes, room));
  } catch (...) {
    return 0;  // out of memory: abort this transfer
  }
  return bytes;
}

// CURLOPT_HEADERFUNCTION: called once per header line, status lines included.
std::size_t OnHeader(char* data, std::size_t size, std::size_t count, void* user) noexcept {
  const std::size_t bytes = size * count;
  auto* result = static_cast<PostResult*>(user);
  const std::string_view line(data, bytes);
  if (line.substr(0, 5) == "HTTP/") {
    result->retry_after_seconds.reset();  // a new answer begins (e.g. after 100 Continue)
    return bytes;
  }
  const std::size_t colon = line.find(':');
  if (colon != std::string_view::npos && base::EqualsIgnoreCase(Trim(line.substr(0, colon)), "retry-after")) {
    result->retry_after_seconds = ParseRetryAfterSeconds(Trim(line.substr(colon + 1)));
  }
  return bytes;
}

template <typename T>
bool SetOption(CURL* curl, CURLoption option, T value) {
  return curl_easy_setopt(curl, option, value) == CURLE_OK;
}

// What Client::Create and MultiClient::AddEndpoint refuse.
absl::Status CheckOptions(const ClientOptions& options) {
  if (options.connect_timeout_ms <= 0)
    return absl::InvalidArgumentError("librato.connect_timeout_ms: must be > 0");
  if (options.request_timeout_ms <= 0)
    return absl::InvalidArgumentError("librato.request_timeout_ms: must be > 0");
  if (absl::Status status = GlobalInit(); !status.ok()) return status;
  return ValidateUrl(options.url);
}

// The fixed request headers; null when out of memory.
curl_slist* FixedHeaders() {
  curl_slist* headers = nullptr;
  for (const char* header : {"Content-Type: application/json", "Accept: application/json",
                             "Expect:"}) {  // "Expect:" drops curl's 100-continue round trip
    curl_slist* appended = curl_slist_append(headers, header);
    if (appended == nullptr) {
      curl_slist_free_all(headers);
      return nullptr;
    }
    headers = appended;
  }
  return headers;
}

// Every option of a POST to the API but the body and the callbacks' data. `options`,
// `headers` and `error` must outlive the handle's use.
bool Configure(CURL* curl, const ClientOptions& options, curl_slist* headers, char* error) {
  return SetOption(curl, CURLOPT_URL, options.url.c_str()) &&
         SetOption(curl, CURLOPT_PROTOCOLS_STR, "http,https") && SetOption(curl, CURLOPT_POST, 1L) &&
         SetOption(curl, CURLOPT_HTTPHEADER, headers) &&
         SetOption(curl, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC)) &&
         SetOption(curl, CURLOPT_USERNAME, options.email.c_str()) &&
         SetOption(curl, CURLOPT_PASSWORD, options.api_token.c_str()) &&
         SetOption(curl, CURLOPT_USERAGENT, options.user_agent.c_str()) &&
         SetOption(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout_ms)) &&
         SetOption(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options.request_timeout_ms)) &&
         SetOption(curl, CURLOPT_NOSIGNAL, 1L) &&  // timeouts without SIGALRM: we are threaded
         SetOption(curl, CURLOPT_TCP_KEEPALIVE, 1L) && SetOption(curl, CURLOPT_FOLLOWLOCATION, 0L) &&
         SetOption(curl, CURLOPT_ERRORBUFFER, error) && SetOption(curl, CURLOPT_WRITEFUNCTION, &OnBody) &&
         SetOption(curl, CURLOPT_HEADERFUNCTION, &OnHeader);
}

// A null POSTFIELDS would make libcurl read the body from stdin.
constexpr char kEmpty[] = "";

void SetBody(CURL* curl, std::string_view json_body) {
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json_body.empty() ? kEmpty : json_body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(json_body.size()));
}

// Drops the handle's pointer into the caller's bytes.
void ClearBody(CURL* curl) {
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(0));
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, kEmpty);
}

// Classifies a finished transfer into `result` (whose body and Retry-After the callbacks
// filled): no answer -> kRetry with curl's message; else by status.
void ClassifyTransfer(CURL* curl, CURLcode code, const char* error, PostResult& result) {
  if (code != CURLE_OK) {
    // Timeout, refused, reset, TLS failure, or an answer cut short: no answer to act on.
    result.delivery = Delivery::kRetry;
    result.http_status = 0;
    result.retry_after_seconds.reset();
    result.error = error[0] != '\0' ? std::string(error) : std::string(curl_easy_strerror(code));
    return;
  }
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  result.http_status = status;
  result.delivery = Classify(status);
}

}  // namespace

Delivery Classify(long http_status) {
  if (http_status >= 200 && http_status <= 299) return Delivery::kAccepted;
  if (http_status == 0 || http_status == 429 || (http_status >= 500 && http_status <= 599)) {
    return Delivery::kRetry;
  }
  // 1xx (never final), 3xx (we do not follow redirects; the API sends none), other 4xx,
  // and anything outside HTTP's range: resending the same request cannot help.
  return Delivery::kRejected;
}

std::optional<std::int64_t> ParseRetryAfterSeconds(std::string_view value) {
  value = Trim(value);
  if (value.empty()) return std::nullopt;
  std::int64_t seconds = 0;
  for (const char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    const int digit = c - '0';
    if (seconds > (std::numeric_limits<std::int64_t>::max() - digit) / 10) return std::nullopt;
    seconds = seconds * 10 + digit;
  }
  return seconds;
}

absl::StatusOr<std::unique_ptr<Client>> Client::Create(const ClientOptions& options) {
  if (absl::Status status = CheckOptions(options); !status.ok()) return status;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("librato: curl_easy_init failed");
  curl_slist* headers = FixedHeaders();
  if (headers == nullptr) {
    curl_easy_cleanup(curl);
    return absl::InternalError("librato: curl_slist_append failed");
  }
  // From here the Client owns both, so every early return cleans up.
  std::unique_ptr<Client> client(new Client(options, curl, headers));
  // The strings libcurl copies come from the client's own options.
  if (!Configure(curl, client->options_, headers, client->error_.data()))
    return absl::InternalError("librato: curl_easy_setopt failed");
  return client;
}

Client::Client(const ClientOptions& options, void* curl, void* headers)
    : options_(options), curl_(curl), headers_(headers) {}

Client::~Client() {
  curl_easy_cleanup(static_cast<CURL*>(curl_));
  curl_slist_free_all(static_cast<curl_slist*>(headers_));
}

PostResult Client::Post(std::string_view json_body) {
  PostResult result;
  CURL* curl = static_cast<CURL*>(curl_);
  error_[0] = '\0';
  SetBody(curl, json_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &result);

  const CURLcode code = curl_easy_perform(curl);

  ClearBody(curl);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, nullptr);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, nullptr);
  ClassifyTransfer(curl, code, error_.data(), result);
  return result;
}

struct MultiClient::Transfer {
  CURL* curl = nullptr;  // owned
  std::array<char, CURL_ERROR_SIZE> error{};
  PostResult result;  // filled by the callbacks (WRITEDATA, HEADERDATA point here)
  std::uint64_t tag = 0;
  std::size_t endpoint = 0;  // index of the endpoint that made it (its idle list)
  bool active = false;       // added to the multi handle

  ~Transfer() { curl_easy_cleanup(curl); }
};

struct MultiClient::Endpoint {
  ClientOptions options;                             // the strings libcurl copies come from here
  curl_slist* headers = nullptr;                     // owned
  std::vector<std::unique_ptr<Transfer>> transfers;  // every handle made for this endpoint
  std::vector<Transfer*> idle;                       // those not in flight

  ~Endpoint() {
    transfers.clear();  // the handles use `headers`
    curl_slist_free_all(headers);
  }
};

absl::StatusOr<std::unique_ptr<MultiClient>> MultiClient::Create() {
  if (absl::Status status = GlobalInit(); !status.ok()) return status;
  CURLM* multi = curl_multi_init();
  if (multi == nullptr) return absl::InternalError("librato: curl_multi_init failed");
  return std::unique_ptr<MultiClient>(new MultiClient(multi));
}

MultiClient::MultiClient(void* multi) : multi_(multi) {}

MultiClient::~MultiClient() {
  CancelAll();
  endpoints_.clear();
  curl_multi_cleanup(static_cast<CURLM*>(multi_));
}

absl::StatusOr<std::size_t> MultiClient::AddEndpoint(const ClientOptions& options) {
  if (absl::Status status = CheckOptions(options); !status.ok()) return status;
  auto endpoint = std::make_unique<Endpoint>();
  endpoint->options = options;
  endpoint->headers = FixedHeaders();
  if (endpoint->headers == nullptr) return absl::InternalError("librato: curl_slist_append failed");
  endpoints_.push_back(std::move(endpoint));
  return endpoints_.size() - 1;
}

absl::Status MultiClient::Start(std::size_t endpoint_index, std::string_view json_body, std::uint64_t tag) {
  if (endpoint_index >= endpoints_.size()) return absl::InvalidArgumentError("librato: unknown endpoint");
  Endpoint& endpoint = *endpoints_[endpoint_index];
  Transfer* transfer = nullptr;
  if (!endpoint.idle.empty()) {
    transfer = endpoint.idle.back();
    endpoint.idle.pop_back();
  } else {
    auto made = std::make_unique<Transfer>();
    made->curl = curl_easy_init();
    if (made->curl == nullptr) return absl::InternalError("librato: curl_easy_init failed");
    if (!Configure(made->curl, endpoint.options, endpoint.headers, made->error.data()) ||
        !SetOption(made->curl, CURLOPT_WRITEDATA, static_cast<void*>(&made->result)) ||
        !SetOption(made->curl, CURLOPT_HEADERDATA, static_cast<void*>(&made->result)) ||
        !SetOption(made->curl, CURLOPT_PRIVATE, static_cast<void*>(made.get()))) {
      return absl::InternalError("librato: curl_easy_setopt failed");
    }
    made->endpoint = endpoint_index;
    transfer = made.get();
    endpoint.transfers.push_back(std::move(made));
  }
  transfer->result = PostResult{};
  transfer->error[0] = '\0';
  transfer->tag = tag;
  SetBody(transfer->curl, json_body);
  if (curl_multi_add_handle(static_cast<CURLM*>(multi_), transfer->curl) != CURLM_OK) {
    ClearBody(transfer->curl);
    endpoint.idle.push_back(transfer);
    return absl::InternalError("librato: curl_multi_add_handle failed");
  }
  transfer->active = true;
  ++in_flight_;
  return absl::OkStatus();
}

void MultiClient::Finish(Transfer& transfer, int code, std::vector<Completion>& out) {
  CURLM* multi = static_cast<CURLM*>(multi_);
  ClassifyTransfer(transfer.curl, static_cast<CURLcode>(code), transfer.error.data(), transfer.result);
  curl_multi_remove_handle(multi, transfer.curl);  // an answered transfer's connection stays cached
  ClearBody(transfer.curl);
  transfer.active = false;
  --in_flight_;
  out.push_back(Completion{transfer.tag, std::move(transfer.result)});
  transfer.result = PostResult{};
  // Reused by the next Start to its endpoint: handles never outnumber the transfers that
  // were in flight at once (each new one was leaked into `transfers` before).
  endpoints_[transfer.endpoint]->idle.push_back(&transfer);
}

std::size_t MultiClient::handles() const {
  std::size_t n = 0;
  for (const std::unique_ptr<Endpoint>& endpoint : endpoints_) n += endpoint->transfers.size();
  return n;
}

void MultiClient::Poll(std::chrono::milliseconds timeout, std::vector<Completion>& out) {
  CURLM* multi = static_cast<CURLM*>(multi_);
  const std::size_t before = out.size();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (in_flight_ > 0) {
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* message = curl_multi_info_read(multi, &left)) {
      if (message->msg != CURLMSG_DONE) continue;
      void* transfer = nullptr;
      curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &transfer);
      // `message` is freed by the removal in Finish: read the result first.
      const CURLcode code = message->data.result;
      Finish(*static_cast<Transfer*>(transfer), code, out);
    }
    if (out.size() > before) return;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return;
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    curl_multi_poll(multi, nullptr, 0, static_cast<int>(std::max<std::int64_t>(1, wait)), nullptr);
  }
}

void MultiClient::CancelAll() {
  CURLM* multi = static_cast<CURLM*>(multi_);
  for (const std::unique_ptr<Endpoint>& endpoint : endpoints_) {
    for (const std::unique_ptr<Transfer>& transfer : endpoint->transfers) {
      if (!transfer->active) continue;
      curl_multi_remove_handle(multi, transfer->curl);  // an unfinished transfer's connection is closed
      ClearBody(transfer->curl);
      transfer->active = false;
      transfer->result = PostResult{};
      endpoint->idle.push_back(transfer.get());
    }
  }
  in_flight_ = 0;
}

}  // namespace drainmet::librato
