#include "common/emit/sink.h"

#include "common/telemetry/log.h"

namespace drainmet::emit {

namespace {

// A client that cannot be made (validation accepted the URL, so this is not expected) or a
// transfer libcurl refused: retrying cannot fix the former; the latter is rare (out of
// memory) and retried as a transport failure.
librato::PostResult Failure(librato::Delivery delivery, const absl::Status& status) {
  librato::PostResult result;
  result.delivery = delivery;
  result.error = std::string(status.message());
  return result;
}

}  // namespace

void Sink::Start(std::size_t tenant_index, std::string_view json_body, std::uint64_t tag) {
  ready_.push_back(librato::Completion{tag, Post(tenant_index, json_body)});
}

void Sink::Poll(std::chrono::milliseconds, std::vector<librato::Completion>& out) {
  for (librato::Completion& c : ready_) out.push_back(std::move(c));
  ready_.clear();
}

void Sink::CancelAll() { ready_.clear(); }

LibratoSink::LibratoSink(const config::Config& config)
    : config_(config), clients_(config.tenants.size()), endpoints_(config.tenants.size(), 0) {}

librato::ClientOptions LibratoSink::Options(std::size_t tenant_index) const {
  const config::Tenant& tenant = config_.tenants[tenant_index];
  librato::ClientOptions options;
  options.url = tenant.librato.url;
  options.email = tenant.librato.email;
  options.api_token = tenant.librato.api_token;
  options.connect_timeout_ms = config_.outlet.connect_timeout_ms;
  options.request_timeout_ms = config_.outlet.request_timeout_ms;
  return options;
}

librato::PostResult LibratoSink::Post(std::size_t tenant_index, std::string_view json_body) {
  std::unique_ptr<librato::Client>& client = clients_.at(tenant_index);
  if (!client) {
    absl::StatusOr<std::unique_ptr<librato::Client>> created = librato::Client::Create(Options(tenant_index));
    if (!created.ok()) return Failure(librato::Delivery::kRejected, created.status());
    client = *std::move(created);
  }
  return client->Post(json_body);
}

void LibratoSink::Start(std::size_t tenant_index, std::string_view json_body, std::uint64_t tag) {
  std::size_t& endpoint = endpoints_.at(tenant_index);
  if (!multi_) {
    absl::StatusOr<std::unique_ptr<librato::MultiClient>> created = librato::MultiClient::Create();
    if (!created.ok()) {
      failed_.push_back(librato::Completion{tag, Failure(librato::Delivery::kRetry, created.status())});
      return;
    }
    multi_ = *std::move(created);
  }
  if (endpoint == 0) {
    absl::StatusOr<std::size_t> added = multi_->AddEndpoint(Options(tenant_index));
    if (!added.ok()) {
      failed_.push_back(librato::Completion{tag, Failure(librato::Delivery::kRejected, added.status())});
      return;
    }
    endpoint = *added + 1;
  }
  if (absl::Status started = multi_->Start(endpoint - 1, json_body, tag); !started.ok())
    failed_.push_back(librato::Completion{tag, Failure(librato::Delivery::kRetry, started)});
}

void LibratoSink::Poll(std::chrono::milliseconds timeout, std::vector<librato::Completion>& out) {
  if (!failed_.empty()) {
    for (librato::Completion& c : failed_) out.push_back(std::move(c));
    failed_.clear();
    timeout = std::chrono::milliseconds(0);
  }
  if (multi_) multi_->Poll(timeout, out);
}

void LibratoSink::CancelAll() {
  failed_.clear();
  if (multi_) multi_->CancelAll();
}

std::size_t LibratoSink::InFlight() const { return failed_.size() + (multi_ ? multi_->in_flight() : 0); }

librato::PostResult StdoutSink::Post(std::size_t, std::string_view json_body) {
  std::lock_guard<std::mutex> lock(mu_);
  librato::PostResult result;
  const bool ok = std::fwrite(json_body.data(), 1, json_body.size(), out_) == json_body.size() &&
                  std::fputc('\n', out_) != EOF && std::fflush(out_) == 0;
  result.delivery = ok ? librato::Delivery::kAccepted : librato::Delivery::kRetry;
  result.http_status = ok ? 200 : 0;
  if (!ok) result.error = "write to stdout failed";
  return result;
}

TenantSink::TenantSink(const config::Config& config, std::FILE* out)
    : config_(config), librato_(config), stdout_(out) {}

std::string_view TenantSink::OutputName(std::size_t tenant_index) const {
  return config_.tenants.at(tenant_index).output == config::OutputKind::kStdout
             ? stdout_.OutputName(tenant_index)
             : librato_.OutputName(tenant_index);
}

void TenantSink::Start(std::size_t tenant_index, std::string_view json_body, std::uint64_t tag) {
  if (config_.tenants.at(tenant_index).output == config::OutputKind::kStdout) {
    stdout_.Start(tenant_index, json_body, tag);
  } else {
    librato_.Start(tenant_index, json_body, tag);
  }
}

void TenantSink::Poll(std::chrono::milliseconds timeout, std::vector<librato::Completion>& out) {
  const std::size_t before = out.size();
  stdout_.Poll(timeout, out);
  librato_.Poll(out.size() > before ? std::chrono::milliseconds(0) : timeout, out);
}

void TenantSink::CancelAll() {
  stdout_.CancelAll();
  librato_.CancelAll();
}

std::size_t TenantSink::InFlight() const { return stdout_.InFlight() + librato_.InFlight(); }

librato::PostResult TenantSink::Post(std::size_t tenant_index, std::string_view json_body) {
  if (config_.tenants.at(tenant_index).output == config::OutputKind::kStdout) {
    return stdout_.Post(tenant_index, json_body);
  }
  return librato_.Post(tenant_index, json_body);
}

}  // namespace drainmet::emit
