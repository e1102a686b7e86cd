#include "common/drain/syslog.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/drain/handler.h"
#include "common/drain/intake_metrics.h"
#include "common/drain/processor.h"
#include "common/http/server.h"
#include "common/http/tls.h"
#include "common/logplex/frame_reader.h"
#include "common/telemetry/log.h"

namespace drainmet::drain {

// ---------------------------------------------------------------------------------------
// SyslogDrainIndex

SyslogDrainIndex::SyslogDrainIndex(const config::Config& config) {
  for (const config::SyslogDrain& drain : config.syslog.drains) {
    const auto tenant = std::find_if(config.tenants.begin(), config.tenants.end(),
                                     [&](const config::Tenant& t) { return t.id == drain.tenant; });
    if (tenant == config.tenants.end()) continue;
    Drain entry;
    entry.tenant_index = static_cast<std::size_t>(tenant - config.tenants.begin());
    entry.options.resolution_seconds =
        drain.resolution_seconds != 0 ? drain.resolution_seconds : tenant->default_resolution_seconds;
    entry.options.prefix = drain.prefix;
    entry.options.source_prefix = drain.source_prefix;
    drains_.emplace(drain.token, std::move(entry));
  }
}

const SyslogDrainIndex::Drain* SyslogDrainIndex::Find(std::string_view token) const {
  // Debian's Abseil has its own string_view: the map's heterogeneous lookup takes that one.
  const auto it = drains_.find(absl::string_view(token.data(), token.size()));
  return it == drains_.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------------------------------
// SyslogSplitter

namespace {

constexpr std::size_t kMaxLenDigits = 6;  // as FrameReader: LEN has 1-6 digits

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

SyslogSplitter::Result SyslogSplitter::Next(std::string_view pending, bool end_of_stream) {
  std::size_t pos = 0;
  for (;;) {
    if (skip_bytes_ > 0) {
      const std::size_t n = std::min(skip_bytes_, pending.size() - pos);
      skip_bytes_ -= n;
      pos += n;
      if (skip_bytes_ > 0) return {Kind::kNeedMore, {}, pos};
      continue;
    }
    if (skip_line_) {
      const std::size_t lf = pending.find('\n', pos);
      if (lf == std::string_view::npos) return {Kind::kNeedMore, {}, pending.size()};
      pos = lf + 1;
      skip_line_ = false;
      continue;
    }
    while (pos < pending.size() && (pending[pos] == '\r' || pending[pos] == '\n' || pending[pos] == ' '))
      ++pos;
    if (pos == pending.size()) return {Kind::kNeedMore, {}, pos};
    const std::string_view rest = pending.substr(pos);

    if (IsDigit(rest[0])) {
      std::size_t digits = 0;
      while (digits < rest.size() && digits <= kMaxLenDigits && IsDigit(rest[digits])) ++digits;
      if (digits == rest.size() && digits <= kMaxLenDigits && !end_of_stream) {
        return {Kind::kNeedMore, {}, pos};  // the length may go on in the next read
      }
      if (digits < rest.size() && digits <= kMaxLenDigits && rest[digits] == ' ') {
        // RFC 6587 §3.4.1 octet counting.
        std::size_t length = 0;
        for (std::size_t i = 0; i < digits; ++i)
          length = length * 10 + static_cast<std::size_t>(rest[i] - '0');
        const std::size_t header = digits + 1;
        if (length > max_) {
          skip_bytes_ = length;
          return {Kind::kTooLong, {}, pos + header};
        }
        if (rest.size() - header < length) return {Kind::kNeedMore, {}, pos};
        return {Kind::kMessage, rest.substr(header, length), pos + header + length};
      }
      // Digits without a SP after them: not a length; the line fallback below.
    }

    // RFC 6587 §3.4.2: the message ends at LF.
    const std::size_t lf = rest.find('\n');
    if (lf == std::string_view::npos) {
      if (rest.size() > max_) {
        skip_line_ = true;
        return {Kind::kTooLong, {}, pending.size()};
      }
      if (end_of_stream) return {Kind::kMessage, rest, pending.size()};
      return {Kind::kNeedMore, {}, pos};
    }
    if (lf > max_) return {Kind::kTooLong, {}, pos + lf + 1};
    std::string_view line = rest.substr(0, lf);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return {Kind::kMessage, line, pos + lf + 1};
  }
}

// ---------------------------------------------------------------------------------------
// SyslogListener

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using telemetry::Level;
using telemetry::Log;

// Bytes asked of the socket per read.
constexpr std::size_t kReadChunk = 64 * 1024;
// A TLS handshake must finish within this.
constexpr std::chrono::seconds kHandshakeTimeout{10};
// While stopping, a read of bytes the kernel already holds must finish within this.
constexpr std::chrono::milliseconds kStopReadTimeout{200};
// Retries of a store that refused a connection's points: first delay, then doubled.
constexpr std::chrono::milliseconds kFirstRetry{100};
constexpr std::chrono::milliseconds kMaxRetry{2000};

std::string Endpoint(const tcp::endpoint& endpoint) {
  const net::ip::address a = endpoint.address();
  return a.is_v6() ? "[" + a.to_string() + "]:" + std::to_string(endpoint.port())
                   : a.to_string() + ":" + std::to_string(endpoint.port());
}

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  /// Posted by Stop: stop reading, store what was read, close.
  virtual void Shutdown() = 0;
};

}  // namespace

/// Lets store callbacks (any thread, any time) reach the io_context only while it exists.
struct IoGuard {
  std::mutex mu;
  bool alive = true;  // guarded by mu
};

class SyslogListener::Impl {
 public:
  Impl(std::shared_ptr<DirectoryHolder> holder, store::Store& store, const base::Clock& clock,
       telemetry::Metrics& metrics, int threads, const config::Syslog& settings)
      : holder_(std::move(holder)),
        store_(store),
        clock_(clock),
        metrics_(metrics),
        intake_(metrics),
        settings_(settings),
        threads_count_(std::max(1, threads)),
        ioc_(threads_count_),
        tcp_acceptor_(ioc_),
        tls_acceptor_(ioc_),
        guard_(std::make_shared<IoGuard>()) {}

  ~Impl() {
    Stop(10000);
    std::lock_guard<std::mutex> lock(guard_->mu);
    guard_->alive = false;
  }

  absl::Status Open();
  void Run();
  void Stop(std::int64_t timeout_ms);

  // For sessions.
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  std::chrono::steady_clock::time_point stop_deadline() const {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    return stop_deadline_;
  }
  void Register(SessionBase* raw, const std::shared_ptr<SessionBase>& session);
  void Unregister(SessionBase* raw);

  std::shared_ptr<DirectoryHolder> holder_;
  store::Store& store_;
  const base::Clock& clock_;
  telemetry::Metrics& metrics_;
  IntakeMetrics intake_;
  const config::Syslog settings_;
  std::uint16_t tcp_port_ = 0;
  std::uint16_t tls_port_ = 0;

 private:
  friend class SyslogListener;
  template <bool kTls>
  void Accept();
  template <bool kTls>
  void OnAccept(beast::error_code ec, tcp::socket socket);
  absl::Status Bind(tcp::acceptor& acceptor, const std::string& listen, std::uint16_t* port);
  void ThreadMain();

  const int threads_count_;
  mutable std::mutex sessions_mu_;
  std::condition_variable sessions_cv_;
  std::unordered_map<SessionBase*, std::weak_ptr<SessionBase>> sessions_;  // guarded by sessions_mu_
  std::chrono::steady_clock::time_point stop_deadline_{};                  // guarded by sessions_mu_

  std::atomic<bool> stopping_{false};
  std::mutex stop_mu_;
  bool stopped_ = false;  // guarded by stop_mu_

 public:
  net::io_context ioc_;

 private:
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::mutex acceptor_mu_;
  tcp::acceptor tcp_acceptor_;
  tcp::acceptor tls_acceptor_;

 public:
  std::shared_ptr<http::TlsContextHolder> tls_;  // null without tls_listen; set by Open()
  std::shared_ptr<IoGuard> guard_;

 private:
  std::vector<std::thread> threads_;
};

namespace {

/// One syslog connection. Every step runs on the session's strand.
///
/// Cycle: read -> split the unparsed bytes into messages -> points per tenant -> the
/// store's IngestAsync for each tenant -> (all answered) drop the bytes used -> read. No
/// read is started while points are being stored: the socket's buffers fill and TCP
/// pushes back on Logplex. A store that refuses (Unavailable) is retried with the same
/// bytes (parsed again for the tenants not yet stored) after a backoff.
template <bool kTls>
class Session : public SessionBase, public std::enable_shared_from_this<Session<kTls>> {
 public:
  using Stream = std::conditional_t<kTls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;

  Session(SyslogListener::Impl& listener, tcp::socket socket)
      : listener_(listener),
        context_(kTls ? listener.tls_->Current() : nullptr),
        stream_(MakeStream(context_.get(), std::move(socket))),
        retry_timer_(stream_.get_executor()),
        frame_prefix_("syslog-" + config::NewToken().substr(0, 16) + "-"),
        splitter_(listener.settings_.max_line_bytes),
        capacity_(listener.settings_.max_line_bytes + 16 + kReadChunk),
        buffer_(new char[capacity_]),
        extractor_(extract::DrainOptions{}) {
    beast::error_code ec;
    const tcp::endpoint remote = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
    if (!ec) remote_ = Endpoint(remote);
  }

  ~Session() override {
    std::uint64_t lost = 0;
    for (const Batch& b : batches_) {
      if (!b.done) lost += b.points;
    }
    if (lost > 0) listener_.intake_.store_unavailable.Increment(static_cast<double>(lost));
    listener_.intake_.open_connections.Decrement();
    listener_.Unregister(this);
  }

  void Start() {
    listener_.intake_.open_connections.Increment();
    listener_.Register(this, this->shared_from_this());
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->Handshake();
      } else {
        self->Read();
      }
    });
  }

  void Shutdown() override {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if (self->reading_ || self->handshaking_) {
        // The handler runs with operation_aborted; a read's stores what was read.
        beast::error_code ec;
        beast::get_lowest_layer(self->stream_).socket().cancel(ec);
      } else if (self->waiting_retry_) {
        self->retry_timer_.cancel();  // retry now, then again until the stop deadline
      }
    });
  }

 private:
  struct Batch {
    std::size_t tenant_index = 0;
    std::string tenant;
    extract::DrainOptions options;
    bucket::BucketMap partials;
    telemetry::Counters counters;
    std::uint64_t points = 0;  // points in `partials` (for store_unavailable)
    bool done = false;         // stored (or given up)
    // De-duplication key of this batch's points, kept by its retries: a write that applied
    // some (shard, window) parts before failing is not applied twice (RELIABILITY.md §3.3).
    std::string frame_id;
  };

  static Stream MakeStream(ssl::context* context, tcp::socket socket) {
    if constexpr (kTls) {
      return Stream(beast::tcp_stream(std::move(socket)), *context);
    } else {
      (void)context;
      return Stream(std::move(socket));
    }
  }

  void Handshake() {
    if constexpr (kTls) {
      beast::get_lowest_layer(stream_).expires_after(kHandshakeTimeout);
      handshaking_ = true;
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                self->handshaking_ = false;
                                if (ec) {
                                  self->listener_.intake_.tls_refused.Increment();
                                  self->listener_.tls_->CountHandshakeFailure(ec, self->remote_);
                                  return self->Close();
                                }
                                self->listener_.intake_.tls_accepted.Increment();
                                self->Read();
                              });
    }
  }

  void Read() {
    auto& lowest = beast::get_lowest_layer(stream_);
    if (listener_.stopping()) {
      // Stopping: what the kernel already holds is still read (briefly), then the rest
      // of the buffer is processed as the end of the stream.
      beast::error_code ec;
      if (lowest.socket().available(ec) == 0 || ec) return Process(/*end_of_stream=*/true);
      lowest.expires_after(kStopReadTimeout);
    } else {
      lowest.expires_after(std::chrono::seconds(listener_.settings_.idle_timeout_seconds));
    }
    if (begin_ > 0 && capacity_ - end_ < kReadChunk) {
      std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    const std::size_t room = std::min(kReadChunk, capacity_ - end_);
    reading_ = true;
    stream_.async_read_some(net::buffer(buffer_.get() + end_, room),
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t bytes) {
                              self->OnRead(ec, bytes);
                            });
  }

  void OnRead(beast::error_code ec, std::size_t bytes) {
    reading_ = false;
    end_ += bytes;
    if (ec) {
      if (ec != net::error::eof && ec != net::error::operation_aborted && ec != beast::error::timeout &&
          ec != ssl::error::stream_truncated) {
        Log(Level::kDebug, "syslog connection read failed", {{"remote", remote_}, {"error", ec.message()}});
      }
      return Process(/*end_of_stream=*/true);
    }
    Process(/*end_of_stream=*/false);  // then Read(), which ends the stream when stopping
  }

  Batch& BatchFor(const SyslogDrainIndex::Drain& drain) {
    for (std::size_t i = 0; i < used_batches_; ++i) {
      if (batches_[i].tenant_index == drain.tenant_index &&
          batches_[i].options.prefix == drain.options.prefix &&
          batches_[i].options.source_prefix == drain.options.source_prefix &&
          batches_[i].options.resolution_seconds == drain.options.resolution_seconds) {
        return batches_[i];
      }
    }
    if (used_batches_ == batches_.size()) batches_.emplace_back();
    Batch& b = batches_[used_batches_++];
    b.tenant_index = drain.tenant_index;
    b.tenant = directory_->config.tenants[drain.tenant_index].id;
    b.options = drain.options;
    b.partials.clear();
    b.counters = {};
    b.points = 0;
    b.done = false;
    b.frame_id = frame_prefix_ + std::to_string(next_batch_++);
    return b;
  }

  // Parses [begin_, end_) into batches. First pass: a new directory snapshot and receive
  // time, every problem counted. A retry (`retry`): the same bytes, the same snapshot,
  // only into batches not yet stored, problems outside them not counted again.
  void Parse(bool end_of_stream, bool retry) {
    if (!retry) {
      directory_ = listener_.holder_->Get();
      times_.received_at_nanos = listener_.clock_.NowUnixNanos();
      times_.now_nanos = times_.received_at_nanos;
      times_.future_tolerance_nanos =
          directory_->config.limits.future_tolerance_seconds * base::kNanosPerSecond;
      splitter_at_begin_ = splitter_;
      used_batches_ = 0;
      cached_token_.clear();
      cached_drain_ = nullptr;
    } else {
      splitter_ = splitter_at_begin_;
      for (std::size_t i = 0; i < used_batches_; ++i) {
        Batch& b = batches_[i];
        if (b.done) continue;
        b.partials.clear();
        b.counters = {};
        b.points = 0;
      }
    }
    telemetry::Counters unattributed;  // frames of no known drain
    std::uint64_t unknown = 0, too_long = 0;
    std::size_t pos = begin_;
    for (;;) {
      const std::string_view pending(buffer_.get() + pos, end_ - pos);
      const SyslogSplitter::Result r = splitter_.Next(pending, end_of_stream);
      pos += r.consumed;
      if (r.kind == SyslogSplitter::Kind::kNeedMore) break;
      if (r.kind == SyslogSplitter::Kind::kTooLong) {
        ++too_long;
        continue;
      }
      ++unattributed.frames;
      std::optional<logplex::Frame> frame;
      if (!r.message.empty()) frame = logplex::ParseFrame(r.message);
      if (!frame) {
        ++unattributed.bad_frame;
        continue;
      }
      const SyslogDrainIndex::Drain* drain = Lookup(frame->hostname);
      if (drain == nullptr) {
        ++unknown;
        continue;
      }
      --unattributed.frames;
      Batch& batch = BatchFor(*drain);
      if (batch.done) continue;  // a retry: stored already
      ++batch.counters.frames;
      const std::size_t index = static_cast<std::size_t>(&batch - batches_.data());
      if (index != last_batch_) {
        extractor_.Reset(batch.options);
        last_batch_ = index;
      }
      batch.points += ProcessFrame(batch.tenant, batch.options.resolution_seconds, *frame, times_, extractor_,
                                   timestamps_, batch.partials, batch.counters);
    }
    last_batch_ = kNoBatch;
    if (end_of_stream && pos < end_) {
      // An incomplete message cut by the end of the connection (or by Stop).
      ++unattributed.frames;
      ++unattributed.bad_frame;
      pos = end_;
    }
    parsed_end_ = pos;
    if (retry) return;
    if (unattributed.frames > 0 || unattributed.bad_frame > 0) {
      listener_.metrics_.Add(unattributed);
      if (unattributed.bad_frame > 0) {
        telemetry::LogOnce("syslog_bad_frame", "syslog message with a malformed RFC 5424 header skipped",
                           {{"remote", remote_}});
      }
    }
    if (unknown > 0) {
      listener_.intake_.unknown_drain_token.Increment(static_cast<double>(unknown));
      telemetry::LogOnce("unknown_drain_token", "syslog messages of an unknown drain token dropped",
                         {{"remote", remote_}, {"token", std::string(unknown_example_)}});
    }
    if (too_long > 0) {
      listener_.intake_.line_too_long.Increment(static_cast<double>(too_long));
      telemetry::LogOnce(
          "line_too_long", "syslog message over syslog.max_line_bytes skipped",
          {{"remote", remote_}, {"max_line_bytes", std::to_string(listener_.settings_.max_line_bytes)}});
    }
  }

  const SyslogDrainIndex::Drain* Lookup(std::string_view token) {
    if (cached_drain_ != nullptr && token == cached_token_) return cached_drain_;
    const SyslogDrainIndex::Drain* drain = directory_->syslog_drains.Find(token);
    if (drain != nullptr) {
      cached_token_.assign(token);
      cached_drain_ = drain;
    } else {
      unknown_example_.assign(token.substr(0, 64));
    }
    return drain;
  }

  void Process(bool end_of_stream) {
    end_of_stream_ = end_of_stream;
    Parse(end_of_stream, /*retry=*/false);
    retry_delay_ = kFirstRetry;
    Store();
  }

  // Hands every batch not yet stored to the store; Stored() continues once all answered.
  void Store() {
    outstanding_ = 0;
    for (std::size_t i = 0; i < used_batches_; ++i) {
      if (!batches_[i].done) ++outstanding_;
    }
    if (outstanding_ == 0) return Stored();
    for (std::size_t i = 0; i < used_batches_; ++i) {
      Batch& b = batches_[i];
      if (b.done) continue;
      std::shared_ptr<IoGuard> guard = listener_.guard_;
      auto self = this->shared_from_this();
      listener_.store_.IngestAsync(b.tenant, b.frame_id, std::move(b.partials),
                                   [guard, self, i](absl::StatusOr<store::IngestResult> result) mutable {
                                     std::lock_guard<std::mutex> lock(guard->mu);
                                     if (!guard->alive) return;
                                     net::post(self->stream_.get_executor(),
                                               [self, i, result = std::move(result)]() mutable {
                                                 self->OnStored(i, std::move(result));
                                               });
                                   });
      b.partials = bucket::BucketMap();
    }
  }

  void OnStored(std::size_t index, absl::StatusOr<store::IngestResult> result) {
    Batch& b = batches_[index];
    if (result.ok()) {
      b.counters.points += result->applied_points;
      b.counters.late += result->late_points;
      b.counters.series_limit += result->series_limit_points;
      listener_.metrics_.Add(b.counters);
      b.done = true;
    } else {
      telemetry::LogOnce("syslog_store_unavailable",
                         "store refused syslog points; retrying (no reads meanwhile)",
                         {{"tenant", b.tenant}, {"error", result.status().ToString()}});
    }
    if (--outstanding_ > 0) return;
    Stored();
  }

  void Stored() {
    bool all_done = true;
    for (std::size_t i = 0; i < used_batches_; ++i) all_done &= batches_[i].done;
    if (!all_done) {
      if (!listener_.stopping() || std::chrono::steady_clock::now() < listener_.stop_deadline()) {
        return ScheduleRetry();
      }
      // Stopping and out of time: what the store did not take is lost (counted).
      std::uint64_t lost = 0;
      for (std::size_t i = 0; i < used_batches_; ++i) {
        if (!batches_[i].done) lost += batches_[i].points;
        batches_[i].done = true;
      }
      listener_.intake_.store_unavailable.Increment(static_cast<double>(lost));
      Log(Level::kWarn, "syslog points given up at shutdown: the store did not take them",
          {{"remote", remote_}, {"points", std::to_string(lost)}});
    }
    used_batches_ = 0;
    begin_ = parsed_end_;
    if (begin_ == end_) begin_ = end_ = 0;
    if (end_of_stream_) return Close();
    Read();
  }

  void ScheduleRetry() {
    waiting_retry_ = true;
    retry_timer_.expires_after(listener_.stopping() ? std::chrono::milliseconds(50) : retry_delay_);
    retry_delay_ = std::min(retry_delay_ * 2, kMaxRetry);
    retry_timer_.async_wait([self = this->shared_from_this()](beast::error_code) {
      self->waiting_retry_ = false;
      self->Parse(self->end_of_stream_, /*retry=*/true);
      self->Store();
    });
  }

  void Close() {
    beast::error_code ec;
    auto& socket = beast::get_lowest_layer(stream_).socket();
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  SyslogListener::Impl& listener_;
  // The TLS context this connection began with (kept across a reload); null for TCP.
  std::shared_ptr<ssl::context> context_;
  Stream stream_;
  net::steady_timer retry_timer_;
  std::string remote_;
  const std::string frame_prefix_;  // "syslog-<16 random base64url characters>-", then a batch number
  std::uint64_t next_batch_ = 0;
  SyslogSplitter splitter_;
  SyslogSplitter splitter_at_begin_{0};
  const std::size_t capacity_;
  std::unique_ptr<char[]> buffer_;
  std::size_t begin_ = 0;       // first unparsed byte
  std::size_t end_ = 0;         // end of the bytes read
  std::size_t parsed_end_ = 0;  // end of the bytes the batches in flight were parsed from
  bool reading_ = false;
  bool handshaking_ = false;
  bool waiting_retry_ = false;
  bool end_of_stream_ = false;
  std::shared_ptr<const TenantDirectory> directory_;
  BodyTimes times_;
  extract::Extractor extractor_;
  logplex::Rfc3339Cache timestamps_;
  std::vector<Batch> batches_;
  std::size_t used_batches_ = 0;
  static constexpr std::size_t kNoBatch = static_cast<std::size_t>(-1);
  std::size_t last_batch_ = kNoBatch;  // the batch extractor_ was last Reset for
  std::size_t outstanding_ = 0;
  std::chrono::milliseconds retry_delay_ = kFirstRetry;
  std::string cached_token_;
  const SyslogDrainIndex::Drain* cached_drain_ = nullptr;
  std::string unknown_example_;
};

}  // namespace

absl::Status SyslogListener::Impl::Bind(tcp::acceptor& acceptor, const std::string& listen,
                                        std::uint16_t* port) {
  absl::StatusOr<std::pair<std::string, std::uint16_t>> address = http::ParseListenAddress(listen);
  if (!address.ok()) return address.status();
  beast::error_code ec;
  const tcp::endpoint endpoint(net::ip::make_address(address->first, ec), address->second);
  if (ec) return absl::InvalidArgumentError("syslog: bad listen address " + listen);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return absl::UnavailableError("syslog: cannot listen on " + listen + ": " + ec.message());
  *port = acceptor.local_endpoint(ec).port();
  return absl::OkStatus();
}

absl::Status SyslogListener::Impl::Open() {
  if (!settings_.listen.empty()) {
    if (absl::Status s = Bind(tcp_acceptor_, settings_.listen, &tcp_port_); !s.ok()) return s;
  }
  if (!settings_.tls_listen.empty()) {
    // The same context rules as the HTTP listener (http/tls.h: TLS 1.2+, no compression).
    http::TlsFiles files;
    files.cert_file = settings_.tls_cert_file;
    files.key_file = settings_.tls_key_file;
    files.cert_key = "syslog.tls_cert_file";
    files.key_key = "syslog.tls_key_file";
    absl::StatusOr<std::shared_ptr<http::TlsContextHolder>> tls =
        http::TlsContextHolder::Load(std::move(files), "syslog", &metrics_.registry());
    if (!tls.ok()) return tls.status();
    tls_ = *std::move(tls);
    if (absl::Status s = Bind(tls_acceptor_, settings_.tls_listen, &tls_port_); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void SyslogListener::Impl::Run() {
  if (!tcp_acceptor_.is_open() && !tls_acceptor_.is_open()) return;
  work_.emplace(net::make_work_guard(ioc_));
  if (tcp_acceptor_.is_open()) Accept<false>();
  if (tls_acceptor_.is_open()) Accept<true>();
  for (int i = 0; i < threads_count_; ++i) threads_.emplace_back([this] { ThreadMain(); });
  Log(Level::kInfo, "syslog listening",
      {{"tcp", settings_.listen.empty() ? "off" : std::to_string(tcp_port_)},
       {"tls", settings_.tls_listen.empty() ? "off" : std::to_string(tls_port_)},
       {"drains", std::to_string(settings_.drains.size())}});
}

void SyslogListener::Impl::ThreadMain() {
  for (;;) {
    try {
      ioc_.run();
      return;
    } catch (const std::exception& e) {
      Log(Level::kError, "syslog thread caught an exception", {{"error", e.what()}});
    } catch (...) {
      Log(Level::kError, "syslog thread caught an exception", {{"error", "unknown"}});
    }
  }
}

template <bool kTls>
void SyslogListener::Impl::Accept() {
  std::lock_guard<std::mutex> lock(acceptor_mu_);
  tcp::acceptor& acceptor = kTls ? tls_acceptor_ : tcp_acceptor_;
  if (!acceptor.is_open()) return;
  acceptor.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
    OnAccept<kTls>(ec, std::move(socket));
  });
}

template <bool kTls>
void SyslogListener::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (ec) {
    if (ec == net::error::operation_aborted || stopping()) return;
    Log(Level::kWarn, "syslog accept failed", {{"error", ec.message()}});
    // E.g. EMFILE: go on accepting after a pause rather than spin.
    auto timer = std::make_shared<net::steady_timer>(ioc_, std::chrono::milliseconds(100));
    timer->async_wait([this, timer](beast::error_code) { Accept<kTls>(); });
    return;
  }
  bool full = false;
  {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    full = sessions_.size() >= settings_.max_connections;
  }
  if (full || stopping()) {
    (kTls ? intake_.tls_refused : intake_.tcp_refused).Increment();
    telemetry::LogOnce("syslog_connection_limit", "syslog connection refused: syslog.max_connections reached",
                       {{"max_connections", std::to_string(settings_.max_connections)}});
    beast::error_code ignored;
    socket.close(ignored);
  } else {
    if constexpr (!kTls) intake_.tcp_accepted.Increment();  // TLS: counted after the handshake
    std::make_shared<Session<kTls>>(*this, std::move(socket))->Start();
  }
  Accept<kTls>();
}

void SyslogListener::Impl::Register(SessionBase* raw, const std::shared_ptr<SessionBase>& session) {
  std::lock_guard<std::mutex> lock(sessions_mu_);
  sessions_.emplace(raw, session);
}

void SyslogListener::Impl::Unregister(SessionBase* raw) {
  std::lock_guard<std::mutex> lock(sessions_mu_);
  if (sessions_.erase(raw) > 0 && sessions_.empty()) sessions_cv_.notify_all();
}

void SyslogListener::Impl::Stop(std::int64_t timeout_ms) {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max<std::int64_t>(timeout_ms, 0));
  {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    stop_deadline_ = deadline;
  }
  stopping_.store(true, std::memory_order_release);
  if (threads_.empty()) return;
  {
    std::lock_guard<std::mutex> lock(acceptor_mu_);
    beast::error_code ec;
    tcp_acceptor_.close(ec);
    tls_acceptor_.close(ec);
  }
  std::vector<std::shared_ptr<SessionBase>> live;
  {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    for (const auto& [raw, weak] : sessions_) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (const auto& s : live) s->Shutdown();
  live.clear();
  {
    std::unique_lock<std::mutex> lock(sessions_mu_);
    if (!sessions_cv_.wait_until(lock, deadline + std::chrono::milliseconds(200),
                                 [this] { return sessions_.empty(); })) {
      Log(Level::kWarn, "syslog stop timed out; closing connections",
          {{"connections", std::to_string(sessions_.size())}});
    }
  }
  work_.reset();
  ioc_.stop();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  Log(Level::kInfo, "syslog stopped");
}

SyslogListener::SyslogListener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SyslogListener::~SyslogListener() = default;

absl::StatusOr<std::unique_ptr<SyslogListener>> SyslogListener::Start(std::shared_ptr<DirectoryHolder> holder,
                                                                      store::Store& store,
                                                                      const base::Clock& clock,
                                                                      telemetry::Metrics& metrics,
                                                                      int threads) {
  if (holder == nullptr) return absl::InvalidArgumentError("syslog: no directory");
  const config::Syslog settings = holder->Get()->config.syslog;
  auto impl = std::make_unique<Impl>(std::move(holder), store, clock, metrics, threads, settings);
  if (absl::Status s = impl->Open(); !s.ok()) return s;
  impl->Run();
  return std::unique_ptr<SyslogListener>(new SyslogListener(std::move(impl)));
}

std::uint16_t SyslogListener::tcp_port() const { return impl_->tcp_port_; }
std::uint16_t SyslogListener::tls_port() const { return impl_->tls_port_; }
void SyslogListener::Stop(std::int64_t timeout_ms) { impl_->Stop(timeout_ms); }

absl::Status SyslogListener::ReloadTls() {
  if (impl_->tls_ == nullptr) return absl::OkStatus();
  return impl_->tls_->Reload();
}

}  // namespace drainmet::drain
