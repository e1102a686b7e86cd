#include "common/librato/client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

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

// MultiClient: several POSTs in flight at once, each classified as Client::Post does.

/// Polls `client` until nothing is in flight (at most 10 s); the completions by tag.
std::map<std::uint64_t, PostResult> PollAll(MultiClient& client) {
  std::map<std::uint64_t, PostResult> done;
  std::vector<Completion> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (client.in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
    client.Poll(std::chrono::milliseconds(50), out);
    for (Completion& c : out) {
      EXPECT_EQ(done.count(c.tag), 0u) << "tag " << c.tag << " completed twice";
      done[c.tag] = std::move(c.result);
    }
    out.clear();
  }
  return done;
}

TEST_F(ClientTest, MultiClientKeepsSeveralPostsInFlightAtOnce) {
  // Four answers held 400 ms each: one after another they would take 1.6 s.
  fake_->Script({{200, "{}", std::nullopt, 400},
                 {200, "{}", std::nullopt, 400},
                 {200, "{}", std::nullopt, 400},
                 {200, "{}", std::nullopt, 400}});
  auto client = MultiClient::Create();
  ASSERT_TRUE(client.ok()) << client.status();
  auto endpoint = (*client)->AddEndpoint(Options());
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  const std::string bodies[] = {std::string(kBody), std::string(kBody) + " ", std::string(kBody) + "  ",
                                std::string(kBody) + "   "};
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < 4; ++i) ASSERT_TRUE((*client)->Start(*endpoint, bodies[i], 10 + i).ok());
  EXPECT_EQ((*client)->in_flight(), 4u);
  const std::map<std::uint64_t, PostResult> done = PollAll(**client);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1200));
  ASSERT_EQ(done.size(), 4u);
  for (const auto& [tag, result] : done) {
    EXPECT_EQ(result.delivery, Delivery::kAccepted) << tag;
    EXPECT_EQ(result.http_status, 200) << tag;
    EXPECT_EQ(result.body, "{}") << tag;
  }
  // Each body arrived once, with the endpoint's credentials.
  const std::vector<support::RecordedRequest> requests = fake_->Requests();
  ASSERT_EQ(requests.size(), 4u);
  std::set<std::string> got;
  for (const support::RecordedRequest& r : requests) {
    got.insert(r.body);
    EXPECT_EQ(r.user, "ops@example.com");
    EXPECT_EQ(r.password, "t0k3n:with:colons");
    EXPECT_EQ(r.Header("content-type"), "application/json");
  }
  EXPECT_EQ(got, std::set<std::string>(std::begin(bodies), std::end(bodies)));
}

TEST_F(ClientTest, MultiClientClassifiesEachAnswerAndReadsRetryAfter) {
  // Answers go to requests in arrival order; delays keep the arrival order fixed.
  fake_->Script({{500, "{\"errors\":\"busy\"}", std::nullopt, 0},
                 {429, "{}", std::string("7"), 0},
                 {400, "{\"errors\":\"bad\"}", std::nullopt, 0}});
  auto client = MultiClient::Create();
  ASSERT_TRUE(client.ok()) << client.status();
  auto endpoint = (*client)->AddEndpoint(Options());
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  std::map<std::uint64_t, PostResult> done;
  for (std::uint64_t tag = 1; tag <= 4; ++tag) {
    ASSERT_TRUE((*client)->Start(*endpoint, kBody, tag).ok());
    done.merge(PollAll(**client));
  }
  ASSERT_EQ(done.size(), 4u);
  EXPECT_EQ(done[1].delivery, Delivery::kRetry);
  EXPECT_EQ(done[1].http_status, 500);
  EXPECT_EQ(done[1].body, "{\"errors\":\"busy\"}");
  EXPECT_EQ(done[2].delivery, Delivery::kRetry);
  EXPECT_EQ(done[2].http_status, 429);
  EXPECT_EQ(done[2].retry_after_seconds, 7);
  EXPECT_EQ(done[3].delivery, Delivery::kRejected);
  EXPECT_EQ(done[3].http_status, 400);
  EXPECT_EQ(done[3].retry_after_seconds, std::nullopt);
  EXPECT_EQ(done[4].delivery, Delivery::kAccepted);
  EXPECT_EQ(done[4].body, "{}");
  // One transfer at a time: one connection, kept alive throughout.
  const std::vector<support::RecordedRequest> requests = fake_->Requests();
  ASSERT_EQ(requests.size(), 4u);
  for (const support::RecordedRequest& r : requests) EXPECT_EQ(r.remote_address, requests[0].remote_address);
}

TEST_F(ClientTest, MultiClientReusesItsConnectionsForTheNextRequests) {
  auto client = MultiClient::Create();
  ASSERT_TRUE(client.ok()) << client.status();
  auto endpoint = (*client)->AddEndpoint(Options());
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  for (int round = 0; round < 3; ++round) {
    for (std::uint64_t i = 0; i < 3; ++i) ASSERT_TRUE((*client)->Start(*endpoint, kBody, i).ok());
    EXPECT_EQ(PollAll(**client).size(), 3u);
  }
  const std::vector<support::RecordedRequest> requests = fake_->Requests();
  ASSERT_EQ(requests.size(), 9u);
  std::set<std::string> connections;
  for (const support::RecordedRequest& r : requests) connections.insert(r.remote_address);
  EXPECT_LE(connections.size(), 3u) << "at most one connection per request in flight";
  // And one libcurl handle per request in flight, whatever the number of requests (a new
  // handle per request made the outlet's memory grow ~11 MiB a minute in the soak).
  EXPECT_EQ((*client)->handles(), 3u);
  for (std::uint64_t i = 0; i < 20; ++i) {
    ASSERT_TRUE((*client)->Start(*endpoint, kBody, 100 + i).ok());
    EXPECT_EQ(PollAll(**client).size(), 1u);
  }
  EXPECT_EQ((*client)->handles(), 3u);
}

TEST_F(ClientTest, MultiClientTransportFailureIsRetryAndCancelAllDropsTheRest) {
  ClientOptions closed = Options();
  closed.url = "http://127.0.0.1:1/v1/metrics";
  auto client = MultiClient::Create();
  ASSERT_TRUE(client.ok()) << client.status();
  auto bad = (*client)->AddEndpoint(closed);
  ASSERT_TRUE(bad.ok()) << bad.status();
  ASSERT_TRUE((*client)->Start(*bad, kBody, 1).ok());
  std::map<std::uint64_t, PostResult> done = PollAll(**client);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[1].delivery, Delivery::kRetry);
  EXPECT_EQ(done[1].http_status, 0);
  EXPECT_FALSE(done[1].error.empty());

  fake_->Script({{200, "{}", std::nullopt, 2000}});
  auto good = (*client)->AddEndpoint(Options());
  ASSERT_TRUE(good.ok()) << good.status();
  {
    const std::string body(kBody);
    ASSERT_TRUE((*client)->Start(*good, body, 2).ok());
    std::vector<Completion> out;
    (*client)->Poll(std::chrono::milliseconds(100), out);
    EXPECT_TRUE(out.empty());
    (*client)->CancelAll();
    EXPECT_EQ((*client)->in_flight(), 0u);
  }  // the body is gone: the client must not touch it again
  ASSERT_TRUE((*client)->Start(*good, kBody, 3).ok());
  done = PollAll(**client);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[3].delivery, Delivery::kAccepted);
  ClientOptions ftp = Options();
  ftp.url = "ftp://example.com/";
  EXPECT_EQ((*client)->AddEndpoint(ftp).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*client)->Start(99, kBody, 4).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace drainmet::librato
