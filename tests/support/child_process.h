#pragma once
// A binary run as a child process by a test: its stderr piped and read line by line on a
// thread, kept for assertions. Test-only.

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"

namespace drainmet::support {

/// One child process. Its stderr is read on a thread (the child never blocks on a full
/// pipe); the child dies with the test process (PR_SET_PDEATHSIG) and is killed (SIGKILL)
/// and reaped by the destructor if still running. Not copyable. Start, Signal and the
/// Wait* calls belong to one thread; Lines and Stderr may be called from any thread.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  /// Starts `argv[0]` (a path) with `argv`, stderr piped to this object. `env` ("K=V"
  /// each) replaces the environment; std::nullopt keeps this process's. Errors: pipe or
  /// fork failed (an exec failure shows as exit status 127). Call once.
  absl::Status Start(std::vector<std::string> argv,
                     std::optional<std::vector<std::string>> env = std::nullopt);

  pid_t pid() const { return pid_; }

  /// The first stderr line (from the start) for which `match` is true, waiting up to
  /// `timeout`; std::nullopt when the time passed or stderr closed first.
  std::optional<std::string> WaitForLine(const std::function<bool(const std::string&)>& match,
                                         std::chrono::milliseconds timeout);
  /// The first stderr line containing `text`, as above.
  std::optional<std::string> WaitForLine(std::string_view text, std::chrono::milliseconds timeout);

  /// Every stderr line so far (the last one may be incomplete once stderr closed).
  std::vector<std::string> Lines() const;
  /// Every stderr line so far, each followed by '\n'.
  std::string Stderr() const;

  void Signal(int signal_number) const;

  /// The wait status (waitpid) once the child has exited, waiting up to `timeout`;
  /// std::nullopt while it runs. After the exit, Lines() holds all of stderr.
  std::optional<int> WaitExit(std::chrono::milliseconds timeout);
  /// The exit code, or 128 + the signal number, once the child has exited (as WaitExit).
  std::optional<int> WaitExitCode(std::chrono::milliseconds timeout);

 private:
  void ReadStderr(int fd);

  pid_t pid_ = -1;
  std::optional<int> wait_status_;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;  // guarded by mu_
  bool eof_ = false;                // guarded by mu_
};

}  // namespace drainmet::support
