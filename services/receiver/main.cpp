// drainmet-receiver: the stateless drain endpoint of the distributed mode
// (docs/architecture.md). Same config file format as `drainmet run`.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"
#include "common/base/clock.h"
#include "common/base/malloc_tuning.h"
#include "common/base/signals.h"
#include "common/config/config.h"
#include "common/health/health_server.h"
#include "common/telemetry/log.h"
#include "services/receiver/service.h"

namespace {

/// Serves until SIGTERM/SIGINT, reloading the TLS certificates on each SIGHUP, then stops.
void WaitAndStop(drainmet::receiver::Service& service) {
  using drainmet::telemetry::Level;
  using drainmet::telemetry::Log;
  const char* signal = drainmet::base::WaitForStopSignal([&service] {
    Log(Level::kInfo, "signal received", {{"signal", "SIGHUP"}});
    (void)service.ReloadTls();  // errors are logged; the old pair stays
  });
  Log(Level::kInfo, "signal received", {{"signal", signal}});
  service.Stop();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace drainmet;
  using telemetry::Level;
  using telemetry::Log;
  CLI::App app{"drainmet-receiver: drains in, partial buckets into Redis shards.\nSee docs/cli.md."};
  app.set_version_flag("--version", "drainmet-receiver 0.1.0");
  std::string config_path, config_service, listen, log_level, syslog_listen, syslog_tls_listen;
  std::string grpc_listen = "0.0.0.0:9090";
  int threads = 0;
  int config_wait_s = 10;
  CLI::Option* config_option = app.add_option(
      "--config", config_path,
      "Config file (YAML or JSON); its `redis` section names the shards. With --config-service: the copy "
      "served until the service answers.");
  CLI::Option* service_option = app.add_option(
      "--config-service", config_service,
      "HOST:PORT of drainmet-config: follow it (tenants and tokens change at run time; the last good copy is "
      "kept while it is unreachable).");
  app.add_option("--config-wait", config_wait_s,
                 "Seconds to wait at start for the first config from --config-service (default 10).")
      ->check(CLI::Range(1, 3600));
  app.add_option("--listen", listen, "HOST:PORT to listen on (overrides the config).");
  app.add_option(
      "--grpc-listen", grpc_listen,
      "HOST:PORT of grpc.health.v1 (default 0.0.0.0:9090; port 0 picks a free one, logged as grpc=).");
  app.add_option("--threads", threads, "HTTP threads (overrides the config; default: one per core).")
      ->check(CLI::Range(0, 1024));
  app.add_option("--log-level", log_level, "debug, info, warn or error (overrides the config).");
  app.add_option(
      "--syslog-listen", syslog_listen,
      "HOST:PORT of the syslog drain listener over TCP (overrides config syslog.listen; default off).");
  app.add_option(
      "--syslog-tls-listen", syslog_tls_listen,
      "HOST:PORT of the syslog drain listener over TLS (overrides config syslog.tls_listen; certificate "
      "and key from the config; default off).");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (config_option->count() == 0 && service_option->count() == 0) {
    std::fprintf(stderr,
                 "drainmet-receiver: one of --config FILE or --config-service HOST:PORT is required\n");
    return 2;
  }
  base::TuneMalloc();  // before any thread starts (docs/operations.md "Memory bounds")
  base::BlockStopAndReloadSignals();
  health::RouteGrpcLogsToLogfmt();
  receiver::ServiceOptions service_options;
  service_options.grpc_listen = grpc_listen;

  if (!config_service.empty()) {
    // The syslog listeners and bounds are this process's own: from --config (read once at
    // start) and the flags, applied to every copy the service sends. The drains come with
    // the copy (the config file's syslog.drains); a config service that sends none (one
    // that predates them) leaves those of --config.
    config::Syslog syslog;
    std::string tls_cert_file, tls_key_file;  // the drain listener's TLS: this process's own files
    if (!config_path.empty()) {
      absl::StatusOr<config::Config> file = config::LoadConfigFile(config_path, config::ProcessEnv());
      if (file.ok()) {
        // TLS asked for but its pair does not load: fail rather than serve plain HTTP.
        if (absl::Status tls = config::CheckFiles(*file); !tls.ok()) {
          Log(Level::kError, "drainmet-receiver failed",
              {{"error", config_path + ": " + std::string(tls.message())}});
          return 1;
        }
        syslog = file->syslog;
        tls_cert_file = file->tls_cert_file;
        tls_key_file = file->tls_key_file;
      } else {
        Log(Level::kWarn, "--config not usable: the syslog listeners come from the flags only",
            {{"error", file.status().ToString()}});
      }
    }
    if (!syslog_listen.empty()) syslog.listen = syslog_listen;
    if (!syslog_tls_listen.empty()) syslog.tls_listen = syslog_tls_listen;
    // Command-line overrides apply to every copy the service sends.
    auto adjust = [listen, threads, log_level, syslog, tls_cert_file, tls_key_file](config::Config& c) {
      if (!listen.empty()) c.listen = listen;
      c.tls_cert_file = tls_cert_file;
      c.tls_key_file = tls_key_file;
      if (threads > 0) c.threads = threads;
      if (!log_level.empty()) c.log_level = log_level;
      std::vector<config::SyslogDrain> served = std::move(c.syslog.drains);
      c.syslog = syslog;
      if (!served.empty()) c.syslog.drains = std::move(served);
      // A drain of a tenant the served copy no longer has is left out (its lines are then
      // counted unknown_drain_token), so that it cannot block the rest of the copy.
      std::erase_if(c.syslog.drains, [&c](const config::SyslogDrain& d) {
        return std::none_of(c.tenants.begin(), c.tenants.end(),
                            [&d](const config::Tenant& t) { return t.id == d.tenant; });
      });
    };
    if (!log_level.empty()) {
      telemetry::Level level;
      if (!telemetry::ParseLogLevel(log_level, &level)) {
        Log(Level::kError, "drainmet-receiver failed",
            {{"error", "--log-level: must be one of debug, info, warn, error (got '" + log_level + "')"}});
        return 1;
      }
      telemetry::SetLogLevel(level);
    }
    receiver::FollowOptions follow;
    follow.target = config_service;
    follow.initial_file = config_path;
    follow.first_config_timeout = std::chrono::seconds(config_wait_s);
    follow.adjust = adjust;
    absl::StatusOr<std::unique_ptr<receiver::Service>> service =
        receiver::Service::StartFollowing(std::move(follow), base::SystemClock::Get(), service_options);
    if (!service.ok()) {
      Log(Level::kError, "drainmet-receiver failed", {{"error", service.status().ToString()}});
      return 1;
    }
    telemetry::Level level;
    if (telemetry::ParseLogLevel((*service)->directory()->config.log_level, &level))
      telemetry::SetLogLevel(level);
    WaitAndStop(**service);
    Log(Level::kInfo, "stopped");
    return 0;
  }

  absl::StatusOr<config::Config> config = config::LoadConfigFile(config_path, config::ProcessEnv());
  if (!config.ok()) {
    Log(Level::kError, "drainmet-receiver failed", {{"error", config.status().ToString()}});
    return 1;
  }
  if (absl::Status tls = config::CheckFiles(*config); !tls.ok()) {
    Log(Level::kError, "drainmet-receiver failed",
        {{"error", config_path + ": " + std::string(tls.message())}});
    return 1;
  }
  if (!listen.empty()) config->listen = listen;
  if (threads > 0) config->threads = threads;
  if (!log_level.empty()) config->log_level = log_level;
  if (!syslog_listen.empty()) config->syslog.listen = syslog_listen;
  if (!syslog_tls_listen.empty()) config->syslog.tls_listen = syslog_tls_listen;
  telemetry::Level level;
  if (!telemetry::ParseLogLevel(config->log_level, &level)) {
    Log(Level::kError, "drainmet-receiver failed",
        {{"error", "log_level: must be one of debug, info, warn, error (got '" + config->log_level + "')"}});
    return 1;
  }
  telemetry::SetLogLevel(level);

  absl::StatusOr<std::unique_ptr<receiver::Service>> service =
      receiver::Service::Start(*std::move(config), base::SystemClock::Get(), service_options);
  if (!service.ok()) {
    Log(Level::kError, "drainmet-receiver failed", {{"error", service.status().ToString()}});
    return 1;
  }
  WaitAndStop(**service);
  Log(Level::kInfo, "stopped");
  return 0;
}
