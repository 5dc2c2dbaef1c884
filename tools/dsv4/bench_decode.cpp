// dsv4 bench decode: decode cost per token at depth for real-dimension attention stacks,
// V3.2-shaped vs V4-Flash/Pro-shaped (bench/decode_cost.h), against the machine's memory
// bandwidth measured in the same run, and against the sum of its kernels' roofline bounds
// (bench/decode_bound.h) from the machine limits measured in the same run on the same pool.
// Attention sublayers only; the output says what runs.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/decode_bound.h"
#include "bench/decode_cost.h"
#include "bench/decode_json.h"
#include "bench/roofline.h"
#include "bench_commands.h"
#include "core/thread_pool.h"
#include "kernels/cpu/isa.h"
#include "model_arg.h"
#include "table.h"

namespace dsv4::cli {
namespace {

struct DecodeCliOptions {
  std::vector<std::string> models, configs;
  std::vector<std::string> depths = {"8K", "32K", "128K", "512K", "1M"};
  int64_t layers = 0;
  int threads = 0;
  int64_t iters = 2;
  uint64_t seed = 1;
  bool json = false;
};

void PrintText(const std::vector<bench::DecodeReport>& reports, const bench::DecodeRunInfo& run) {
  const int base = run.baseline;
  const bench::Bandwidth& bw = run.bandwidth;
  std::printf("Decode cost per token at depth, attention sublayers only (dsv4 bench decode)\n");
  std::printf("runs: %s\nnot run: %s\n", bench::kDecodeRuns, bench::kDecodeNotRun);
  std::printf(
      "weights: random, in the forms the loaders produce (FP8 E4M3 + 128x128 block "
      "scales; V4 wo_a BF16 and compressors FP32; V3.2 W_UK/W_UV BF16); cache: "
      "synthetic entries in the real formats filled to the depth, compressor state "
      "stepped through the open windows; 1 warm-up + %lld timed tokens per depth\n",
      static_cast<long long>(run.iters));
  std::printf(
      "threads: %d; memory bandwidth (STREAM-style, 2 x %s buffers): copy %.1f GB/s, "
      "read %.1f GB/s\n",
      run.threads, HumanBytes(double(bw.buffer_bytes)).c_str(), bw.copy_gb_per_s,
      bw.read_gb_per_s);
  std::printf(
      "roofline limits (same pool; %s kernels): read %.1f GB/s (1 GiB streaming read, best of "
      "5), peak %.1f GFLOP/s %s (FMA %.1f, VDPBF16PS %.1f)\n",
      std::string(kernels::IsaName(run.isa)).c_str(), run.limits.read_bytes_per_s / 1e9,
      bench::PeakFlops(run.limits, run.peak) / 1e9, std::string(bench::PeakName(run.peak)).c_str(),
      run.limits.fma_flops / 1e9, run.limits.bf16_flops / 1e9);
  for (const bench::DecodeReport& r : reports) {
    std::printf(
        "%s: ran %s, %s of attention weights; full stack = ms per layer x layers of "
        "its type\n",
        r.label.c_str(), r.subset.Describe(r.config.num_hidden_layers).c_str(),
        Gb(double(r.weight_bytes_ran)).c_str());
  }
  std::vector<std::string> header = {"model",
                                     "depth",
                                     "ms/token (ran)",
                                     "ms/token (full stack)",
                                     "bound ms/token (full stack)",
                                     "measured / bound",
                                     "KV read/token",
                                     "weights read/token",
                                     "GB/s",
                                     "of bandwidth"};
  if (base >= 0) header.insert(header.end(), {"time vs V3.2", "KV read vs V3.2"});
  Table t(header);
  for (size_t i = 0; i < reports.front().points.size(); ++i) {
    for (const bench::DecodeReport& r : reports) {
      const bench::DecodePoint& p = r.points[i];
      std::vector<std::string> row = {r.label,
                                      TokensLabel(p.depth),
                                      Ms(p.ran_ms()),
                                      Ms(p.full_ms()),
                                      Ms(p.bound_ms()),
                                      Fixed(p.measured_over_bound(), 2),
                                      Gb(double(p.kv_bytes())),
                                      Gb(double(p.weight_bytes())),
                                      Fixed(p.gb_per_s(), 2),
                                      Fixed(100.0 * p.gb_per_s() / bw.copy_gb_per_s, 1) + "%"};
      if (base >= 0) {
        const bench::DecodePoint& b = reports[static_cast<size_t>(base)].points[i];
        row.push_back(Fixed(100.0 * p.full_ms() / b.full_ms(), 1) + "%");
        row.push_back(Fixed(100.0 * double(p.kv_bytes()) / double(b.kv_bytes()), 1) + "%");
      }
      t.Row(std::move(row));
    }
  }
  std::printf("\n%s", t.Render().c_str());
  Table g({"model", "depth", "type", "layers (ran/full)", "ms/layer", "bound ms/layer",
           "KV read/layer", "weights/layer"});
  for (const bench::DecodeReport& r : reports) {
    for (const bench::DecodePoint& p : r.points) {
      for (const auto& gc : p.groups) {
        g.Row({r.label, TokensLabel(p.depth), gc.name,
               std::to_string(gc.ran_layers) + "/" + std::to_string(gc.full_count),
               Ms(gc.ms_per_layer), Ms(gc.bound_ms_per_layer()),
               HumanBytes(double(gc.kv_bytes_per_layer)),
               HumanBytes(double(gc.weight_bytes_per_layer))});
      }
    }
  }
  std::printf("\nper layer type:\n%s", g.Render().c_str());
  std::printf(
      "KV read = window rows + (CSA) every indexer key and the top-k entries, (HCA) every "
      "compressed entry; V3.2: every indexer key and the top-2048 records (capacity.md "
      "6.6). GB/s = (KV + weights read) / time. V3.2 supports 163,840 positions: deeper "
      "V3.2 points extrapolate its format.\n"
      "bound = per layer, the attention weights / read bandwidth (one token: every linear is "
      "memory-bound) + for the indexer scan over every key and the gathered attention over the "
      "window and selected entries each max(KV bytes / read bandwidth, 2 x multiply-adds / "
      "peak), times the layers of each type; measured / bound = ms/token (full stack) / "
      "bound.\n");
}

int64_t PhysicalMemory() {
  return static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) *
         static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

Status RunDecode(const DecodeCliOptions& o) {
  DSV4_ASSIGN_OR_RETURN(std::vector<NamedConfig> models, ResolveBenchModels(o.models, o.configs));
  bench::DecodeOptions d;
  DSV4_ASSIGN_OR_RETURN(d.depths, ParseTokenCounts(o.depths, "--depths"));
  d.num_layers = o.layers;
  d.iters = o.iters;
  d.seed = o.seed;
  d.max_bytes = PhysicalMemory() / 10 * 6;
  ThreadPool pool(o.threads);
  bench::DecodeRunInfo run;
  run.threads = pool.num_threads();
  run.iters = o.iters;
  run.bandwidth = bench::MeasureBandwidth(pool);
  run.isa = kernels::ActiveIsa();
  run.limits = bench::MeasureLimits(pool, run.isa);
  run.peak = bench::DecodePeak(run.isa);
  d.limits = run.limits;
  d.peak = run.peak;
  std::vector<bench::DecodeReport> reports;
  for (const NamedConfig& m : models) {
    DSV4_ASSIGN_OR_RETURN(bench::DecodeReport r, bench::MeasureDecode(pool, m.config, m.label, d));
    reports.push_back(std::move(r));
  }
  run.baseline = BaselineIndex(models);
  if (o.json) {
    std::printf("%s\n", bench::DecodeJson(reports, run).dump(2).c_str());
  } else {
    PrintText(reports, run);
  }
  return Status::Ok();
}

}  // namespace

void RegisterBenchDecode(CLI::App& bench, int* exit_code) {
  auto o = std::make_shared<DecodeCliOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "decode", "Decode cost per token at depth of real-dimension attention stacks, V4 vs V3.2");
  cmd->add_option("--models", o->models, "Presets, comma-separated (default: v3.2,v4-pro,v4-flash)")
      ->delimiter(',');
  cmd->add_option("--config", o->configs, "config.json files or checkpoint folders (repeatable)");
  cmd->add_option("--depths", o->depths, "Tokens in the cache, comma-separated (1M = 2^20)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--layers", o->layers,
                  "Attention layers run per model (default: one per layer type; the full stack "
                  "is estimated by layer type)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", o->threads, "Worker threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--iters", o->iters, "Timed tokens per depth (after one warm-up token)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of the random weights and cache entries")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o, exit_code] {
    Status s = RunDecode(*o);
    if (!s.ok()) *exit_code = ReportError(s);
  });
}

}  // namespace dsv4::cli
