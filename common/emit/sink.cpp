#include "common/emit/sink.h"

#include "common/telemetry/log.h"

namespace drainmet::emit {

LibratoSink::LibratoSink(const config::Config& config) : config_(config), clients_(config.tenants.size()) {}

librato::PostResult LibratoSink::Post(std::size_t tenant_index, std::string_view json_body) {
  std::unique_ptr<librato::Client>& client = clients_.at(tenant_index);
  if (!client) {
    const config::Tenant& tenant = config_.tenants[tenant_index];
    librato::ClientOptions options;
    options.url = tenant.librato.url;
    options.email = tenant.librato.email;
    options.api_token = tenant.librato.api_token;
    options.connect_timeout_ms = config_.outlet.connect_timeout_ms;
    options.request_timeout_ms = config_.outlet.request_timeout_ms;
    absl::StatusOr<std::unique_ptr<librato::Client>> created = librato::Client::Create(options);
    if (!created.ok()) {
      // Validation accepted the URL, so this is not expected; retrying cannot fix it.
      librato::PostResult result;
      result.delivery = librato::Delivery::kRejected;
      result.error = std::string(created.status().message());
      return result;
    }
    client = *std::move(created);
  }
  return client->Post(json_body);
}

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

librato::PostResult TenantSink::Post(std::size_t tenant_index, std::string_view json_body) {
  if (config_.tenants.at(tenant_index).output == config::OutputKind::kStdout) {
    return stdout_.Post(tenant_index, json_body);
  }
  return librato_.Post(tenant_index, json_body);
}

}  // namespace drainmet::emit
