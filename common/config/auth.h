#pragma once
// Drain tokens: generation, hashing, the Basic credentials Logplex sends, and the lookup
// of a tenant from them (DESIGN rule 6: tokens stored hashed, compared in constant time).

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config/config.h"

namespace drainmet::config {

/// A new drain token: 32 bytes from OpenSSL's RAND_bytes, base64url without padding
/// (RFC 4648 §5), so 43 characters of [A-Za-z0-9_-]. Thread-safe.
std::string NewToken();

/// The 64 lowercase hex digits of SHA-256(data) (FIPS 180-4). Thread-safe.
std::string Sha256Hex(std::string_view data);

/// "sha256:" + the 64 lowercase hex digits of SHA-256(token): the form kept in
/// Tenant::token_hashes. Thread-safe.
std::string HashToken(std::string_view token);

/// The user and password of an HTTP Basic Authorization header (RFC 7617).
struct BasicCredentials {
  std::string user;
  std::string password;  ///< Secret: never log it.

  bool operator==(const BasicCredentials&) const = default;
};

/// Parses an Authorization header value "Basic <base64(user:password)>" (FORMATS.md
/// §1.2, §6.2): the scheme is case-insensitive; blanks around the value are ignored; the
/// base64 may use the standard or the URL-safe alphabet (RFC 4648 §4, §5), with or without
/// '=' padding. The decoded text is split at its first ':'; without a ':' it is all user
/// and the password is empty (what Logplex sends for https://TOKEN@host). std::nullopt for
/// another scheme, an empty or undecodable credential. Thread-safe.
std::optional<BasicCredentials> ParseBasicAuthorization(std::string_view header_value);

/// Parses an Authorization header value "Bearer <token>" (RFC 6750 §2.1; log-shuttle sends
/// it, FORMATS.md §1.8): the scheme is case-insensitive, blanks around the value are
/// ignored, the token is an RFC 6750 b64token (A-Z a-z 0-9 - . _ ~ + / then any '=').
/// The view points into `header_value`. std::nullopt for another scheme or an empty or
/// malformed token. The token is a secret: never log it. Pure; thread-safe.
std::optional<std::string_view> ParseBearerAuthorization(std::string_view header_value);

/// Maps presented drain tokens to tenants. Immutable after construction; lookups are
/// thread-safe. Keeps only digests, never tokens.
class TokenIndex {
 public:
  /// Indexes every token hash of `config.tenants` (a validated config: a malformed hash is
  /// skipped). Tenant indexes refer to `config.tenants`.
  explicit TokenIndex(const Config& config);

  /// The tenant index for a presented token, comparing SHA-256 digests with CRYPTO_memcmp;
  /// std::nullopt if unknown or empty. The lookup narrows candidates by a 64-bit prefix of
  /// the digest (this reveals nothing about a token: finding a token with a chosen digest
  /// prefix is a preimage search) and compares the full digest in constant time.
  std::optional<std::size_t> Find(std::string_view token) const;

  /// Resolves Basic credentials per the drain URL forms https://TOKEN@host (user = token,
  /// empty password) and https://TENANT:TOKEN@host (password = token and the user must
  /// equal that tenant's id, else no match).
  std::optional<std::size_t> Authenticate(const BasicCredentials& credentials) const;

 private:
  using Digest = std::array<unsigned char, 32>;
  struct Entry {
    std::uint64_t prefix;  // first 8 bytes of the digest, big-endian
    Digest digest;
    std::size_t tenant;
  };

  std::vector<Entry> entries_;  // sorted by prefix
  std::vector<std::string> tenant_ids_;
};

}  // namespace drainmet::config
