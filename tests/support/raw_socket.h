#pragma once
// A plain TCP client for tests: what a well-behaved client cannot send (partial headers,
// lies in Content-Length, garbage, plain HTTP to a TLS port). Header-only, test-only.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <string_view>

namespace drainmet::support {

/// One connection to 127.0.0.1:`port`, made by the constructor. Every receive gives up
/// after 5 s. Not thread-safe.
class RawSocket {
 public:
  explicit RawSocket(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval timeout{};
    timeout.tv_sec = 5;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0)
      connect_errno_ = errno;
  }
  ~RawSocket() { ::close(fd_); }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  bool connected() const { return connect_errno_ == 0; }
  int connect_errno() const { return connect_errno_; }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t sent = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (sent <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(sent));
    }
    return true;
  }

  // Reads until `marker` has arrived (returns everything read so far), EOF or timeout.
  std::string ReadUntil(std::string_view marker) {
    std::string data;
    char chunk[4096];
    while (data.find(marker) == std::string::npos) {
      const ssize_t got = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (got <= 0) {
        eof_ = got == 0;
        break;
      }
      data.append(chunk, static_cast<std::size_t>(got));
    }
    return data;
  }

  // Reads until the peer closes (or resets, or 5 s pass).
  std::string ReadUntilClose() {
    std::string data;
    char chunk[4096];
    for (;;) {
      const ssize_t got = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (got <= 0) {
        eof_ = got == 0 || errno == ECONNRESET;
        break;
      }
      data.append(chunk, static_cast<std::size_t>(got));
    }
    return data;
  }

  bool closed_by_peer() const { return eof_; }

 private:
  int fd_ = -1;
  int connect_errno_ = 0;
  bool eof_ = false;
};

}  // namespace drainmet::support
