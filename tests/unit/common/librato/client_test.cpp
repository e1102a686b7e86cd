#include "common/librato/client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/fake_librato.h"

namespace drainmet::librato {
namespace {

using Answer = support::FakeLibrato::Answer;

constexpr std::string_view kBody =
    R"({"gauges":[{"name":"db.latency","source":"web.1","measure_time":1714564800,"period":60,"value":4.5}]})";

class ClientTest : public testing::Test {
 protected:
  void SetUp() override {
    auto fake = support::FakeLibrato::Start();
    ASSERT_TRUE(fake.ok()) << fake.status();
    fake_ = *std::move(fake);
  }

  ClientOptions Options() const {
    ClientOptions options;
    options.url = fake_->Url();
    options.email = "ops@example.com";
    options.api_token = "t0k3n:with:colons";
    options.connect_timeout_ms = 2000;
    options.request_timeout_ms = 5000;
    return options;
  }

  std::unique_ptr<Client> MakeClient(const ClientOptions& options) {
    auto client = Client::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  std::unique_ptr<support::FakeLibrato> fake_;
};

// SEMANTICS §7.4: JSON body, Content-Type application/json, Basic auth with the tenant's
// credentials (FORMATS §5.1: user = email, password = token).
TEST_F(ClientTest, PostSendsBodyContentTypeAndBasicAuthAsGiven) {
  auto client = MakeClient(Options());
  ASSERT_NE(client, nullptr);
  const PostResult result = client->Post(kBody);
  EXPECT_EQ(result.delivery, Delivery::kAccepted);
  EXPECT_EQ(result.http_status, 200);
  EXPECT_EQ(result.body, "{}");
  EXPECT_EQ(result.error, "");

  const std::vector<support::RecordedRequest> requests = fake_->Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, "/v1/metrics");
  EXPECT_EQ(requests[0].body, kBody);
  EXPECT_EQ(requests[0].Header("content-type"), "application/json");
  EXPECT_EQ(requests[0].Header("User-Agent"), "drainmet/0.1");
  EXPECT_EQ(requests[0].Header("Expect"), std::nullopt);
  EXPECT_TRUE(requests[0].basic_auth);
  EXPECT_EQ(requests[0].user, "ops@example.com");
  EXPECT_EQ(requests[0].password, "t0k3n:with:colons");
  ASSERT_EQ(fake_->Gauges().size(), 1u);
  EXPECT_EQ(fake_->Gauges()[0]["name"], "db.latency");
}

TEST_F(ClientTest, KeepsTheConnectionAliveAcrossPosts) {
  auto client = MakeClient(Options());
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->Post(kBody).delivery, Delivery::kAccepted);
  EXPECT_EQ(client->Post(kBody).delivery, Delivery::kAccepted);
  const std::vector<support::RecordedRequest> requests = fake_->Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].remote_address, requests[1].remote_address);
}

// SEMANTICS §7.5: 2xx done; 429 and 5xx retried (honouring Retry-After); other 4xx rejected
// with the API's error body kept for the log.
TEST_F(ClientTest, ClassifiesTheAnswersOfTheApi) {
  struct Case {
    Answer answer;
    Delivery delivery;
    std::optional<std::int64_t> retry_after;
  };
  const std::string error_body =
      R"({"errors":{"params":{"measure_time":["is too far in the past"]}},"request_time":1475920599})";
  const std::vector<Case> cases = {
      {{200, "{}", std::nullopt, 0}, Delivery::kAccepted, std::nullopt},
      {{202, "", std::nullopt, 0}, Delivery::kAccepted, std::nullopt},
      {{500, "{\"errors\":{\"system\":[\"oops\"]}}", std::nullopt, 0}, Delivery::kRetry, std::nullopt},
      {{503, "maintenance", "30", 0}, Delivery::kRetry, 30},
      {{429, "slow down", "7", 0}, Delivery::kRetry, 7},
      {{429, "slow down", "Wed, 21 Oct 2015 07:28:00 GMT", 0}, Delivery::kRetry, std::nullopt},
      {{400, error_body, std::nullopt, 0}, Delivery::kRejected, std::nullopt},
      {{401, "unauthorized", std::nullopt, 0}, Delivery::kRejected, std::nullopt},
      {{301, "", std::nullopt, 0}, Delivery::kRejected, std::nullopt},
  };
  std::vector<Answer> script;
  for (const Case& c : cases) script.push_back(c.answer);
  fake_->Script(script);

  auto client = MakeClient(Options());
  ASSERT_NE(client, nullptr);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.answer.status);
    const PostResult result = client->Post(kBody);
    EXPECT_EQ(result.http_status, static_cast<long>(c.answer.status));
    EXPECT_EQ(result.delivery, c.delivery);
    EXPECT_EQ(result.retry_after_seconds, c.retry_after);
    EXPECT_EQ(result.body, c.answer.body);
    EXPECT_EQ(result.error, "");
  }
  EXPECT_EQ(fake_->Requests().size(), cases.size());
  // The script is used up: back to the default 200.
  EXPECT_EQ(client->Post(kBody).delivery, Delivery::kAccepted);
}

TEST_F(ClientTest, KeepsOnlyTheFirst4KiBOfTheAnswer) {
  const std::string long_body(10000, 'e');
  fake_->Script({{400, long_body, std::nullopt, 0}});
  auto client = MakeClient(Options());
  ASSERT_NE(client, nullptr);
  const PostResult result = client->Post(kBody);
  EXPECT_EQ(result.delivery, Delivery::kRejected);
  EXPECT_EQ(result.body, long_body.substr(0, PostResult::kMaxBodyBytes));
}

TEST_F(ClientTest, ClosedPortIsRetryWithNoStatusAndAnError) {
  // A bound socket that never listens: the port is ours and refuses connections.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);

  ClientOptions options = Options();
  options.url = "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port)) + "/v1/metrics";
  auto client = MakeClient(options);
  ASSERT_NE(client, nullptr);
  const PostResult result = client->Post(kBody);
  ::close(fd);
  EXPECT_EQ(result.delivery, Delivery::kRetry);
  EXPECT_EQ(result.http_status, 0);
  EXPECT_NE(result.error, "");
  EXPECT_EQ(result.retry_after_seconds, std::nullopt);
}

TEST_F(ClientTest, AnswerSlowerThanTheRequestTimeoutIsRetry) {
  fake_->Script({{200, "{}", std::nullopt, /*delay_ms=*/3000}});
  ClientOptions options = Options();
  options.request_timeout_ms = 200;
  auto client = MakeClient(options);
  ASSERT_NE(client, nullptr);
  const auto start = std::chrono::steady_clock::now();
  const PostResult result = client->Post(kBody);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2500));
  EXPECT_EQ(result.delivery, Delivery::kRetry);
  EXPECT_EQ(result.http_status, 0);
  EXPECT_NE(result.error, "");
  EXPECT_TRUE(fake_->WaitForRequests(1, std::chrono::seconds(5)));

  // The handle stays usable after a timeout.
  EXPECT_EQ(client->Post(kBody).delivery, Delivery::kAccepted);
}

TEST(ClientCreateTest, ValidatesUrlAndTimeouts) {
  struct Case {
    std::string url;
    bool ok;
  };
  const Case cases[] = {
      {"https://metrics-api.librato.com/v1/metrics", true},
      {"HTTPS://metrics-api.librato.com/v1/metrics", true},
      {"http://127.0.0.1:8080/v1/metrics", true},
      {"", false},
      {"ftp://metrics-api.librato.com/v1/metrics", false},
      {"file:///etc/passwd", false},
      {"metrics-api.librato.com/v1/metrics", false},
      {"http://", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.url);
    ClientOptions options;
    options.url = c.url;
    const auto client = Client::Create(options);
    if (c.ok) {
      EXPECT_TRUE(client.ok()) << client.status();
    } else {
      EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
  ClientOptions no_timeout;
  no_timeout.request_timeout_ms = 0;
  EXPECT_EQ(Client::Create(no_timeout).status().code(), absl::StatusCode::kInvalidArgument);
  ClientOptions no_connect_timeout;
  no_connect_timeout.connect_timeout_ms = -1;
  EXPECT_EQ(Client::Create(no_connect_timeout).status().code(), absl::StatusCode::kInvalidArgument);
}

// SEMANTICS §7.5.
TEST(ClassifyTest, MapsStatusesToDeliveries) {
  const std::pair<long, Delivery> cases[] = {
      {0, Delivery::kRetry},      {100, Delivery::kRejected}, {200, Delivery::kAccepted},
      {201, Delivery::kAccepted}, {202, Delivery::kAccepted}, {204, Delivery::kAccepted},
      {299, Delivery::kAccepted}, {301, Delivery::kRejected}, {302, Delivery::kRejected},
      {304, Delivery::kRejected}, {400, Delivery::kRejected}, {401, Delivery::kRejected},
      {403, Delivery::kRejected}, {404, Delivery::kRejected}, {415, Delivery::kRejected},
      {422, Delivery::kRejected}, {428, Delivery::kRejected}, {429, Delivery::kRetry},
      {430, Delivery::kRejected}, {500, Delivery::kRetry},    {502, Delivery::kRetry},
      {503, Delivery::kRetry},    {599, Delivery::kRetry},    {600, Delivery::kRejected},
      {-1, Delivery::kRejected},
  };
  for (const auto& [status, delivery] : cases) {
    SCOPED_TRACE(status);
    EXPECT_EQ(Classify(status), delivery);
  }
}

TEST(ParseRetryAfterSecondsTest, AcceptsOnlyDeltaSeconds) {
  const std::pair<std::string_view, std::optional<std::int64_t>> cases[] = {
      {"120", 120},
      {"0", 0},
      {"7", 7},
      {" 7 ", 7},
      {"\t42\t", 42},
      {"007", 7},
      {"9223372036854775807", std::numeric_limits<std::int64_t>::max()},
      {"9223372036854775808", std::nullopt},
      {"99999999999999999999", std::nullopt},
      {"", std::nullopt},
      {"  ", std::nullopt},
      {"-1", std::nullopt},
      {"+5", std::nullopt},
      {"1.5", std::nullopt},
      {"7s", std::nullopt},
      {"1 2", std::nullopt},
      {"Wed, 21 Oct 2015 07:28:00 GMT", std::nullopt},
  };
  for (const auto& [text, expected] : cases) {
    SCOPED_TRACE(text);
    EXPECT_EQ(ParseRetryAfterSeconds(text), expected);
  }
}

}  // namespace
}  // namespace drainmet::librato
