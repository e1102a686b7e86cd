#include "common/config/config.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "common/base/strings.h"
#include "common/http/tls.h"
#include "common/telemetry/log.h"
#include "yaml-cpp/yaml.h"

namespace drainmet::config {
namespace {

using base::Cat;
using base::StartsWith;
using base::StartsWithIgnoreCase;

// A config file larger than this is certainly a mistake (a log file given as config).
constexpr std::size_t kMaxFileBytes = 16 << 20;

// redis.shards at most (docs/configuration.md).
constexpr std::uint32_t kMaxShards = 4096;

absl::Status Error(std::string_view path, std::string_view message) {
  return absl::InvalidArgumentError(Cat(path, ": ", message));
}

std::string Child(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : Cat(path, ".", key);
}

std::string Element(std::string_view path, std::size_t index) { return Cat(path, "[", index, "]"); }

// Calls `handle(key, value, key_path)` for each entry of the mapping `node`, in document
// order. A null node is an empty mapping (`limits:` with every key commented out). Unknown
// and repeated keys are errors naming their path.
template <typename Handler>
absl::Status ForEachEntry(const YAML::Node& node, std::string_view path,
                          std::initializer_list<std::string_view> known, Handler&& handle) {
  if (node.IsNull()) return absl::OkStatus();
  if (!node.IsMap()) return Error(path.empty() ? "top level" : path, "must be a mapping");
  std::set<std::string, std::less<>> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) return Error(path.empty() ? "top level" : path, "keys must be strings");
    const std::string& key = it->first.Scalar();
    const std::string key_path = Child(path, key);
    if (std::find(known.begin(), known.end(), key) == known.end()) return Error(key_path, "unknown key");
    if (!seen.insert(key).second) return Error(key_path, "duplicate key");
    if (absl::Status status = handle(std::string_view(key), it->second, key_path); !status.ok())
      return status;
  }
  return absl::OkStatus();
}

absl::Status ReadString(const YAML::Node& node, std::string_view path, std::string* out) {
  if (!node.IsScalar()) return Error(path, "must be a string");
  *out = node.Scalar();
  return absl::OkStatus();
}

// A plain scalar (or one tagged !!int): quoted strings are not numbers, even in YAML.
bool IsPlainScalar(const YAML::Node& node) {
  return node.IsScalar() && (node.Tag() == "?" || node.Tag() == "tag:yaml.org,2002:int");
}

// Decimal integer of type T, the whole scalar (no sign for unsigned T, no '+', no spaces).
template <typename T>
bool ParseInteger(const YAML::Node& node, T* out) {
  if (!IsPlainScalar(node)) return false;
  const std::string& text = node.Scalar();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

absl::Status ReadUint64(const YAML::Node& node, std::string_view path, std::uint64_t* out) {
  if (!ParseInteger(node, out)) return Error(path, "must be a non-negative integer");
  return absl::OkStatus();
}

absl::Status ReadUint32(const YAML::Node& node, std::string_view path, std::uint32_t* out) {
  if (!ParseInteger(node, out)) return Error(path, "must be a non-negative integer below 2^32");
  return absl::OkStatus();
}

absl::Status ReadInt64(const YAML::Node& node, std::string_view path, std::int64_t* out) {
  if (!ParseInteger(node, out)) return Error(path, "must be an integer");
  return absl::OkStatus();
}

absl::Status ReadInt(const YAML::Node& node, std::string_view path, int* out) {
  if (!ParseInteger(node, out)) return Error(path, "must be an integer");
  return absl::OkStatus();
}

absl::Status ReadStringList(const YAML::Node& node, std::string_view path, std::vector<std::string>* out) {
  out->clear();
  if (node.IsNull()) return absl::OkStatus();
  if (!node.IsSequence()) return Error(path, "must be a list of strings");
  for (std::size_t i = 0; i < node.size(); ++i) {
    std::string value;
    if (absl::Status status = ReadString(node[i], Element(path, i), &value); !status.ok()) return status;
    out->push_back(std::move(value));
  }
  return absl::OkStatus();
}

absl::Status ParseLimits(const YAML::Node& node, std::string_view path, Limits* limits) {
  return ForEachEntry(node, path,
                      {"max_body_bytes", "max_header_bytes", "max_open_buckets", "dedupe_window_seconds",
                       "dedupe_max_entries", "read_timeout_seconds", "future_tolerance_seconds",
                       "max_inflated_body_bytes", "tenant_points_per_second", "max_header_count",
                       "max_frames_per_request", "max_line_bytes", "max_series_per_tenant",
                       "auth_failures_before_delay", "auth_failure_window_seconds", "auth_failure_delay_ms"},
                      [&](std::string_view key, const YAML::Node& value, const std::string& key_path) {
                        if (key == "max_body_bytes")
                          return ReadUint64(value, key_path, &limits->max_body_bytes);
                        if (key == "max_header_bytes")
                          return ReadUint32(value, key_path, &limits->max_header_bytes);
                        if (key == "max_open_buckets")
                          return ReadUint64(value, key_path, &limits->max_open_buckets);
                        if (key == "dedupe_window_seconds") {
                          return ReadInt64(value, key_path, &limits->dedupe_window_seconds);
                        }
                        if (key == "dedupe_max_entries")
                          return ReadUint64(value, key_path, &limits->dedupe_max_entries);
                        if (key == "read_timeout_seconds") {
                          return ReadInt64(value, key_path, &limits->read_timeout_seconds);
                        }
                        if (key == "max_inflated_body_bytes")
                          return ReadUint64(value, key_path, &limits->max_inflated_body_bytes);
                        if (key == "tenant_points_per_second")
                          return ReadUint64(value, key_path, &limits->tenant_points_per_second);
                        if (key == "max_header_count")
                          return ReadUint32(value, key_path, &limits->max_header_count);
                        if (key == "max_frames_per_request")
                          return ReadUint64(value, key_path, &limits->max_frames_per_request);
                        if (key == "max_line_bytes")
                          return ReadUint64(value, key_path, &limits->max_line_bytes);
                        if (key == "max_series_per_tenant")
                          return ReadUint64(value, key_path, &limits->max_series_per_tenant);
                        if (key == "auth_failures_before_delay")
                          return ReadUint32(value, key_path, &limits->auth_failures_before_delay);
                        if (key == "auth_failure_window_seconds")
                          return ReadInt64(value, key_path, &limits->auth_failure_window_seconds);
                        if (key == "auth_failure_delay_ms")
                          return ReadInt64(value, key_path, &limits->auth_failure_delay_ms);
                        return ReadInt64(value, key_path, &limits->future_tolerance_seconds);
                      });
}

absl::Status ParseOutlet(const YAML::Node& node, std::string_view path, Outlet* outlet) {
  return ForEachEntry(node, path,
                      {"interval_ms", "connect_timeout_ms", "request_timeout_ms", "max_gauges_per_request",
                       "max_inflight_requests", "retry_initial_backoff_ms", "retry_max_backoff_ms",
                       "lease_ttl_ms", "lease_renew_ms", "max_pending_retry_bytes", "seal_interval_ms"},
                      [&](std::string_view key, const YAML::Node& value, const std::string& key_path) {
                        if (key == "interval_ms") return ReadInt64(value, key_path, &outlet->interval_ms);
                        if (key == "seal_interval_ms")
                          return ReadInt64(value, key_path, &outlet->seal_interval_ms);
                        if (key == "max_pending_retry_bytes")
                          return ReadUint64(value, key_path, &outlet->max_pending_retry_bytes);
                        if (key == "connect_timeout_ms")
                          return ReadInt64(value, key_path, &outlet->connect_timeout_ms);
                        if (key == "request_timeout_ms")
                          return ReadInt64(value, key_path, &outlet->request_timeout_ms);
                        if (key == "max_gauges_per_request") {
                          return ReadInt(value, key_path, &outlet->max_gauges_per_request);
                        }
                        if (key == "max_inflight_requests") {
                          return ReadInt(value, key_path, &outlet->max_inflight_requests);
                        }
                        if (key == "retry_initial_backoff_ms") {
                          return ReadInt64(value, key_path, &outlet->retry_initial_backoff_ms);
                        }
                        if (key == "lease_ttl_ms") return ReadInt64(value, key_path, &outlet->lease_ttl_ms);
                        if (key == "lease_renew_ms")
                          return ReadInt64(value, key_path, &outlet->lease_renew_ms);
                        return ReadInt64(value, key_path, &outlet->retry_max_backoff_ms);
                      });
}

absl::Status ParseReceiver(const YAML::Node& node, std::string_view path, Receiver* receiver) {
  return ForEachEntry(node, path,
                      {"flush_interval_ms", "flush_delay_ms", "max_series_in_memory", "watermark_interval_ms",
                       "watermark_ttl_ms"},
                      [&](std::string_view key, const YAML::Node& value, const std::string& key_path) {
                        if (key == "watermark_interval_ms")
                          return ReadInt64(value, key_path, &receiver->watermark_interval_ms);
                        if (key == "watermark_ttl_ms")
                          return ReadInt64(value, key_path, &receiver->watermark_ttl_ms);
                        if (key == "flush_interval_ms")
                          return ReadInt64(value, key_path, &receiver->flush_interval_ms);
                        if (key == "flush_delay_ms")
                          return ReadInt64(value, key_path, &receiver->flush_delay_ms);
                        return ReadUint64(value, key_path, &receiver->max_series_in_memory);
                      });
}

absl::Status ParseRedis(const YAML::Node& node, std::string_view path, Redis* redis) {
  return ForEachEntry(node, path, {"shards", "servers", "connect_timeout_ms", "command_timeout_ms"},
                      [&](std::string_view key, const YAML::Node& value, const std::string& key_path) {
                        if (key == "shards") return ReadUint32(value, key_path, &redis->shards);
                        if (key == "servers") return ReadStringList(value, key_path, &redis->servers);
                        if (key == "connect_timeout_ms")
                          return ReadInt64(value, key_path, &redis->connect_timeout_ms);
                        return ReadInt64(value, key_path, &redis->command_timeout_ms);
                      });
}

absl::Status ParseSyslogDrain(const YAML::Node& node, const std::string& path, SyslogDrain* drain) {
  if (node.IsNull() || !node.IsMap()) return Error(path, "must be a mapping");
  return ForEachEntry(node, path, {"token", "tenant", "resolution_seconds", "prefix", "source_prefix"},
                      [&](std::string_view key, const YAML::Node& value, const std::string& key_path) {
                        if (key == "token") return ReadString(value, key_path, &drain->token);
                        if (key == "tenant") return ReadString(value, key_path, &drain->tenant);
                        if (key == "resolution_seconds")
                          return ReadInt(value, key_path, &drain->resolution_seconds);
                        if (key == "prefix") return ReadString(value, key_path, &drain->prefix);
                        return ReadString(value, key_path, &drain->source_prefix);
                      });
}

absl::Status ParseSyslog(const YAML::Node& node, std::string_view path, Syslog* syslog) {
  return ForEachEntry(
      node, path,
      {"listen", "tls_listen", "tls_cert_file", "tls_key_file", "max_line_bytes", "max_connections",
       "idle_timeout_seconds", "drains"},
      [&](std::string_view key, const YAML::Node& value, const std::string& key_path) -> absl::Status {
        if (key == "listen") return ReadString(value, key_path, &syslog->listen);
        if (key == "tls_listen") return ReadString(value, key_path, &syslog->tls_listen);
        if (key == "tls_cert_file") return ReadString(value, key_path, &syslog->tls_cert_file);
        if (key == "tls_key_file") return ReadString(value, key_path, &syslog->tls_key_file);
        if (key == "max_line_bytes") return ReadUint64(value, key_path, &syslog->max_line_bytes);
        if (key == "max_connections") return ReadUint64(value, key_path, &syslog->max_connections);
        if (key == "idle_timeout_seconds") return ReadInt64(value, key_path, &syslog->idle_timeout_seconds);
        // drains
        syslog->drains.clear();
        if (value.IsNull()) return absl::OkStatus();
        if (!value.IsSequence()) return Error(key_path, "must be a list of drains");
        for (std::size_t i = 0; i < value.size(); ++i) {
          SyslogDrain drain;
          if (absl::Status s = ParseSyslogDrain(value[i], Element(key_path, i), &drain); !s.ok()) return s;
          syslog->drains.push_back(std::move(drain));
        }
        return absl::OkStatus();
      });
}

class TenantParser {
 public:
  explicit TenantParser(const EnvLookup& env) : env_(env) {}

  absl::Status Parse(const YAML::Node& node, const std::string& path, Tenant* tenant) {
    if (node.IsNull() || !node.IsMap()) return Error(path, "must be a mapping");
    std::optional<std::string> api_token, api_token_env;
    absl::Status status =
        ForEachEntry(node, path, {"id", "token_hashes", "default_resolution_seconds", "output", "librato"},
                     [&](std::string_view key, const YAML::Node& value, const std::string& key_path) {
                       if (key == "id") return ReadString(value, key_path, &tenant->id);
                       if (key == "token_hashes")
                         return ReadStringList(value, key_path, &tenant->token_hashes);
                       if (key == "default_resolution_seconds") {
                         return ReadInt(value, key_path, &tenant->default_resolution_seconds);
                       }
                       if (key == "output") return ParseOutput(value, key_path, &tenant->output);
                       return ParseLibrato(value, key_path, &tenant->librato, &api_token, &api_token_env);
                     });
    if (!status.ok()) return status;

    const std::string librato_path = Child(path, "librato");
    if (api_token.has_value() && api_token_env.has_value()) {
      return Error(librato_path, "api_token and api_token_env are exclusive");
    }
    if (api_token.has_value()) tenant->librato.api_token = *std::move(api_token);
    if (api_token_env.has_value()) {
      // Resolved after the whole tenant is read, so that the message can name its id.
      const std::string env_path = Child(librato_path, "api_token_env");
      if (api_token_env->empty()) return Error(env_path, "must name an environment variable");
      std::optional<std::string> value = env_ ? env_(*api_token_env) : std::nullopt;
      if (!value.has_value()) {
        return Error(env_path, Cat("environment variable ", *api_token_env, " of tenant \"", tenant->id,
                                   "\" is not set"));
      }
      if (value->empty()) {
        return Error(env_path, Cat("environment variable ", *api_token_env, " of tenant \"", tenant->id,
                                   "\" is empty"));
      }
      tenant->librato.api_token = *std::move(value);
    }
    return absl::OkStatus();
  }

 private:
  static absl::Status ParseOutput(const YAML::Node& node, std::string_view path, OutputKind* output) {
    std::string text;
    if (absl::Status status = ReadString(node, path, &text); !status.ok()) return status;
    if (text == "librato") {
      *output = OutputKind::kLibrato;
    } else if (text == "stdout") {
      *output = OutputKind::kStdout;
    } else {
      return Error(path, "must be \"librato\" or \"stdout\"");
    }
    return absl::OkStatus();
  }

  static absl::Status ParseLibrato(const YAML::Node& node, std::string_view path, LibratoOutput* librato,
                                   std::optional<std::string>* api_token,
                                   std::optional<std::string>* api_token_env) {
    return ForEachEntry(node, path, {"url", "email", "api_token", "api_token_env"},
                        [&](std::string_view key, const YAML::Node& value, const std::string& key_path) {
                          if (key == "url") return ReadString(value, key_path, &librato->url);
                          if (key == "email") return ReadString(value, key_path, &librato->email);
                          std::optional<std::string>* target = key == "api_token" ? api_token : api_token_env;
                          return ReadString(value, key_path, &target->emplace());
                        });
  }

  const EnvLookup& env_;
};

absl::Status ParseRoot(const YAML::Node& root, const EnvLookup& env, Config* config) {
  TenantParser tenant_parser(env);
  return ForEachEntry(
      root, "",
      {"listen", "tls_cert_file", "tls_key_file", "threads", "grace_seconds", "retry_horizon_seconds",
       "log_level", "limits", "outlet", "receiver", "redis", "syslog", "tenants"},
      [&](std::string_view key, const YAML::Node& value, const std::string& key_path) -> absl::Status {
        if (key == "listen") return ReadString(value, key_path, &config->listen);
        if (key == "tls_cert_file") return ReadString(value, key_path, &config->tls_cert_file);
        if (key == "tls_key_file") return ReadString(value, key_path, &config->tls_key_file);
        if (key == "threads") return ReadInt(value, key_path, &config->threads);
        if (key == "grace_seconds") return ReadInt64(value, key_path, &config->grace_seconds);
        if (key == "retry_horizon_seconds") return ReadInt64(value, key_path, &config->retry_horizon_seconds);
        if (key == "log_level") return ReadString(value, key_path, &config->log_level);
        if (key == "limits") return ParseLimits(value, key_path, &config->limits);
        if (key == "outlet") return ParseOutlet(value, key_path, &config->outlet);
        if (key == "receiver") return ParseReceiver(value, key_path, &config->receiver);
        if (key == "redis") return ParseRedis(value, key_path, &config->redis);
        if (key == "syslog") return ParseSyslog(value, key_path, &config->syslog);
        // tenants
        if (value.IsNull()) return absl::OkStatus();
        if (!value.IsSequence()) return Error(key_path, "must be a list of tenants");
        for (std::size_t i = 0; i < value.size(); ++i) {
          Tenant tenant;
          if (absl::Status status = tenant_parser.Parse(value[i], Element(key_path, i), &tenant);
              !status.ok()) {
            return status;
          }
          config->tenants.push_back(std::move(tenant));
        }
        return absl::OkStatus();
      });
}

bool IsIdByte(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool IsWellFormedTokenHash(std::string_view hash) {
  constexpr std::string_view kPrefix = "sha256:";
  if (hash.size() != kPrefix.size() + 64 || !StartsWith(hash, kPrefix)) return false;
  return std::all_of(hash.begin() + kPrefix.size(), hash.end(), IsLowerHex);
}

// http(s)://AUTHORITY[/...] with a non-empty authority and no blank or control byte.
bool IsHttpUrl(std::string_view url) {
  std::string_view rest;
  if (StartsWithIgnoreCase(url, "https://")) {
    rest = url.substr(8);
  } else if (StartsWithIgnoreCase(url, "http://")) {
    rest = url.substr(7);
  } else {
    return false;
  }
  const std::size_t authority_end = rest.find_first_of("/?#");
  if (rest.substr(0, authority_end).empty()) return false;
  return std::none_of(url.begin(), url.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte <= 0x20 || byte == 0x7F;
  });
}

absl::Status Positive(std::int64_t value, std::string_view path) {
  if (value <= 0) return Error(path, "must be > 0");
  return absl::OkStatus();
}

absl::Status ValidateRedis(const Redis& redis) {
  if (redis.shards < 1 || redis.shards > kMaxShards) {
    return Error("redis.shards", Cat("must be between 1 and ", kMaxShards));
  }
  if (redis.servers.empty()) return Error("redis.servers", "at least one server is required");
  std::map<std::string_view, std::size_t> seen;  // address -> index
  for (std::size_t i = 0; i < redis.servers.size(); ++i) {
    const std::string path = Element("redis.servers", i);
    if (absl::StatusOr<RedisAddress> address = ParseRedisAddress(redis.servers[i]); !address.ok()) {
      return Error(path, std::string(address.status().message()));
    }
    if (auto [it, inserted] = seen.emplace(redis.servers[i], i); !inserted) {
      return Error(path, Cat("duplicate of redis.servers[", it->second, "]"));
    }
  }
  if (absl::Status s = Positive(redis.connect_timeout_ms, "redis.connect_timeout_ms"); !s.ok()) return s;
  return Positive(redis.command_timeout_ms, "redis.command_timeout_ms");
}

// An RFC 5424 HOSTNAME (§6.2.4): 1*255 PRINTUSASCII, which excludes blanks.
bool IsSyslogToken(std::string_view token) {
  if (token.empty() || token.size() > 255) return false;
  return std::all_of(token.begin(), token.end(), [](char c) { return c > 0x20 && c < 0x7F; });
}

absl::Status ValidateSyslog(const Config& config) {
  const Syslog& syslog = config.syslog;
  for (const auto& [value, path] :
       {std::pair<const std::string&, std::string_view>{syslog.listen, "syslog.listen"},
        {syslog.tls_listen, "syslog.tls_listen"}}) {
    if (value.empty()) continue;
    if (absl::StatusOr<HostPort> hp = ParseHostPort(value); !hp.ok()) {
      return Error(path, std::string(hp.status().message()));
    }
  }
  if (!syslog.tls_listen.empty()) {
    if (syslog.tls_cert_file.empty()) return Error("syslog.tls_cert_file", "required with syslog.tls_listen");
    if (syslog.tls_key_file.empty()) return Error("syslog.tls_key_file", "required with syslog.tls_listen");
  }
  if (syslog.max_line_bytes < 1 || syslog.max_line_bytes > 999999) {
    return Error("syslog.max_line_bytes", "must be between 1 and 999999");
  }
  if (syslog.max_connections < 1) return Error("syslog.max_connections", "must be > 0");
  if (absl::Status s = Positive(syslog.idle_timeout_seconds, "syslog.idle_timeout_seconds"); !s.ok())
    return s;
  std::map<std::string_view, std::size_t> tokens;  // token -> drain index
  for (std::size_t i = 0; i < syslog.drains.size(); ++i) {
    const SyslogDrain& drain = syslog.drains[i];
    const std::string path = Element("syslog.drains", i);
    if (!IsSyslogToken(drain.token)) {
      return Error(Child(path, "token"),
                   "must be 1..255 printable ASCII bytes without blanks (e.g. d.<uuid>)");
    }
    if (auto [it, inserted] = tokens.emplace(drain.token, i); !inserted) {
      return Error(Child(path, "token"), Cat("duplicate of syslog.drains[", it->second, "].token"));
    }
    const bool known = std::any_of(config.tenants.begin(), config.tenants.end(),
                                   [&](const Tenant& t) { return t.id == drain.tenant; });
    if (!known) return Error(Child(path, "tenant"), Cat("no tenant \"", drain.tenant, "\""));
    if (drain.resolution_seconds != 0 && !IsValidResolution(drain.resolution_seconds)) {
      return Error(Child(path, "resolution_seconds"),
                   "must be 0 (the tenant's default) or one of 1, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, "
                   "1800, 3600");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateTenant(const Tenant& tenant, const std::string& path) {
  if (tenant.id.empty()) return Error(Child(path, "id"), "required");
  if (!std::all_of(tenant.id.begin(), tenant.id.end(), IsIdByte)) {
    return Error(Child(path, "id"), "may hold only A-Z a-z 0-9 . _ -");
  }
  for (std::size_t k = 0; k < tenant.token_hashes.size(); ++k) {
    if (!IsWellFormedTokenHash(tenant.token_hashes[k])) {
      return Error(Element(Child(path, "token_hashes"), k),
                   "must be \"sha256:\" and 64 lowercase hex digits");
    }
  }
  if (!IsValidResolution(tenant.default_resolution_seconds)) {
    return Error(Child(path, "default_resolution_seconds"),
                 "must be one of 1, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600");
  }
  if (tenant.output == OutputKind::kLibrato) {
    const std::string librato = Child(path, "librato");
    if (!IsHttpUrl(tenant.librato.url))
      return Error(Child(librato, "url"), "must be an http:// or https:// URL");
    if (tenant.librato.email.empty())
      return Error(Child(librato, "email"), "required when output is librato");
    if (tenant.librato.api_token.empty()) {
      return Error(Child(librato, "api_token"),
                   "required when output is librato (api_token or api_token_env)");
    }
  } else if (tenant.output != OutputKind::kStdout) {
    return Error(Child(path, "output"), "must be \"librato\" or \"stdout\"");
  }
  return absl::OkStatus();
}

absl::Status ReadWholeFile(const std::string& path, std::string* out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    const std::string message = Cat(path, ": ", std::strerror(error));
    if (error == ENOENT || error == ENOTDIR) return absl::NotFoundError(message);
    if (error == EACCES || error == EPERM) return absl::PermissionDeniedError(message);
    return absl::InvalidArgumentError(message);
  }
  char buffer[65536];
  absl::Status status;
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = absl::InvalidArgumentError(Cat(path, ": ", std::strerror(errno)));
      break;
    }
    if (n == 0) break;
    if (out->size() + static_cast<std::size_t>(n) > kMaxFileBytes) {
      status = absl::InvalidArgumentError(Cat(path, ": larger than ", kMaxFileBytes, " bytes"));
      break;
    }
    out->append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return status;
}

}  // namespace

bool IsValidResolution(std::int64_t seconds) {
  return std::find(std::begin(kResolutions), std::end(kResolutions), seconds) != std::end(kResolutions);
}

absl::StatusOr<HostPort> ParseHostPort(std::string_view text) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return absl::InvalidArgumentError("must be HOST:PORT");
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);

  if (StartsWith(host, "[")) {
    if (host.size() < 3 || host.back() != ']') return absl::InvalidArgumentError("must be [IPv6]:PORT");
    host = host.substr(1, host.size() - 2);
    const bool ok = std::all_of(host.begin(), host.end(), [](char c) {
      return absl::ascii_isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
    });
    if (!ok) return absl::InvalidArgumentError("IPv6 address may hold only hex digits, ':' and '.'");
  } else {
    if (host.empty()) return absl::InvalidArgumentError("host is empty");
    const bool ok = std::all_of(host.begin(), host.end(), [](char c) {
      return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-';
    });
    if (!ok) return absl::InvalidArgumentError("host may hold only A-Z a-z 0-9 . - (IPv6 goes in brackets)");
  }

  unsigned port = 0;
  const char* end = port_text.data() + port_text.size();
  auto [ptr, ec] = std::from_chars(port_text.data(), end, port);
  if (port_text.empty() || port_text.size() > 5 || ec != std::errc() || ptr != end || port > 65535) {
    return absl::InvalidArgumentError("port must be a decimal number 0..65535");
  }
  return HostPort{std::string(host), static_cast<std::uint16_t>(port)};
}

absl::StatusOr<RedisAddress> ParseRedisAddress(std::string_view text) {
  RedisAddress address;
  if (StartsWith(text, "unix:")) {
    const std::string_view socket = text.substr(5);
    if (!StartsWith(socket, "/"))
      return absl::InvalidArgumentError("unix: must be followed by an absolute path");
    if (std::any_of(socket.begin(), socket.end(), [](char c) { return c == '\0'; })) {
      return absl::InvalidArgumentError("socket path may not hold a NUL byte");
    }
    address.unix_socket = std::string(socket);
    return address;
  }
  absl::StatusOr<HostPort> host_port = ParseHostPort(text);
  if (!host_port.ok()) {
    return absl::InvalidArgumentError(
        Cat(std::string(host_port.status().message()), " (want HOST:PORT, [IPv6]:PORT or unix:/path)"));
  }
  if (host_port->port == 0) return absl::InvalidArgumentError("port must be 1..65535");
  address.host = std::move(host_port->host);
  address.port = host_port->port;
  return address;
}

std::chrono::seconds ReceiverWriteAllowance(const Config& config) {
  const std::int64_t ms = config.receiver.flush_interval_ms + config.redis.command_timeout_ms;
  return std::chrono::seconds((ms + 999) / 1000);
}

std::size_t ServerOfShard(const Config& config, std::uint32_t shard) {
  const std::size_t servers = config.redis.servers.size();
  return servers == 0 ? 0 : shard % servers;
}

absl::Status Validate(const Config& config) {
  if (absl::StatusOr<HostPort> listen = ParseHostPort(config.listen); !listen.ok()) {
    return Error("listen", std::string(listen.status().message()));
  }
  if (config.tls_cert_file.empty() != config.tls_key_file.empty()) {
    return config.tls_cert_file.empty()
               ? Error("tls_cert_file", "required with tls_key_file (TLS needs both)")
               : Error("tls_key_file", "required with tls_cert_file (TLS needs both)");
  }
  if (config.threads < 0 || config.threads > 1024) return Error("threads", "must be between 0 and 1024");
  if (config.grace_seconds < 0 || config.grace_seconds > 3600) {
    return Error("grace_seconds", "must be between 0 and 3600");
  }
  if (absl::Status s = Positive(config.retry_horizon_seconds, "retry_horizon_seconds"); !s.ok()) return s;
  telemetry::Level level;
  if (!telemetry::ParseLogLevel(config.log_level, &level)) {
    return Error("log_level", "must be one of debug, info, warn, error");
  }

  const Limits& limits = config.limits;
  const std::pair<std::int64_t, std::string_view> positives[] = {
      // The unsigned limits compare as > 0 once capped into int64's range.
      {static_cast<std::int64_t>(std::min<std::uint64_t>(limits.max_body_bytes, 1)), "limits.max_body_bytes"},
      {limits.max_header_bytes, "limits.max_header_bytes"},
      {static_cast<std::int64_t>(std::min<std::uint64_t>(limits.max_open_buckets, 1)),
       "limits.max_open_buckets"},
      {limits.dedupe_window_seconds, "limits.dedupe_window_seconds"},
      {static_cast<std::int64_t>(std::min<std::uint64_t>(limits.dedupe_max_entries, 1)),
       "limits.dedupe_max_entries"},
      {limits.read_timeout_seconds, "limits.read_timeout_seconds"},
      {limits.future_tolerance_seconds, "limits.future_tolerance_seconds"},
      {static_cast<std::int64_t>(std::min<std::uint64_t>(limits.max_inflated_body_bytes, 1)),
       "limits.max_inflated_body_bytes"},
      {limits.max_header_count, "limits.max_header_count"},
      {static_cast<std::int64_t>(std::min<std::uint64_t>(limits.max_frames_per_request, 1)),
       "limits.max_frames_per_request"},
      {static_cast<std::int64_t>(std::min<std::uint64_t>(limits.max_series_per_tenant, 1)),
       "limits.max_series_per_tenant"},
      {limits.auth_failures_before_delay, "limits.auth_failures_before_delay"},
      {limits.auth_failure_window_seconds, "limits.auth_failure_window_seconds"},
      {limits.auth_failure_delay_ms, "limits.auth_failure_delay_ms"},
      {config.outlet.interval_ms, "outlet.interval_ms"},
      {config.outlet.connect_timeout_ms, "outlet.connect_timeout_ms"},
      {config.outlet.request_timeout_ms, "outlet.request_timeout_ms"},
      {config.outlet.retry_initial_backoff_ms, "outlet.retry_initial_backoff_ms"},
      {config.outlet.retry_max_backoff_ms, "outlet.retry_max_backoff_ms"},
      {config.outlet.lease_ttl_ms, "outlet.lease_ttl_ms"},
      {config.outlet.lease_renew_ms, "outlet.lease_renew_ms"},
      {config.outlet.seal_interval_ms, "outlet.seal_interval_ms"},
      {static_cast<std::int64_t>(std::min<std::uint64_t>(config.outlet.max_pending_retry_bytes, 1)),
       "outlet.max_pending_retry_bytes"},
      {config.receiver.flush_interval_ms, "receiver.flush_interval_ms"},
      {config.receiver.watermark_interval_ms, "receiver.watermark_interval_ms"},
      {config.receiver.watermark_ttl_ms, "receiver.watermark_ttl_ms"},
      {static_cast<std::int64_t>(std::min<std::uint64_t>(config.receiver.max_series_in_memory, 1)),
       "receiver.max_series_in_memory"},
  };
  for (const auto& [value, path] : positives) {
    if (absl::Status s = Positive(value, path); !s.ok()) return s;
  }
  if (limits.max_line_bytes < 1 || limits.max_line_bytes > 999999) {
    return Error("limits.max_line_bytes", "must be between 1 and 999999");
  }
  if (config.outlet.max_gauges_per_request < 1 || config.outlet.max_gauges_per_request > 300) {
    return Error("outlet.max_gauges_per_request", "must be between 1 and 300");
  }
  if (config.outlet.max_inflight_requests < 1 || config.outlet.max_inflight_requests > 64) {
    return Error("outlet.max_inflight_requests", "must be between 1 and 64");
  }
  if (config.outlet.retry_max_backoff_ms < config.outlet.retry_initial_backoff_ms) {
    return Error("outlet.retry_max_backoff_ms", "must be >= outlet.retry_initial_backoff_ms");
  }
  if (config.outlet.lease_renew_ms >= config.outlet.lease_ttl_ms) {
    return Error("outlet.lease_renew_ms", "must be < outlet.lease_ttl_ms");
  }
  if (config.receiver.flush_delay_ms < 0 ||
      config.receiver.flush_delay_ms > config.receiver.flush_interval_ms) {
    return Error("receiver.flush_delay_ms", "must be between 0 and receiver.flush_interval_ms");
  }
  if (config.receiver.watermark_ttl_ms <= config.receiver.watermark_interval_ms) {
    return Error("receiver.watermark_ttl_ms", "must be > receiver.watermark_interval_ms");
  }
  if (absl::Status s = ValidateRedis(config.redis); !s.ok()) return s;

  if (config.tenants.empty()) return Error("tenants", "at least one tenant is required");
  std::map<std::string_view, std::size_t> ids;          // id -> tenant index
  std::map<std::string_view, std::size_t> hash_owners;  // token hash -> tenant index
  for (std::size_t i = 0; i < config.tenants.size(); ++i) {
    const Tenant& tenant = config.tenants[i];
    const std::string path = Element("tenants", i);
    if (absl::Status s = ValidateTenant(tenant, path); !s.ok()) return s;
    if (auto [it, inserted] = ids.emplace(tenant.id, i); !inserted) {
      return Error(Child(path, "id"), Cat("duplicate of tenants[", it->second, "].id"));
    }
    for (std::size_t k = 0; k < tenant.token_hashes.size(); ++k) {
      auto [it, inserted] = hash_owners.emplace(tenant.token_hashes[k], i);
      if (!inserted && it->second != i) {
        return Error(Element(Child(path, "token_hashes"), k),
                     Cat("also a token hash of tenant \"", config.tenants[it->second].id, "\""));
      }
    }
  }
  return ValidateSyslog(config);
}

absl::StatusOr<Config> ParseConfig(std::string_view text, const EnvLookup& env) {
  Config config;
  try {
    const YAML::Node root = YAML::Load(std::string(text));
    if (absl::Status status = ParseRoot(root, env, &config); !status.ok()) return status;
  } catch (const YAML::Exception& e) {
    // yaml-cpp reports syntax errors (and misuse) by exception; none leaves this function.
    if (e.mark.is_null()) return absl::InvalidArgumentError(Cat("cannot parse: ", e.msg));
    return absl::InvalidArgumentError(
        Cat("line ", e.mark.line + 1, ", column ", e.mark.column + 1, ": ", e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(Cat("cannot parse: ", e.what()));
  }
  if (absl::Status status = Validate(config); !status.ok()) return status;
  return config;
}

namespace {

// The receiver's restart-only keys (ReceiverRestartOnlyChanges), one list for both the
// comparison and the copy: `visit(key, now's fields, next's fields)`, fields as std::tie
// tuples (Config or const Config for `next`).
template <typename Next, typename Visit>
void ForEachReceiverRestartOnly(const Config& now, Next& next, Visit visit) {
  visit("listen", std::tie(now.listen), std::tie(next.listen));
  visit("tls_cert_file/tls_key_file", std::tie(now.tls_cert_file, now.tls_key_file),
        std::tie(next.tls_cert_file, next.tls_key_file));
  visit("threads", std::tie(now.threads), std::tie(next.threads));
  visit("grace_seconds", std::tie(now.grace_seconds), std::tie(next.grace_seconds));
  visit("limits.max_body_bytes", std::tie(now.limits.max_body_bytes), std::tie(next.limits.max_body_bytes));
  visit("limits.max_header_bytes", std::tie(now.limits.max_header_bytes),
        std::tie(next.limits.max_header_bytes));
  visit("limits.max_header_count", std::tie(now.limits.max_header_count),
        std::tie(next.limits.max_header_count));
  visit("limits.read_timeout_seconds", std::tie(now.limits.read_timeout_seconds),
        std::tie(next.limits.read_timeout_seconds));
  visit("limits.dedupe_window_seconds", std::tie(now.limits.dedupe_window_seconds),
        std::tie(next.limits.dedupe_window_seconds));
  visit("limits.max_series_per_tenant", std::tie(now.limits.max_series_per_tenant),
        std::tie(next.limits.max_series_per_tenant));
  visit("receiver", std::tie(now.receiver), std::tie(next.receiver));
  visit("redis", std::tie(now.redis), std::tie(next.redis));
  // Everything of syslog but its drains, which apply live.
  const Syslog& a = now.syslog;
  auto& b = next.syslog;
  visit("syslog (listeners and bounds)",
        std::tie(a.listen, a.tls_listen, a.tls_cert_file, a.tls_key_file, a.max_line_bytes, a.max_connections,
                 a.idle_timeout_seconds),
        std::tie(b.listen, b.tls_listen, b.tls_cert_file, b.tls_key_file, b.max_line_bytes, b.max_connections,
                 b.idle_timeout_seconds));
}

}  // namespace

std::string ReceiverRestartOnlyChanges(const Config& now, const Config& next) {
  std::string changed;
  ForEachReceiverRestartOnly(now, next, [&](const char* key, const auto& was, const auto& will) {
    if (was == will) return;
    if (!changed.empty()) changed += ',';
    changed += key;
  });
  return changed;
}

void KeepReceiverRestartOnly(const Config& now, Config& next) {
  ForEachReceiverRestartOnly(now, next, [](const char*, const auto& was, auto will) { will = was; });
}

absl::Status CheckFiles(const Config& config) {
  if (config.tls_cert_file.empty() && config.tls_key_file.empty()) return absl::OkStatus();
  http::TlsFiles files;
  files.cert_file = config.tls_cert_file;
  files.key_file = config.tls_key_file;
  return http::CheckTlsFiles(files);  // messages start with "tls_cert_file: " / "tls_key_file: "
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path, const EnvLookup& env) {
  std::string text;
  if (absl::Status status = ReadWholeFile(path, &text); !status.ok()) return status;
  absl::StatusOr<Config> config = ParseConfig(text, env);
  if (!config.ok())
    return absl::Status(config.status().code(), Cat(path, ": ", std::string(config.status().message())));
  return config;
}

EnvLookup ProcessEnv() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

}  // namespace drainmet::config
