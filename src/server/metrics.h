// Server metrics in the Prometheus text exposition format (version 0.0.4): HTTP requests by
// endpoint and status, token counters, time-to-first-token and time-per-output-token
// histograms, and the engine's own numbers (queue, running, preemptions, prefix-cache hits,
// KV bytes and pages per component) sampled from EngineStats at scrape time.
//
// Thread-safe: HTTP handler threads record, any thread renders.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dsv4/engine.h"
#include "http/http_server.h"

namespace dsv4::server {

// A cumulative histogram over fixed upper bounds (an implicit +Inf bucket at the end).
// Not thread-safe on its own (ServerMetrics locks).
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double v);
  // Appends NAME_bucket{le=...}, NAME_sum and NAME_count lines.
  void Render(std::string_view name, std::string* out) const;

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // per bucket, not cumulative; the last one is +Inf
  double sum_ = 0;
  int64_t count_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();

  // One answered HTTP request. Endpoints outside the API are counted as "other" so a
  // scanner cannot grow the label set without bound.
  void CountRequest(std::string_view path, int status);
  // One finished generation: its usage and timing (ttft < 0: no token was generated;
  // tpot < 0: fewer than two).
  void CountGeneration(int64_t prompt_tokens, int64_t completion_tokens, double ttft_s,
                       double tpot_s);
  // A streamed response that ended without its final events (client gone, write timeout,
  // shutdown); its request was cancelled.
  void CountAbortedStream();
  // A non-streaming request whose client went away before the answer; it was cancelled.
  void CountAbandonedRequest();

  // The whole exposition. `engine` is null while the model loads; `http` is the connection
  // layer's counters.
  std::string Render(const EngineStats* engine, std::string_view model, bool ready,
                     int64_t in_flight, const http::HttpStats& http = {}) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> requests_;  // (endpoint, status) -> count
  int64_t prompt_tokens_ = 0;
  int64_t completion_tokens_ = 0;
  int64_t generations_ = 0;
  int64_t aborted_streams_ = 0;
  int64_t abandoned_requests_ = 0;
  Histogram ttft_;
  Histogram tpot_;
};

// A Prometheus label value with \, " and newline escaped.
std::string EscapeLabelValue(std::string_view v);

}  // namespace dsv4::server
