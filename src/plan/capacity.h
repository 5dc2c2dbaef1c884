// The capacity planner (capacity.md §6): from a model config, KV formats, weights dtype,
// hardware and parallel layout to weights per GPU, KV bytes per request, the per-GPU KV
// budget and the number of concurrent requests it holds. Pure functions: options in, plan
// out; no I/O, no clocks, no model memory. Thread-safe (no shared state).
//
// Units: bytes are exact byte counts (doubles where shares are fractional); GB inputs are
// decimal (10^9 B); token counts are exact (1M in the CLI means 2^20).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "kv/layout.h"
#include "checkpoint/config.h"
#include "plan/all_to_all.h"
#include "plan/bandwidth.h"
#include "plan/hardware.h"
#include "plan/parallel.h"
#include "plan/weights.h"

namespace dsv4::plan {

// Longest context the planner accepts (2^40 tokens) so byte counts stay far below 2^63.
inline constexpr int64_t kMaxPlanTokens = int64_t{1} << 40;

// How the per-GPU KV budget is found (capacity.md §6.4, vLLM-style):
//   M_kv = util x HBM - W_gpu - workspace, or a fixed `kv_budget_gb`.
struct MemoryOptions {
  double util = 0.90;         // fraction of HBM the engine may use (gpu_memory_utilization)
  double workspace_gb = 8.0;  // activations, DeepEP/NCCL buffers, CUDA graphs (decode)
  // A fixed per-GPU KV budget in GB: weights and reserves are reported but not subtracted.
  // Reproduces analyses that assumed one budget for every model (the seed's "176 GB").
  std::optional<double> kv_budget_gb;
};

// One length of a request mix: `weight` is its relative share of requests.
struct LengthShare {
  int64_t tokens = 0;
  double weight = 0;
};

struct PlanOptions {
  std::string model_label;  // "v4-pro" or the config.json path, for reports
  checkpoint::ModelConfig model;
  kv::KvFormats kv_formats;
  // The V4 compressor's fixed FP32 state (17.84 MiB per Pro request) is allocated by the
  // engine; capacity.md §3 tables leave it out.
  bool include_compressor_state = true;
  ExpertDtype expert_dtype = ExpertDtype::kMxfp4;
  bool include_mtp_weights = true;  // the checkpoint's MTP module is resident
  // Non-expert weights at their stored bytes (what a rank holds), or capacity.md §4's FP8.
  DenseBasis dense_basis = DenseBasis::kStored;
  GpuSpec gpu;
  ParallelLayout layout;
  MemoryOptions memory;
  std::vector<int64_t> lengths = {int64_t{1} << 20};  // tokens per request (prompt + output)
  std::vector<LengthShare> mix;                       // optional length mix
  std::vector<int64_t> concurrency = {1};             // for the max context at N requests
  double bw_efficiency = 1.0;  // fraction of peak HBM bandwidth in the decode floor
  int64_t rack_gpus = 0;       // GPUs per rack for the per-rack count; 0: the GPU's domain
  DispatchDtype a2a_dispatch = DispatchDtype::kBf16;  // row format of the expert all-to-all
};

// Concurrent requests when every request needs the same KV bytes.
struct Concurrency {
  int64_t per_rank = 0;             // per attention DP rank (tp GPUs, each holding the KV)
  double per_gpu = 0;               // per_rank / tp
  int64_t per_group = 0;            // per serving group of tp x dp GPUs
  std::optional<int64_t> per_rack;  // per rack of floor(rack_gpus / group) groups; none if 0
};

struct LengthPlan {
  int64_t tokens = 0;
  int64_t kv_bytes = 0;       // one request's KV on each GPU that holds it
  kv::KvFootprint footprint;  // the same by component
  Concurrency n;
  DecodeFloor decode;                 // at n.per_rank requests of this length
  AllToAll a2a;                       // the expert all-to-all of that decode step
  std::string binding;                // the limiting constraint, in words
  bool beyond_model_context = false;  // tokens > max_position_embeddings
};

struct MixPlan {
  std::vector<LengthShare> shares;  // weights normalised to sum 1
  double mean_kv_bytes = 0;
  Concurrency n;  // floor(budget / mean KV per request)
  DecodeFloor decode;
  AllToAll a2a;
  std::string binding;
};

struct MaxContext {
  int64_t concurrency = 0;
  int64_t memory_tokens = 0;  // longest length with concurrency x KV(T) <= budget per rank
  int64_t max_tokens = 0;     // min(memory_tokens, max_position_embeddings)
  std::string binding;
};

// Asymptotic KV cost of one component: bytes per token of context, or fixed bytes.
struct KvRate {
  std::string name;
  int64_t layers = 0;
  int64_t bytes_per_entry = 0;
  double bytes_per_token = 0;  // growing components
  int64_t fixed_bytes = 0;     // fixed components (window ring, compressor state), long T
};

struct CapacityPlan {
  PlanOptions options;
  ParamBreakdown params;
  WeightsPerGpu weights;
  double usable_bytes = 0;  // util x HBM
  double workspace_bytes = 0;
  double kv_budget_bytes = 0;     // M_kv per GPU
  bool fixed_budget = false;      // from MemoryOptions::kv_budget_gb
  double kv_bytes_per_token = 0;  // asymptotic, growing components
  std::vector<KvRate> kv_rates;
  int64_t kv_fixed_bytes = 0;    // per request at long context
  double kv_token_capacity = 0;  // budget / bytes per token
  int64_t groups_per_rack = 0;   // 0 when a group is larger than the rack
  int64_t rack_gpus = 0;
  std::vector<LengthPlan> lengths;
  std::optional<MixPlan> mix;
  std::vector<MaxContext> max_context;
  std::string summary;  // budget and binding constraint of the first length, in words
  std::vector<std::string> notes;
};

// Errors: InvalidArgument for bad options (lengths < 1, util outside (0, 1], EP not dividing
// the experts, ...), naming the field and the value; ResourceExhausted when the weights and
// workspace do not fit in util x HBM.
Result<CapacityPlan> PlanCapacity(const PlanOptions& o);

// One request's KV bytes under `o` (honours include_compressor_state). tokens >= 0.
kv::KvFootprint KvFootprintForPlan(const PlanOptions& o, int64_t tokens);
int64_t KvBytesPerRequest(const PlanOptions& o, int64_t tokens);
// Concurrency for requests of `kv_bytes` each under the plan's budget and layout.
Concurrency ConcurrencyFor(const CapacityPlan& p, double kv_bytes);
// Longest request length such that `n` of them fit in `budget_bytes` (0 if none fits).
int64_t MaxTokensForBudget(const PlanOptions& o, double budget_bytes, int64_t n);

}  // namespace dsv4::plan
