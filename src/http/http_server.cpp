#include "http/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace dsv4::http {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kReadChunk = 64 << 10;  // bytes read per readable event
constexpr std::chrono::milliseconds kDrainTime(1000);  // after a refusal, before close
constexpr int kMaxPollWaitMs = 1000;
constexpr int kListenBacklog = 1024;
// File descriptors beyond the connections: the listener, the wake fd, checkpoint shards,
// logs.
constexpr rlim_t kSpareFds = 64;
// After accept() fails for want of descriptors, the listener rests this long (else poll
// would report it readable in a busy loop).
constexpr std::chrono::milliseconds kAcceptBackoff(100);

// Raises the soft descriptor limit (up to the hard one) so max_connections fit.
Status EnsureDescriptors(int max_connections) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return Status::Ok();
  const rlim_t need = static_cast<rlim_t>(max_connections) + kSpareFds;
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < need) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max == RLIM_INFINITY ? need : std::min(need, lim.rlim_max);
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < need) {
    return Status::InvalidArgument(
        "max connections " + std::to_string(max_connections) + " need " +
        std::to_string(need) + " file descriptors; the limit is " +
        std::to_string(lim.rlim_cur) + " (raise it with ulimit -n, or lower the connections)");
  }
  return Status::Ok();
}

// One client connection while the I/O thread owns it.
struct Conn {
  enum class Phase {
    kIdle,      // waiting for the first byte of a request
    kHead,      // reading a request head
    kBody,      // reading its body
    kWriting,   // writing an answer from the I/O thread (admit's), `out` pending
    kDraining,  // answered and half-closed; reading and dropping until the peer closes
  };
  int fd = -1;
  std::string peer;
  Phase phase = Phase::kIdle;
  Clock::time_point deadline;
  std::string in;  // bytes received and not consumed yet
  size_t scanned = 0;  // ParseRequestHead's progress on `in`
  RequestHead head;
  std::string body;
  std::optional<ChunkedDecoder> chunked;
  std::string out;           // kWriting: bytes still to send
  bool close_after = false;  // kWriting: drain and close once written
};

std::string PeerName(const sockaddr_storage& a) {
  char ip[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (a.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof(ip));
    port = ntohs(v4->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof(ip));
    port = ntohs(v6->sin6_port);
  }
  return std::string(ip) + ":" + std::to_string(port);
}

// The bytes of a whole response written by the I/O thread.
std::string Serialize(const Response& r, bool keep_alive) {
  return SerializeHead(r.status, r.content_type, {&r.headers},
                       "Content-Length: " + std::to_string(r.body.size()) + "\r\n", keep_alive) +
         r.body;
}

Response PlainError(int status, const std::string& message) {
  return Response{status, "text/plain; charset=utf-8", message + "\n", {}};
}

bool MethodTakesBody(std::string_view m) { return m == "POST" || m == "PUT" || m == "PATCH"; }

}  // namespace

class HttpServer::Impl {
 public:
  Impl(const HttpServerOptions& o, AdmitFn admit, HandleFn handle, LogFn log)
      : o_(o), admit_(std::move(admit)), handle_(std::move(handle)), log_(std::move(log)) {}
  ~Impl() { Stop(); }

  Status Bind();
  void Run();
  Response Error(int status, const std::string& message) const {
    return o_.error_response ? o_.error_response(status, message) : PlainError(status, message);
  }
  void Stop();

  const HttpServerOptions o_;
  int port_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> open_{0}, total_{0}, refused_{0}, timeouts_{0}, malformed_{0};

 private:
  struct Job {
    std::unique_ptr<Conn> conn;
    Request request;
  };

  void IoLoop();
  void Worker();
  void Accept();
  // Reads what arrived; false: the connection is to be closed.
  bool Read(Conn& c);
  // Advances `c` through its phases on the bytes in `c.in`; false: close it. A complete
  // request moves `c` out of conns_ into the job queue (`*handed_off`).
  bool Process(std::unique_ptr<Conn>& c, bool* handed_off);
  bool Answer(Conn& c, const Response& r, bool close);
  bool Flush(Conn& c);
  void Refuse(Conn& c, int status, const std::string& message);
  void Close(Conn& c);
  void Finish(std::unique_ptr<Conn> c, const ResponseWriter& w);
  void Wake();

  AdmitFn admit_;
  HandleFn handle_;
  LogFn log_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  std::thread io_;
  std::vector<std::thread> workers_;
  std::map<int, std::unique_ptr<Conn>> conns_;  // I/O thread only
  Clock::time_point accept_paused_until_;      // I/O thread only

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;                         // guarded by mu_
  std::vector<std::unique_ptr<Conn>> returned_;  // kept-alive connections back from workers
  bool io_done_ = false;                         // guarded by mu_
  bool joined_ = false;                          // guarded by stop_mu_
  std::mutex stop_mu_;
};

Status HttpServer::Impl::Bind() {
  if (o_.port < 0 || o_.port > 65535) {
    return Status::InvalidArgument("port must be in [0, 65535], got " + std::to_string(o_.port));
  }
  if (o_.max_connections < 1 || o_.worker_threads < 1 || o_.max_body_bytes < 0) {
    return Status::InvalidArgument("max connections and worker threads must be >= 1 and the "
                                   "body limit >= 0");
  }
  DSV4_RETURN_IF_ERROR(EnsureDescriptors(o_.max_connections));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(o_.port);
  if (getaddrinfo(o_.host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) {
    return Status::IoError("cannot listen on " + o_.host + ":" + port +
                           " (not an address or host name of this machine)");
  }
  std::string why = "no usable address";
  for (addrinfo* a = res; a != nullptr && listen_fd_ < 0; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                            a->ai_protocol);
    if (fd < 0) continue;
    // SO_REUSEADDR (quick restart after a stop) but not SO_REUSEPORT, which would let a
    // second server bind the same port and take half the connections.
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, kListenBacklog) == 0) {
      listen_fd_ = fd;
    } else {
      why = std::strerror(errno);
      ::close(fd);
    }
  }
  freeaddrinfo(res);
  if (listen_fd_ < 0) {
    return Status::IoError("cannot listen on " + o_.host + ":" + port + ": " + why);
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = bound.ss_family == AF_INET6
              ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
              : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return Status::IoError(std::string("eventfd: ") + std::strerror(errno));
  return Status::Ok();
}

void HttpServer::Impl::Run() {
  io_ = std::thread([this] { IoLoop(); });
  for (int i = 0; i < o_.worker_threads; ++i) workers_.emplace_back([this] { Worker(); });
}

void HttpServer::Impl::Wake() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
}

void HttpServer::Impl::Stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  if (joined_) return;
  joined_ = true;
  stopping_.store(true);
  if (wake_fd_ >= 0) Wake();
  if (io_.joinable()) io_.join();
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  listen_fd_ = wake_fd_ = -1;
}

void HttpServer::Impl::Close(Conn& c) {
  if (c.fd < 0) return;
  ::close(c.fd);
  c.fd = -1;
  open_.fetch_sub(1);
}

void HttpServer::Impl::Accept() {
  while (true) {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        accept_paused_until_ = Clock::now() + kAcceptBackoff;
      }
      return;  // EAGAIN, or a transient error: retry later
    }
    total_.fetch_add(1);
    if (open_.load() >= o_.max_connections) {
      refused_.fetch_add(1);
      const std::string r = Serialize(
          Error(503, "too many open connections (--max-connections " +
                              std::to_string(o_.max_connections) + ")"),
          false);
      [[maybe_unused]] ssize_t n = ::send(fd, r.data(), r.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(fd);
      continue;
    }
    open_.fetch_add(1);
    int yes = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));  // SSE events are small
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    c->peer = PeerName(addr);
    c->deadline = Clock::now() + o_.idle_timeout;
    conns_.emplace(fd, std::move(c));
  }
}

bool HttpServer::Impl::Read(Conn& c) {
  char buf[kReadChunk];
  const ssize_t n = ::recv(c.fd, buf, sizeof(buf), 0);
  if (n > 0) {
    if (c.phase != Conn::Phase::kDraining) c.in.append(buf, static_cast<size_t>(n));
    return true;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
  return false;  // closed or reset
}

bool HttpServer::Impl::Flush(Conn& c) {
  while (!c.out.empty()) {
    const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c.out.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
    return false;
  }
  if (c.close_after) {
    ::shutdown(c.fd, SHUT_WR);
    c.phase = Conn::Phase::kDraining;
    c.deadline = Clock::now() + kDrainTime;
    c.in.clear();
  } else {
    c.phase = Conn::Phase::kIdle;
    c.deadline = Clock::now() + o_.idle_timeout;
  }
  return true;
}

bool HttpServer::Impl::Answer(Conn& c, const Response& r, bool close) {
  if (log_) log_(c.head, r.status);
  c.out = Serialize(r, !close);
  c.close_after = close;
  c.phase = Conn::Phase::kWriting;
  c.deadline = Clock::now() + o_.write_timeout;
  return Flush(c);
}

void HttpServer::Impl::Refuse(Conn& c, int status, const std::string& message) {
  malformed_.fetch_add(1);
  Answer(c, Error(status, message), true);
}

bool HttpServer::Impl::Process(std::unique_ptr<Conn>& cp, bool* handed_off) {
  Conn& c = *cp;
  *handed_off = false;
  while (true) {
    switch (c.phase) {
      case Conn::Phase::kWriting:
      case Conn::Phase::kDraining:
        return true;
      case Conn::Phase::kIdle:
        if (c.in.empty()) return true;
        c.phase = Conn::Phase::kHead;
        c.head = RequestHead{};
        c.scanned = 0;
        c.deadline = Clock::now() + o_.header_timeout;
        break;
      case Conn::Phase::kHead: {
        HeadParse p = ParseRequestHead(c.in, o_.head_limits, &c.scanned);
        if (p.kind == HeadParse::Kind::kIncomplete) return true;
        if (p.kind == HeadParse::Kind::kError) {
          Refuse(c, p.error.status, p.error.message);
          return true;
        }
        c.in.erase(0, p.consumed);
        c.head = std::move(p.head);
        const bool has_body = c.head.framing != BodyFraming::kNone;
        if (!has_body && MethodTakesBody(c.head.method)) {
          Refuse(c, 411, c.head.method + " needs a Content-Length or a chunked body");
          return true;
        }
        // Admission before a byte of the body is read.
        if (std::optional<Response> r = admit_(c.head)) {
          const bool close = has_body || !c.head.keep_alive || stopping_.load();
          if (!Answer(c, *r, close)) return false;
          continue;  // a pipelined request may follow
        }
        if (c.head.framing == BodyFraming::kContentLength &&
            c.head.content_length > o_.max_body_bytes) {
          Refuse(c, 413, "the request body (" + std::to_string(c.head.content_length) +
                             " bytes) exceeds the limit of " +
                             std::to_string(o_.max_body_bytes) + " bytes");
          return true;
        }
        if (has_body && c.head.expect_continue) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          [[maybe_unused]] ssize_t n = ::send(c.fd, kContinue.data(), kContinue.size(),
                                              MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        c.body.clear();
        c.chunked.reset();
        if (c.head.framing == BodyFraming::kChunked) c.chunked.emplace(o_.max_body_bytes);
        c.phase = Conn::Phase::kBody;
        c.deadline = Clock::now() + o_.body_timeout;
        break;
      }
      case Conn::Phase::kBody: {
        if (c.chunked) {
          size_t used = 0;
          const ChunkedDecoder::State s = c.chunked->Feed(c.in, &used, &c.body);
          c.in.erase(0, used);
          if (s == ChunkedDecoder::State::kNeedMore) return true;
          if (s == ChunkedDecoder::State::kError) {
            Refuse(c, c.chunked->error().status, c.chunked->error().message);
            return true;
          }
        } else if (c.head.framing == BodyFraming::kContentLength) {
          const size_t want = static_cast<size_t>(c.head.content_length) - c.body.size();
          const size_t take = std::min(want, c.in.size());
          c.body.append(c.in, 0, take);
          c.in.erase(0, take);
          if (c.body.size() < static_cast<size_t>(c.head.content_length)) return true;
        }
        Job job;
        job.request.head = std::move(c.head);
        job.request.body = std::move(c.body);
        job.request.remote = c.peer;
        job.conn = std::move(cp);
        {
          std::lock_guard<std::mutex> lock(mu_);
          jobs_.push_back(std::move(job));
        }
        cv_.notify_one();
        *handed_off = true;
        return true;
      }
    }
  }
}

void HttpServer::Impl::IoLoop() {
  std::vector<pollfd> fds;
  std::vector<int> order;  // fds[i + 2] is conns_[order[i]]
  while (!stopping_.load()) {
    std::vector<std::unique_ptr<Conn>> back;
    {
      std::lock_guard<std::mutex> lock(mu_);
      back.swap(returned_);
    }
    for (std::unique_ptr<Conn>& c : back) {
      const int fd = c->fd;
      bool handed_off = false;
      if (!Process(c, &handed_off)) {  // pipelined bytes may already hold a request
        Close(*c);
        continue;
      }
      if (!handed_off) conns_.emplace(fd, std::move(c));
    }

    fds.clear();
    order.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    const bool accepting = Clock::now() >= accept_paused_until_;
    fds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});  // poll skips a negative fd
    Clock::time_point next = Clock::now() + std::chrono::milliseconds(kMaxPollWaitMs);
    if (!accepting) next = std::min(next, accept_paused_until_);
    for (auto& [fd, c] : conns_) {
      const short events = c->phase == Conn::Phase::kWriting ? POLLOUT : POLLIN;
      fds.push_back({fd, static_cast<short>(events | POLLRDHUP), 0});
      order.push_back(fd);
      next = std::min(next, c->deadline);
    }
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now());
    ::poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(0, wait.count() + 1)));
    if (fds[0].revents != 0) {
      uint64_t v;
      [[maybe_unused]] ssize_t n = ::read(wake_fd_, &v, sizeof(v));
    }
    if (fds[1].revents & POLLIN) Accept();

    const Clock::time_point now = Clock::now();
    for (size_t i = 0; i < order.size(); ++i) {
      auto it = conns_.find(order[i]);
      if (it == conns_.end()) continue;
      std::unique_ptr<Conn>& c = it->second;
      bool keep = true;
      bool handed_off = false;
      const short ev = fds[i + 2].revents;
      if (ev & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)) {
        if (c->phase == Conn::Phase::kWriting) {
          keep = (ev & (POLLHUP | POLLERR)) == 0;
        } else {
          keep = Read(*c) && Process(c, &handed_off);
        }
      }
      if (keep && !handed_off && (ev & POLLOUT)) {
        keep = Flush(*c);
        if (keep && c->phase == Conn::Phase::kIdle) keep = Process(c, &handed_off);
      }
      if (handed_off) {
        conns_.erase(it);
        continue;
      }
      if (keep && now >= c->deadline) {
        if (c->phase == Conn::Phase::kHead || c->phase == Conn::Phase::kBody) {
          timeouts_.fetch_add(1);
          Answer(*c, Error(408, std::string("the request ") +
                                         (c->phase == Conn::Phase::kHead ? "head" : "body") +
                                         " did not arrive in time"),
                 true);
          // The deadline is now the drain's.
        } else {
          keep = false;  // idle, or drained, or a write that made no progress
        }
      }
      if (!keep) {
        Close(*c);
        conns_.erase(it);
      }
    }
  }
  // Stopping: drop every connection no handler holds, at once.
  for (auto& [fd, c] : conns_) Close(*c);
  conns_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  for (std::unique_ptr<Conn>& c : returned_) Close(*c);
  returned_.clear();
  io_done_ = true;
}

void HttpServer::Impl::Finish(std::unique_ptr<Conn> c, const ResponseWriter& w) {
  if (log_) log_(c->head, w.status());
  if (w.reusable() && !stopping_.load()) {
    c->phase = Conn::Phase::kIdle;
    c->deadline = Clock::now() + o_.idle_timeout;
    std::lock_guard<std::mutex> lock(mu_);
    if (!io_done_) {
      returned_.push_back(std::move(c));
      Wake();
      return;
    }
  }
  Close(*c);
}

void HttpServer::Impl::Worker() {
  while (true) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return !jobs_.empty() || (stopping_.load() && io_done_); });
      if (jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    ResponseWriter w(job.conn->fd, job.request.head.keep_alive && !stopping_.load(),
                     o_.write_timeout, &stopping_);
    try {
      handle_(job.request, w);
    } catch (const std::exception& e) {
      if (!w.started()) w.Send(Error(500, std::string("internal error: ") + e.what()));
    }
    if (!w.started()) w.Send(Error(500, "internal error: the handler sent no response"));
    job.conn->head = std::move(job.request.head);
    Finish(std::move(job.conn), w);
  }
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() { Stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                      AdmitFn admit, HandleFn handle,
                                                      LogFn log) {
  auto impl = std::make_unique<Impl>(options, std::move(admit), std::move(handle),
                                     std::move(log));
  DSV4_RETURN_IF_ERROR(impl->Bind());
  impl->Run();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

void HttpServer::Stop() { impl_->Stop(); }
const std::atomic<bool>& HttpServer::stopping() const { return impl_->stopping_; }
int HttpServer::port() const { return impl_->port_; }
HttpStats HttpServer::stats() const {
  return {impl_->open_.load(), impl_->total_.load(), impl_->refused_.load(),
          impl_->timeouts_.load(), impl_->malformed_.load()};
}

}  // namespace dsv4::http
