#include "http/response_writer.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>

namespace dsv4::http {
namespace {

// How often a blocked write looks at the abort flag.
constexpr int kAbortCheckMs = 100;

}  // namespace

ResponseWriter::ResponseWriter(int fd, bool keep_alive, std::chrono::milliseconds write_timeout,
                               const std::atomic<bool>* abort)
    : fd_(fd), keep_alive_(keep_alive), write_timeout_(write_timeout), abort_(abort) {}

void ResponseWriter::AddHeader(std::string name, std::string value) {
  extra_.emplace_back(std::move(name), std::move(value));
}

std::string ResponseWriter::Head(int status, std::string_view content_type,
                                 const HeaderList& headers, std::string_view framing) const {
  return SerializeHead(status, content_type, {&extra_, &headers}, framing, keep_alive_);
}

bool ResponseWriter::WriteAll(std::string_view data) {
  if (failed_) return false;
  const auto deadline = std::chrono::steady_clock::now() + write_timeout_;
  while (!data.empty()) {
    if (abort_ != nullptr && abort_->load()) break;
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (std::chrono::steady_clock::now() >= deadline) break;
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, kAbortCheckMs);
      continue;
    }
    break;  // EPIPE, ECONNRESET, ...
  }
  failed_ = !data.empty();
  return !failed_;
}

bool ResponseWriter::Send(const Response& r) {
  status_ = r.status;
  const std::string head = Head(r.status, r.content_type, r.headers,
                                "Content-Length: " + std::to_string(r.body.size()) + "\r\n");
  // One buffer: a small response leaves in one segment.
  const bool ok = WriteAll(head + r.body);
  complete_ = ok;
  return ok;
}

bool ResponseWriter::StartStream(int status, std::string_view content_type,
                                 const HeaderList& headers) {
  status_ = status;
  streaming_ = true;
  return WriteAll(Head(status, content_type, headers, "Transfer-Encoding: chunked\r\n"));
}

bool ResponseWriter::Write(std::string_view data) {
  if (data.empty()) return !failed_;
  char size[32];
  const int n = std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  std::string chunk(size, static_cast<size_t>(n));
  chunk.append(data);
  chunk += "\r\n";
  return WriteAll(chunk);
}

bool ResponseWriter::EndStream() {
  const bool ok = WriteAll("0\r\n\r\n");
  complete_ = ok;
  return ok;
}

bool ResponseWriter::ClientGone() const {
  pollfd p{fd_, POLLRDHUP, 0};
  if (::poll(&p, 1, 0) < 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

}  // namespace dsv4::http
