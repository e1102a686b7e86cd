#pragma once
// A private redis-server child process for integration tests (STYLE.md "Tests"): its own
// temp dir and unix socket, no TCP unless asked, persistence off unless asked. Tests skip
// (GTEST_SKIP) when Start() answers NotFound: redis-server is not installed.

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace drainmet::support {

/// Not thread-safe: Start/Stop/Kill/Restart from one thread (the one that started it: the
/// child is also killed by the kernel when that thread exits, PR_SET_PDEATHSIG).
class RedisServer {
 public:
  enum class Fsync { kAlways, kEverysec };

  struct Options {
    /// `--appendonly yes --appendfsync <fsync>` instead of `--appendonly no`; the AOF lives
    /// in the temp dir and survives Restart().
    bool append_only = false;
    Fsync fsync = Fsync::kEverysec;
    /// TCP port on 127.0.0.1; 0 = no TCP listener (`--port 0`, unix socket only).
    /// PickFreePort() finds one.
    int port = 0;
    /// Bound of each start (until PING answers PONG).
    std::chrono::milliseconds start_timeout{10000};
    /// More `--name value` words for redis-server, appended last.
    std::vector<std::string> extra_args;
    /// The binary: a path, or a name looked up in PATH.
    std::string binary = "redis-server";
  };

  /// Starts redis-server in a fresh temp dir and waits until PING answers (bounded by
  /// start_timeout). NotFound when the binary is not installed; Unavailable when it exited
  /// or did not answer in time (the message quotes its log); Internal on a system error.
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(Options options);
  /// Start() with the default Options.
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start();

  /// Kills the server if it runs (SIGKILL), reaps it and removes the temp dir.
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  /// Graceful stop: SIGTERM (redis-server then flushes its AOF and exits), reaped within 10 s,
  /// else SIGKILL. No-op when not running.
  absl::Status Stop();

  /// SIGKILL and reap: a crash, for fault tests. No-op when not running.
  void Kill();

  /// Stops it if it runs, then starts it again on the same dir, socket, port and AOF file.
  absl::Status Restart();

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& socket_path() const { return socket_path_; }
  int port() const { return options_.port; }
  const std::string& dir() const { return dir_; }
  /// The server's stdout/stderr so far (its log), for failure messages.
  std::string Log() const;

  /// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, then close).
  static absl::StatusOr<int> PickFreePort();

 private:
  RedisServer(Options options, std::string binary, std::string dir);
  absl::Status Launch();
  absl::Status WaitReady();
  void Reap(std::chrono::milliseconds timeout);

  Options options_;
  std::string binary_;  // Absolute path.
  std::string dir_;
  std::string socket_path_;
  std::string log_path_;
  pid_t pid_ = -1;
};

}  // namespace drainmet::support
