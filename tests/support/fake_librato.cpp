#include "tests/support/fake_librato.h"

#include "common/base/strings.h"
#include "common/config/auth.h"
#include "fmt/format.h"

namespace drainmet::support {

std::optional<std::string_view> RecordedRequest::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (base::EqualsIgnoreCase(key, name)) return std::string_view(value);
  }
  return std::nullopt;
}

absl::StatusOr<std::unique_ptr<FakeLibrato>> FakeLibrato::Start() {
  std::unique_ptr<FakeLibrato> fake(new FakeLibrato());
  http::ServerOptions options;
  options.address = "127.0.0.1";
  options.port = 0;
  options.threads = 4;
  options.max_body_bytes = 16 << 20;
  FakeLibrato* raw = fake.get();
  auto server =
      http::Server::Start(options, [raw](const http::Request& request) { return raw->Handle(request); });
  if (!server.ok()) return server.status();
  fake->server_ = *std::move(server);
  return fake;
}

FakeLibrato::~FakeLibrato() { Stop(); }

std::uint16_t FakeLibrato::port() const { return server_->port(); }

std::string FakeLibrato::Url() const { return fmt::format("http://127.0.0.1:{}/v1/metrics", port()); }

void FakeLibrato::Script(std::vector<Answer> answers) {
  std::lock_guard<std::mutex> lock(mu_);
  script_ = std::move(answers);
  next_answer_ = 0;
}

bool FakeLibrato::WaitForRequests(std::size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return arrived_.wait_for(lock, timeout, [&] { return requests_.size() >= count; });
}

std::vector<RecordedRequest> FakeLibrato::Requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

std::vector<nlohmann::json> FakeLibrato::Gauges() const {
  std::vector<nlohmann::json> gauges;
  for (const RecordedRequest& request : Requests()) {
    if (request.status < 200 || request.status > 299) continue;
    const nlohmann::json body =
        nlohmann::json::parse(request.body, /*cb=*/nullptr, /*allow_exceptions=*/false);
    if (!body.is_object()) continue;
    const auto found = body.find("gauges");
    if (found == body.end() || !found->is_array()) continue;
    for (const nlohmann::json& gauge : *found) gauges.push_back(gauge);
  }
  return gauges;
}

void FakeLibrato::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stopping_cv_.notify_all();
  if (server_) server_->Stop(5000);
}

http::Response FakeLibrato::Handle(const http::Request& request) {
  RecordedRequest record;
  record.received = std::chrono::steady_clock::now();
  record.method = request.method;
  record.target = request.target;
  record.headers = request.headers;
  record.body = request.body;
  record.remote_address = request.remote_address;
  if (const auto authorization = request.Header("Authorization")) {
    // The same parser the service uses for drains: RFC 7617, both base64 alphabets.
    if (std::optional<config::BasicCredentials> credentials =
            config::ParseBasicAuthorization(*authorization)) {
      record.basic_auth = true;
      record.user = credentials->user;
      record.password = credentials->password;
    }
  }

  Answer answer;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (next_answer_ < script_.size()) answer = script_[next_answer_++];
    record.status = answer.status;
    requests_.push_back(std::move(record));
    arrived_.notify_all();
    if (answer.delay_ms > 0) {
      stopping_cv_.wait_for(lock, std::chrono::milliseconds(answer.delay_ms), [this] { return stopping_; });
    }
  }

  http::Response response;
  response.status = answer.status;
  response.content_type = "application/json";
  response.body = std::move(answer.body);
  if (answer.retry_after) response.headers.emplace_back("Retry-After", *answer.retry_after);
  return response;
}

}  // namespace drainmet::support
