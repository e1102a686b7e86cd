#include "common/http/server.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "absl/status/status.h"
#include "common/base/strings.h"
#include "common/http/tls.h"
#include "common/telemetry/log.h"
#include "fmt/format.h"

namespace drainmet::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;

// A request body read into a std::string (a Beast Body, its reader concept): each piece
// the parser hands over is appended. Beast's string_body resizes the string first, which
// zero-fills every byte of the body before copying it in (~1% of a receiver's CPU).
struct AppendedStringBody {
  using value_type = std::string;

  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(bhttp::header<isRequest, Fields>& /*header*/, value_type& body) : body_(body) {}

    // The length is Content-Length (checked against max_body_bytes before the body is read).
    void init(const boost::optional<std::uint64_t>& length, beast::error_code& ec) {
      if (length) {
        if (*length > body_.max_size()) {
          ec = bhttp::error::buffer_overflow;
          return;
        }
        body_.reserve(static_cast<std::size_t>(*length));
      }
      ec = {};
    }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, beast::error_code& ec) {
      const std::size_t extra = beast::buffer_bytes(buffers);
      if (extra > body_.max_size() - body_.size()) {
        ec = bhttp::error::buffer_overflow;
        return 0;
      }
      for (const auto piece : beast::buffers_range_ref(buffers)) {
        body_.append(static_cast<const char*>(piece.data()), piece.size());
      }
      ec = {};
      return extra;
    }

    void finish(beast::error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};
using tcp = net::ip::tcp;
using telemetry::Level;
using telemetry::Log;

// First read of a request while idle; later reads are sized by Beast, which reads at most
// what the buffer holds (its capacity).
constexpr std::size_t kFirstReadBytes = 4096;
// The buffer's capacity while a body is read: a 100 KiB body then takes ~2 reads instead of
// ~25 of 4 KiB. A connection gives it back after the request (idle connections hold
// kFirstReadBytes), so it costs memory only per request being read.
constexpr std::size_t kBodyReadBytes = 64 * 1024;
// After an answer that closes the connection, unread request bytes are drained this long
// before closing, so the kernel does not reset the connection (and destroy the answer in
// the peer's receive buffer) because of unread data (RFC 9112 §9.6).
constexpr std::int64_t kLingerMs = 2000;
constexpr std::size_t kLingerReadBytes = 64 * 1024;

std::string_view ToStd(beast::string_view view) { return std::string_view(view.data(), view.size()); }

std::string FormatEndpoint(const tcp::endpoint& endpoint) {
  const net::ip::address address = endpoint.address();
  if (address.is_v6()) return fmt::format("[{}]:{}", address.to_string(), endpoint.port());
  return fmt::format("{}:{}", address.to_string(), endpoint.port());
}

bool IsHttpSyntaxError(const beast::error_code& ec) {
  return ec.category() == beast::error_code(bhttp::error::bad_method).category();
}

bool HasToken(std::string_view value, std::string_view token) {
  return base::EqualsIgnoreCase(base::StripBlanks(value), token);
}

Response PlainResponse(unsigned status, std::string_view text) {
  Response response;
  response.status = status;
  response.body = fmt::format("{}\n", text);
  return response;
}

// Header names and values a handler gives must not split the response (CR/LF) and must
// not override the framing the server owns.
bool IsWritableHeader(std::string_view name, std::string_view value) {
  if (name.empty() || name.find_first_of("\r\n: \t") != std::string_view::npos) return false;
  if (value.find_first_of("\r\n") != std::string_view::npos) return false;
  return !base::EqualsIgnoreCase(name, "content-length") && !base::EqualsIgnoreCase(name, "connection") &&
         !base::EqualsIgnoreCase(name, "transfer-encoding");
}

// What the server knows of a session, whatever its stream (plain TCP or TLS).
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  /// Posted by Server::Stop: a connection waiting between requests (or in its TLS
  /// handshake) closes now; one with a request in flight answers it (with Connection:
  /// close) first.
  virtual void CloseIfIdle() = 0;
};

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

}  // namespace

// Owns the acceptor, the io_context and its threads, and the registry of live sessions.
class Server::Impl {
 public:
  Impl(ServerOptions options, AsyncHandler handler, HeaderCheck header_check)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        header_check_(std::move(header_check)),
        ioc_(options_.threads),
        acceptor_(ioc_),
        accept_retry_(ioc_) {}

  ~Impl() { Stop(10000); }

  absl::Status Open();
  void Run();
  void Stop(std::int64_t timeout_ms);
  std::uint16_t port() const { return port_; }

  // For sessions (any thread).
  const ServerOptions& options() const { return options_; }
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  void Register(SessionBase* raw, const std::shared_ptr<SessionBase>& session);
  void Unregister(SessionBase* session);
  /// The TLS context holder; null for plain HTTP.
  const std::shared_ptr<TlsContextHolder>& tls() const { return tls_; }
  void set_tls(std::shared_ptr<TlsContextHolder> tls) { tls_ = std::move(tls); }
  std::optional<Response> CheckHeaders(const Request& request);
  void Handle(const Request& request, const Responder& respond);

 private:
  void Accept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  void ThreadMain();

  const ServerOptions options_;
  const AsyncHandler handler_;
  const HeaderCheck header_check_;
  std::shared_ptr<TlsContextHolder> tls_;  // set before Run(), then read-only

  std::mutex sessions_mu_;
  std::condition_variable sessions_cv_;
  std::unordered_map<SessionBase*, std::weak_ptr<SessionBase>> sessions_;  // guarded by sessions_mu_

  std::atomic<bool> stopping_{false};
  std::mutex stop_mu_;    // serialises Stop()
  bool stopped_ = false;  // guarded by stop_mu_
  std::uint16_t port_ = 0;

  // Declared after the session registry: destroying the io_context destroys the handlers
  // that still own sessions, whose destructors unregister themselves.
  net::io_context ioc_;
  // Keeps run() going while no I/O is pending: a request waiting for an asynchronous
  // answer has none, and its answer is posted later. Reset by Stop.
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::mutex acceptor_mu_;  // the acceptor and its retry timer are used from Stop() too
  tcp::acceptor acceptor_;
  net::steady_timer accept_retry_;
  std::vector<std::thread> threads_;
};

namespace {

// One connection over `Stream` (PlainStream or TlsStream): the same request logic for
// both; a TLS session first completes the server handshake (bounded by read_timeout_ms,
// as a request is). Every step runs on the session's strand, so its state needs no lock.
template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  Session(Server::Impl& server, tcp::socket socket, std::shared_ptr<ssl::context> context)
      : server_(server),
        context_(std::move(context)),
        stream_(MakeStream(std::move(socket), context_.get())) {
    beast::error_code ec;
    const tcp::endpoint remote = Lowest().socket().remote_endpoint(ec);
    if (!ec) remote_address_ = FormatEndpoint(remote);
  }
  ~Session() override { server_.Unregister(this); }

  void Start() {
    server_.Register(this, this->shared_from_this());
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->Handshake();
      } else {
        self->WaitForRequest();
      }
    });
  }

  void CloseIfIdle() override {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if (self->state_ == State::kIdle || self->state_ == State::kHandshaking) self->CloseNow();
    });
  }

 private:
  enum class State : std::uint8_t { kHandshaking, kIdle, kReading, kHandling, kWriting, kLingering, kClosed };

  static Stream MakeStream(tcp::socket socket, ssl::context* context) {
    if constexpr (kTls) {
      return Stream(beast::tcp_stream(std::move(socket)), *context);
    } else {
      (void)context;
      return Stream(std::move(socket));
    }
  }

  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  // TLS only: the server handshake under the read timeout (a client that never finishes
  // it is closed then: slowloris). A failure is counted and logged once per reason.
  void Handshake() {
    if constexpr (kTls) {
      state_ = State::kHandshaking;
      if (server_.stopping()) return CloseNow();
      Lowest().expires_after(std::chrono::milliseconds(server_.options().read_timeout_ms));
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) {
                                  if (self->state_ != State::kClosed)
                                    self->server_.tls()->CountHandshakeFailure(ec, self->remote_address_);
                                  return self->CloseNow();
                                }
                                self->WaitForRequest();
                              });
    }
  }

  void WaitForRequest() {
    state_ = State::kIdle;
    if (server_.stopping()) return CloseNow();
    if (buffer_.size() > 0) return ReadHeader();  // a pipelined request is already here
    Lowest().expires_after(std::chrono::milliseconds(server_.options().idle_timeout_ms));
    stream_.async_read_some(buffer_.prepare(kFirstReadBytes),
                            beast::bind_front_handler(&Session::OnFirstBytes, this->shared_from_this()));
  }

  void OnFirstBytes(beast::error_code ec, std::size_t bytes) {
    if (ec) {
      if (ec != net::error::eof && ec != net::error::operation_aborted && ec != beast::error::timeout) {
        Log(Level::kDebug, "http connection read failed",
            {{"remote", remote_address_}, {"error", ec.message()}});
      }
      return CloseNow();
    }
    buffer_.commit(bytes);
    if (server_.stopping()) return CloseNow();
    ReadHeader();
  }

  void ReadHeader() {
    state_ = State::kReading;
    version_ = 11;
    keep_alive_ = false;
    parser_.emplace();
    parser_->header_limit(server_.options().max_header_bytes);
    // The body limit is set once HeaderCheck has run: a Content-Length over the limit
    // would otherwise fail the header read. (boost::none is not usable: Beast 1.74
    // compares it as smaller than any length.)
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    // One deadline for the whole request, counted from its first byte.
    Lowest().expires_after(std::chrono::milliseconds(server_.options().read_timeout_ms));
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             beast::bind_front_handler(&Session::OnHeader, this->shared_from_this()));
  }

  void OnHeader(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return OnReadError(ec);
    auto& message = parser_->get();
    version_ = message.version();
    keep_alive_ = message.keep_alive();
    request_ = Request{};
    request_.method = std::string(ToStd(message.method_string()));
    request_.target = std::string(ToStd(message.target()));
    request_.remote_address = remote_address_;
    std::size_t fields = 0;
    for (auto it = message.begin(); it != message.end(); ++it) ++fields;
    if (fields > server_.options().max_header_count) {
      telemetry::LogOnce("too_many_headers",
                         "request with more header fields than limits.max_header_count (431)",
                         {{"remote", remote_address_}, {"count", std::to_string(fields)}});
      return Respond(PlainResponse(431, "too many request header fields"), /*close=*/true);
    }
    for (const auto& field : message) {
      request_.headers.emplace_back(std::string(ToStd(field.name_string())),
                                    std::string(ToStd(field.value())));
    }

    state_ = State::kHandling;
    if (std::optional<Response> early = server_.CheckHeaders(request_)) {
      return Respond(*std::move(early), /*close=*/true);
    }
    const boost::optional<std::uint64_t> length = parser_->content_length();
    if (length && *length > server_.options().max_body_bytes) {
      return Respond(PlainResponse(413, "request body too large"), /*close=*/true);
    }
    parser_->body_limit(server_.options().max_body_bytes);  // bounds chunked bodies
    if (parser_->is_done()) return OnBody({}, 0);

    state_ = State::kReading;
    const auto expect = message.find(bhttp::field::expect);
    if (version_ >= 11 && expect != message.end() && HasToken(ToStd(expect->value()), "100-continue")) {
      continue_.version(11);
      continue_.result(bhttp::status::continue_);
      return bhttp::async_write(
          stream_, continue_,
          beast::bind_front_handler(&Session::OnContinueWritten, this->shared_from_this()));
    }
    ReadBody();
  }

  void OnContinueWritten(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return OnReadError(ec);
    ReadBody();
  }

  void ReadBody() {
    const boost::optional<std::uint64_t> remaining = parser_->content_length_remaining();
    const std::uint64_t wanted =
        buffer_.size() + (remaining ? std::min<std::uint64_t>(*remaining, kBodyReadBytes) : kBodyReadBytes);
    if (buffer_.capacity() < wanted) buffer_.reserve(std::min<std::uint64_t>(wanted, kBodyReadBytes));
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&Session::OnBody, this->shared_from_this()));
  }

  void OnBody(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return OnReadError(ec);
    if (buffer_.capacity() > kFirstReadBytes) buffer_.shrink_to_fit();  // see kBodyReadBytes
    request_.body = std::move(parser_->get().body());
    state_ = State::kHandling;
    server_.Handle(request_, MakeResponder());
  }

  // The Responder of the request being handled: runs Respond on this session's strand
  // (inline when already there), once; a 500 when never called.
  Responder MakeResponder() {
    struct Once {
      explicit Once(std::shared_ptr<Session> s) : session(std::move(s)) {}
      ~Once() {
        if (!answered.exchange(true)) {
          Log(Level::kError, "http handler dropped a request without answering it",
              {{"path", session->request_.Path()}});
          Deliver(session, PlainResponse(500, "internal server error"));
        }
      }
      static void Deliver(const std::shared_ptr<Session>& session, Response response) {
        net::dispatch(session->stream_.get_executor(), [session, response = std::move(response)]() mutable {
          session->Respond(std::move(response), /*close=*/false);
        });
      }
      std::shared_ptr<Session> session;
      std::atomic<bool> answered{false};
    };
    auto once = std::make_shared<Once>(this->shared_from_this());
    return [once](Response response) {
      if (once->answered.exchange(true)) return;
      Once::Deliver(once->session, std::move(response));
    };
  }

  void OnReadError(const beast::error_code& ec) {
    if (ec == bhttp::error::header_limit) {
      return Respond(PlainResponse(431, "request header fields too large"), /*close=*/true);
    }
    if (ec == bhttp::error::body_limit) {
      return Respond(PlainResponse(413, "request body too large"), /*close=*/true);
    }
    if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) return CloseNow();
    if (IsHttpSyntaxError(ec)) {
      Log(Level::kDebug, "http bad request", {{"remote", remote_address_}, {"error", ec.message()}});
      return Respond(PlainResponse(400, "bad request"), /*close=*/true);
    }
    // Timeout (slowloris), reset, or Stop() closing the socket: nobody to answer.
    Log(Level::kDebug, "http request read failed", {{"remote", remote_address_}, {"error", ec.message()}});
    CloseNow();
  }

  void Respond(Response response, bool close) {
    state_ = State::kWriting;
    const bool keep_alive = keep_alive_ && !close && !server_.stopping();
    try {
      BuildResponse(std::move(response), keep_alive);
    } catch (const std::exception& e) {
      Log(Level::kError, "http response could not be built",
          {{"remote", remote_address_}, {"error", e.what()}});
      BuildResponse(PlainResponse(500, "internal server error"), keep_alive);
    }
    Lowest().expires_after(std::chrono::milliseconds(server_.options().read_timeout_ms));
    bhttp::async_write(stream_, response_,
                       beast::bind_front_handler(&Session::OnWritten, this->shared_from_this(), keep_alive));
  }

  void BuildResponse(Response response, bool keep_alive) {
    if (response.status < 200 || response.status > 599) {
      Log(Level::kError, "http handler returned an invalid status",
          {{"status", std::to_string(response.status)}, {"path", request_.Path()}});
      response = PlainResponse(500, "internal server error");
    }
    response_ = {};
    response_.version(version_ == 10 ? 10 : 11);
    response_.result(response.status);
    for (const auto& [name, value] : response.headers) {
      if (!IsWritableHeader(name, value)) {
        Log(Level::kWarn, "http handler header dropped", {{"header", name}});
        continue;
      }
      response_.insert(name, value);
    }
    if (!response.content_type.empty()) response_.set(bhttp::field::content_type, response.content_type);
    response_.keep_alive(keep_alive);
    if (response.status == 204 || response.status == 304) return;  // no body, no Content-Length
    response_.body() = std::move(response.body);
    response_.prepare_payload();
  }

  void OnWritten(bool keep_alive, beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) {
      Log(Level::kDebug, "http response write failed",
          {{"remote", remote_address_}, {"error", ec.message()}});
      return CloseNow();
    }
    if (!keep_alive) return LingerThenClose();
    WaitForRequest();
  }

  // Half-closes, then drains what the peer still sends (a body we did not read) until it
  // closes or kLingerMs pass.
  void LingerThenClose() {
    state_ = State::kLingering;
    beast::error_code ec;
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return CloseNow();
    buffer_.clear();
    Lowest().expires_after(std::chrono::milliseconds(kLingerMs));
    Drain();
  }

  // Raw TCP bytes, also on a TLS connection: they are only discarded.
  void Drain() {
    Lowest().async_read_some(buffer_.prepare(kLingerReadBytes),
                             [self = this->shared_from_this()](beast::error_code ec, std::size_t /*bytes*/) {
                               if (ec) return self->CloseNow();
                               self->buffer_.clear();
                               self->Drain();
                             });
  }

  void CloseNow() {
    state_ = State::kClosed;
    beast::error_code ec;
    Lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    Lowest().close();
  }

  Server::Impl& server_;
  std::shared_ptr<ssl::context> context_;  // null for plain TCP; the context this connection began with
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<AppendedStringBody>> parser_;
  bhttp::response<bhttp::empty_body> continue_;
  bhttp::response<bhttp::string_body> response_;
  Request request_;
  std::string remote_address_;
  State state_ = State::kHandshaking;
  unsigned version_ = 11;
  bool keep_alive_ = false;
};

}  // namespace

absl::Status Server::Impl::Open() {
  beast::error_code ec;
  const net::ip::address address = net::ip::make_address(options_.address, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        fmt::format("http: listen address \"{}\" is not an IP address: {}", options_.address, ec.message()));
  }
  const tcp::endpoint endpoint(address, options_.port);
  const std::string where = FormatEndpoint(endpoint);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return absl::UnavailableError(fmt::format("http: cannot listen on {}: {}", where, ec.message()));
  const tcp::endpoint bound = acceptor_.local_endpoint(ec);
  if (ec) return absl::UnavailableError(fmt::format("http: cannot read the bound port: {}", ec.message()));
  port_ = bound.port();
  return absl::OkStatus();
}

void Server::Impl::Run() {
  work_.emplace(net::make_work_guard(ioc_));
  Accept();
  threads_.reserve(static_cast<std::size_t>(options_.threads));
  for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { ThreadMain(); });
  Log(Level::kInfo, "http server listening",
      {{"address", options_.address},
       {"port", std::to_string(port_)},
       {"threads", std::to_string(options_.threads)},
       {"tls", tls_ != nullptr ? "on" : "off"}});
}

void Server::Impl::ThreadMain() {
  // No exception leaves a server thread: log it and go on serving.
  for (;;) {
    try {
      ioc_.run();
      return;
    } catch (const std::exception& e) {
      Log(Level::kError, "http server thread caught an exception", {{"error", e.what()}});
    } catch (...) {
      Log(Level::kError, "http server thread caught an exception", {{"error", "unknown"}});
    }
  }
}

void Server::Impl::Accept() {
  std::lock_guard<std::mutex> lock(acceptor_mu_);
  if (!acceptor_.is_open()) return;
  // Each connection gets its own strand: its handlers never run concurrently.
  acceptor_.async_accept(net::make_strand(ioc_), beast::bind_front_handler(&Impl::OnAccept, this));
}

void Server::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (ec) {
    std::lock_guard<std::mutex> lock(acceptor_mu_);
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
    // E.g. EMFILE: retry shortly rather than spin.
    Log(Level::kWarn, "http accept failed", {{"error", ec.message()}});
    accept_retry_.expires_after(std::chrono::milliseconds(100));
    accept_retry_.async_wait([this](beast::error_code wait_ec) {
      if (!wait_ec) Accept();
    });
    return;
  }
  if (tls_ != nullptr) {
    std::make_shared<Session<TlsStream>>(*this, std::move(socket), tls_->Current())->Start();
  } else {
    std::make_shared<Session<PlainStream>>(*this, std::move(socket), nullptr)->Start();
  }
  Accept();
}

void Server::Impl::Register(SessionBase* raw, const std::shared_ptr<SessionBase>& session) {
  std::lock_guard<std::mutex> lock(sessions_mu_);
  sessions_.emplace(raw, session);
}

void Server::Impl::Unregister(SessionBase* session) {
  std::lock_guard<std::mutex> lock(sessions_mu_);
  if (sessions_.erase(session) > 0 && sessions_.empty()) sessions_cv_.notify_all();
}

std::optional<Response> Server::Impl::CheckHeaders(const Request& request) {
  if (!header_check_) return std::nullopt;
  try {
    return header_check_(request);
  } catch (const std::exception& e) {
    Log(Level::kError, "http header check threw",
        {{"method", request.method}, {"path", request.Path()}, {"error", e.what()}});
  } catch (...) {
    Log(Level::kError, "http header check threw", {{"method", request.method}, {"path", request.Path()}});
  }
  return PlainResponse(500, "internal server error");
}

void Server::Impl::Handle(const Request& request, const Responder& respond) {
  // The query is not logged: drain URLs may carry credentials there.
  try {
    return handler_(request, respond);
  } catch (const std::exception& e) {
    Log(Level::kError, "http handler threw",
        {{"method", request.method}, {"path", request.Path()}, {"error", e.what()}});
  } catch (...) {
    Log(Level::kError, "http handler threw", {{"method", request.method}, {"path", request.Path()}});
  }
  respond(PlainResponse(500, "internal server error"));  // ignored if it answered already
}

void Server::Impl::Stop(std::int64_t timeout_ms) {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  if (stopped_) return;
  for (const std::thread& thread : threads_) {
    if (thread.get_id() == std::this_thread::get_id()) {
      Log(Level::kError, "http server Stop called from a server thread; ignored");
      return;
    }
  }
  stopped_ = true;
  stopping_.store(true, std::memory_order_release);
  if (threads_.empty()) return;  // never started (Open failed)
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max<std::int64_t>(timeout_ms, 0));

  {
    // Closed from this thread, not posted: every server thread may be busy in a handler,
    // and new connections must be refused at once.
    std::lock_guard<std::mutex> lock(acceptor_mu_);
    beast::error_code ec;
    acceptor_.close(ec);
    accept_retry_.cancel();
  }

  std::vector<std::shared_ptr<SessionBase>> live;
  {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    live.reserve(sessions_.size());
    for (const auto& [raw, weak] : sessions_) {
      if (auto session = weak.lock()) live.push_back(std::move(session));
    }
  }
  for (const auto& session : live) session->CloseIfIdle();
  live.clear();  // the posted steps own what they need

  {
    std::unique_lock<std::mutex> lock(sessions_mu_);
    if (!sessions_cv_.wait_until(lock, deadline, [this] { return sessions_.empty(); })) {
      Log(Level::kWarn, "http server stop timed out; closing connections in flight",
          {{"connections", std::to_string(sessions_.size())}});
    }
  }
  work_.reset();
  ioc_.stop();
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  Log(Level::kInfo, "http server stopped", {{"port", std::to_string(port_)}});
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options, Handler handler,
                                                      HeaderCheck header_check) {
  if (!handler) return absl::InvalidArgumentError("http: a handler is required");
  return StartAsync(
      options,
      [handler = std::move(handler)](const Request& request, Responder respond) {
        respond(handler(request));
      },
      std::move(header_check));
}

absl::StatusOr<std::unique_ptr<Server>> Server::StartAsync(const ServerOptions& options, AsyncHandler handler,
                                                           HeaderCheck header_check) {
  if (!handler) return absl::InvalidArgumentError("http: a handler is required");
  if (options.threads < 1) return absl::InvalidArgumentError("http.threads: must be >= 1");
  if (options.read_timeout_ms <= 0) return absl::InvalidArgumentError("http.read_timeout_ms: must be > 0");
  if (options.idle_timeout_ms <= 0) return absl::InvalidArgumentError("http.idle_timeout_ms: must be > 0");
  if (options.max_header_bytes == 0) return absl::InvalidArgumentError("http.max_header_bytes: must be > 0");
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(options.tls_cert_file.empty()
                                          ? "tls_cert_file: required with tls_key_file"
                                          : "tls_key_file: required with tls_cert_file");
  }
  auto impl = std::make_unique<Impl>(options, std::move(handler), std::move(header_check));
  if (!options.tls_cert_file.empty()) {
    TlsFiles files;
    files.cert_file = options.tls_cert_file;
    files.key_file = options.tls_key_file;
    absl::StatusOr<std::shared_ptr<TlsContextHolder>> tls = TlsContextHolder::Load(
        std::move(files), "http", options.metrics == nullptr ? nullptr : &options.metrics->registry());
    if (!tls.ok()) return tls.status();
    impl->set_tls(*std::move(tls));
  }
  if (absl::Status status = impl->Open(); !status.ok()) return status;
  impl->Run();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() = default;  // Impl's destructor stops

std::uint16_t Server::port() const { return impl_->port(); }

void Server::Stop(std::int64_t timeout_ms) { impl_->Stop(timeout_ms); }

bool Server::tls() const { return impl_->tls() != nullptr; }

absl::Status Server::ReloadTls() {
  if (impl_->tls() == nullptr) return absl::OkStatus();
  return impl_->tls()->Reload();
}

std::shared_ptr<TlsContextHolder> Server::tls_context() const { return impl_->tls(); }

std::optional<std::string_view> Request::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (base::EqualsIgnoreCase(key, name)) return std::string_view(value);
  }
  return std::nullopt;
}

std::string_view Request::Path() const {
  const std::string_view view(target);
  return view.substr(0, view.find('?'));
}

std::string_view Request::Query() const {
  const std::string_view view(target);
  const std::size_t question = view.find('?');
  return question == std::string_view::npos ? std::string_view() : view.substr(question + 1);
}

absl::StatusOr<std::pair<std::string, std::uint16_t>> ParseListenAddress(std::string_view text) {
  const auto invalid = [text](std::string_view why) {
    return absl::InvalidArgumentError(fmt::format("listen address \"{}\": {}", text, why));
  };
  std::string host;
  std::string_view port_text;
  beast::error_code ec;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return invalid("expected [v6-address]:port");
    }
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
    net::ip::make_address_v6(host, ec);
    if (ec) return invalid("not an IPv6 address");
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return invalid("expected host:port");
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (host.empty()) {
      host = "0.0.0.0";
    } else {
      if (host.find(':') != std::string::npos) return invalid("an IPv6 address needs brackets: [addr]:port");
      net::ip::make_address_v4(host, ec);
      if (ec) return invalid("host must be an IP address");
    }
  }
  if (port_text.empty() || port_text.size() > 5 ||
      port_text.find_first_not_of("0123456789") != std::string_view::npos) {
    return invalid("port must be a decimal number 0..65535");
  }
  std::uint32_t port = 0;
  for (const char digit : port_text) port = port * 10 + static_cast<std::uint32_t>(digit - '0');
  if (port > 65535) return invalid("port must be 0..65535");
  return std::make_pair(std::move(host), static_cast<std::uint16_t>(port));
}

}  // namespace drainmet::http
