// What `dsv4 bench depth` reports, in llama-bench's shape: the tests a run expands to
// (ppN and tgN at each depth, as llama-bench's -p/-n/-d lists do), the per-test samples
// reduced to mean ± standard deviation of tokens/s, and the markdown table and JSON records
// with llama-bench's columns and field names, so the two tools' outputs sit side by side.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dsv4::bench {

// One llama-bench test: n_prompt prompt tokens (pp) or n_gen generated tokens (tg) after a
// context of n_depth tokens already in the cache. Exactly one of n_prompt, n_gen is > 0.
struct DepthTest {
  int64_t n_prompt = 0;
  int64_t n_gen = 0;
  int64_t n_depth = 0;
  int threads = 0;
};

// llama-bench's order: per thread count, per depth, every ppN (in -p order) then every tgN
// (in -n order); a 0 in either list adds no test (as -p 0 / -n 0 do).
std::vector<DepthTest> ExpandDepthTests(const std::vector<int64_t>& n_prompt,
                                        const std::vector<int64_t>& n_gen,
                                        const std::vector<int64_t>& n_depth,
                                        const std::vector<int>& threads);

// "pp512", "tg128", "pp512 @ d4096": llama-bench's test column.
std::string DepthTestName(const DepthTest& t);

// Tokens one sample of `t` processes: n_prompt or n_gen.
int64_t DepthTestTokens(const DepthTest& t);

// Mean and sample standard deviation (n - 1; 0 for fewer than two values), as llama-bench.
struct MeanStd {
  double mean = 0;
  double stddev = 0;
};
MeanStd MeanAndStddev(const std::vector<double>& v);

// The model columns shared by every row.
struct DepthModel {
  std::string filename;  // the checkpoint folder, or "dsv4-tiny (built-in)"
  std::string type;      // e.g. "deepseek_v4 5L fp8 / mxfp4 experts"
  int64_t size_bytes = 0;  // bytes of the weights the forward pass reads (drafter excluded)
  int64_t n_params = 0;    // logical parameters (FP4 values count one each), drafter excluded
};

// One finished test: its seconds per sample.
struct DepthResult {
  DepthTest test;
  std::vector<double> seconds;
};

// llama-bench's size ("8.56 MiB", "3.56 GiB") and params ("8.39 M", "6.74 B") cells.
std::string DepthSizeCell(int64_t bytes);
std::string DepthParamsCell(int64_t params);

// "| model | size | params | backend | threads | test | t/s |" with llama-bench's alignment
// and "%.2f ± %.2f" tokens/s (mean and standard deviation of the per-sample rates).
std::string DepthMarkdown(const DepthModel& model, const std::vector<DepthResult>& results);

// llama-bench's -o json records: model_filename, model_type, model_size, model_n_params,
// backends, n_threads, n_batch, n_prompt, n_gen, n_depth, avg_ns, stddev_ns, avg_ts,
// stddev_ts, samples_ns, samples_ts (and build_commit: "dsv4.cpp").
nlohmann::json DepthJson(const DepthModel& model, int64_t n_batch,
                         const std::vector<DepthResult>& results);

}  // namespace dsv4::bench
