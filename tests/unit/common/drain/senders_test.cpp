// HTTP senders other than Logplex (FORMATS.md §1.8, issue 7): log-shuttle's gzip bodies,
// Bearer credentials, X-Request-Id de-duplication, no Logplex-* headers. Real sockets:
// a drain::Frontend on 127.0.0.1:0 and a Beast client.

#include <zlib.h>

#include <string>

#include "absl/strings/escaping.h"
#include "common/drain/encoding.h"
#include "common/drain/frontend.h"
#include "common/store/memory_store.h"
#include "gtest/gtest.h"
#include "tests/support/drain_text.h"
#include "tests/support/http_client.h"

namespace drainmet::drain {
namespace {

constexpr std::int64_t kSec = 1'000'000'000;
constexpr std::int64_t kNow = 1709633760;  // 2024-03-05T10:16:00Z

using support::Framed;

// `text` as one gzip member (RFC 1952), with zlib.
std::string Gzip(std::string_view text, int level = Z_DEFAULT_COMPRESSION) {
  z_stream stream{};
  EXPECT_EQ(deflateInit2(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&stream, static_cast<uLong>(text.size())) + 64, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  stream.avail_in = static_cast<uInt>(text.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

// log-shuttle's default header fields (FORMATS.md §1.8): hostname "shuttle", app-name
// "token", procid "shuttle", MSGID and SD both "-".
std::string ShuttleFrame(std::string_view msg) {
  return Framed("<190>1 2024-03-05T10:15:01.000000+00:00 shuttle token shuttle - - " + std::string(msg) +
                "\n");
}

TEST(ParseContentEncodingTest, Table) {
  EXPECT_EQ(ParseContentEncoding(std::nullopt), BodyEncoding::kIdentity);
  EXPECT_EQ(ParseContentEncoding(""), BodyEncoding::kIdentity);
  EXPECT_EQ(ParseContentEncoding(" Identity "), BodyEncoding::kIdentity);
  EXPECT_EQ(ParseContentEncoding("gzip"), BodyEncoding::kGzip);
  EXPECT_EQ(ParseContentEncoding("GZIP"), BodyEncoding::kGzip);
  EXPECT_EQ(ParseContentEncoding("x-gzip"), BodyEncoding::kGzip);
  EXPECT_EQ(ParseContentEncoding("deflate"), BodyEncoding::kUnsupported);
  EXPECT_EQ(ParseContentEncoding("br"), BodyEncoding::kUnsupported);
  EXPECT_EQ(ParseContentEncoding("gzip, br"), BodyEncoding::kUnsupported);
}

TEST(InflateGzipTest, RoundTripsWithinTheBound) {
  std::string text;
  for (int i = 0; i < 5000; ++i) text += "count#hits=" + std::to_string(i) + "\n";
  std::string out;
  ASSERT_TRUE(InflateGzip(Gzip(text), text.size(), out).ok());  // exactly at the bound
  EXPECT_EQ(out, text);
}

TEST(InflateGzipTest, ConcatenatedMembersAreOneBody) {
  std::string out;
  ASSERT_TRUE(InflateGzip(Gzip("abc") + Gzip("def"), 100, out).ok());
  EXPECT_EQ(out, "abcdef");
}

TEST(InflateGzipTest, OverTheBoundIsResourceExhausted) {
  const std::string zeros(1 << 20, '0');  // 1 MiB of zeros: about 1 KiB compressed
  const std::string bomb = Gzip(zeros, 9);
  ASSERT_LT(bomb.size(), 4096u);
  std::string out;
  EXPECT_TRUE(absl::IsResourceExhausted(InflateGzip(bomb, zeros.size() - 1, out)));
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(absl::IsResourceExhausted(InflateGzip(Gzip("abc") + Gzip("d"), 3, out)));
}

TEST(InflateGzipTest, MalformedIsInvalidArgument) {
  const std::string good = Gzip("count#hits=1\n");
  std::string corrupt = good;
  corrupt[corrupt.size() - 6] ^= 0x55;  // the CRC-32 of the trailer
  std::string out;
  for (const std::string& body : {std::string(), std::string("plain text, not gzip"),
                                  good.substr(0, good.size() - 3), corrupt, good + "trailing"}) {
    SCOPED_TRACE(absl::CEscape(body));
    EXPECT_TRUE(absl::IsInvalidArgument(InflateGzip(body, 1 << 20, out)));
  }
}

class SendersTest : public ::testing::Test {
 protected:
  SendersTest() {
    config::Config c;
    c.listen = "127.0.0.1:0";
    c.threads = 2;
    c.limits.max_inflated_body_bytes = 64 * 1024;
    config::Tenant t;
    t.id = "acme";
    t.token_hashes.push_back(config::HashToken("shuttle-token"));
    t.output = config::OutputKind::kStdout;
    c.tenants.push_back(t);
    auto frontend =
        Frontend::Start(std::make_shared<const TenantDirectory>(std::move(c)), store_, clock_, metrics_);
    EXPECT_TRUE(frontend.ok()) << frontend.status();
    frontend_ = *std::move(frontend);
  }

  support::HttpReply Post(const support::Headers& headers, std::string_view body) {
    return support::HttpPost(frontend_->port(), "/logs", headers, body);
  }

  /// The sum of the one closed bucket named `name`, or -1.
  double Sum(std::string_view name) {
    auto closed = store_.TakeClosed(true);
    for (const auto& b : *closed) {
      if (b.key.name == name) return b.bucket.sum;
    }
    return -1;
  }

  std::string MetricsText() { return support::HttpGet(frontend_->port(), "/metrics").body; }

  base::FakeClock clock_{kNow * kSec};
  store::MemoryStore store_{clock_, {}};
  telemetry::Metrics metrics_;
  std::unique_ptr<Frontend> frontend_;
};

// log-shuttle: Bearer token, gzip body, X-Request-Id, no Logplex-* headers at all.
TEST_F(SendersTest, LogShuttleGzipBearerRequestIsCounted) {
  const std::string body = ShuttleFrame("count#jobs=2") + ShuttleFrame("count#jobs=3");
  const support::HttpReply reply = Post({{"Authorization", "Bearer shuttle-token"},
                                         {"Content-Type", "application/logplex-1"},
                                         {"Content-Encoding", "gzip"},
                                         {"X-Request-Id", "3f1b2c4d-5e6f-4a1b-8c9d-0e1f2a3b4c5d"}},
                                        Gzip(body));
  EXPECT_EQ(reply.status, 204u) << reply.body;
  EXPECT_EQ(metrics_.Snapshot().frames, 2u);
  EXPECT_EQ(Sum("jobs"), 5);
}

TEST_F(SendersTest, UnknownBearerTokenIs401) {
  const support::HttpReply reply =
      Post({{"Authorization", "Bearer other-token"}}, ShuttleFrame("count#jobs=2"));
  EXPECT_EQ(reply.status, 401u);
  EXPECT_EQ(metrics_.Snapshot().frames, 0u);
}

// FORMATS.md §1.6/§1.8: a retried batch carries the same X-Request-Id; counted once.
TEST_F(SendersTest, RetriedRequestIdCountsOnce) {
  const support::Headers headers = {{"Authorization", "Bearer shuttle-token"}, {"X-Request-Id", "batch-1"}};
  EXPECT_EQ(Post(headers, ShuttleFrame("count#jobs=2")).status, 204u);
  EXPECT_EQ(Post(headers, ShuttleFrame("count#jobs=2")).status, 204u);
  EXPECT_EQ(Post({{"Authorization", "Bearer shuttle-token"}, {"X-Request-Id", "batch-2"}},
                 ShuttleFrame("count#jobs=2"))
                .status,
            204u);
  // Without any id nothing is de-duplicated.
  EXPECT_EQ(Post({{"Authorization", "Bearer shuttle-token"}}, ShuttleFrame("count#jobs=2")).status, 204u);
  EXPECT_EQ(Post({{"Authorization", "Bearer shuttle-token"}}, ShuttleFrame("count#jobs=2")).status, 204u);
  EXPECT_EQ(metrics_.Snapshot().duplicate_request, 1u);
  EXPECT_EQ(Sum("jobs"), 8);
}

// Logplex-Frame-Id wins over X-Request-Id when both are sent.
TEST_F(SendersTest, FrameIdIsTheKeyWhenBothArePresent) {
  EXPECT_EQ(
      Post({{"Authorization", "Bearer shuttle-token"}, {"Logplex-Frame-Id", "F1"}, {"X-Request-Id", "R1"}},
           ShuttleFrame("count#jobs=1"))
          .status,
      204u);
  EXPECT_EQ(
      Post({{"Authorization", "Bearer shuttle-token"}, {"Logplex-Frame-Id", "F2"}, {"X-Request-Id", "R1"}},
           ShuttleFrame("count#jobs=1"))
          .status,
      204u);
  EXPECT_EQ(metrics_.Snapshot().duplicate_request, 0u);
  EXPECT_EQ(Sum("jobs"), 2);
}

TEST_F(SendersTest, InflatedOverTheLimitIs413AndCounted) {
  std::string body;
  while (body.size() <= 64 * 1024) body += ShuttleFrame("count#jobs=1");
  const support::HttpReply reply =
      Post({{"Authorization", "Bearer shuttle-token"}, {"Content-Encoding", "gzip"}}, Gzip(body));
  EXPECT_EQ(reply.status, 413u);
  EXPECT_EQ(metrics_.Snapshot().frames, 0u);
  EXPECT_NE(MetricsText().find("drainmet_input_rejected_total{reason=\"inflated_too_large\"} 1"),
            std::string::npos);
}

TEST_F(SendersTest, BadGzipIs400AndUnknownEncodingIs415) {
  EXPECT_EQ(Post({{"Authorization", "Bearer shuttle-token"}, {"Content-Encoding", "gzip"}},
                 ShuttleFrame("count#jobs=1"))
                .status,
            400u);
  EXPECT_EQ(Post({{"Authorization", "Bearer shuttle-token"}, {"Content-Encoding", "br"}},
                 ShuttleFrame("count#jobs=1"))
                .status,
            415u);
  const std::string text = MetricsText();
  EXPECT_NE(text.find("drainmet_input_rejected_total{reason=\"bad_gzip\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("drainmet_input_rejected_total{reason=\"unsupported_encoding\"} 1"), std::string::npos);
  EXPECT_EQ(metrics_.Snapshot().frames, 0u);
}

// Basic credentials keep working next to Bearer, gzip or not.
TEST_F(SendersTest, BasicCredentialsWithGzip) {
  const support::HttpReply reply = Post(
      {{"Authorization", "Basic " + absl::Base64Escape("shuttle-token:")}, {"Content-Encoding", "x-gzip"}},
      Gzip(ShuttleFrame("count#jobs=4")));
  EXPECT_EQ(reply.status, 204u);
  EXPECT_EQ(Sum("jobs"), 4);
}

}  // namespace
}  // namespace drainmet::drain
