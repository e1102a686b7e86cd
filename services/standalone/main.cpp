// drainmet: the standalone binary. `drainmet run` serves drains and emits gauges in one
// process; `drainmet replay` turns captured drain bodies into Librato request bodies;
// `drainmet token` makes a drain token and the hash to put in the config file.

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/base/clock.h"
#include "common/base/malloc_tuning.h"
#include "common/base/signals.h"
#include "common/config/auth.h"
#include "common/config/config.h"
#include "common/telemetry/log.h"
#include "services/standalone/replay.h"
#include "services/standalone/service.h"

namespace drainmet::standalone {
namespace {

using telemetry::Level;
using telemetry::Log;

std::optional<std::string> Env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

/// The embedded default (no --config): one tenant "default" whose token is DRAINMET_TOKEN
/// or a new random one, then returned in `generated` (the caller prints it once the
/// service has started, so a start-up error does not print a token nobody can use);
/// gauges go to stdout unless LIBRATO_EMAIL and LIBRATO_TOKEN are set.
config::Config EmbeddedDefault(std::optional<std::string>& generated) {
  config::Config c;
  config::Tenant t;
  t.id = "default";
  std::optional<std::string> token = Env("DRAINMET_TOKEN");
  if (!token) {
    token = config::NewToken();
    generated = token;
  }
  t.token_hashes.push_back(config::HashToken(*token));
  std::optional<std::string> email = Env("LIBRATO_EMAIL");
  std::optional<std::string> api_token = Env("LIBRATO_TOKEN");
  if (email.has_value() != api_token.has_value()) {
    Log(Level::kWarn, "only one of LIBRATO_EMAIL and LIBRATO_TOKEN is set; gauges go to stdout");
  }
  if (email && api_token) {
    t.output = config::OutputKind::kLibrato;
    t.librato.email = *email;
    t.librato.api_token = *api_token;
    if (std::optional<std::string> url = Env("LIBRATO_URL")) t.librato.url = *url;
    Log(Level::kInfo, "embedded default: gauges are posted to Librato", {{"url", t.librato.url}});
  } else {
    t.output = config::OutputKind::kStdout;
    Log(Level::kInfo, "embedded default: gauges are printed on stdout, one request body per line");
  }
  c.tenants.push_back(std::move(t));
  return c;
}

int Fail(const absl::Status& status) {
  Log(Level::kError, "drainmet failed", {{"error", status.ToString()}});
  return 1;
}

int RunCommand(const std::string& config_path, const std::string& listen, int threads,
               const std::string& log_level, std::int64_t shutdown_timeout_s,
               const std::string& syslog_listen, const std::string& syslog_tls_listen) {
  base::TuneMalloc();  // before any thread starts (docs/operations.md "Memory bounds")
  // Block the stop and reload signals before any thread starts, so only the wait below
  // sees them.
  base::BlockStopAndReloadSignals();

  config::Config config;
  std::optional<std::string> generated_token;
  if (config_path.empty()) {
    config = EmbeddedDefault(generated_token);
  } else {
    absl::StatusOr<config::Config> loaded = config::LoadConfigFile(config_path, config::ProcessEnv());
    if (!loaded.ok()) return Fail(loaded.status());
    if (absl::Status tls = config::CheckFiles(*loaded); !tls.ok()) {
      return Fail(absl::Status(tls.code(), config_path + ": " + std::string(tls.message())));
    }
    config = *std::move(loaded);
  }
  if (!listen.empty()) config.listen = listen;
  if (threads > 0) config.threads = threads;
  if (!syslog_listen.empty()) config.syslog.listen = syslog_listen;
  if (!syslog_tls_listen.empty()) config.syslog.tls_listen = syslog_tls_listen;
  telemetry::Level level;
  const std::string& wanted = log_level.empty() ? config.log_level : log_level;
  if (!telemetry::ParseLogLevel(wanted, &level)) {
    return Fail(
        absl::InvalidArgumentError("log_level: want debug, info, warn or error, got '" + wanted + "'"));
  }
  telemetry::SetLogLevel(level);

  ServiceOptions options;
  options.shutdown_timeout_ms = shutdown_timeout_s * 1000;
  absl::StatusOr<std::unique_ptr<Service>> service =
      Service::Start(std::move(config), base::SystemClock::Get(), options);
  if (!service.ok()) return Fail(service.status());
  if (generated_token) {
    // The operator needs the token to build the drain URL; it is printed once, here.
    Log(Level::kInfo, "generated a drain token (set DRAINMET_TOKEN to choose one)",
        {{"token", *generated_token}});
  }

  Service* running = service->get();
  const char* signal = base::WaitForStopSignal([running] {
    // SIGHUP: the TLS certificates are read again (errors are logged; the old pair stays).
    Log(Level::kInfo, "signal received", {{"signal", "SIGHUP"}});
    (void)running->ReloadTls();
  });
  Log(Level::kInfo, "signal received", {{"signal", signal}});
  (*service)->Stop();
  return 0;
}

int ReplayCommand(const std::vector<std::string>& files, int resolution, const std::string& prefix,
                  const std::string& source_prefix, const std::string& received_at, bool stats) {
  ReplayOptions options;
  if (!extract::IsAllowedResolution(resolution)) {
    return Fail(
        absl::InvalidArgumentError("--resolution: must be one of 1, 5, 10, 15, 20, 30, 60, 120, 300, "
                                   "600, 900, 1800, 3600, got " +
                                   std::to_string(resolution)));
  }
  options.drain.resolution_seconds = resolution;
  options.drain.prefix = prefix;
  options.drain.source_prefix = source_prefix;
  if (!received_at.empty()) {
    absl::StatusOr<std::int64_t> t = ParseReceivedAt(received_at);
    if (!t.ok()) return Fail(t.status());
    options.received_at_nanos = *t;
  }
  telemetry::Counters counters;
  if (absl::Status s = Replay(files, options, stdout, counters); !s.ok()) return Fail(s);
  if (stats) std::fprintf(stderr, "%s\n", counters.ToJson().c_str());
  return 0;
}

}  // namespace
}  // namespace drainmet::standalone

int main(int argc, char** argv) {
  using namespace drainmet::standalone;
  CLI::App app{
      "drainmet: Heroku Logplex drains in, Librato gauges out.\n"
      "See docs/cli.md for every command and flag."};
  app.set_version_flag("--version", "drainmet 0.1.0");
  app.require_subcommand(1);

  std::string config_path, listen, log_level, syslog_listen, syslog_tls_listen;
  int threads = 0;
  std::int64_t shutdown_timeout_s = 25;
  CLI::App* run =
      app.add_subcommand("run", "Serve drains on HTTP and emit gauges (standalone, in-memory store).");
  run->add_option("--config", config_path, "Config file (YAML or JSON). Without it: the embedded default.");
  run->add_option("--listen", listen, "HOST:PORT to listen on (overrides the config; default 0.0.0.0:8080).");
  run->add_option("--threads", threads, "HTTP threads (overrides the config; default: one per core).")
      ->check(CLI::Range(0, 1024));
  run->add_option("--log-level", log_level,
                  "debug, info, warn or error (overrides the config; default info).");
  run->add_option("--shutdown-timeout", shutdown_timeout_s,
                  "Seconds allowed at SIGTERM to flush open windows and post them (default 25).")
      ->check(CLI::PositiveNumber);
  run->add_option(
      "--syslog-listen", syslog_listen,
      "HOST:PORT of the syslog drain listener over TCP (overrides config syslog.listen; default off).");
  run->add_option("--syslog-tls-listen", syslog_tls_listen,
                  "HOST:PORT of the syslog drain listener over TLS (overrides config syslog.tls_listen; the "
                  "certificate and key come from the config; default off).");

  CLI::App* token =
      app.add_subcommand("token", "Print a new random drain token and the hash for the config file.");

  std::vector<std::string> files;
  int resolution = 60;
  std::string prefix, source_prefix, received_at;
  bool stats = false;
  CLI::App* replay = app.add_subcommand(
      "replay", "Replay raw drain bodies (one file = one request) and print the Librato request bodies.");
  replay->add_option("--resolution", resolution, "Bucket width in seconds (SEMANTICS 4.7; default 60).");
  replay->add_option("--prefix", prefix, "Metric name prefix (name becomes PREFIX.NAME).");
  replay->add_option("--source-prefix", source_prefix, "Source prefix (source becomes SP.SOURCE, or SP).");
  replay->add_option("--received-at", received_at,
                     "Receive time for frames with a bad or '-' timestamp (RFC 3339 or Unix seconds); "
                     "without it such frames yield no points.");
  replay->add_flag("--stats", stats, "Print the SEMANTICS 8 counters as one JSON object on stderr.");
  replay->add_option("FILE", files, "Drain bodies (application/logplex-1), in request order.")
      ->required()
      ->check(CLI::ExistingFile);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every command-line error exits 2 (docs/cli.md).
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (*run) {
    return RunCommand(config_path, listen, threads, log_level, shutdown_timeout_s, syslog_listen,
                      syslog_tls_listen);
  }
  if (*token) {
    const std::string t = drainmet::config::NewToken();
    std::printf("token=%s hash=%s\n", t.c_str(), drainmet::config::HashToken(t).c_str());
    return 0;
  }
  if (*replay) return ReplayCommand(files, resolution, prefix, source_prefix, received_at, stats);
  return 2;
}
