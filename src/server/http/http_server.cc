#include "server/http/http_server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "server/http/gunzip.h"
#include "server/http/worker_pool.h"

namespace sibyl::server {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

// Body bytes are read through a buffer of this size, allocated only while a body is read;
// the in-flight budget is reserved in steps of it as a body arrives.
constexpr size_t kChunkBytes = 64 * 1024;
// A declared body up to this size gets its whole buffer before it arrives (one allocation
// for ordinary ingest bodies); beyond, the buffer grows with the bytes received.
constexpr uint64_t kReserveUpFront = uint64_t{1} << 20;
// After refusing a request whose body was not read, the server keeps reading (and
// dropping) what the client still sends, for a while: a client that writes its whole body
// before reading then sees the answer, not a connection reset (the "lingering close" of
// Apache and nginx).
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr uint64_t kLingerMaxBytes = uint64_t{64} << 20;
// At the connection cap only a connection idle this long is closed for a newcomer: a
// client that reconnects whenever it is closed then replaces one connection per idle one
// per second, not as fast as the server can accept (abuse_bench: 16,000 a second, which
// halved ingest).
constexpr auto kMinIdleToEvict = std::chrono::seconds(1);
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// JSON error bodies of the server's own answers, in the JSON API's shape (context.h
// SendError). Messages are our texts and zlib's: quotes, backslashes and control
// characters are escaped all the same.
std::string ErrorBody(std::string_view code, std::string_view message) {
  std::string escaped;
  for (char c : message) {
    if (c == '"' || c == '\\') escaped += '\\';
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    escaped += c;
  }
  return "{\"error\":{\"code\":\"" + std::string(code) + "\",\"message\":\"" + escaped + "\"}}";
}

// A parse error of the request (not the client going away mid-message).
bool IsMalformed(const beast::error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::end_of_stream).category() &&
         ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message &&
         ec != bhttp::error::need_buffer;
}

// Written to a connection over the cap without reading its request.
const std::string& ConnectionRefusedAnswer() {
  static const std::string answer = [] {
    const std::string body = ErrorBody("unavailable", "too many open connections; retry later");
    return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
           "Connection: close\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }();
  return answer;
}

}  // namespace

struct HttpServer::Impl {
  Impl(const Router& r, HttpServerOptions o, HttpHooks h)
      : router(r),
        options(std::move(o)),
        hooks(std::move(h)),
        workers(std::max(1, options.workers),
                options.max_queued_requests ? options.max_queued_requests : 4 * size_t(std::max(1, options.workers))),
        // /healthz and /metrics: answered while every ordinary worker is busy.
        reserved(1, 256),
        acceptor(ioc),
        work(net::make_work_guard(ioc)) {}

  class Connection;

  const Router& router;
  const HttpServerOptions options;
  const HttpHooks hooks;
  WorkerPool workers;
  WorkerPool reserved;

  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> open{0}, accepted{0}, refused_connections{0}, refused_overloaded{0}, refused_too_large{0},
      bad_requests{0}, timed_out{0}, inflight_body_bytes{0}, evicted_idle{0};

  std::mutex mutex;  // guards the three maps
  std::unordered_map<std::string, size_t> per_address;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;
  // Connections waiting for a request's first byte, in the order they became idle.
  using IdleKey = std::pair<SteadyClock::time_point, Connection*>;
  std::map<IdleKey, std::weak_ptr<Connection>> idle;

  // Declared after what connections use: destroyed first, with any connection it holds.
  net::io_context ioc;
  tcp::acceptor acceptor;
  net::executor_work_guard<net::io_context::executor_type> work;
  std::vector<std::thread> io_threads;
  int port = 0;
  bool started = false;
  bool stopped = false;

  bool BudgetHasRoom(uint64_t bytes) const {
    return inflight_body_bytes.load() + bytes <= options.max_inflight_body_bytes;
  }
  bool ReserveBody(uint64_t bytes) {
    uint64_t now = inflight_body_bytes.load();
    while (true) {
      if (now + bytes > options.max_inflight_body_bytes) return false;
      if (inflight_body_bytes.compare_exchange_weak(now, now + bytes)) return true;
    }
  }
  void ReleaseBody(uint64_t bytes) { inflight_body_bytes -= bytes; }

  void Accept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  // At the connection cap: closes the connection idle longest (one that has not sent a
  // byte of a request) to make room; false when every open connection is busy.
  bool EvictLongestIdle();
};

// One client connection. Every I/O step runs on the connection's strand; the handler runs
// on a worker while the connection waits (state kHandling), touching only the request,
// the response and the body, which the strand leaves alone until the worker posts back.
class HttpServer::Impl::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Impl& server, tcp::socket socket, std::string address)
      : s_(server), stream_(std::move(socket)), buffer_(server.options.max_header_bytes + kChunkBytes),
        address_(std::move(address)) {
    ++s_.open;
  }

  ~Connection() {
    if (reserved_bytes_) s_.ReleaseBody(reserved_bytes_);
    std::lock_guard lock(s_.mutex);
    s_.connections.erase(this);
    if (idle_key_) s_.idle.erase(*idle_key_);
    if (auto it = s_.per_address.find(address_); it != s_.per_address.end() && --it->second == 0)
      s_.per_address.erase(it);
    --s_.open;
  }

  void Start() {
    {
      std::lock_guard lock(s_.mutex);
      s_.connections.emplace(this, weak_from_this());
    }
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->ReadRequest(); });
  }

  // From Stop: closes the connection unless a request is in flight (which then closes
  // after its answer).
  void OnStop() {
    if (state_ == State::kIdle || state_ == State::kHeader || state_ == State::kLinger) Close();
  }

  std::function<void()> StopTask() {
    return [self = shared_from_this()] { self->OnStop(); };
  }

  // From EvictLongestIdle, on the strand: still idle (no byte arrived meanwhile) is closed.
  void CloseIfIdle() {
    if (state_ != State::kIdle) return;
    ++s_.evicted_idle;
    Close();
  }
  auto executor() { return stream_.get_executor(); }

 private:
  enum class State { kIdle, kHeader, kBody, kHandling, kWriting, kLinger, kClosed };

  // ---- reading a request ----

  void ReadRequest() {
    if (s_.stopping) return Close();
    state_ = State::kIdle;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(s_.options.max_header_bytes));
    // Limits are the route's, checked as bytes arrive. (Not boost::none: Boost 1.74
    // compares a Content-Length against an empty optional as "over the limit".)
    parser_->body_limit(std::numeric_limits<uint64_t>::max());
    req_ = httplib::Request();
    res_ = httplib::Response();
    route_ = nullptr;
    body_.clear();
    body_.shrink_to_fit();
    close_after_ = linger_ = false;
    if (buffer_.size() > 0) return ReadHeader();  // a pipelined request is here already
    buffer_.shrink_to_fit();  // an idle connection keeps no read buffer
    // The keep-alive (or first-request) idle deadline runs until the first byte.
    stream_.expires_after(s_.options.idle_timeout);
    MarkIdle(true);
    stream_.async_read_some(buffer_.prepare(1024), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->MarkIdle(false);
      if (ec) {
        if (ec == beast::error::timeout) ++self->s_.timed_out;
        return self->Close();
      }
      self->buffer_.commit(n);
      self->ReadHeader();
    });
  }

  void ReadHeader() {
    state_ = State::kHeader;
    // From the first byte, the whole header must arrive within header_timeout (slowloris).
    stream_.expires_after(s_.options.header_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) {
      if (ec == beast::error::timeout) {
        ++s_.timed_out;
        return Close();
      }
      if (ec == bhttp::error::header_limit) {
        ++s_.refused_too_large;
        return AnswerNow(431, ErrorBody("header_too_large", "the request line and headers are too large"));
      }
      if (IsMalformed(ec)) {
        // Malformed: a bad request line, header or Content-Length (e.g. -1).
        ++s_.bad_requests;
        return AnswerNow(400, ErrorBody("bad_request", "malformed request: " + ec.message()));
      }
      return Close();  // the client went away
    }
    const auto& head = parser_->get();
    req_.method = std::string(head.method_string());
    req_.target = std::string(head.target());
    req_.version = head.version() == 10 ? "HTTP/1.0" : "HTTP/1.1";
    const size_t question = req_.target.find('?');
    req_.path = DecodeUrl(std::string_view(req_.target).substr(0, question), false);
    if (question != std::string::npos) req_.params = ParseQuery(std::string_view(req_.target).substr(question + 1));
    for (const auto& field : head) req_.headers.emplace(std::string(field.name_string()), std::string(field.value()));
    req_.remote_addr = address_;
    keep_alive_ = head.keep_alive();

    route_ = s_.router.Match(req_.method, req_.path, req_.matches);
    limit_ = s_.router.MaxBodyBytes(route_);
    coding_ = ParseContentEncoding(req_.get_header_value("Content-Encoding"));
    const bool has_body = !parser_->is_done();
    const std::optional<uint64_t> declared =
        parser_->content_length() ? std::optional<uint64_t>(*parser_->content_length()) : std::nullopt;

    // Refusals that need not see the body come first; the body is then not read.
    if (declared && *declared > limit_) return RefuseNow(Refusal::kTooLarge, *declared);
    if (coding_ == ContentCoding::kUnsupported)
      return AnswerNow(415, ErrorBody("unsupported_media_type", "Content-Encoding must be gzip, deflate or identity"));
    const bool reserved = route_ && route_->options.reserved;
    if (route_ && !reserved && s_.workers.Full()) return RefuseNow(Refusal::kOverloaded, declared.value_or(0), !has_body);
    // A declared length must fit the budget now, but is reserved only as its bytes arrive
    // (ReadBody): a client that declares 20 MB and then sends a byte a second holds one
    // chunk of the budget, not 20 MB of it for the minutes its body deadline allows
    // (issue 18, bench/abuse_bench: 13 such sockets held the whole 256 MiB).
    if (has_body && declared && !s_.BudgetHasRoom(*declared)) return RefuseNow(Refusal::kOverloaded, *declared);
    if (!has_body) return Dispatch();
    // The same for memory: an ordinary body gets its exact size at once, a large one grows
    // as it arrives.
    body_.reserve(std::min<uint64_t>(parser_->content_length().value_or(0), kReserveUpFront));

    body_deadline_ = SteadyClock::now() + s_.options.body_timeout +
                     std::chrono::seconds(declared.value_or(limit_) / std::max<size_t>(1, s_.options.min_body_bytes_per_second));
    if (bhttp::token_list(req_.get_header_value("Expect")).exists("100-continue")) {
      state_ = State::kBody;
      stream_.expires_after(s_.options.write_timeout);
      return net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                              [self = shared_from_this()](beast::error_code ec, size_t) {
                                if (ec) return self->Close();
                                self->ReadBody();
                              });
    }
    ReadBody();
  }

  void ReadBody() {
    state_ = State::kBody;
    if (!chunk_) chunk_ = std::make_unique<char[]>(kChunkBytes);
    auto& body = parser_->get().body();
    body.data = chunk_.get();
    body.size = kChunkBytes;
    body.more = true;
    // No gap between reads longer than header_timeout, and the whole body by its deadline.
    stream_.expires_at(std::min(body_deadline_, SteadyClock::now() + s_.options.header_timeout));
    bhttp::async_read_some(stream_, buffer_, *parser_,
                           [self = shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(beast::error_code ec) {
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) {
      if (ec == beast::error::timeout) {
        ++s_.timed_out;
        return Close();
      }
      if (IsMalformed(ec)) {
        ++s_.bad_requests;
        return AnswerNow(400, ErrorBody("bad_request", "malformed request body"));
      }
      return Close();
    }
    const size_t n = kChunkBytes - parser_->get().body().size;
    const uint64_t total = body_.size() + n;
    // The limit and the budget apply as bytes arrive (chunked bodies declare no size; a
    // declared one was only checked against the budget's room at the headers).
    if (total > limit_) return RefuseNow(Refusal::kTooLarge, total);
    // In steps of a chunk, never past a declared length.
    const uint64_t most = parser_->content_length() ? std::max<uint64_t>(*parser_->content_length(), total)
                                                    : std::numeric_limits<uint64_t>::max();
    if (total > reserved_bytes_ &&
        !Reserve(std::min(std::max<uint64_t>(total - reserved_bytes_, kChunkBytes), most - reserved_bytes_)))
      return RefuseNow(Refusal::kOverloaded, total);
    body_.append(chunk_.get(), n);
    if (!parser_->is_done()) return ReadBody();
    chunk_.reset();
    Dispatch();
  }

  bool Reserve(uint64_t bytes) {
    if (!s_.ReserveBody(bytes)) return false;
    reserved_bytes_ += bytes;
    return true;
  }

  // ---- answering ----

  // Hands the request to a worker (ordinary or reserved); unknown routes are answered here.
  void Dispatch() {
    state_ = State::kHandling;
    stream_.expires_never();
    auto self = shared_from_this();
    if (!route_) {
      Handle();
      return WriteResponse();
    }
    WorkerPool& pool = route_->options.reserved ? s_.reserved : s_.workers;
    if (pool.TryPost([self] {
          self->Handle();
          net::post(self->stream_.get_executor(), [self] { self->WriteResponse(); });
        }))
      return;
    // Full meanwhile: the body was read, so the connection stays usable.
    RefuseNow(Refusal::kOverloaded, body_.size(), /*body_read=*/true);
  }

  // Runs the handler (on a worker), or answers 404 for no route.
  void Handle() {
    if (s_.hooks.before) s_.hooks.before();
    if (!route_) {
      res_.status = 404;
      return Finish();
    }
    if (coding_ != ContentCoding::kIdentity && !body_.empty()) {
      // Inflated here, on a worker, into at most the route's limit. The inflated bytes
      // count against the in-flight budget like read ones (issue 18: many small gzip
      // bodies each inflating to the limit must not exceed it). Inflate measures the
      // output before allocating it, so the exact size is reserved before a byte of it
      // exists; the compressed copy's share is given back once it is freed.
      const uint64_t compressed_reserved = reserved_bytes_;
      bool no_room = false;
      auto inflated = Inflate(body_, coding_, limit_, [this, &no_room](size_t bytes) {
        no_room = !Reserve(bytes);
        return !no_room;
      });
      if (!inflated.ok()) {
        if (no_room) {
          ++s_.refused_overloaded;
          Refuse({Refusal::kOverloaded, body_.size()});
        } else if (inflated.status().code() == StatusCode::kResourceExhausted) {
          ++s_.refused_too_large;
          Refuse({Refusal::kTooLarge, limit_ + 1});
        } else {
          ++s_.bad_requests;
          Refuse({Refusal::kBadEncoding, body_.size(), inflated.status().message()});
        }
        return Finish();
      }
      body_.clear();
      body_.shrink_to_fit();
      s_.ReleaseBody(compressed_reserved);
      reserved_bytes_ -= compressed_reserved;
      req_.body = std::move(*inflated);
    } else {
      req_.body = std::move(body_);
    }
    try {
      route_->handler(req_, res_);
    } catch (...) {
      res_ = httplib::Response();
      if (s_.hooks.exception) s_.hooks.exception(res_, std::current_exception());
      else res_.status = 500;
    }
    Finish();
  }

  // The route's answer to a refusal, or the default one.
  void Refuse(const Refused& refused) {
    if (route_ && route_->options.refuse) {
      route_->options.refuse(req_, res_, refused);
      return;
    }
    switch (refused.why) {
      case Refusal::kTooLarge: res_.status = 413; break;  // the error hook writes the body
      case Refusal::kBadEncoding:
        res_.status = 400;
        res_.set_content(ErrorBody("invalid_argument", refused.message), "application/json");
        break;
      case Refusal::kOverloaded:
        res_.status = 503;
        res_.set_header("Retry-After", "1");
        res_.set_content(ErrorBody("unavailable", "the server is busy; retry later"), "application/json");
        break;
    }
  }

  void Finish() {
    if (res_.status == -1) res_.status = 200;
    if (res_.status >= 400 && s_.hooks.error) s_.hooks.error(req_, res_);
    if (s_.hooks.after) s_.hooks.after(req_, res_);
  }

  // Answers on the I/O thread, before or instead of reading the body. When the body was
  // not read the connection cannot carry another request: it closes, lingering.
  void RefuseNow(Refusal why, uint64_t body_bytes, bool body_read = false) {
    if (why == Refusal::kTooLarge) ++s_.refused_too_large;
    else ++s_.refused_overloaded;
    if (s_.hooks.before) s_.hooks.before();
    Refuse({why, body_bytes});
    Finish();
    if (!body_read) close_after_ = linger_ = true;
    WriteResponse();
  }

  void AnswerNow(int status, std::string body) {
    if (s_.hooks.before) s_.hooks.before();
    res_.status = status;
    res_.set_content(std::move(body), "application/json");
    Finish();
    close_after_ = linger_ = true;
    WriteResponse();
  }

  void WriteResponse() {
    state_ = State::kWriting;
    if (reserved_bytes_) {
      s_.ReleaseBody(reserved_bytes_);
      reserved_bytes_ = 0;
    }
    body_.clear();
    req_.body.clear();
    req_.body.shrink_to_fit();
    if (res_.content_provider_) return WriteStreamed();
    out_.emplace();
    out_->version(req_.version == "HTTP/1.0" ? 10 : 11);
    out_->result(static_cast<unsigned>(res_.status));
    for (const auto& [name, value] : res_.headers) out_->insert(name, value);
    const bool keep = keep_alive_ && !close_after_ && !s_.stopping;
    out_->keep_alive(keep);
    if (req_.method == "HEAD") {
      out_->content_length(res_.body.size());
    } else {
      out_->body() = std::move(res_.body);
      out_->prepare_payload();
    }
    res_ = httplib::Response();
    stream_.expires_after(s_.options.write_timeout);
    bhttp::async_write(stream_, *out_, [self = shared_from_this(), keep](beast::error_code ec, size_t) {
      self->out_.reset();
      if (ec) {
        if (ec == beast::error::timeout) ++self->s_.timed_out;
        return self->Close();
      }
      if (self->linger_) return self->Linger();
      if (!keep) return self->Close();
      self->ReadRequest();
    });
  }

  // ---- streamed answers ----
  //
  // A handler that set a content provider (httplib's set_chunked_content_provider) has its
  // body written as it is produced: chunked for HTTP/1.1, close-delimited for HTTP/1.0.
  // Backpressure: the provider runs (on a worker, never holding one between chunks) only
  // once the previous chunk was written to the socket, so a slow reader holds one chunk in
  // memory, not the whole answer. Each write has write_timeout; a provider returning false
  // or throwing cuts the connection, which the client sees as a body without its last
  // chunk, never as a complete one.

  void WriteStreamed() {
    provider_ = std::move(res_.content_provider_);
    res_.content_provider_ = nullptr;
    streamed_chunked_ = req_.version != "HTTP/1.0";
    streamed_keep_ = streamed_chunked_ && keep_alive_ && !close_after_ && !s_.stopping;
    streamed_head_ = std::make_unique<StreamedHead>();
    auto& head = streamed_head_->head;
    head.version(streamed_chunked_ ? 11 : 10);
    head.result(static_cast<unsigned>(res_.status));
    for (const auto& [name, value] : res_.headers) head.insert(name, value);
    head.keep_alive(streamed_keep_);
    if (streamed_chunked_) head.chunked(true);
    res_ = httplib::Response();
    streamed_offset_ = 0;
    streamed_done_ = streamed_failed_ = false;
    stream_.expires_after(s_.options.write_timeout);
    bhttp::async_write_header(stream_, streamed_head_->serializer,
                              [self = shared_from_this()](beast::error_code ec, size_t) {
                                if (ec) return self->StreamFailed(ec);
                                if (self->req_.method == "HEAD") return self->EndStreamed();
                                self->ProduceNext();
                              });
  }

  void ProduceNext() {
    auto self = shared_from_this();
    if (!s_.workers.Post([self] {
          self->Produce();
          net::post(self->stream_.get_executor(), [self] { self->WriteProduced(); });
        }))
      Close();  // stopping
  }

  // On a worker: one call of the provider; what it writes is the next chunk.
  void Produce() {
    produced_.clear();
    httplib::DataSink sink;
    sink.write = [this](const char* data, size_t n) {
      produced_.append(data, n);
      return true;
    };
    sink.done = [this] { streamed_done_ = true; };
    sink.is_writable = [] { return true; };
    try {
      streamed_failed_ = !provider_(streamed_offset_, 0, sink);
    } catch (...) {
      streamed_failed_ = true;
    }
    streamed_offset_ += produced_.size();
  }

  void WriteProduced() {
    if (streamed_failed_) return Close();
    if (produced_.empty()) return streamed_done_ ? EndStreamed() : ProduceNext();
    stream_.expires_after(s_.options.write_timeout);
    auto next = [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->StreamFailed(ec);
      if (self->streamed_done_) return self->EndStreamed();
      self->ProduceNext();
    };
    if (streamed_chunked_) net::async_write(stream_, bhttp::make_chunk(net::buffer(produced_)), std::move(next));
    else net::async_write(stream_, net::buffer(produced_), std::move(next));
  }

  void EndStreamed() {
    provider_ = nullptr;  // what it holds (e.g. an export's rows) is freed now
    produced_.clear();
    produced_.shrink_to_fit();
    streamed_head_.reset();
    auto finish = [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->StreamFailed(ec);
      if (!self->streamed_keep_) return self->Close();
      self->ReadRequest();
    };
    if (streamed_chunked_ && req_.method != "HEAD") return net::async_write(stream_, bhttp::make_chunk_last(), finish);
    finish({}, 0);
  }

  void StreamFailed(beast::error_code ec) {
    if (ec == beast::error::timeout) ++s_.timed_out;
    provider_ = nullptr;
    Close();
  }

  // Reads and drops what the client still sends, for a bounded time and size, then closes.
  void Linger() {
    state_ = State::kLinger;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    if (!chunk_) chunk_ = std::make_unique<char[]>(kChunkBytes);
    stream_.expires_after(kLingerTime);
    DrainSome();
  }

  void DrainSome() {
    stream_.async_read_some(net::buffer(chunk_.get(), kChunkBytes),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->lingered_ += n;
                              if (ec || self->lingered_ > kLingerMaxBytes) return self->Close();
                              self->DrainSome();
                            });
  }

  // Keeps the server's list of idle connections (the candidates for eviction) current.
  void MarkIdle(bool idle) {
    if (!idle && !idle_key_) return;
    std::lock_guard lock(s_.mutex);
    if (idle_key_) s_.idle.erase(*idle_key_);
    idle_key_.reset();
    if (!idle) return;
    idle_key_ = IdleKey{SteadyClock::now(), this};
    s_.idle.emplace(*idle_key_, weak_from_this());
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
    chunk_.reset();
  }

  Impl& s_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  const std::string address_;
  State state_ = State::kIdle;
  std::optional<bhttp::request_parser<bhttp::buffer_body>> parser_;
  std::optional<bhttp::response<bhttp::string_body>> out_;
  // A streamed answer's header and its serializer (which refers to it), and its state.
  struct StreamedHead {
    bhttp::response<bhttp::empty_body> head;
    bhttp::response_serializer<bhttp::empty_body> serializer{head};
  };
  std::unique_ptr<StreamedHead> streamed_head_;
  httplib::ContentProvider provider_;
  std::string produced_;  // the provider's last output, being written
  size_t streamed_offset_ = 0;
  bool streamed_chunked_ = false, streamed_keep_ = false, streamed_done_ = false, streamed_failed_ = false;
  std::unique_ptr<char[]> chunk_;
  httplib::Request req_;
  httplib::Response res_;
  const Router::Route* route_ = nullptr;
  size_t limit_ = 0;
  ContentCoding coding_ = ContentCoding::kIdentity;
  std::string body_;  // as received (possibly compressed)
  uint64_t reserved_bytes_ = 0;
  uint64_t lingered_ = 0;
  SteadyClock::time_point body_deadline_;
  bool keep_alive_ = false;
  bool close_after_ = false;
  bool linger_ = false;
  std::optional<IdleKey> idle_key_;  // while listed in the server's idle connections
};

void HttpServer::Impl::Accept() {
  acceptor.async_accept(net::make_strand(ioc),
                        [this](beast::error_code ec, tcp::socket socket) { OnAccept(ec, std::move(socket)); });
}

void HttpServer::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (stopping || !acceptor.is_open()) return;
  if (ec) {
    // Out of descriptors (EMFILE) and the like: wait a little rather than spin.
    auto timer = std::make_shared<net::steady_timer>(ioc, std::chrono::milliseconds(50));
    timer->async_wait([this, timer](beast::error_code) { Accept(); });
    return;
  }
  ++accepted;
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  const auto endpoint = socket.remote_endpoint(ignored);
  std::string address = ignored ? std::string() : endpoint.address().to_string();
  bool refuse = false;
  if (options.max_connections_per_address) {
    std::lock_guard lock(mutex);
    auto it = per_address.find(address);
    refuse = it != per_address.end() && it->second >= options.max_connections_per_address;
  }
  // At the cap a newcomer takes the place of the connection idle longest, as nginx reuses
  // keep-alive connections: otherwise a flood of idle sockets, reopened as the idle
  // deadline closes them, would lock every new client out (docs/SERVER.md).
  if (!refuse && open.load() >= options.max_connections && !EvictLongestIdle()) refuse = true;
  if (!refuse) {
    std::lock_guard lock(mutex);
    ++per_address[address];
  }
  if (refuse) {
    // Answered without reading: one small write into an empty socket buffer never blocks.
    ++refused_connections;
    socket.non_blocking(true, ignored);
    const std::string& answer = ConnectionRefusedAnswer();
    socket.write_some(net::buffer(answer), ignored);
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  } else {
    std::make_shared<Connection>(*this, std::move(socket), std::move(address))->Start();
  }
  Accept();
}

bool HttpServer::Impl::EvictLongestIdle() {
  std::shared_ptr<Connection> victim;
  {
    std::lock_guard lock(mutex);
    const auto idle_since = SteadyClock::now() - kMinIdleToEvict;
    while (!victim && !idle.empty() && idle.begin()->first.first <= idle_since) {
      victim = idle.begin()->second.lock();
      idle.erase(idle.begin());
    }
  }
  if (!victim) return false;
  // Its read handler and this task run on its strand, so it is closed only if no byte has
  // arrived since it was picked (else the newcomer briefly exceeds the cap by one).
  net::post(victim->executor(), [victim] { victim->CloseIfIdle(); });
  return true;
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::Bind(const Router& router, HttpServerOptions options,
                                                     HttpHooks hooks) {
  auto impl = std::make_unique<Impl>(router, std::move(options), std::move(hooks));
  const HttpServerOptions& o = impl->options;
  beast::error_code ec;
  const auto address = net::ip::make_address(o.host == "localhost" ? "127.0.0.1" : o.host, ec);
  if (ec) return InvalidArgument("cannot bind {}: not an IP address", o.host);
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(o.port));
  tcp::acceptor& acceptor = impl->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return IoError("cannot bind {}:{}: {}", o.host, o.port, ec.message());
  impl->port = acceptor.local_endpoint().port();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

int HttpServer::port() const { return impl_->port; }

void HttpServer::Start() {
  Impl& s = *impl_;
  if (s.started) return;
  s.started = true;
  s.Accept();
  for (int i = 0; i < std::max(1, s.options.io_threads); ++i) s.io_threads.emplace_back([&s] { s.ioc.run(); });
}

void HttpServer::Stop() {
  Impl& s = *impl_;
  if (s.stopped) return;
  s.stopped = true;
  s.stopping = true;
  net::post(s.acceptor.get_executor(), [&s] {
    beast::error_code ignored;
    s.acceptor.close(ignored);
  });
  std::vector<std::shared_ptr<Impl::Connection>> live;
  {
    std::lock_guard lock(s.mutex);
    for (auto& [raw, weak] : s.connections)
      if (auto c = weak.lock()) live.push_back(std::move(c));
  }
  for (auto& c : live) net::post(c->executor(), c->StopTask());
  live.clear();
  // Requests in flight finish and close (their answers say Connection: close).
  const auto give_up = SteadyClock::now() + s.options.shutdown_grace;
  while (s.started && s.open.load() > 0 && SteadyClock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  s.workers.Stop();
  s.reserved.Stop();
  s.work.reset();
  s.ioc.stop();
  for (std::thread& t : s.io_threads)
    if (t.joinable()) t.join();
  s.io_threads.clear();
}

HttpServerStats HttpServer::Stats() const {
  const Impl& s = *impl_;
  HttpServerStats stats;
  stats.open_connections = s.open.load();
  stats.accepted_connections = s.accepted.load();
  stats.refused_connections = s.refused_connections.load();
  stats.refused_overloaded = s.refused_overloaded.load();
  stats.refused_too_large = s.refused_too_large.load();
  stats.bad_requests = s.bad_requests.load();
  stats.timed_out = s.timed_out.load();
  stats.evicted_idle = s.evicted_idle.load();
  stats.queued_requests = s.workers.queued();
  stats.inflight_body_bytes = s.inflight_body_bytes.load();
  return stats;
}

}  // namespace sibyl::server
