// The load generator end to end, every part a real process: `drainmet-loadgen sink` as the
// tenants' Librato API, `drainmet run` posting to it, `drainmet-loadgen send` for ~3 s at a
// modest rate with --record; after SIGTERM (which flushes every window, docs/cli.md) every
// acknowledged point must be in exactly one emitted gauge (SEMANTICS §7.1-§7.4), per tenant.
// No timing assertions.

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/substitute.h"
#include "common/config/auth.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/http_client.h"

extern char** environ;

namespace drainmet::loadgen {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;

const char kDrainmet[] = DRAINMET_BINARY_DIR "/services/standalone/drainmet";
const char kLoadgen[] = DRAINMET_BINARY_DIR "/services/loadgen/drainmet-loadgen";

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

/// A child process whose stdout and stderr go to files; SIGKILLed and reaped by the
/// destructor if still running, and killed if the test process dies (PR_SET_PDEATHSIG).
class Child {
 public:
  Child(const fs::path& dir, const std::string& name)
      : out_(dir / (name + ".out")), err_(dir / (name + ".err")) {}
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }

  bool Start(std::vector<std::string> argv) {
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    const int out = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const int err = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0 || err < 0) return false;
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);
      if (::dup2(out, STDOUT_FILENO) < 0 || ::dup2(err, STDERR_FILENO) < 0) ::_exit(126);
      ::execve(args[0], args.data(), environ);
      ::_exit(127);
    }
    ::close(out);
    ::close(err);
    return pid_ > 0;
  }

  std::string Stdout() const { return ReadFile(out_); }
  std::string Stderr() const { return ReadFile(err_); }

  /// Polls `file` (stdout or stderr) until `match` finds what it wants in it.
  bool WaitFor(bool from_stderr, const std::function<bool(const std::string&)>& match, milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (match(from_stderr ? Stderr() : Stdout())) return true;
      if (WaitExit(milliseconds(0))) return false;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return false;
  }

  void Signal(int signal_number) { ::kill(pid_, signal_number); }

  /// The wait status once the child has exited, or nullopt after `timeout`.
  std::optional<int> WaitExit(milliseconds timeout) {
    if (status_) return status_;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        status_ = status;
        return status_;
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(milliseconds(10));
    }
  }

 private:
  fs::path out_, err_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

/// The number after `key` in `text` (e.g. "port=" in "listening port=40527"), or 0.
int NumberAfter(const std::string& text, const std::string& key) {
  const std::size_t at = text.find(key);
  return at == std::string::npos ? 0 : std::atoi(text.c_str() + at + key.size());
}

bool ExitedZero(const std::optional<int>& status) {
  return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
}

class LoadgenRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = (fs::path(::testing::TempDir()) / "drainmet-loadgen-XXXXXX").string();
    ASSERT_NE(::mkdtemp(dir.data()), nullptr);
    dir_ = dir;
  }
  void TearDown() override {
    if (HasFailure()) {
      for (const char* name : {"sink.out", "sink.err", "drainmet.err", "send.out", "send.err"}) {
        std::cerr << "--- " << name << "\n" << ReadFile(dir_ / name).substr(0, 4000) << "\n";
      }
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

// Two tenants, tokens cycled over 4 connections, 50-line bodies at 3000 lines/s for 3 s at
// resolution 1: the sender's numbers add up, and the sink finds, per tenant and series,
// the acknowledged measure points in the complex gauges' counts and the acknowledged
// count#req sum in the count gauges' values, nothing missing, nothing extra.
TEST_F(LoadgenRunTest, EveryAcknowledgedPointIsInExactlyOneGauge) {
  const fs::path record = dir_ / "record.json";
  Child sink(dir_, "sink");
  ASSERT_TRUE(
      sink.Start({kLoadgen, "sink", "--listen", "127.0.0.1:0", "--per-tenant", "--expect", record.string()}));
  int sink_port = 0;
  ASSERT_TRUE(sink.WaitFor(
      false, [&](const std::string& out) { return (sink_port = NumberAfter(out, "listening port=")) > 0; },
      milliseconds(10000)));

  const std::string token_a = config::NewToken(), token_b = config::NewToken();
  const std::string url = "http://127.0.0.1:" + std::to_string(sink_port) + "/v1/metrics";
  const fs::path config_path = dir_ / "drainmet.yaml";
  {
    std::ofstream out(config_path);
    out << absl::Substitute(R"(threads: 2
outlet:
  interval_ms: 100
tenants:
  - id: acme
    token_hashes: ["$0"]
    librato: {url: "$2", email: acme, api_token: k-acme}
  - id: beta
    token_hashes: ["$1"]
    librato: {url: "$2", email: beta, api_token: k-beta}
)",
                            config::HashToken(token_a), config::HashToken(token_b), url);
  }
  Child drainmet(dir_, "drainmet");
  ASSERT_TRUE(
      drainmet.Start({kDrainmet, "run", "--config", config_path.string(), "--listen", "127.0.0.1:0"}));
  int port = 0;
  ASSERT_TRUE(drainmet.WaitFor(
      true,
      [&](const std::string& err) {
        const std::size_t line = err.find("msg=\"drainmet listening\"");
        if (line == std::string::npos) return false;
        port = NumberAfter(err.substr(line), " listen=127.0.0.1:");
        return port > 0;
      },
      milliseconds(10000)));

  Child send(dir_, "send");
  ASSERT_TRUE(send.Start({kLoadgen,
                          "send",
                          "--url",
                          "http://127.0.0.1:" + std::to_string(port) + "/logs",
                          "--token",
                          token_a + "," + token_b,
                          "--tenant-names",
                          "acme,beta",
                          "--tenants",
                          "2",
                          "--connections",
                          "4",
                          "--duration",
                          "3",
                          "--rate",
                          "3000",
                          "--lines-per-body",
                          "50",
                          "--series",
                          "4",
                          "--resolution",
                          "1",
                          "--retry-503",
                          "--json",
                          "--record",
                          record.string()}));
  ASSERT_TRUE(ExitedZero(send.WaitExit(milliseconds(60000))));
  const json summary = json::parse(send.Stdout(), nullptr, false);
  ASSERT_TRUE(summary.is_object()) << send.Stdout();
  const std::uint64_t requests = summary["requests"].get<std::uint64_t>();
  const std::uint64_t lines = summary["lines"].get<std::uint64_t>();
  ASSERT_GE(requests, 2u);
  EXPECT_EQ(summary["2xx"], requests);
  EXPECT_EQ(summary["non_2xx"], 0);
  EXPECT_EQ(summary["transport_errors"], 0);
  EXPECT_EQ(lines, requests * 50);
  EXPECT_EQ(summary["lines_sent"], lines);
  EXPECT_EQ(summary["points"], lines * 3);
  EXPECT_LE(summary["latency_ms"]["answers"].get<std::uint64_t>(), summary["attempts"].get<std::uint64_t>());
  EXPECT_GE(summary["cpu_user_s"].get<double>(), 0.0);

  // SIGTERM flushes every open window, closed or not, to the sink.
  drainmet.Signal(SIGTERM);
  ASSERT_TRUE(ExitedZero(drainmet.WaitExit(milliseconds(30000))));

  const support::HttpReply reply = support::HttpGet(static_cast<std::uint16_t>(sink_port), "/check");
  ASSERT_EQ(reply.status, 200u) << reply.body << reply.error;
  const json check = json::parse(reply.body, nullptr, false);
  EXPECT_TRUE(check["ok"].get<bool>()) << check.dump(1);
  EXPECT_EQ(check["series_expected"], 2 * 4 * 3);  // tenants x sources x (measure, count, sample)
  EXPECT_EQ(check["series_ok"], check["series_expected"]);
  EXPECT_EQ(check["measure_points_expected"], lines);
  EXPECT_EQ(check["measure_points_emitted"], lines);
  EXPECT_EQ(check["count_sum_expected"], static_cast<double>(lines));
  EXPECT_EQ(check["count_sum_emitted"], static_cast<double>(lines));
  EXPECT_TRUE(check["missing"].empty());
  EXPECT_TRUE(check["extra"].empty());
  EXPECT_EQ(check["duplicates_conflicting"], 0);

  const json stats =
      json::parse(support::HttpGet(static_cast<std::uint16_t>(sink_port), "/stats").body, nullptr, false);
  EXPECT_GT(stats["users"].value("acme", 0), 0);
  EXPECT_GT(stats["users"].value("beta", 0), 0);
  EXPECT_EQ(stats["bad_requests"], 0);

  // SIGTERM: the sink prints its totals and the check, and exits 0.
  sink.Signal(SIGTERM);
  ASSERT_TRUE(ExitedZero(sink.WaitExit(milliseconds(10000))));
  const json final_report = json::parse(sink.Stdout().substr(sink.Stdout().find('\n') + 1), nullptr, false);
  ASSERT_TRUE(final_report.is_object()) << sink.Stdout();
  EXPECT_TRUE(final_report["check"]["ok"].get<bool>());
  EXPECT_EQ(final_report["stats"]["count_sum"], lines);
}

// `sink --check-after` checks once and says so by its exit status: nothing was emitted for
// an acknowledged point, so it fails (1) and names the missing series.
TEST_F(LoadgenRunTest, SinkCheckAfterFailsOnMissingPoints) {
  const fs::path record = dir_ / "record.json";
  {
    std::ofstream out(record);
    out << R"({"format":"drainmet-loadgen-record/1","tenants":[{"tenant":"t","series":[
             {"name":"req","source":"web.0","kind":"count","points":3,"sum":3}]}]})";
  }
  Child sink(dir_, "sink");
  ASSERT_TRUE(sink.Start({kLoadgen, "sink", "--expect", record.string(), "--check-after", "0.5"}));
  const std::optional<int> status = sink.WaitExit(milliseconds(10000));
  ASSERT_TRUE(status && WIFEXITED(*status)) << sink.Stderr();
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  const std::string out = sink.Stdout();
  const json check = json::parse(out.substr(out.find('\n') + 1), nullptr, false);
  ASSERT_TRUE(check.is_object()) << out;
  EXPECT_FALSE(check["ok"].get<bool>());
  ASSERT_EQ(check["missing"].size(), 1u);
  EXPECT_EQ(check["missing"][0]["name"], "req");
  EXPECT_EQ(check["missing_total"], 3.0);
}

}  // namespace
}  // namespace drainmet::loadgen
