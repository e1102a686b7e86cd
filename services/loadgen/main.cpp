// drainmet-loadgen: the load generator of issue "Performance". `send` posts Logplex-like
// drain bodies to a drain endpoint and reports throughput and answer latencies; `sink` is a
// fake Librato API that counts what drainmet emits and checks it against what `send`
// saw acknowledged. See docs/cli.md ("drainmet-loadgen") and docs/performance.md.

#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/base/signals.h"
#include "common/telemetry/log.h"
#include "services/loadgen/body.h"
#include "services/loadgen/sender.h"
#include "services/loadgen/sink.h"

namespace drainmet::loadgen {
namespace {

using telemetry::Level;
using telemetry::Log;

int Fail(const absl::Status& status) {
  Log(Level::kError, "drainmet-loadgen failed", {{"error", status.ToString()}});
  return 1;
}

/// Waits for SIGTERM or SIGINT (blocked by BlockStopSignals) for at most `seconds`
/// (< 0: forever). True when a signal came.
bool WaitForStop(double seconds) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (seconds < 0) {
    int signal_number = 0;
    while (sigwait(&set, &signal_number) != 0) {
    }
    return true;
  }
  timespec timeout;
  timeout.tv_sec = static_cast<time_t>(seconds);
  timeout.tv_nsec = static_cast<long>((seconds - static_cast<double>(timeout.tv_sec)) * 1e9);
  for (;;) {
    const int r = sigtimedwait(&set, nullptr, &timeout);
    if (r > 0) return true;
    if (errno == EAGAIN) return false;
    // EINTR: another signal; keep waiting (the remaining time is approximate).
  }
}

int RunSink(const SinkOptions& options, double check_after_s) {
  base::BlockStopSignals();
  absl::StatusOr<std::unique_ptr<Sink>> sink = Sink::Start(options);
  if (!sink.ok()) return Fail(sink.status());
  std::printf("listening port=%u\n", static_cast<unsigned>((*sink)->port()));
  std::fflush(stdout);
  const bool signalled = WaitForStop(check_after_s > 0 ? check_after_s : -1);
  if (check_after_s > 0 && !signalled && !options.expect_path.empty()) {
    absl::StatusOr<nlohmann::json> result = (*sink)->CheckFile(options.expect_path);
    (*sink)->Stop();
    if (!result.ok()) return Fail(result.status());
    std::cout << result->dump() << std::endl;
    return (*result)["ok"].get<bool>() ? 0 : 1;
  }
  (*sink)->Stop();
  nlohmann::json out = {{"stats", (*sink)->ledger().Stats()}};
  if (!options.expect_path.empty()) {
    absl::StatusOr<nlohmann::json> result = (*sink)->CheckFile(options.expect_path);
    out["check"] = result.ok() ? *result : nlohmann::json{{"error", std::string(result.status().message())}};
  }
  std::cout << out.dump() << std::endl;
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{
      "drainmet-loadgen: Logplex-like load for drainmet, and a counting fake Librato API.\n"
      "See docs/cli.md."};
  app.set_version_flag("--version", "drainmet-loadgen 0.1.0");
  app.require_subcommand(1);

  SendOptions send;
  std::string rate = "max";
  bool json_output = false;
  CLI::App* send_cmd = app.add_subcommand("send", "POST drain bodies and report throughput and latency.");
  send_cmd->add_option("--url", send.url, "Drain endpoint, http://HOST:PORT/PATH[?QUERY].")->required();
  send_cmd->add_option("--token", send.tokens, "Drain token(s), comma-separated; Basic auth base64(TOKEN:).")
      ->required()
      ->delimiter(',');
  send_cmd
      ->add_option("--tenant-names", send.tenant_names,
                   "Names of the tokens in the --record file, comma-separated, one per token (default "
                   "tenant-0, tenant-1, ...). For `sink --per-tenant`: the tenants' Librato emails.")
      ->delimiter(',');
  send_cmd
      ->add_option("--tenants", send.tenants,
                   "Drains to simulate; tokens are cycled (default: one per token).")
      ->check(CLI::Range(0, 1000000));
  send_cmd->add_option("--connections", send.connections, "Keep-alive connections (default 16).")
      ->check(CLI::Range(1, 100000));
  send_cmd->add_option("--threads", send.threads, "io threads (default 1).")->check(CLI::Range(1, 256));
  send_cmd->add_option("--duration", send.duration_s, "Seconds during which requests start (default 10).")
      ->check(CLI::PositiveNumber);
  send_cmd->add_option("--rate", rate, "Lines per second over all connections, or max (default max).");
  send_cmd->add_option("--lines-per-body", send.lines_per_body, "Frames per body (default 800, ~100 KiB).")
      ->check(CLI::Range(1, 100000));
  send_cmd->add_option("--series", send.series, "Sources per tenant, web.0 .. web.(M-1) (default 10).")
      ->check(CLI::Range(1, 100000000));
  send_cmd->add_option("--template", send.line_template,
                       "Line template; placeholders {ms} {mb} {int} {source} (default '" +
                           std::string(kDefaultTemplate) + "').");
  send_cmd->add_option("--files", send.files, "Captured application/logplex-1 bodies, restamped to now.")
      ->expected(1, -1);
  send_cmd->add_option("--resolution", send.resolution, "Append resolution=R to the query.");
  send_cmd->add_flag("--retry-503", send.retry,
                     "Retry 503, 429, other 5xx and transport errors with the same Logplex-Frame-Id after "
                     "Retry-After, 3 tries in all (as Logplex).");
  send_cmd->add_flag("--json", json_output, "Print the summary as one JSON object.");
  send_cmd->add_option("--record", send.record_path,
                       "Write the acknowledged points per tenant and series (for sink --expect).");
  send_cmd
      ->add_option("--ring", send.ring,
                   "Distinct pre-rendered bodies (default 64, at least one per connection).")
      ->check(CLI::Range(1, 1000000));
  send_cmd->add_option("--timeout", send.timeout_s, "Seconds allowed per attempt (default 30).")
      ->check(CLI::PositiveNumber);
  send_cmd->add_option("--seed", send.seed, "Seed of the {ms} {mb} {int} values (default 1).");

  SinkOptions sink;
  double check_after_s = 0;
  CLI::App* sink_cmd =
      app.add_subcommand("sink", "A fake Librato API that counts gauges and checks conservation.");
  sink_cmd->add_option("--listen", sink.listen,
                       "HOST:PORT (IP literal; port 0: any, printed) (default 127.0.0.1:0).");
  sink_cmd->add_option("--threads", sink.threads, "Server threads (default 2).")->check(CLI::Range(1, 64));
  sink_cmd->add_flag("--per-tenant", sink.per_tenant,
                     "Key series by the Basic-auth user (the tenant's Librato email) as well.");
  sink_cmd->add_option("--expect", sink.expect_path, "The send --record file, read at each check.");
  std::size_t max_pending_mb = sink.max_pending_bytes >> 20;
  sink_cmd
      ->add_option("--max-pending-mb", max_pending_mb,
                   "Bodies kept unparsed (parsed at /stats, /check, or once past this) (default 256).")
      ->check(CLI::Range(1, 65536));
  sink_cmd
      ->add_option("--check-after", check_after_s,
                   "Check once after S seconds, print the result, exit 0 when it holds, else 1.")
      ->check(CLI::PositiveNumber);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  sink.max_pending_bytes = max_pending_mb << 20;
  if (sink_cmd->parsed()) return RunSink(sink, check_after_s);

  if (rate != "max") {
    try {
      std::size_t used = 0;
      send.rate = std::stod(rate, &used);
      if (used != rate.size() || !(send.rate > 0)) throw std::invalid_argument(rate);
    } catch (const std::exception&) {
      std::fprintf(stderr, "--rate: must be a positive number of lines per second or max\n");
      return 2;
    }
  }
  absl::StatusOr<SendSummary> summary = RunSend(send);
  if (!summary.ok()) return Fail(summary.status());
  if (json_output) {
    std::cout << SummaryJson(send, *summary).dump() << std::endl;
  } else {
    std::cout << SummaryText(send, *summary) << std::flush;
  }
  return 0;
}

}  // namespace
}  // namespace drainmet::loadgen

int main(int argc, char** argv) { return drainmet::loadgen::Main(argc, argv); }
