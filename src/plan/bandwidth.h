// Decode bandwidth floor per step (capacity.md §6.6): one decode step must at least stream the
// weights it touches and the KV entries every request reads from HBM, so
//   t_step >= (W_read + sum_req KV_read(T_req)) / (BW_HBM x efficiency).
// A lower bound: compute, communication and kernel overheads only add to it.
#pragma once

#include <cstdint>

#include "kv/layout.h"
#include "checkpoint/config.h"
#include "plan/parallel.h"
#include "plan/weights.h"

namespace dsv4::plan {

// KV bytes one request of `tokens` tokens reads in one decode step (main stack), from the
// same entry sizes as kv/layout.h:
//   V3.2: L x (T x indexer key [the indexer scores every key] + min(T, top-k) x MLA record);
//         without an indexer cache, dense MLA: L x T x MLA record.
//   V4:   every layer min(T, window) x entry; CSA (T/4) x indexer key + min(top-k, T/4) x
//         entry; HCA (T/128) x entry.
double KvReadBytesPerStep(const checkpoint::ModelConfig& c, const kv::KvFormats& f, int64_t tokens);

// Fraction of a GPU's routed experts that at least one of `group_tokens` decode tokens hits,
// under uniform routing: 1 - (1 - top_k/E)^tokens.
double ExpertHitFraction(const checkpoint::ModelConfig& c, double group_tokens);

struct DecodeFloor {
  double batch = 0;              // requests decoded per step on each GPU
  double weight_read_bytes = 0;  // per GPU per step: non-expert weights, LM head, hit experts
  double kv_read_bytes = 0;      // per GPU per step, all `batch` requests
  double step_seconds = 0;       // 0 when the bandwidth is unknown or batch is 0
  double tokens_per_second_per_gpu = 0;
};

struct DecodeInputs {
  const checkpoint::ModelConfig* model = nullptr;
  const ParamBreakdown* params = nullptr;
  ExpertDtype expert_dtype = ExpertDtype::kMxfp4;
  ParallelLayout layout;
  double bw_bytes_per_s = 0;
  double efficiency = 1.0;  // achievable fraction of peak HBM bandwidth (0.6-0.8 typical)
};
// `batch` requests on each attention DP rank, each reading `kv_read_per_request` bytes.
// The MTP module is not run (no speculative decoding), so its weights are not read.
DecodeFloor ComputeDecodeFloor(const DecodeInputs& in, int64_t batch, double kv_read_per_request);

}  // namespace dsv4::plan
