#include "tests/support/redis_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>
#include <utility>

#include "fmt/format.h"

namespace drainmet::support {
namespace {

using Clock = std::chrono::steady_clock;

std::string ErrnoText(std::string_view what) { return fmt::format("{}: {}", what, std::strerror(errno)); }

// `name` as an executable path: itself when it holds a '/', else the first match in PATH.
std::string FindExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    return ::access(name.c_str(), X_OK) == 0 ? name : std::string();
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    const std::size_t colon = dirs.find(':');
    std::string_view dir = dirs.substr(0, colon);
    if (dir.empty()) dir = ".";
    std::string candidate = fmt::format("{}/{}", dir, name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string_view::npos) return {};
    dirs.remove_prefix(colon + 1);
  }
}

// One PING over the unix socket, bounded by `timeout`: true on "+PONG".
bool Ping(const std::string& socket_path, std::chrono::milliseconds timeout) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_path.c_str(), sizeof address.sun_path - 1);
  bool pong = false;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
    constexpr std::string_view kPing = "PING\r\n";
    if (::send(fd, kPing.data(), kPing.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(kPing.size())) {
      std::string answer;
      char buffer[64];
      while (answer.find("\r\n") == std::string::npos && answer.size() < 256) {
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        answer.append(buffer, static_cast<std::size_t>(n));
      }
      pong = answer.rfind("+PONG\r\n", 0) == 0;  // "-LOADING ..." while it reads its AOF
    }
  }
  ::close(fd);
  return pong;
}

}  // namespace

RedisServer::RedisServer(Options options, std::string binary, std::string dir)
    : options_(std::move(options)),
      binary_(std::move(binary)),
      dir_(std::move(dir)),
      socket_path_(dir_ + "/redis.sock"),
      log_path_(dir_ + "/redis.log") {}

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(Options options) {
  std::string binary = FindExecutable(options.binary);
  if (binary.empty()) {
    return absl::NotFoundError(
        fmt::format("{} not found (PATH); install the redis-server package", options.binary));
  }
  // A short base keeps the socket path under sun_path's 108 bytes.
  const char* tmpdir = std::getenv("TMPDIR");
  std::string base =
      tmpdir != nullptr && std::strlen(tmpdir) > 0 && std::strlen(tmpdir) < 60 ? tmpdir : "/tmp";
  std::string pattern = base + "/drainmet-redis-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(ErrnoText(fmt::format("mkdtemp {}", pattern)));
  }
  std::unique_ptr<RedisServer> server(
      new RedisServer(std::move(options), std::move(binary), std::move(pattern)));
  if (absl::Status launched = server->Launch(); !launched.ok()) return launched;
  return server;
}

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start() { return Start(Options()); }

RedisServer::~RedisServer() {
  Kill();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

absl::Status RedisServer::Launch() {
  std::vector<std::string> args = {binary_,
                                   "--port",
                                   std::to_string(options_.port),
                                   "--bind",
                                   "127.0.0.1",
                                   "--unixsocket",
                                   socket_path_,
                                   "--unixsocketperm",
                                   "700",
                                   "--dir",
                                   dir_,
                                   "--save",
                                   "",
                                   "--daemonize",
                                   "no",
                                   "--logfile",
                                   "",
                                   "--appendonly",
                                   options_.append_only ? "yes" : "no"};
  if (options_.append_only) {
    args.push_back("--appendfsync");
    args.push_back(options_.fsync == Fsync::kAlways ? "always" : "everysec");
  }
  for (const std::string& arg : options_.extra_args) args.push_back(arg);
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  const int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) return absl::InternalError(ErrnoText(fmt::format("open {}", log_path_)));
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    ::close(log_fd);
    return absl::InternalError(ErrnoText("open /dev/null"));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    ::close(null_fd);
    return absl::InternalError(ErrnoText("fork"));
  }
  if (pid == 0) {
    // Child: async-signal-safe calls only until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // Never outlive the test.
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    constexpr char kMessage[] = "exec of redis-server failed\n";
    [[maybe_unused]] ssize_t ignored = ::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(null_fd);
  pid_ = pid;
  return WaitReady();
}

absl::Status RedisServer::WaitReady() {
  const auto deadline = Clock::now() + options_.start_timeout;
  while (true) {
    int status = 0;
    const pid_t reaped = ::waitpid(pid_, &status, WNOHANG);
    if (reaped == pid_) {
      pid_ = -1;
      return absl::UnavailableError(
          fmt::format("redis-server exited during start (status {}); log:\n{}", status, Log()));
    }
    if (Ping(socket_path_, std::chrono::milliseconds(200))) return absl::OkStatus();
    if (Clock::now() >= deadline) {
      Kill();
      return absl::UnavailableError(fmt::format("redis-server did not answer PING within {} ms; log:\n{}",
                                                options_.start_timeout.count(), Log()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void RedisServer::Reap(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (pid_ > 0) {
    int status = 0;
    const pid_t reaped = ::waitpid(pid_, &status, WNOHANG);
    if (reaped == pid_ || (reaped < 0 && errno == ECHILD)) {
      pid_ = -1;
      return;
    }
    if (Clock::now() >= deadline) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

absl::Status RedisServer::Stop() {
  if (pid_ <= 0) return absl::OkStatus();
  ::kill(pid_, SIGTERM);
  Reap(std::chrono::seconds(10));
  if (pid_ > 0) {
    Kill();
    return absl::DeadlineExceededError("redis-server ignored SIGTERM for 10 s; killed");
  }
  return absl::OkStatus();
}

void RedisServer::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

absl::Status RedisServer::Restart() {
  if (absl::Status stopped = Stop(); !stopped.ok()) return stopped;
  return Launch();
}

std::string RedisServer::Log() const {
  std::ifstream in(log_path_);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

absl::StatusOr<int> RedisServer::PickFreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(ErrnoText("socket"));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    absl::Status error = absl::InternalError(ErrnoText("bind 127.0.0.1:0"));
    ::close(fd);
    return error;
  }
  ::close(fd);
  return static_cast<int>(ntohs(address.sin_port));
}

}  // namespace drainmet::support
