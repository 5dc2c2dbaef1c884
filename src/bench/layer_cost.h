// `dsv4 bench layer`: the cost of one full V4 block per layer type at real dimensions
// (attention with its compressors and indexer, MoE with the real expert count, mHC), through
// the engine's own v4::BlockForward and HeadForward on random weights in the loaded formats
// (attention_weights.h: FP8 + E8M0 dense, MXFP4 experts repacked as the loader does) and
// caches filled synthetically to a depth (synthetic_kv.h). One layer type is built, measured
// and freed at a time (a V4-Pro layer's 384 experts alone are ~12.7 GB). Three step shapes:
//   decode   B sequences, one token each (continuous batching's decode step);
//   verify   one sequence, k+1 tokens (a speculative verify step of k drafts);
//   prefill  one sequence, a chunk of P tokens from depth 0 (the head on its last row only).
// Each step gets its roofline bound: max(bytes touched / read bandwidth, flops / peak) with
// bytes = the dense weights + the routed experts the step's rows actually picked + the KV the
// step reads once (StepKvBytes), flops = 2 x multiply-adds of every row's linears (dense + top-k
// experts) and attention (decode_bound.h's per-position work). The whole model is the per-type
// costs times the layer schedule plus the head.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bench/roofline.h"
#include "checkpoint/config.h"
#include "core/status.h"
#include "core/thread_pool.h"

namespace dsv4::bench {

enum class StepMode { kDecode, kVerify, kPrefill };
std::string_view StepModeName(StepMode m);  // "decode", "verify", "prefill"

struct LayerBenchOptions {
  // The types to run; empty: every type of the main layers and the MTP layer's (the drafter's
  // cost; a type only the MTP layer has gets full_count 0).
  std::vector<checkpoint::LayerKind> kinds;
  std::vector<int64_t> batches = {1, 2, 4, 8, 16, 32, 64};  // decode, each >= 1
  std::vector<int64_t> drafts = {1, 2, 4, 6, 8};            // verify k (k + 1 rows), each >= 1
  int64_t prefill = 512;                                    // chunk rows; 0: no prefill
  int64_t depth = 4096;  // tokens in every decode/verify cache before the first timed step
  int64_t iters = 3;     // timed steps per shape, after one untimed warm-up step
  uint64_t seed = 1;
  MachineLimits limits{};  // no bounds (0) while limits.read_bytes_per_s == 0
  Peak peak = Peak::kFma;
  // Called after every step (warm-up included) with (done, total) steps of the whole run.
  std::function<void(int64_t, int64_t)> progress;
};

// What one step reads and computes (the bound's inputs).
struct StepWork {
  double weight_bytes = 0;  // dense weights + experts touched x one expert's bytes
  double kv_bytes = 0;      // KV read once for the step (StepKvBytes)
  double flops = 0;         // 2 x multiply-adds
  double experts_touched = 0;  // distinct routed experts the rows picked, mean over the steps
};

struct StepCost {
  StepMode mode = StepMode::kDecode;
  int64_t sequences = 1;  // decode: B; verify/prefill: 1
  int64_t rows = 1;       // tokens in the step: B, k + 1, P
  double ms = 0;          // mean per timed step
  StepWork work;
  double bound_ms = 0;    // RooflineSeconds(work) in ms; 0 without limits
  double tokens_per_s() const { return ms > 0 ? 1e3 * static_cast<double>(rows) / ms : 0.0; }
  double bound_over_measured() const { return ms > 0 ? bound_ms / ms : 0.0; }
};

struct LayerTypeCost {
  std::string name;  // "SWA", "CSA", "HCA"
  checkpoint::LayerKind kind = checkpoint::LayerKind::kSwa;
  int64_t full_count = 0;  // layers of this type in the model
  int64_t dense_bytes = 0, expert_bytes = 0;  // per layer: all but the experts; one expert
  std::vector<StepCost> steps;  // decode (batches order), verify (k = 0 first, then drafts), prefill
  const StepCost* Find(StepMode m, int64_t rows) const;  // nullptr when not measured
};

// The head (HC_head + norm + FP32 logits) at a number of rows.
struct HeadCost {
  int64_t rows = 0;
  double ms = 0;
  StepWork work;
  double bound_ms = 0;
};

struct LayerBenchReport {
  std::string label;
  checkpoint::ModelConfig config;  // the full model
  int64_t depth = 0;
  std::vector<LayerTypeCost> types;  // in SWA, CSA, HCA order
  std::vector<HeadCost> heads;       // every row count a step used, ascending
  const HeadCost* Head(int64_t rows) const;
  // Whether every layer type of the model was measured (the extrapolation needs all).
  bool complete() const;
};

// KV bytes a step of `rows` tokens of one sequence reads once when its first row sits at
// `pos0`: every row sees a subset of what the last row sees, so a kernel that reads the
// cache once for all rows reads DecodeKvBytesPerLayer at the last position.
int64_t StepKvBytes(const checkpoint::ModelConfig& c, checkpoint::LayerKind kind, int64_t pos0,
                    int64_t rows);
// Multiply-adds of the attention-side kernels (indexer scan + gathered attention) for rows
// at positions pos0 .. pos0 + rows - 1 (decode_bound.h's per-position work, summed).
int64_t StepAttentionMacs(const checkpoint::ModelConfig& c, checkpoint::LayerKind kind,
                          int64_t pos0, int64_t rows);
// The step's roofline bound in ms: max(bytes / read bandwidth, flops / peak).
double StepBoundMs(const StepWork& w, const MachineLimits& m, Peak peak);

// Runs every requested type of `c` (V4 only). InvalidArgument for bad options, NotFound for a
// requested type the model lacks.
Result<LayerBenchReport> MeasureLayers(ThreadPool& pool, const checkpoint::ModelConfig& c,
                                       std::string label, const LayerBenchOptions& o);

// ---- Whole model and speculation, from the measured per-type costs ----

// One step of the whole model: sum over types of full_count x the type's step + the head at
// `head_rows` rows. ms and bound_ms; 0 when a type or the head is missing.
struct ModelStep {
  double ms = 0;
  double bound_ms = 0;
  double bytes = 0, flops = 0;  // summed work (for rescaling the bound to another machine)
};
ModelStep WholeModelStep(const LayerBenchReport& r, StepMode mode, int64_t rows);

// The bound of a whole-model step on another machine: the sum over layer types and the head
// of max(bytes / bandwidth, flops / (per-core peak x cores)), the per-core peak being this
// machine's PeakFlops / threads.
struct OtherMachine {
  double read_bytes_per_s = 0;
  int64_t cores = 0;
};
double WholeModelBoundMsOn(const LayerBenchReport& r, StepMode mode, int64_t rows,
                           const OtherMachine& m, const MachineLimits& here, Peak peak,
                           int threads_here);

// Expected tokens per verify step when each of k drafts is accepted with probability alpha
// independently until the first rejection, plus the bonus token: (1 - alpha^(k+1)) / (1 -
// alpha); k + 1 at alpha = 1.
double ExpectedTokensPerStep(double alpha, int64_t k);

// Decode tokens/s of one sequence with an MTP-like drafter: expected tokens per step / (verify
// step of k + 1 rows + k x draft_ms) with draft_ms one more block of the MTP layer's type at
// one row (its verify k = 0 step) plus the head at one row. 0 when something is missing.
double DraftMs(const LayerBenchReport& r);
double SpeculativeTokensPerS(const LayerBenchReport& r, int64_t k, double alpha);

}  // namespace dsv4::bench
