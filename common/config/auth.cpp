#include "common/config/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>

#include "common/base/check.h"
#include "common/base/strings.h"

namespace drainmet::config {
namespace {

using base::StartsWith;
using base::StartsWithIgnoreCase;
using base::StripBlanks;

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr std::string_view kHashPrefix = "sha256:";

std::array<unsigned char, 32> Sha256(std::string_view data) {
  std::array<unsigned char, 32> digest{};
  unsigned int length = 0;
  // EVP_Digest fails only when OpenSSL cannot allocate or lacks SHA-256: a broken process.
  DRAINMET_CHECK(EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_sha256(), nullptr) == 1);
  DRAINMET_CHECK(length == digest.size());
  return digest;
}

std::uint64_t Prefix(const std::array<unsigned char, 32>& digest) {
  std::uint64_t prefix = 0;
  for (int i = 0; i < 8; ++i) prefix = (prefix << 8) | digest[i];
  return prefix;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The digest of a well-formed "sha256:<64 lowercase hex>" hash; false otherwise.
bool DecodeTokenHash(std::string_view hash, std::array<unsigned char, 32>* digest) {
  if (hash.size() != kHashPrefix.size() + 64 || !StartsWith(hash, kHashPrefix)) return false;
  hash.remove_prefix(kHashPrefix.size());
  for (std::size_t i = 0; i < digest->size(); ++i) {
    const int hi = HexValue(hash[2 * i]);
    const int lo = HexValue(hash[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*digest)[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return true;
}

// Value of a base64 character in either alphabet (RFC 4648 §4 and §5), or -1.
int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

// Decodes base64 in either alphabet, padding optional (but, when present, it must make the
// length a multiple of 4). Bits left over after the last whole byte are ignored.
std::optional<std::string> DecodeBase64(std::string_view text) {
  std::size_t data_length = text.size();
  while (data_length > 0 && text[data_length - 1] == '=') --data_length;
  const std::size_t padding = text.size() - data_length;
  if (padding > 2 || (padding > 0 && text.size() % 4 != 0)) return std::nullopt;
  if (data_length % 4 == 1) return std::nullopt;  // 6 bits cannot make a byte

  std::string out;
  out.reserve(data_length * 3 / 4);
  std::uint32_t bits = 0;
  int bit_count = 0;
  for (std::size_t i = 0; i < data_length; ++i) {
    const int value = Base64Value(text[i]);
    if (value < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<std::uint32_t>(value);
    bit_count += 6;
    if (bit_count >= 8) {
      bit_count -= 8;
      out.push_back(static_cast<char>((bits >> bit_count) & 0xFF));
    }
  }
  return out;
}

std::string EncodeBase64Url(const unsigned char* data, std::size_t length) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((length * 4 + 2) / 3);
  std::uint32_t bits = 0;
  int bit_count = 0;
  for (std::size_t i = 0; i < length; ++i) {
    bits = (bits << 8) | data[i];
    bit_count += 8;
    while (bit_count >= 6) {
      bit_count -= 6;
      out.push_back(kAlphabet[(bits >> bit_count) & 0x3F]);
    }
  }
  if (bit_count > 0) out.push_back(kAlphabet[(bits << (6 - bit_count)) & 0x3F]);
  return out;
}

}  // namespace

std::string NewToken() {
  unsigned char bytes[32];
  // RAND_bytes fails only when the system cannot seed the generator: never hand out a
  // predictable token.
  DRAINMET_CHECK(RAND_bytes(bytes, sizeof bytes) == 1);
  std::string token = EncodeBase64Url(bytes, sizeof bytes);
  OPENSSL_cleanse(bytes, sizeof bytes);
  return token;
}

std::string Sha256Hex(std::string_view data) {
  const std::array<unsigned char, 32> digest = Sha256(data);
  std::string out;
  out.reserve(64);
  for (unsigned char byte : digest) {
    out.push_back(kHexDigits[byte >> 4]);
    out.push_back(kHexDigits[byte & 0xF]);
  }
  return out;
}

std::string HashToken(std::string_view token) { return std::string(kHashPrefix) + Sha256Hex(token); }

std::optional<BasicCredentials> ParseBasicAuthorization(std::string_view header_value) {
  std::string_view value = StripBlanks(header_value);
  constexpr std::string_view kScheme = "basic";
  if (value.size() <= kScheme.size() || !StartsWithIgnoreCase(value, kScheme)) return std::nullopt;
  if (value[kScheme.size()] != ' ' && value[kScheme.size()] != '\t') return std::nullopt;
  const std::string_view encoded = StripBlanks(value.substr(kScheme.size()));
  if (encoded.empty()) return std::nullopt;

  std::optional<std::string> decoded = DecodeBase64(encoded);
  if (!decoded.has_value() || decoded->empty()) return std::nullopt;
  BasicCredentials credentials;
  const std::size_t colon = decoded->find(':');
  if (colon == std::string::npos) {
    credentials.user = *std::move(decoded);
  } else {
    credentials.user = decoded->substr(0, colon);
    credentials.password = decoded->substr(colon + 1);
  }
  return credentials;
}

std::optional<std::string_view> ParseBearerAuthorization(std::string_view header_value) {
  const std::string_view value = StripBlanks(header_value);
  constexpr std::string_view kScheme = "bearer";
  if (value.size() <= kScheme.size() || !StartsWithIgnoreCase(value, kScheme)) return std::nullopt;
  if (value[kScheme.size()] != ' ' && value[kScheme.size()] != '\t') return std::nullopt;
  const std::string_view token = StripBlanks(value.substr(kScheme.size()));
  if (token.empty()) return std::nullopt;
  // RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
  const std::size_t body_end = token.find_last_not_of('=');
  if (body_end == std::string_view::npos) return std::nullopt;
  for (std::size_t i = 0; i <= body_end; ++i) {
    const char c = token[i];
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
    if (!ok) return std::nullopt;
  }
  return token;
}

TokenIndex::TokenIndex(const Config& config) {
  tenant_ids_.reserve(config.tenants.size());
  for (std::size_t i = 0; i < config.tenants.size(); ++i) {
    const Tenant& tenant = config.tenants[i];
    tenant_ids_.push_back(tenant.id);
    for (const std::string& hash : tenant.token_hashes) {
      Entry entry{0, {}, i};
      if (!DecodeTokenHash(hash, &entry.digest)) continue;
      entry.prefix = Prefix(entry.digest);
      entries_.push_back(entry);
    }
  }
  std::sort(entries_.begin(), entries_.end(),
            [](const Entry& a, const Entry& b) { return a.prefix < b.prefix; });
}

std::optional<std::size_t> TokenIndex::Find(std::string_view token) const {
  if (token.empty()) return std::nullopt;
  const Digest digest = Sha256(token);
  const std::uint64_t prefix = Prefix(digest);
  auto it = std::lower_bound(entries_.begin(), entries_.end(), prefix,
                             [](const Entry& entry, std::uint64_t p) { return entry.prefix < p; });
  for (; it != entries_.end() && it->prefix == prefix; ++it) {
    if (CRYPTO_memcmp(it->digest.data(), digest.data(), digest.size()) == 0) return it->tenant;
  }
  return std::nullopt;
}

std::optional<std::size_t> TokenIndex::Authenticate(const BasicCredentials& credentials) const {
  if (credentials.password.empty()) return Find(credentials.user);  // https://TOKEN@host
  // https://TENANT:TOKEN@host: the token decides, the user must name the same tenant.
  const std::optional<std::size_t> tenant = Find(credentials.password);
  if (!tenant.has_value() || tenant_ids_[*tenant] != credentials.user) return std::nullopt;
  return tenant;
}

}  // namespace drainmet::config
