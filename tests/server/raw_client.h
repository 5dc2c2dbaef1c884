// A raw loopback HTTP client for the server tests: it sends exactly the bytes it is given (a
// request cut short, trickled, malformed or hostile), reads what comes back with a deadline and
// closes the socket whenever told, which a real client library cannot be made to do.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <string_view>

namespace dsv4::server::test_support {

class RawClient {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~RawClient() { Close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  // Sends all of `bytes`; false when the server closed or reset the connection.
  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // A POST with a JSON body, `key` as the bearer token (none when empty).
  bool Post(const std::string& path, const std::string& body, const std::string& key) {
    std::string req = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (!key.empty()) req += "Authorization: Bearer " + key + "\r\n";
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
    return Send(req);
  }

  // Reads until `needle` occurs `count` times, the server closes, or `limit` passes; returns
  // everything read so far.
  std::string ReadUntil(const std::string& needle, int count,
                        std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto until = Clock::now() + limit;
    while (Clock::now() < until && Count(needle) < count && !eof_) ReadSome(100);
    return got_;
  }
  // Reads until the server closes the connection or `limit` passes.
  std::string ReadToEnd(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto until = Clock::now() + limit;
    while (Clock::now() < until && !eof_) ReadSome(100);
    return got_;
  }
  // True once the server closed (or reset) the connection.
  bool closed_by_server() const { return eof_; }
  const std::string& received() const { return got_; }

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  void ReadSome(int wait_ms) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, wait_ms) <= 0) return;
    char buf[65536];
    const ssize_t n = read(fd_, buf, sizeof(buf));
    if (n <= 0) {
      eof_ = true;
      return;
    }
    got_.append(buf, static_cast<size_t>(n));
  }
  int Count(const std::string& needle) const {
    int n = 0;
    for (size_t p = got_.find(needle); p != std::string::npos; p = got_.find(needle, p + 1)) ++n;
    return n;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string got_;
};

}  // namespace dsv4::server::test_support
