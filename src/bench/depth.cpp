#include "bench/depth.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace dsv4::bench {

std::vector<DepthTest> ExpandDepthTests(const std::vector<int64_t>& n_prompt,
                                        const std::vector<int64_t>& n_gen,
                                        const std::vector<int64_t>& n_depth,
                                        const std::vector<int>& threads) {
  std::vector<DepthTest> out;
  for (int t : threads) {
    for (int64_t d : n_depth) {
      for (int64_t p : n_prompt) {
        if (p > 0) out.push_back({.n_prompt = p, .n_gen = 0, .n_depth = d, .threads = t});
      }
      for (int64_t g : n_gen) {
        if (g > 0) out.push_back({.n_prompt = 0, .n_gen = g, .n_depth = d, .threads = t});
      }
    }
  }
  return out;
}

std::string DepthTestName(const DepthTest& t) {
  std::string s = t.n_prompt > 0 ? "pp" + std::to_string(t.n_prompt) : "tg" + std::to_string(t.n_gen);
  if (t.n_depth > 0) s += " @ d" + std::to_string(t.n_depth);
  return s;
}

int64_t DepthTestTokens(const DepthTest& t) { return t.n_prompt > 0 ? t.n_prompt : t.n_gen; }

MeanStd MeanAndStddev(const std::vector<double>& v) {
  MeanStd r;
  if (v.empty()) return r;
  double sum = 0;
  for (double x : v) sum += x;
  r.mean = sum / static_cast<double>(v.size());
  if (v.size() < 2) return r;
  double sq = 0;
  for (double x : v) sq += (x - r.mean) * (x - r.mean);
  r.stddev = std::sqrt(sq / static_cast<double>(v.size() - 1));
  return r;
}

namespace {

std::string Printf2(const char* fmt, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, a);
  return buf;
}

// Tokens per second of each sample.
std::vector<double> Rates(const DepthResult& r) {
  std::vector<double> ts;
  const double n = static_cast<double>(DepthTestTokens(r.test));
  for (double s : r.seconds) ts.push_back(s > 0 ? n / s : 0.0);
  return ts;
}

// `s` padded to `width`, on the right (left-aligned) or the left.
std::string Pad(const std::string& s, size_t width, bool right_align) {
  // Count code points, not bytes: "±" is two bytes.
  size_t cps = 0;
  for (unsigned char c : s) cps += (c & 0xC0) != 0x80;
  const std::string fill(width > cps ? width - cps : 0, ' ');
  return right_align ? fill + s : s + fill;
}

}  // namespace

std::string DepthSizeCell(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024 * 1024) return Printf2("%.2f GiB", b / (1024.0 * 1024 * 1024));
  return Printf2("%.2f MiB", b / (1024.0 * 1024));
}

std::string DepthParamsCell(int64_t params) {
  const double p = static_cast<double>(params);
  if (p >= 1e9) return Printf2("%.2f B", p / 1e9);
  if (p >= 1e6) return Printf2("%.2f M", p / 1e6);
  return Printf2("%.2f K", p / 1e3);
}

std::string DepthMarkdown(const DepthModel& model, const std::vector<DepthResult>& results) {
  // llama-bench's widths (at least) and alignment: text left, numbers right.
  struct Col {
    std::string name;
    size_t width;
    bool right;
  };
  std::vector<Col> cols = {{"model", 30, false},  {"size", 10, true}, {"params", 10, true},
                           {"backend", 10, false}, {"threads", 7, true}, {"test", 15, true},
                           {"t/s", 20, true}};
  std::vector<std::vector<std::string>> rows;
  for (const DepthResult& r : results) {
    const MeanStd ts = MeanAndStddev(Rates(r));
    char rate[64];
    std::snprintf(rate, sizeof rate, "%.2f ± %.2f", ts.mean, ts.stddev);
    rows.push_back({model.type, DepthSizeCell(model.size_bytes), DepthParamsCell(model.n_params),
                    "CPU", std::to_string(r.test.threads), DepthTestName(r.test), rate});
  }
  for (const auto& row : rows) {
    for (size_t i = 0; i < cols.size(); ++i) {
      size_t cps = 0;
      for (unsigned char c : row[i]) cps += (c & 0xC0) != 0x80;
      cols[i].width = std::max(cols[i].width, cps);
    }
  }
  std::string out = "|";
  for (const Col& c : cols) out += " " + Pad(c.name, c.width, c.right) + " |";
  out += "\n|";
  for (const Col& c : cols) {
    out += " " + std::string(c.width - (c.right ? 1 : 0), '-') + (c.right ? ":" : "") + " |";
  }
  out += "\n";
  for (const auto& row : rows) {
    out += "|";
    for (size_t i = 0; i < cols.size(); ++i) out += " " + Pad(row[i], cols[i].width, cols[i].right) + " |";
    out += "\n";
  }
  return out;
}

nlohmann::json DepthJson(const DepthModel& model, int64_t n_batch,
                         const std::vector<DepthResult>& results) {
  nlohmann::json out = nlohmann::json::array();
  for (const DepthResult& r : results) {
    std::vector<double> ns;
    for (double s : r.seconds) ns.push_back(s * 1e9);
    const std::vector<double> ts = Rates(r);
    const MeanStd ns_ms = MeanAndStddev(ns);
    const MeanStd ts_ms = MeanAndStddev(ts);
    std::vector<int64_t> samples_ns;
    for (double x : ns) samples_ns.push_back(static_cast<int64_t>(std::llround(x)));
    out.push_back({{"build_commit", "dsv4.cpp"},
                   {"model_filename", model.filename},
                   {"model_type", model.type},
                   {"model_size", model.size_bytes},
                   {"model_n_params", model.n_params},
                   {"backends", "CPU"},
                   {"n_threads", r.test.threads},
                   {"n_batch", n_batch},
                   {"n_prompt", r.test.n_prompt},
                   {"n_gen", r.test.n_gen},
                   {"n_depth", r.test.n_depth},
                   {"avg_ns", static_cast<int64_t>(std::llround(ns_ms.mean))},
                   {"stddev_ns", static_cast<int64_t>(std::llround(ns_ms.stddev))},
                   {"avg_ts", ts_ms.mean},
                   {"stddev_ts", ts_ms.stddev},
                   {"samples_ns", samples_ns},
                   {"samples_ts", ts}});
  }
  return out;
}

}  // namespace dsv4::bench
