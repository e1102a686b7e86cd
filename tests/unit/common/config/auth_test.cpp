#include "common/config/auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace drainmet::config {
namespace {

TEST(HashTokenTest, KnownSha256Vectors) {
  // FIPS 180-2 appendix B.1 ("abc") and the empty message.
  EXPECT_EQ(HashToken("abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HashToken(""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(NewTokenTest, Is43Base64UrlCharsAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    const std::string token = NewToken();
    ASSERT_EQ(token.size(), 43u) << token;  // 32 bytes, unpadded
    for (char c : token) {
      EXPECT_TRUE((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '_')
          << token;
    }
    // 256 bits in 43 characters: the last one carries 4 bits of data and 2 zero bits.
    constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    EXPECT_EQ(kAlphabet.find(token.back()) % 4, 0u) << token;
    EXPECT_TRUE(seen.insert(token).second) << "repeated token " << token;
  }
}

struct BasicCase {
  std::string title;
  std::string header;
  std::optional<BasicCredentials> expected;
};

BasicCredentials Creds(std::string user, std::string password) {
  return {std::move(user), std::move(password)};
}

// FORMATS.md §1.2 (Logplex's Authorization header) and §6.2 (l2met's URL-safe decoding).
TEST(ParseBasicAuthorizationTest, Table) {
  const std::vector<BasicCase> cases = {
      {"Standard", "Basic dXNlcjpwYXNz", Creds("user", "pass")},
      {"SchemeLowercase", "basic dXNlcjpwYXNz", Creds("user", "pass")},
      {"SchemeUppercaseExtraBlanks", "  BASIC \t dXNlcjpwYXNz  ", Creds("user", "pass")},
      {"TrailingColonPadded", "Basic dG9rOg==", Creds("tok", "")},
      {"TrailingColonUnpadded", "Basic dG9rOg", Creds("tok", "")},
      {"NoColon", "Basic dG9r", Creds("tok", "")},
      {"PasswordWithColon", "Basic dTpwOnE=", Creds("u", "p:q")},
      {"OnlyColon", "Basic Og==", Creds("", "")},
      {"StandardAlphabet", "Basic YTr7/74=", Creds("a", "\xfb\xff\xbe")},
      {"UrlSafeAlphabet", "Basic YTr7_74=", Creds("a", "\xfb\xff\xbe")},
      {"UrlSafeUnpadded", "Basic YTr7_74", Creds("a", "\xfb\xff\xbe")},
      {"StandardPlusSlash", "Basic ++86/w==", Creds("\xfb\xef", "\xff")},
      {"UrlSafeMinusUnderscore", "Basic --86_w", Creds("\xfb\xef", "\xff")},
      {"Empty", "", std::nullopt},
      {"SchemeOnly", "Basic", std::nullopt},
      {"SchemeAndBlank", "Basic   ", std::nullopt},
      {"WrongScheme", "Bearer dXNlcjpwYXNz", std::nullopt},
      {"SchemePrefixOnly", "Basicx dXNlcjpwYXNz", std::nullopt},
      {"NoSchemeAtAll", "dXNlcjpwYXNz", std::nullopt},
      {"GarbageChars", "Basic !!!!", std::nullopt},
      {"InnerBlank", "Basic dXNl cjpwYXNz", std::nullopt},
      {"PaddingInMiddle", "Basic dX=lcjpw", std::nullopt},
      {"PaddingWrongLength", "Basic dXNlcjpwYXNz=", std::nullopt},
      {"TooMuchPadding", "Basic dG9r====", std::nullopt},
      {"OneDanglingChar", "Basic dXNlc", std::nullopt},
      {"OnlyPadding", "Basic ====", std::nullopt},
  };
  for (const BasicCase& c : cases) {
    SCOPED_TRACE(c.title);
    EXPECT_EQ(ParseBasicAuthorization(c.header), c.expected);
  }
}

class TokenIndexTest : public testing::Test {
 protected:
  TokenIndexTest() {
    Tenant a;
    a.id = "acme";
    a.token_hashes = {HashToken("token-a1"), HashToken("token-a2")};
    Tenant b;
    b.id = "beta";
    b.token_hashes = {HashToken("token-b")};
    Tenant c;  // a malformed hash is skipped, not fatal
    c.id = "gamma";
    c.token_hashes = {"sha256:nothex"};
    config_.tenants = {a, b, c};
  }
  Config config_;
};

TEST_F(TokenIndexTest, FindsTenantOfEachToken) {
  const TokenIndex index(config_);
  EXPECT_EQ(index.Find("token-a1"), 0u);
  EXPECT_EQ(index.Find("token-a2"), 0u);
  EXPECT_EQ(index.Find("token-b"), 1u);
  EXPECT_EQ(index.Find("token-c"), std::nullopt);
  EXPECT_EQ(index.Find("token-a"), std::nullopt);
  EXPECT_EQ(index.Find(""), std::nullopt);
}

TEST_F(TokenIndexTest, TokenAsUserForm) {
  // https://TOKEN@host: Logplex sends base64("TOKEN:").
  const TokenIndex index(config_);
  EXPECT_EQ(index.Authenticate(Creds("token-b", "")), 1u);
  EXPECT_EQ(index.Authenticate(Creds("token-x", "")), std::nullopt);
  EXPECT_EQ(index.Authenticate(Creds("", "")), std::nullopt);
}

TEST_F(TokenIndexTest, TenantAndTokenForm) {
  // https://TENANT:TOKEN@host: the token must belong to the tenant named.
  const TokenIndex index(config_);
  EXPECT_EQ(index.Authenticate(Creds("acme", "token-a2")), 0u);
  EXPECT_EQ(index.Authenticate(Creds("beta", "token-b")), 1u);
  EXPECT_EQ(index.Authenticate(Creds("beta", "token-a1")), std::nullopt);  // right token, wrong tenant
  EXPECT_EQ(index.Authenticate(Creds("nobody", "token-a1")), std::nullopt);
  EXPECT_EQ(index.Authenticate(Creds("acme", "token-x")), std::nullopt);  // unknown token
  EXPECT_EQ(index.Authenticate(Creds("token-a1", "token-a1")), std::nullopt);
}

TEST_F(TokenIndexTest, FromAuthorizationHeader) {
  const TokenIndex index(config_);
  // base64("token-b:") and base64("acme:token-a1")
  std::optional<BasicCredentials> user_form = ParseBasicAuthorization("Basic dG9rZW4tYjo=");
  ASSERT_TRUE(user_form.has_value());
  EXPECT_EQ(index.Authenticate(*user_form), 1u);
  std::optional<BasicCredentials> tenant_form = ParseBasicAuthorization("Basic YWNtZTp0b2tlbi1hMQ==");
  ASSERT_TRUE(tenant_form.has_value());
  EXPECT_EQ(index.Authenticate(*tenant_form), 0u);
}

TEST(TokenIndexManyTest, EveryTokenOfManyTenants) {
  Config config;
  std::vector<std::string> tokens;
  for (int i = 0; i < 500; ++i) {
    Tenant tenant;
    tenant.id = "t" + std::to_string(i);
    tokens.push_back(NewToken());
    tenant.token_hashes = {HashToken(tokens.back())};
    config.tenants.push_back(tenant);
  }
  const TokenIndex index(config);
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    EXPECT_EQ(index.Find(tokens[i]), i);
    EXPECT_EQ(index.Authenticate(Creds(config.tenants[i].id, tokens[i])), i);
  }
  EXPECT_EQ(index.Find(NewToken()), std::nullopt);
}

}  // namespace
}  // namespace drainmet::config

namespace drainmet::config {
namespace {

// RFC 6750 §2.1 Bearer credentials, as log-shuttle sends them (FORMATS.md §1.8).
TEST(ParseBearerAuthorizationTest, Table) {
  struct Case {
    const char* name;
    const char* header;
    std::optional<std::string_view> token;
  };
  const Case cases[] = {
      {"Standard", "Bearer tok-123", "tok-123"},
      {"SchemeAnyCase", "bEaReR tok", "tok"},
      {"BlanksAround", "  Bearer \t abc/+._~=  ", "abc/+._~="},
      {"Base64UrlToken", "Bearer 8cV1d0Jm4_x-Q", "8cV1d0Jm4_x-Q"},
      {"Empty", "", std::nullopt},
      {"SchemeOnly", "Bearer", std::nullopt},
      {"SchemeAndBlanks", "Bearer   ", std::nullopt},
      {"OnlyPadding", "Bearer ==", std::nullopt},
      {"PaddingInside", "Bearer ab=c", std::nullopt},
      {"InnerBlank", "Bearer a b", std::nullopt},
      {"Basic", "Basic dXNlcjpwYXNz", std::nullopt},
      {"SchemePrefixOnly", "Bearerx tok", std::nullopt},
      {"BadByte", "Bearer tok\x01", std::nullopt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(ParseBearerAuthorization(c.header), c.token);
  }
}

}  // namespace
}  // namespace drainmet::config
