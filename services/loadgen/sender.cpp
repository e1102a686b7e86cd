#include "services/loadgen/sender.h"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <sstream>
#include <string_view>
#include <thread>

#include "absl/strings/escaping.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/write.hpp"
#include "common/extract/extract.h"
#include "fmt/format.h"
#include "services/loadgen/body.h"

namespace drainmet::loadgen {

// ---------------------------------------------------------------- LatencyHistogram

namespace {
constexpr int kSubBits = 8;  // 2^8 buckets below 256 us, then 128 per octave
constexpr std::uint64_t kHalf = 1u << (kSubBits - 1);
constexpr std::size_t kBucketCount = (1u << kSubBits) + 64 * kHalf;

std::size_t BucketOf(std::uint64_t v) {
  if (v < (1u << kSubBits)) return static_cast<std::size_t>(v);
  const int msb = 63 - std::countl_zero(v);
  const int shift = msb - (kSubBits - 1);
  const std::uint64_t sub = v >> shift;  // in [kHalf, 2 * kHalf)
  return (1u << kSubBits) + static_cast<std::size_t>(shift - 1) * kHalf +
         static_cast<std::size_t>(sub - kHalf);
}

std::uint64_t BucketUpperBound(std::size_t index) {
  if (index < (1u << kSubBits)) return index;
  const std::size_t rest = index - (1u << kSubBits);
  const int shift = static_cast<int>(rest / kHalf) + 1;
  const std::uint64_t sub = rest % kHalf + kHalf;
  return ((sub + 1) << shift) - 1;
}
}  // namespace

LatencyHistogram::LatencyHistogram() : buckets_(kBucketCount, 0) {}

void LatencyHistogram::Record(std::uint64_t micros) {
  ++buckets_[std::min(BucketOf(micros), kBucketCount - 1)];
  ++count_;
  max_ = std::max(max_, micros);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (std::size_t i = 0; i < kBucketCount; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

std::uint64_t LatencyHistogram::Quantile(double q) const {
  if (count_ == 0) return 0;
  const std::uint64_t rank = std::clamp<std::uint64_t>(
      static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_))), 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBucketCount; ++i) {
    seen += buckets_[i];
    if (seen >= rank) return std::min(BucketUpperBound(i), max_);
  }
  return max_;
}

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
using boost::system::error_code;

struct Url {
  std::string host;         // without brackets
  std::string port;         // decimal
  std::string host_header;  // as in the URL
  std::string target;       // path and query
};

absl::StatusOr<Url> ParseUrl(std::string_view url, int resolution) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return absl::InvalidArgumentError("--url: must start with http:// (TLS is not supported)");
  }
  std::string_view rest = url.substr(kScheme.size());
  const std::size_t slash = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, slash);
  std::string target(slash == std::string_view::npos ? "/" : rest.substr(slash));
  if (target[0] == '?') target.insert(0, "/");
  if (authority.empty()) return absl::InvalidArgumentError("--url: no host");
  if (authority.find('@') != std::string_view::npos) {
    return absl::InvalidArgumentError("--url: give the credentials with --token, not in the URL");
  }
  Url out;
  out.host_header = std::string(authority);
  std::string_view host = authority, port = "80";
  if (authority[0] == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return absl::InvalidArgumentError("--url: unterminated [IPv6]");
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return absl::InvalidArgumentError("--url: bad port");
      port = authority.substr(close + 2);
    }
  } else if (const std::size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos) {
    return absl::InvalidArgumentError("--url: port must be a decimal number");
  }
  out.host = std::string(host);
  out.port = std::string(port);
  if (resolution > 0) {
    target.append(target.find('?') == std::string::npos ? "?" : "&");
    target.append("resolution=");
    target.append(std::to_string(resolution));
  }
  out.target = std::move(target);
  return out;
}

/// Points and value sum acknowledged for one series of one token.
struct Acknowledged {
  std::uint64_t points = 0;
  double sum = 0;
};

/// Set up before the threads start; afterwards read-only but for the atomics.
struct Shared {
  const SendOptions* options = nullptr;
  Url url;
  tcp::resolver::results_type endpoints;
  std::vector<std::string> authorizations;  // per token: "Basic ..."
  std::size_t tenants = 1;
  SteadyClock::time_point start;
  SteadyClock::time_point deadline;
  std::atomic<std::uint64_t> lines_scheduled{0};
  std::atomic<std::uint64_t> request_seq{0};
  std::atomic<std::uint64_t> frame_seq{0};
  std::uint64_t frame_prefix = 0;
  std::size_t series_count = 0;
};

/// One io thread's results, merged after the run.
struct WorkerResult {
  SendSummary summary;
  std::vector<std::vector<Acknowledged>> acknowledged;  // [token][series]
  std::vector<std::uint64_t> token_requests, token_lines;
  std::uint64_t unacknowledged_requests = 0, unacknowledged_lines = 0;
  std::string first_non_2xx;
};

/// One keep-alive connection: strictly sequential requests (as Logplex sends, FORMATS.md
/// §1.1). Lives on one io thread; every handler runs there.
class Connection {
 public:
  Connection(asio::io_context& io, Shared& shared, WorkerResult& result, std::vector<Body*> bodies)
      : io_(io),
        shared_(shared),
        options_(*shared.options),
        result_(result),
        bodies_(std::move(bodies)),
        socket_(io),
        pace_timer_(io),
        timeout_timer_(io) {
    header_.reserve(512);
  }

  void Start() { Next(); }

 private:
  static constexpr std::size_t kReadBuffer = 16 * 1024;
  static constexpr int kMaxTries = 3;  // Logplex: http_frame_retries 2 + 1 (FORMATS.md §1.6)

  // ---- request level

  void Next() {
    if (bodies_.empty()) return;
    const SteadyClock::time_point now = SteadyClock::now();
    if (now >= shared_.deadline) return Close();
    Body* body = bodies_[next_body_ % bodies_.size()];
    ++next_body_;
    if (options_.rate > 0) {
      const std::uint64_t before = shared_.lines_scheduled.fetch_add(body->frames, std::memory_order_relaxed);
      const auto when =
          shared_.start + std::chrono::duration_cast<SteadyClock::duration>(
                              std::chrono::duration<double>(static_cast<double>(before) / options_.rate));
      if (when >= shared_.deadline) return Close();
      if (when > now) {
        pace_timer_.expires_at(when);
        pace_timer_.async_wait([this, body](const error_code& ec) {
          if (!ec) Begin(body);
        });
        return;
      }
    }
    Begin(body);
  }

  void Begin(Body* body) {
    current_ = body;
    const std::uint64_t seq = shared_.request_seq.fetch_add(1, std::memory_order_relaxed);
    token_ = static_cast<std::size_t>(seq % shared_.tenants) % shared_.authorizations.size();
    const std::int64_t now_s =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    body->Restamp(now_s);  // a retry below resends the same bytes, as Logplex does
    const std::uint64_t frame = shared_.frame_seq.fetch_add(1, std::memory_order_relaxed);
    frame_id_len_ = static_cast<std::size_t>(
        fmt::format_to_n(frame_id_, sizeof frame_id_, "{:016X}{:016X}", shared_.frame_prefix, frame).size);
    tries_ = 0;
    Send();
  }

  /// The final outcome of the current request: status (0: transport error).
  void Final(unsigned status) {
    SendSummary& s = result_.summary;
    ++s.requests;
    s.lines_sent += current_->frames;
    if (status >= 200 && status < 300) {
      ++s.ok_2xx;
      s.lines += current_->frames;
      s.points += current_->points;
      s.bytes += current_->bytes.size();
      ++result_.token_requests[token_];
      result_.token_lines[token_] += current_->frames;
      std::vector<Acknowledged>& acked = result_.acknowledged[token_];
      for (const SeriesTally& t : current_->tallies) {
        acked[t.series].points += t.points;
        acked[t.series].sum += t.sum;
      }
    } else {
      if (status == 0) {
        ++s.transport_errors;
      } else {
        ++s.non_2xx[status];
      }
      ++result_.unacknowledged_requests;
      result_.unacknowledged_lines += current_->frames;
    }
    Next();
  }

  // ---- attempt level

  void Send() {
    ++tries_;
    ++result_.summary.attempts;
    settled_ = false;
    write_done_ = false;
    must_close_ = false;
    write_error_.clear();
    status_ = 0;
    retry_after_s_ = -1;
    fill_ = 0;
    header_end_ = 0;
    body_remaining_ = 0;
    ++outstanding_;
    timeout_timer_.expires_after(
        std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(options_.timeout_s)));
    timeout_timer_.async_wait([this](const error_code& ec) {
      --outstanding_;
      if (!ec) Fail("timeout");
      MaybeConclude();
    });
    if (connected_) return StartIo();
    ++outstanding_;
    socket_ = tcp::socket(io_);
    asio::async_connect(socket_, shared_.endpoints, [this](const error_code& ec, const tcp::endpoint&) {
      --outstanding_;
      if (settled_) return MaybeConclude();
      if (ec) {
        Fail("connect: " + ec.message());
        return MaybeConclude();
      }
      connected_ = true;
      error_code ignored;
      socket_.set_option(tcp::no_delay(true), ignored);
      StartIo();
    });
  }

  void StartIo() {
    header_.clear();
    fmt::format_to(
        std::back_inserter(header_),
        "POST {} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: application/logplex-1\r\n"
        "Logplex-Msg-Count: {}\r\nLogplex-Frame-Id: {}\r\nUser-Agent: drainmet-loadgen/0.1\r\n"
        "Content-Length: {}\r\n\r\n",
        shared_.url.target, shared_.url.host_header, shared_.authorizations[token_], current_->frames,
        std::string_view(frame_id_, frame_id_len_), current_->bytes.size());
    attempt_start_ = SteadyClock::now();
    const std::array<asio::const_buffer, 2> buffers = {asio::buffer(header_), asio::buffer(current_->bytes)};
    outstanding_ += 2;
    asio::async_write(socket_, buffers, [this](const error_code& ec, std::size_t) {
      --outstanding_;
      if (!ec) {
        write_done_ = true;
      } else if (write_error_.empty()) {
        // The read still pending says what happened: an early answer (401, 413) that the
        // server sent before closing, or the error.
        write_error_ = "write: " + ec.message();
      }
      MaybeConclude();
    });
    // Read while writing: an early answer (401, 413) arrives before the body is sent.
    ReadMore();
  }

  void ReadMore() {
    socket_.async_read_some(asio::buffer(read_ + fill_, kReadBuffer - fill_),
                            [this](const error_code& ec, std::size_t n) {
                              --outstanding_;
                              OnRead(ec, n);
                              MaybeConclude();
                            });
  }

  void OnRead(const error_code& ec, std::size_t n) {
    if (settled_ && status_ == 0) return;  // failed meanwhile
    if (ec) {
      if (!write_error_.empty()) return Fail(write_error_);
      return Fail(ec == asio::error::eof ? "connection closed before the answer" : "read: " + ec.message());
    }
    if (header_end_ == 0) {
      fill_ += n;
      const std::string_view seen(read_, fill_);
      const std::size_t end = seen.find("\r\n\r\n");
      if (end == std::string_view::npos) {
        if (fill_ == kReadBuffer) return Fail("answer header over 16 KiB");
        ++outstanding_;
        return ReadMore();
      }
      header_end_ = end + 4;
      if (!ParseHeader(seen.substr(0, end))) return Fail("malformed answer header");
      latency_us_ = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - attempt_start_).count());
      const std::size_t have = fill_ - header_end_;
      if (status_ >= 300 && result_.first_non_2xx.empty()) {
        result_.first_non_2xx =
            fmt::format("{} {}", status_, seen.substr(header_end_, std::min<std::size_t>(have, 200)));
        for (char& c : result_.first_non_2xx) {
          if (c == '\n' || c == '\r' || c == '"') c = ' ';
        }
        while (!result_.first_non_2xx.empty() && result_.first_non_2xx.back() == ' ')
          result_.first_non_2xx.pop_back();
      }
      body_remaining_ = body_length_ > have ? body_length_ - have : 0;
    } else {
      body_remaining_ -= std::min<std::uint64_t>(body_remaining_, n);
    }
    if (body_remaining_ > 0) {
      fill_ = 0;  // the rest of the answer body is read and dropped
      ++outstanding_;
      return ReadMore();
    }
    settled_ = true;
    if (!write_done_) must_close_ = true;  // answered early: the server closes
    if (must_close_) CloseSocket();
    timeout_timer_.cancel();
  }

  /// Status line and the few headers that matter. False when the status line is bad.
  bool ParseHeader(std::string_view header) {
    const std::size_t line_end = header.find("\r\n");
    const std::string_view status_line = header.substr(0, line_end);
    if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/") return false;
    unsigned status = 0;
    for (std::size_t i = 9; i < 12; ++i) {
      if (status_line[i] < '0' || status_line[i] > '9') return false;
      status = status * 10 + static_cast<unsigned>(status_line[i] - '0');
    }
    status_ = status;
    must_close_ = status_line.substr(0, 8) == "HTTP/1.0";
    body_length_ = 0;
    bool has_length = false;
    std::size_t at = line_end == std::string_view::npos ? header.size() : line_end + 2;
    while (at < header.size()) {
      std::size_t end = header.find("\r\n", at);
      if (end == std::string_view::npos) end = header.size();
      const std::string_view line = header.substr(at, end - at);
      at = end + 2;
      const std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      const std::string_view name = line.substr(0, colon);
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
      auto is = [&](std::string_view want) {
        return name.size() == want.size() && std::equal(name.begin(), name.end(), want.begin(),
                                                        [](char a, char b) { return (a | 0x20) == b; });
      };
      if (is("content-length")) {
        has_length = true;
        std::uint64_t n = 0;
        for (char c : value) {
          if (c < '0' || c > '9') return false;
          n = n * 10 + static_cast<std::uint64_t>(c - '0');
        }
        body_length_ = n;
      } else if (is("connection")) {
        must_close_ = must_close_ || value.find("close") != std::string_view::npos ||
                      value.find("Close") != std::string_view::npos;
      } else if (is("retry-after")) {
        int seconds = 0;
        bool digits = !value.empty() && value.size() <= 6;
        for (char c : value) digits = digits && c >= '0' && c <= '9';
        if (digits) {
          for (char c : value) seconds = seconds * 10 + (c - '0');
          retry_after_s_ = seconds;
        }
      } else if (is("transfer-encoding")) {
        must_close_ = true;  // not expected from drainmet; the connection is not reused
      }
    }
    if (!has_length && status_ >= 200 && status_ != 204 && status_ != 304) must_close_ = true;
    return true;
  }

  void Fail(std::string what) {
    if (settled_) return;
    settled_ = true;
    status_ = 0;
    error_ = std::move(what);
    CloseSocket();
    timeout_timer_.cancel();
  }

  void CloseSocket() {
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    connected_ = false;
  }

  /// Runs when every handler of the attempt has come back.
  void MaybeConclude() {
    if (!settled_ || outstanding_ > 0) return;
    if (status_ == 0) {
      if (result_.summary.first_error.empty()) result_.summary.first_error = error_;
    } else {
      result_.summary.latency.Record(latency_us_);
    }
    const bool retryable = status_ == 0 || status_ == 429 || status_ >= 500;
    if (options_.retry && retryable && tries_ < kMaxTries) {
      ++result_.summary.retries;
      // Retry-After when given; else 1 s after an answer, 100 ms after a transport error.
      const double wait_s = retry_after_s_ >= 0 ? retry_after_s_ : (status_ == 0 ? 0.1 : 1.0);
      pace_timer_.expires_after(
          std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(wait_s)));
      pace_timer_.async_wait([this](const error_code& ec) {
        if (!ec) Send();
      });
      return;
    }
    Final(status_);
  }

  void Close() {
    if (connected_) CloseSocket();
  }

  asio::io_context& io_;
  Shared& shared_;
  const SendOptions& options_;
  WorkerResult& result_;
  std::vector<Body*> bodies_;
  std::size_t next_body_ = 0;
  tcp::socket socket_;
  asio::steady_timer pace_timer_;
  asio::steady_timer timeout_timer_;
  bool connected_ = false;

  // The request.
  Body* current_ = nullptr;
  std::size_t token_ = 0;
  char frame_id_[32];
  std::size_t frame_id_len_ = 0;
  int tries_ = 0;
  std::string header_;

  // The attempt.
  int outstanding_ = 0;  // async operations not yet come back
  bool settled_ = false;
  bool write_done_ = false;
  bool must_close_ = false;
  unsigned status_ = 0;  // 0: transport error (error_)
  std::string error_;
  std::string write_error_;  // a failed write, reported if no answer comes
  int retry_after_s_ = -1;
  SteadyClock::time_point attempt_start_;
  std::uint64_t latency_us_ = 0;
  char read_[kReadBuffer];
  std::size_t fill_ = 0;
  std::size_t header_end_ = 0;  // 0: header not complete yet
  std::uint64_t body_length_ = 0;
  std::uint64_t body_remaining_ = 0;
};

double CpuSeconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; }

absl::Status CheckOptions(const SendOptions& o) {
  if (o.tokens.empty()) return absl::InvalidArgumentError("--token: at least one token");
  for (const std::string& t : o.tokens) {
    if (t.empty()) return absl::InvalidArgumentError("--token: empty token");
  }
  if (!o.tenant_names.empty() && o.tenant_names.size() != o.tokens.size()) {
    return absl::InvalidArgumentError("--tenant-names: one name per token");
  }
  if (o.tenants < 0) return absl::InvalidArgumentError("--tenants: must be >= 0");
  if (o.connections < 1) return absl::InvalidArgumentError("--connections: must be >= 1");
  if (o.threads < 1) return absl::InvalidArgumentError("--threads: must be >= 1");
  if (!(o.duration_s > 0)) return absl::InvalidArgumentError("--duration: must be > 0");
  if (!(o.rate >= 0)) return absl::InvalidArgumentError("--rate: must be > 0 or max");
  if (o.lines_per_body < 1 || o.lines_per_body > 100000) {
    return absl::InvalidArgumentError("--lines-per-body: must be 1..100000");
  }
  if (o.series < 1) return absl::InvalidArgumentError("--series: must be >= 1");
  if (o.resolution != 0 && !extract::IsAllowedResolution(o.resolution)) {
    return absl::InvalidArgumentError(
        "--resolution: must be one of 1, 5, 10, 15, 20, 30, 60, 120, 300, 600, "
        "900, 1800, 3600");
  }
  if (o.ring < 1) return absl::InvalidArgumentError("--ring: must be >= 1");
  if (!(o.timeout_s > 0)) return absl::InvalidArgumentError("--timeout: must be > 0");
  return absl::OkStatus();
}

std::string TenantName(const SendOptions& o, std::size_t token) {
  return o.tenant_names.empty() ? "tenant-" + std::to_string(token) : o.tenant_names[token];
}

absl::Status WriteRecord(const SendOptions& o, const SeriesTable& table, const WorkerResult& total) {
  nlohmann::json tenants = nlohmann::json::array();
  for (std::size_t token = 0; token < o.tokens.size(); ++token) {
    nlohmann::json series = nlohmann::json::array();
    for (std::size_t i = 0; i < table.size(); ++i) {
      const Acknowledged& a = total.acknowledged[token][i];
      if (a.points == 0) continue;
      const SeriesKey& key = table.at(static_cast<std::uint32_t>(i));
      series.push_back({{"name", key.name},
                        {"source", key.source},
                        {"kind", std::string(extract::KindName(key.kind))},
                        {"points", a.points},
                        {"sum", a.sum}});
    }
    tenants.push_back({{"tenant", TenantName(o, token)},
                       {"requests", total.token_requests[token]},
                       {"lines", total.token_lines[token]},
                       {"series", std::move(series)}});
  }
  const nlohmann::json record = {{"format", "drainmet-loadgen-record/1"},
                                 {"resolution", o.resolution},
                                 {"acknowledged_requests", total.summary.ok_2xx},
                                 {"acknowledged_lines", total.summary.lines},
                                 {"unacknowledged_requests", total.unacknowledged_requests},
                                 {"unacknowledged_lines", total.unacknowledged_lines},
                                 {"tenants", std::move(tenants)}};
  std::ofstream out(o.record_path, std::ios::trunc);
  out << record.dump(1) << "\n";
  out.close();
  if (!out) return absl::InternalError("--record: cannot write " + o.record_path);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SendSummary> RunSend(const SendOptions& options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  absl::StatusOr<Url> url = ParseUrl(options.url, options.resolution);
  if (!url.ok()) return url.status();

  Shared shared;
  shared.options = &options;
  shared.url = *std::move(url);
  shared.tenants = options.tenants > 0 ? static_cast<std::size_t>(options.tenants) : options.tokens.size();
  for (const std::string& token : options.tokens) {
    shared.authorizations.push_back("Basic " + absl::Base64Escape(token + ":"));
  }
  {
    asio::io_context io;
    tcp::resolver resolver(io);
    error_code ec;
    shared.endpoints = resolver.resolve(shared.url.host, shared.url.port, ec);
    if (ec) return absl::UnavailableError("--url: cannot resolve " + shared.url.host + ": " + ec.message());
  }

  // Bodies: at least one per connection, each owned by one connection.
  const std::int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  SeriesTable table;
  std::vector<Body> bodies;
  const std::size_t connections = static_cast<std::size_t>(options.connections);
  if (options.files.empty()) {
    absl::StatusOr<Template> line_template =
        ParseTemplate(options.line_template.empty() ? kDefaultTemplate : options.line_template);
    if (!line_template.ok()) return line_template.status();
    const std::size_t ring = std::max(static_cast<std::size_t>(options.ring), connections);
    const auto lines = static_cast<std::uint32_t>(options.lines_per_body);
    for (std::size_t r = 0; r < ring; ++r) {
      bodies.push_back(RenderTemplateBody(*line_template, lines, static_cast<std::uint32_t>(options.series),
                                          r * lines, options.seed, now_s));
      TallyBody(bodies.back(), now_s, table);
    }
  } else {
    std::vector<Body> originals;
    for (const std::string& path : options.files) {
      std::ifstream in(path, std::ios::binary);
      if (!in) return absl::NotFoundError("--files: cannot read " + path);
      std::ostringstream raw;
      raw << in.rdbuf();
      absl::StatusOr<Body> body = RenderCapturedBody(raw.str(), now_s);
      if (!body.ok())
        return absl::InvalidArgumentError("--files: " + path + ": " + std::string(body.status().message()));
      TallyBody(*body, now_s, table);
      originals.push_back(*std::move(body));
    }
    const std::size_t ring = std::max(originals.size(), connections);
    for (std::size_t r = 0; r < ring; ++r) bodies.push_back(originals[r % originals.size()]);
  }
  shared.series_count = table.size();

  std::random_device entropy;
  shared.frame_prefix = (static_cast<std::uint64_t>(entropy()) << 32) ^ entropy();

  const std::size_t threads = std::min(static_cast<std::size_t>(options.threads), connections);
  std::vector<std::unique_ptr<asio::io_context>> ios;
  std::vector<WorkerResult> results(threads);
  std::vector<std::unique_ptr<Connection>> conns;
  for (std::size_t t = 0; t < threads; ++t) {
    ios.push_back(std::make_unique<asio::io_context>(1));
    results[t].acknowledged.assign(options.tokens.size(), std::vector<Acknowledged>(table.size()));
    results[t].token_requests.assign(options.tokens.size(), 0);
    results[t].token_lines.assign(options.tokens.size(), 0);
  }
  for (std::size_t c = 0; c < connections; ++c) {
    std::vector<Body*> owned;
    for (std::size_t r = c; r < bodies.size(); r += connections) owned.push_back(&bodies[r]);
    conns.push_back(
        std::make_unique<Connection>(*ios[c % threads], shared, results[c % threads], std::move(owned)));
  }

  rusage usage_before{};
  ::getrusage(RUSAGE_SELF, &usage_before);
  shared.start = SteadyClock::now();
  shared.deadline = shared.start + std::chrono::duration_cast<SteadyClock::duration>(
                                       std::chrono::duration<double>(options.duration_s));
  for (auto& conn : conns) conn->Start();
  std::vector<std::thread> workers;
  for (std::size_t t = 1; t < threads; ++t) workers.emplace_back([&ios, t] { ios[t]->run(); });
  ios[0]->run();
  for (std::thread& w : workers) w.join();
  const SteadyClock::time_point end = SteadyClock::now();
  rusage usage_after{};
  ::getrusage(RUSAGE_SELF, &usage_after);
  conns.clear();

  WorkerResult total = std::move(results[0]);
  for (std::size_t t = 1; t < threads; ++t) {
    const WorkerResult& r = results[t];
    SendSummary& s = total.summary;
    s.requests += r.summary.requests;
    s.attempts += r.summary.attempts;
    s.ok_2xx += r.summary.ok_2xx;
    for (const auto& [status, n] : r.summary.non_2xx) s.non_2xx[status] += n;
    s.transport_errors += r.summary.transport_errors;
    s.retries += r.summary.retries;
    s.lines += r.summary.lines;
    s.points += r.summary.points;
    s.bytes += r.summary.bytes;
    s.lines_sent += r.summary.lines_sent;
    s.latency.Merge(r.summary.latency);
    if (s.first_error.empty()) s.first_error = r.summary.first_error;
    if (total.first_non_2xx.empty()) total.first_non_2xx = r.first_non_2xx;
    for (std::size_t k = 0; k < options.tokens.size(); ++k) {
      total.token_requests[k] += r.token_requests[k];
      total.token_lines[k] += r.token_lines[k];
      for (std::size_t i = 0; i < table.size(); ++i) {
        total.acknowledged[k][i].points += r.acknowledged[k][i].points;
        total.acknowledged[k][i].sum += r.acknowledged[k][i].sum;
      }
    }
    total.unacknowledged_requests += r.unacknowledged_requests;
    total.unacknowledged_lines += r.unacknowledged_lines;
  }
  SendSummary summary = std::move(total.summary);
  summary.wall_s = std::chrono::duration<double>(end - shared.start).count();
  summary.cpu_user_s = CpuSeconds(usage_after.ru_utime) - CpuSeconds(usage_before.ru_utime);
  summary.cpu_sys_s = CpuSeconds(usage_after.ru_stime) - CpuSeconds(usage_before.ru_stime);
  if (summary.first_error.empty() && !total.first_non_2xx.empty()) summary.first_error = total.first_non_2xx;
  if (!options.record_path.empty()) {
    total.summary = summary;
    if (absl::Status s = WriteRecord(options, table, total); !s.ok()) return s;
  }
  return summary;
}

namespace {
double PerSecond(double n, double wall_s) { return wall_s > 0 ? n / wall_s : 0; }
double Ms(std::uint64_t micros) { return static_cast<double>(micros) / 1000.0; }
}  // namespace

nlohmann::json SummaryJson(const SendOptions& options, const SendSummary& s) {
  nlohmann::json non_2xx = nlohmann::json::object();
  std::uint64_t non_2xx_total = 0;
  for (const auto& [status, n] : s.non_2xx) {
    non_2xx[std::to_string(status)] = n;
    non_2xx_total += n;
  }
  return {
      {"connections", options.connections},
      {"threads", std::min(options.threads, options.connections)},
      {"tenants", options.tenants > 0 ? static_cast<std::size_t>(options.tenants) : options.tokens.size()},
      {"rate", options.rate > 0 ? nlohmann::json(options.rate) : nlohmann::json("max")},
      {"duration_s", options.duration_s},
      {"requests", s.requests},
      {"attempts", s.attempts},
      {"2xx", s.ok_2xx},
      {"non_2xx", non_2xx_total},
      {"non_2xx_by_status", std::move(non_2xx)},
      {"transport_errors", s.transport_errors},
      {"retries", s.retries},
      {"lines", s.lines},
      {"points", s.points},
      {"bytes", s.bytes},
      {"lines_sent", s.lines_sent},
      {"wall_s", s.wall_s},
      {"requests_per_s", PerSecond(static_cast<double>(s.requests), s.wall_s)},
      {"lines_per_s", PerSecond(static_cast<double>(s.lines), s.wall_s)},
      {"points_per_s", PerSecond(static_cast<double>(s.points), s.wall_s)},
      {"mb_per_s", PerSecond(static_cast<double>(s.bytes) / 1e6, s.wall_s)},
      {"latency_ms",
       {{"answers", s.latency.count()},
        {"p50", Ms(s.latency.Quantile(0.5))},
        {"p90", Ms(s.latency.Quantile(0.9))},
        {"p99", Ms(s.latency.Quantile(0.99))},
        {"p99.9", Ms(s.latency.Quantile(0.999))},
        {"max", Ms(s.latency.max())}}},
      {"cpu_user_s", s.cpu_user_s},
      {"cpu_sys_s", s.cpu_sys_s},
      {"cpu_per_wall", PerSecond(s.cpu_user_s + s.cpu_sys_s, s.wall_s)},
      {"first_error", s.first_error}};
}

std::string SummaryText(const SendOptions& options, const SendSummary& s) {
  const nlohmann::json j = SummaryJson(options, s);
  std::string out;
  auto line = [&out](std::string text) {
    out.append(text);
    out.push_back('\n');
  };
  line(fmt::format("connections={} threads={} tenants={} rate={} duration_s={}", options.connections,
                   j["threads"].get<int>(), j["tenants"].get<std::size_t>(),
                   options.rate > 0 ? fmt::format("{}", options.rate) : std::string("max"),
                   options.duration_s));
  line(fmt::format("requests={} 2xx={} non_2xx={} transport_errors={} attempts={} retries={}", s.requests,
                   s.ok_2xx, j["non_2xx"].get<std::uint64_t>(), s.transport_errors, s.attempts, s.retries));
  for (const auto& [status, n] : s.non_2xx) line(fmt::format("non_2xx status={} requests={}", status, n));
  line(
      fmt::format("lines={} points={} bytes={} lines_per_s={:.0f} points_per_s={:.0f} mb_per_s={:.2f} "
                  "requests_per_s={:.1f}",
                  s.lines, s.points, s.bytes, j["lines_per_s"].get<double>(), j["points_per_s"].get<double>(),
                  j["mb_per_s"].get<double>(), j["requests_per_s"].get<double>()));
  line(fmt::format("latency_ms p50={:.2f} p90={:.2f} p99={:.2f} p99.9={:.2f} max={:.2f} answers={}",
                   Ms(s.latency.Quantile(0.5)), Ms(s.latency.Quantile(0.9)), Ms(s.latency.Quantile(0.99)),
                   Ms(s.latency.Quantile(0.999)), Ms(s.latency.max()), s.latency.count()));
  line(fmt::format("wall_s={:.3f} cpu_user_s={:.3f} cpu_sys_s={:.3f} cpu_per_wall={:.3f}", s.wall_s,
                   s.cpu_user_s, s.cpu_sys_s, j["cpu_per_wall"].get<double>()));
  if (!s.first_error.empty()) line(fmt::format("first_error=\"{}\"", s.first_error));
  return out;
}

}  // namespace drainmet::loadgen
