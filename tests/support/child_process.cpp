#include "tests/support/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace drainmet::support {

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !wait_status_.has_value()) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (reader_.joinable()) reader_.join();
}

absl::Status ChildProcess::Start(std::vector<std::string> argv, std::optional<std::vector<std::string>> env) {
  if (argv.empty()) return absl::InvalidArgumentError("no binary to start");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError(std::string("pipe2: ") + std::strerror(errno));
  // Everything the child needs is built before fork: between fork and exec it may only
  // call async-signal-safe functions (the test process has threads).
  std::vector<char*> args;
  for (std::string& s : argv) args.push_back(s.data());
  args.push_back(nullptr);
  std::vector<char*> envp;
  if (env.has_value()) {
    for (std::string& s : *env) envp.push_back(s.data());
    envp.push_back(nullptr);
  }
  char** const child_env = env.has_value() ? envp.data() : environ;
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return absl::InternalError(std::string("fork: ") + std::strerror(error));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    if (::dup2(fds[1], STDERR_FILENO) < 0) ::_exit(126);
    ::execve(args[0], args.data(), child_env);
    ::_exit(127);
  }
  ::close(fds[1]);
  pid_ = pid;
  reader_ = std::thread([this, fd = fds[0]] { ReadStderr(fd); });
  return absl::OkStatus();
}

void ChildProcess::ReadStderr(int fd) {
  std::string partial;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    partial.append(buffer, static_cast<std::size_t>(n));
    std::size_t start = 0;
    std::vector<std::string> complete;
    for (std::size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1) {
      complete.push_back(partial.substr(start, nl - start));
    }
    partial.erase(0, start);
    if (!complete.empty()) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.insert(lines_.end(), complete.begin(), complete.end());
      changed_.notify_all();
    }
  }
  ::close(fd);
  std::lock_guard<std::mutex> lock(mu_);
  if (!partial.empty()) lines_.push_back(partial);
  eof_ = true;
  changed_.notify_all();
}

std::optional<std::string> ChildProcess::WaitForLine(const std::function<bool(const std::string&)>& match,
                                                     std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock<std::mutex> lock(mu_);
  std::size_t checked = 0;
  for (;;) {
    for (; checked < lines_.size(); ++checked) {
      if (match(lines_[checked])) return lines_[checked];
    }
    if (eof_) return std::nullopt;
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout && checked == lines_.size())
      return std::nullopt;
  }
}

std::optional<std::string> ChildProcess::WaitForLine(std::string_view text,
                                                     std::chrono::milliseconds timeout) {
  return WaitForLine([text](const std::string& line) { return line.find(text) != std::string::npos; },
                     timeout);
}

std::vector<std::string> ChildProcess::Lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_;
}

std::string ChildProcess::Stderr() const {
  std::string all;
  for (const std::string& line : Lines()) all += line + "\n";
  return all;
}

void ChildProcess::Signal(int signal_number) const {
  if (pid_ > 0) ::kill(pid_, signal_number);
}

std::optional<int> ChildProcess::WaitExit(std::chrono::milliseconds timeout) {
  if (wait_status_.has_value() || pid_ <= 0) return wait_status_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      wait_status_ = status;
      if (reader_.joinable()) reader_.join();
      return wait_status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::optional<int> ChildProcess::WaitExitCode(std::chrono::milliseconds timeout) {
  const std::optional<int> status = WaitExit(timeout);
  if (!status.has_value()) return std::nullopt;
  return WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
}

}  // namespace drainmet::support
