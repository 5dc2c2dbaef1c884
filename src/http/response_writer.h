// Writes one response on a connection from a handler thread: either whole (Send) or streamed
// as chunks (StartStream / Write / EndStream, for server-sent events). Every write has a
// deadline and gives up at once when the server stops, so a client that stops reading cannot
// hold a handler thread. ClientGone() tells a handler that runs long without writing (a
// non-streaming generation) that the client went away, so it can cancel its work.
//
// One per request; used by one thread at a time; not thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>

#include "http/message.h"

namespace dsv4::http {

class ResponseWriter {
 public:
  // `fd` is a non-blocking connected socket the writer does not own. `abort` (may be null)
  // going true makes every write fail at once.
  ResponseWriter(int fd, bool keep_alive, std::chrono::milliseconds write_timeout,
                 const std::atomic<bool>* abort);

  // Headers added to the response Send or StartStream writes (e.g. CORS).
  void AddHeader(std::string name, std::string value);

  // Writes the whole response (Content-Length framing). False when the write failed (the
  // connection is then closed after the handler returns). Once per request.
  bool Send(const Response& r);

  // Starts a chunked response; Write sends one chunk (empty data writes nothing) and
  // EndStream the last. False when a write failed: the client is gone, it stopped reading for
  // write_timeout, or the server stops.
  bool StartStream(int status, std::string_view content_type, const HeaderList& headers = {});
  bool Write(std::string_view data);
  bool EndStream();

  // True when the peer closed or reset the connection (checked without blocking). A client
  // that only half-closes (shuts down its sending side after the request) counts as gone.
  bool ClientGone() const;

  // The client went away before a response: nothing is written, the status is logged as
  // 499 (nginx's "client closed request") and the connection is closed.
  void Abandon() {
    status_ = 499;
    failed_ = true;
  }

  bool started() const { return status_ != 0; }
  int status() const { return status_; }  // 0 until a response started
  // The connection may carry another request: keep-alive asked, the response is complete
  // and no write failed.
  bool reusable() const { return keep_alive_ && complete_ && !failed_; }

 private:
  std::string Head(int status, std::string_view content_type, const HeaderList& headers,
                   std::string_view framing) const;
  bool WriteAll(std::string_view data);

  int fd_;
  bool keep_alive_;
  std::chrono::milliseconds write_timeout_;
  const std::atomic<bool>* abort_;
  HeaderList extra_;
  int status_ = 0;
  bool streaming_ = false;
  bool complete_ = false;
  bool failed_ = false;
};

}  // namespace dsv4::http
