#pragma once
// TLS for drainmet's listeners (the HTTP drain listener of http::Server and the syslog
// TLS listener, drain::SyslogListener): a server context from a PEM certificate chain and
// a PEM private key, TLS 1.2 or later (RFC 8446 / RFC 5246; SSLv2/3, TLS 1.0 and 1.1
// off), no TLS compression (CRIME), and a holder that swaps in a new context at run time
// (SIGHUP) while connections keep the context they began with.

#include <atomic>
#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace prometheus {
class Registry;
class Counter;
}  // namespace prometheus

namespace drainmet::http {

/// The files of a TLS server identity and the config keys that named them (for errors).
struct TlsFiles {
  std::string cert_file;                   ///< PEM certificate chain: the leaf first, then intermediates.
  std::string key_file;                    ///< PEM private key (unencrypted) of the leaf certificate.
  std::string cert_key = "tls_cert_file";  ///< Config key of cert_file, the prefix of its errors.
  std::string key_key = "tls_key_file";    ///< Config key of key_file, the prefix of its errors.
};

/// Builds a server context from `files`. InvalidArgument whose message starts with the
/// culprit's config key: "tls_cert_file: cannot read /x.pem: No such file or directory",
/// "tls_cert_file: /x.pem: no usable PEM certificate chain (...)", "tls_key_file: /k.pem:
/// not a PEM private key of the certificate in /c.pem (key values mismatch)". Never
/// throws. Thread-safe.
absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeServerTlsContext(const TlsFiles& files);

/// MakeServerTlsContext without keeping the context: checks that the pair loads (config
/// validation). Same errors.
absl::Status CheckTlsFiles(const TlsFiles& files);

/// Short reason of a failed server handshake for the metric label: "timeout" (the
/// handshake did not finish within the listener's read timeout), "closed" (the peer
/// closed or reset the connection), "protocol" (anything else: not TLS, an old version,
/// no shared cipher, an unknown CA alert...).
std::string_view HandshakeFailureReason(const boost::system::error_code& ec);

/// The server context of one TLS listener, reloadable. Reload() reads the same two files
/// again and, when the new pair loads, makes it the context of connections accepted
/// afterwards; connections already open keep theirs (each holds a shared_ptr to its
/// context). A pair that does not load is logged (error, with the reason) and the old one
/// is kept.
///
/// Metrics (when a registry is given), labelled listener="<listener>":
///   drainmet_tls_handshake_failures_total{listener,reason}  (reason: HandshakeFailureReason)
///   drainmet_tls_reloads_total{listener,result="ok"|"error"}
///
/// Thread-safe: Current() and CountHandshakeFailure() from any connection, Reload() from
/// any thread (the signal thread).
class TlsContextHolder {
 public:
  /// Loads `files` (errors as MakeServerTlsContext). `listener` names the listener in logs
  /// and metrics ("http", "syslog"). `registry` may be null (no metrics) and must
  /// outlive the holder.
  static absl::StatusOr<std::shared_ptr<TlsContextHolder>> Load(TlsFiles files, std::string listener,
                                                                prometheus::Registry* registry);

  /// The context for a new connection. Never null.
  std::shared_ptr<boost::asio::ssl::context> Current() const;

  /// Reads the files again (see the class comment). Returns the load error, if any (then
  /// the old pair stays in use).
  absl::Status Reload();

  /// Counts (and logs once per reason, with the remote and OpenSSL's text) a failed
  /// handshake.
  void CountHandshakeFailure(const boost::system::error_code& ec, std::string_view remote);

  const TlsFiles& files() const { return files_; }
  /// Counts since Load (for tests and logs).
  std::uint64_t handshake_failures() const { return handshake_failures_.load(); }
  std::uint64_t reloads_ok() const { return reloads_ok_.load(); }
  std::uint64_t reloads_failed() const { return reloads_failed_.load(); }

 private:
  TlsContextHolder(TlsFiles files, std::string listener, prometheus::Registry* registry,
                   std::shared_ptr<boost::asio::ssl::context> context);

  const TlsFiles files_;
  const std::string listener_;
  prometheus::Registry* const registry_;
  prometheus::Counter* reload_ok_counter_ = nullptr;
  prometheus::Counter* reload_error_counter_ = nullptr;
  mutable std::mutex mu_;
  std::shared_ptr<boost::asio::ssl::context> context_;  // guarded by mu_
  std::mutex reload_mu_;                                // serialises Reload()
  std::atomic<std::uint64_t> handshake_failures_{0};
  std::atomic<std::uint64_t> reloads_ok_{0};
  std::atomic<std::uint64_t> reloads_failed_{0};
};

}  // namespace drainmet::http
