#include "common/config/snapshot.h"

#include <string>
#include <utility>

#include "common/base/strings.h"
#include "common/config/auth.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace drainmet::config {
namespace {

v1::OutputKind OutputToProto(OutputKind output) {
  switch (output) {
    case OutputKind::kLibrato:
      return v1::OUTPUT_KIND_LIBRATO;
    case OutputKind::kStdout:
      return v1::OUTPUT_KIND_STDOUT;
  }
  return v1::OUTPUT_KIND_UNSPECIFIED;  // not a valid Config; FromProto rejects it
}

absl::StatusOr<OutputKind> OutputFromProto(int output, std::size_t tenant) {
  switch (output) {
    case v1::OUTPUT_KIND_LIBRATO:
      return OutputKind::kLibrato;
    case v1::OUTPUT_KIND_STDOUT:
      return OutputKind::kStdout;
    default:
      return absl::InvalidArgumentError(
          base::Cat("tenants[", tenant, "].output: unknown output kind ", output));
  }
}

}  // namespace

v1::ConfigSnapshot ToProto(const Config& config, std::uint64_t version) {
  v1::ConfigSnapshot snapshot;
  snapshot.set_listen(config.listen);
  snapshot.set_threads(config.threads);
  snapshot.set_grace_seconds(config.grace_seconds);
  snapshot.set_retry_horizon_seconds(config.retry_horizon_seconds);
  snapshot.set_log_level(config.log_level);

  v1::Limits& limits = *snapshot.mutable_limits();
  limits.set_max_body_bytes(config.limits.max_body_bytes);
  limits.set_max_header_bytes(config.limits.max_header_bytes);
  limits.set_max_open_buckets(config.limits.max_open_buckets);
  limits.set_dedupe_window_seconds(config.limits.dedupe_window_seconds);
  limits.set_dedupe_max_entries(config.limits.dedupe_max_entries);
  limits.set_read_timeout_seconds(config.limits.read_timeout_seconds);
  limits.set_future_tolerance_seconds(config.limits.future_tolerance_seconds);
  limits.set_max_inflated_body_bytes(config.limits.max_inflated_body_bytes);
  limits.set_tenant_points_per_second(config.limits.tenant_points_per_second);
  limits.set_max_header_count(config.limits.max_header_count);
  limits.set_max_frames_per_request(config.limits.max_frames_per_request);
  limits.set_max_line_bytes(config.limits.max_line_bytes);
  limits.set_max_series_per_tenant(config.limits.max_series_per_tenant);
  limits.set_auth_failures_before_delay(config.limits.auth_failures_before_delay);
  limits.set_auth_failure_window_seconds(config.limits.auth_failure_window_seconds);
  limits.set_auth_failure_delay_ms(config.limits.auth_failure_delay_ms);

  v1::OutletSettings& outlet = *snapshot.mutable_outlet();
  outlet.set_interval_ms(config.outlet.interval_ms);
  outlet.set_connect_timeout_ms(config.outlet.connect_timeout_ms);
  outlet.set_request_timeout_ms(config.outlet.request_timeout_ms);
  outlet.set_max_gauges_per_request(config.outlet.max_gauges_per_request);
  outlet.set_max_inflight_requests(config.outlet.max_inflight_requests);
  outlet.set_max_pending_retry_bytes(config.outlet.max_pending_retry_bytes);
  outlet.set_retry_initial_backoff_ms(config.outlet.retry_initial_backoff_ms);
  outlet.set_retry_max_backoff_ms(config.outlet.retry_max_backoff_ms);
  outlet.set_lease_ttl_ms(config.outlet.lease_ttl_ms);
  outlet.set_lease_renew_ms(config.outlet.lease_renew_ms);
  outlet.set_seal_interval_ms(config.outlet.seal_interval_ms);

  v1::ReceiverSettings& receiver = *snapshot.mutable_receiver();
  receiver.set_flush_interval_ms(config.receiver.flush_interval_ms);
  receiver.set_max_series_in_memory(config.receiver.max_series_in_memory);
  receiver.set_flush_delay_ms(config.receiver.flush_delay_ms);
  receiver.set_watermark_interval_ms(config.receiver.watermark_interval_ms);
  receiver.set_watermark_ttl_ms(config.receiver.watermark_ttl_ms);

  v1::RedisSettings& redis = *snapshot.mutable_redis();
  redis.set_shards(config.redis.shards);
  for (const std::string& server : config.redis.servers) redis.add_servers(server);
  redis.set_connect_timeout_ms(config.redis.connect_timeout_ms);
  redis.set_command_timeout_ms(config.redis.command_timeout_ms);

  for (const Tenant& tenant : config.tenants) {
    v1::Tenant& out = *snapshot.add_tenants();
    out.set_id(tenant.id);
    for (const std::string& hash : tenant.token_hashes) out.add_token_hashes(hash);
    out.set_default_resolution_seconds(tenant.default_resolution_seconds);
    out.set_output(OutputToProto(tenant.output));
    v1::LibratoAccount& librato = *out.mutable_librato();
    librato.set_url(tenant.librato.url);
    librato.set_email(tenant.librato.email);
    librato.set_api_token(tenant.librato.api_token);
  }

  for (const SyslogDrain& drain : config.syslog.drains) {
    v1::SyslogDrain& out = *snapshot.add_syslog_drains();
    out.set_token(drain.token);
    out.set_tenant(drain.tenant);
    out.set_resolution_seconds(drain.resolution_seconds);
    out.set_prefix(drain.prefix);
    out.set_source_prefix(drain.source_prefix);
  }

  snapshot.set_content_hash(ContentHash(snapshot));
  snapshot.set_version(version);
  return snapshot;
}

std::string ContentHash(const v1::ConfigSnapshot& snapshot) {
  v1::ConfigSnapshot content = snapshot;
  content.clear_version();
  content.clear_content_hash();
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    content.SerializeToCodedStream(&coded);
  }
  // HashToken is "sha256:" + hex(SHA-256(bytes)): the same form for any byte string.
  return HashToken(bytes);
}

absl::StatusOr<Config> FromProto(const v1::ConfigSnapshot& snapshot) {
  Config config;
  config.listen = snapshot.listen();
  config.threads = snapshot.threads();
  config.grace_seconds = snapshot.grace_seconds();
  config.retry_horizon_seconds = snapshot.retry_horizon_seconds();
  config.log_level = snapshot.log_level();

  if (snapshot.has_limits()) {
    const v1::Limits& limits = snapshot.limits();
    config.limits.max_body_bytes = limits.max_body_bytes();
    config.limits.max_header_bytes = limits.max_header_bytes();
    config.limits.max_open_buckets = limits.max_open_buckets();
    config.limits.dedupe_window_seconds = limits.dedupe_window_seconds();
    config.limits.dedupe_max_entries = limits.dedupe_max_entries();
    config.limits.read_timeout_seconds = limits.read_timeout_seconds();
    config.limits.future_tolerance_seconds = limits.future_tolerance_seconds();
    if (limits.max_inflated_body_bytes() != 0)
      config.limits.max_inflated_body_bytes = limits.max_inflated_body_bytes();
    if (limits.has_tenant_points_per_second())
      config.limits.tenant_points_per_second = limits.tenant_points_per_second();
    if (limits.max_header_count() != 0) config.limits.max_header_count = limits.max_header_count();
    if (limits.max_frames_per_request() != 0)
      config.limits.max_frames_per_request = limits.max_frames_per_request();
    if (limits.max_line_bytes() != 0) config.limits.max_line_bytes = limits.max_line_bytes();
    if (limits.max_series_per_tenant() != 0)
      config.limits.max_series_per_tenant = limits.max_series_per_tenant();
    if (limits.auth_failures_before_delay() != 0)
      config.limits.auth_failures_before_delay = limits.auth_failures_before_delay();
    if (limits.auth_failure_window_seconds() != 0)
      config.limits.auth_failure_window_seconds = limits.auth_failure_window_seconds();
    if (limits.auth_failure_delay_ms() != 0)
      config.limits.auth_failure_delay_ms = limits.auth_failure_delay_ms();
  }
  if (snapshot.has_outlet()) {
    const v1::OutletSettings& outlet = snapshot.outlet();
    config.outlet.interval_ms = outlet.interval_ms();
    config.outlet.connect_timeout_ms = outlet.connect_timeout_ms();
    config.outlet.request_timeout_ms = outlet.request_timeout_ms();
    config.outlet.max_gauges_per_request = outlet.max_gauges_per_request();
    // Absent (0) in a snapshot of a config service that predates the field: the default.
    if (outlet.max_inflight_requests() != 0)
      config.outlet.max_inflight_requests = outlet.max_inflight_requests();
    if (outlet.max_pending_retry_bytes() != 0)
      config.outlet.max_pending_retry_bytes = outlet.max_pending_retry_bytes();
    config.outlet.retry_initial_backoff_ms = outlet.retry_initial_backoff_ms();
    config.outlet.retry_max_backoff_ms = outlet.retry_max_backoff_ms();
    config.outlet.lease_ttl_ms = outlet.lease_ttl_ms();
    config.outlet.lease_renew_ms = outlet.lease_renew_ms();
    if (outlet.seal_interval_ms() != 0) config.outlet.seal_interval_ms = outlet.seal_interval_ms();
  }
  if (snapshot.has_receiver()) {
    config.receiver.flush_interval_ms = snapshot.receiver().flush_interval_ms();
    config.receiver.max_series_in_memory = snapshot.receiver().max_series_in_memory();
    config.receiver.flush_delay_ms = snapshot.receiver().flush_delay_ms();
    if (snapshot.receiver().watermark_interval_ms() != 0)
      config.receiver.watermark_interval_ms = snapshot.receiver().watermark_interval_ms();
    if (snapshot.receiver().watermark_ttl_ms() != 0)
      config.receiver.watermark_ttl_ms = snapshot.receiver().watermark_ttl_ms();
  }
  if (snapshot.has_redis()) {
    const v1::RedisSettings& redis = snapshot.redis();
    config.redis.shards = redis.shards();
    config.redis.servers.assign(redis.servers().begin(), redis.servers().end());
    config.redis.connect_timeout_ms = redis.connect_timeout_ms();
    config.redis.command_timeout_ms = redis.command_timeout_ms();
  }

  config.tenants.reserve(static_cast<std::size_t>(snapshot.tenants_size()));
  for (int i = 0; i < snapshot.tenants_size(); ++i) {
    const v1::Tenant& in = snapshot.tenants(i);
    Tenant tenant;
    tenant.id = in.id();
    tenant.token_hashes.assign(in.token_hashes().begin(), in.token_hashes().end());
    tenant.default_resolution_seconds = in.default_resolution_seconds();
    absl::StatusOr<OutputKind> output = OutputFromProto(in.output(), static_cast<std::size_t>(i));
    if (!output.ok()) return output.status();
    tenant.output = *output;
    if (in.has_librato()) {
      tenant.librato.url = in.librato().url();
      tenant.librato.email = in.librato().email();
      tenant.librato.api_token = in.librato().api_token();
    }
    config.tenants.push_back(std::move(tenant));
  }

  for (const v1::SyslogDrain& in : snapshot.syslog_drains()) {
    config.syslog.drains.push_back(
        SyslogDrain{in.token(), in.tenant(), in.resolution_seconds(), in.prefix(), in.source_prefix()});
  }

  if (absl::Status status = Validate(config); !status.ok()) return status;
  return config;
}

}  // namespace drainmet::config
