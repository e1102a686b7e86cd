#include "common/http/tls.h"

#include <fcntl.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <cerrno>
#include <cstring>
#include <exception>
#include <utility>

#include "common/telemetry/log.h"
#include "fmt/format.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace drainmet::http {
namespace {

namespace ssl = boost::asio::ssl;
using telemetry::Level;
using telemetry::Log;

// An unreadable file gives a clearer message from open(2) than from OpenSSL's PEM reader.
absl::Status CheckReadable(const std::string& path, const std::string& key) {
  if (path.empty()) return absl::InvalidArgumentError(fmt::format("{}: required", key));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InvalidArgumentError(fmt::format("{}: cannot read {}: {}", key, path, std::strerror(errno)));
  }
  // One byte read: a directory opens but does not read (EISDIR).
  char byte;
  const ssize_t n = ::read(fd, &byte, 1);
  const int error = errno;
  ::close(fd);
  if (n < 0)
    return absl::InvalidArgumentError(fmt::format("{}: cannot read {}: {}", key, path, std::strerror(error)));
  return absl::OkStatus();
}

prometheus::Family<prometheus::Counter>& HandshakeFailures(prometheus::Registry& registry) {
  return prometheus::BuildCounter()
      .Name("drainmet_tls_handshake_failures_total")
      .Help(
          "TLS handshakes that failed on a listener (http, syslog), by reason: timeout (not finished "
          "within the read timeout), closed (peer closed or reset), protocol (not TLS, old version, "
          "no shared cipher, alert).")
      .Register(registry);
}

prometheus::Family<prometheus::Counter>& Reloads(prometheus::Registry& registry) {
  return prometheus::BuildCounter()
      .Name("drainmet_tls_reloads_total")
      .Help(
          "Reloads of a listener's TLS certificate and key (SIGHUP), by result: ok (new connections use "
          "the new pair), error (the old pair is kept).")
      .Register(registry);
}

}  // namespace

absl::StatusOr<std::shared_ptr<ssl::context>> MakeServerTlsContext(const TlsFiles& files) {
  if (absl::Status s = CheckReadable(files.cert_file, files.cert_key); !s.ok()) return s;
  if (absl::Status s = CheckReadable(files.key_file, files.key_key); !s.ok()) return s;
  try {
    auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
    boost::system::error_code ec;
    context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                             ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                             ssl::context::no_compression | ssl::context::single_dh_use,
                         ec);
    if (ec) return absl::InternalError(fmt::format("tls: cannot set context options: {}", ec.message()));
    if (SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION) != 1) {
      return absl::InternalError("tls: cannot require TLS 1.2 or later");
    }
    context->use_certificate_chain_file(files.cert_file, ec);
    if (ec) {
      return absl::InvalidArgumentError(fmt::format("{}: {}: no usable PEM certificate chain ({})",
                                                    files.cert_key, files.cert_file, ec.message()));
    }
    context->use_private_key_file(files.key_file, ssl::context::pem, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          fmt::format("{}: {}: not a PEM private key of the certificate in {} ({})", files.key_key,
                      files.key_file, files.cert_file, ec.message()));
    }
    if (SSL_CTX_check_private_key(context->native_handle()) != 1) {
      return absl::InvalidArgumentError(
          fmt::format("{}: {}: not a PEM private key of the certificate in {} (key values mismatch)",
                      files.key_key, files.key_file, files.cert_file));
    }
    return context;
  } catch (const std::exception& e) {  // ssl::context's constructor throws when OpenSSL fails
    return absl::InternalError(fmt::format("tls: cannot create a context: {}", e.what()));
  }
}

absl::Status CheckTlsFiles(const TlsFiles& files) { return MakeServerTlsContext(files).status(); }

std::string_view HandshakeFailureReason(const boost::system::error_code& ec) {
  if (ec == boost::beast::error::timeout) return "timeout";
  if (ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset ||
      ec == boost::asio::error::operation_aborted || ec == boost::asio::error::broken_pipe ||
      ec == ssl::error::stream_truncated) {
    return "closed";
  }
  return "protocol";
}

TlsContextHolder::TlsContextHolder(TlsFiles files, std::string listener, prometheus::Registry* registry,
                                   std::shared_ptr<ssl::context> context)
    : files_(std::move(files)),
      listener_(std::move(listener)),
      registry_(registry),
      context_(std::move(context)) {
  if (registry_ != nullptr) {
    reload_ok_counter_ = &Reloads(*registry_).Add({{"listener", listener_}, {"result", "ok"}});
    reload_error_counter_ = &Reloads(*registry_).Add({{"listener", listener_}, {"result", "error"}});
  }
}

absl::StatusOr<std::shared_ptr<TlsContextHolder>> TlsContextHolder::Load(TlsFiles files, std::string listener,
                                                                         prometheus::Registry* registry) {
  absl::StatusOr<std::shared_ptr<ssl::context>> context = MakeServerTlsContext(files);
  if (!context.ok()) return context.status();
  return std::shared_ptr<TlsContextHolder>(
      new TlsContextHolder(std::move(files), std::move(listener), registry, *std::move(context)));
}

std::shared_ptr<ssl::context> TlsContextHolder::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return context_;
}

absl::Status TlsContextHolder::Reload() {
  std::lock_guard<std::mutex> reload_lock(reload_mu_);
  absl::StatusOr<std::shared_ptr<ssl::context>> context = MakeServerTlsContext(files_);
  if (!context.ok()) {
    reloads_failed_.fetch_add(1);
    if (reload_error_counter_ != nullptr) reload_error_counter_->Increment();
    Log(Level::kError, "tls reload failed; keeping the certificate in use",
        {{"listener", listener_}, {"error", std::string(context.status().message())}});
    return context.status();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    context_ = *std::move(context);
  }
  reloads_ok_.fetch_add(1);
  if (reload_ok_counter_ != nullptr) reload_ok_counter_->Increment();
  Log(Level::kInfo, "tls certificate reloaded",
      {{"listener", listener_}, {"cert_file", files_.cert_file}, {"key_file", files_.key_file}});
  return absl::OkStatus();
}

void TlsContextHolder::CountHandshakeFailure(const boost::system::error_code& ec, std::string_view remote) {
  const std::string_view reason = HandshakeFailureReason(ec);
  handshake_failures_.fetch_add(1);
  if (registry_ != nullptr) {
    HandshakeFailures(*registry_).Add({{"listener", listener_}, {"reason", std::string(reason)}}).Increment();
  }
  const std::string once = fmt::format("tls_handshake_{}_{}", listener_, reason);
  telemetry::LogOnce(
      once, "tls handshake failed",
      {{"listener", listener_}, {"failure", reason}, {"remote", remote}, {"error", ec.message()}});
}

}  // namespace drainmet::http
