// Expert-parallel all-to-all volume per decode step (issue #19): the bytes each GPU sends and
// receives when every MoE layer dispatches its tokens' hidden rows to the ranks holding their
// selected experts and gathers the expert outputs back, as the engine's own exchange does
// (src/dist/expert_exchange.h), and the time that takes at a link bandwidth.
//
// Model: uniform routing (each token picks k distinct experts of E uniformly), E / ep experts
// per EP rank, a token's rows are deduplicated per destination rank (one row per rank that
// holds at least one of its experts, plus a small record per selected expert), and every
// selected expert's output comes back on its own (the owner adds them in the canonical order,
// which is what keeps logits bit-identical to one process). Under uniform load every GPU sends
// as much as it receives. The shared expert and dense layers are local: no traffic.
#pragma once

#include <cstdint>

#include "checkpoint/config.h"
#include "plan/parallel.h"

namespace dsv4::plan {

// Dispatch row format: the engine sends BF16 rows; DeepEP-style FP8 rows carry an FP32 scale
// per 128 values.
enum class DispatchDtype { kBf16, kFp8 };

struct AllToAllInputs {
  const checkpoint::ModelConfig* model = nullptr;
  ParallelLayout layout;
  DispatchDtype dispatch = DispatchDtype::kBf16;
  int64_t record_bytes = 12;  // {row, expert, weight} per selected expert (dsv4's exchange)
  int64_t collectives_per_layer = 3;  // counts, rows, outputs (dsv4's exchange)
  double link_bytes_per_s = 0;        // per GPU per direction inside the scale-up domain; 0: unknown
  double nic_bytes_per_s = 0;         // per GPU per direction across domains; 0: unknown
  int64_t domain_gpus = 0;            // GPUs in one scale-up domain (NVLink); 0: all
};

struct AllToAll {
  int64_t moe_layers = 0;          // layers with routed experts (main stack)
  double dest_ranks_per_token = 0; // other ranks a token's row goes to, per layer
  double remote_experts_per_token = 0;  // selected experts on other ranks, per layer
  double dispatch_bytes_per_token_layer = 0;  // rows + records sent for one token
  double combine_bytes_per_token_layer = 0;   // BF16 outputs received for one token
  double bytes_per_token = 0;      // one direction, all MoE layers: dispatch + combine
  double tokens_per_gpu = 0;       // decode rows each GPU dispatches per step
  double bytes_per_step = 0;       // per GPU per step, each direction (sent = received)
  double offdomain_fraction = 0;   // share of those bytes that leave the scale-up domain
  int64_t collectives_per_step = 0;
  double step_seconds = 0;         // transfer time at the link bandwidths; 0 when unknown
};

// Probability that a given other EP rank holds at least one of a token's k distinct experts:
// 1 - C(E - E/ep, k) / C(E, k). 0 when ep <= 1.
double RankHitProbability(const checkpoint::ModelConfig& c, int64_t ep);

// The volume for `batch` decode requests on each attention DP rank (tp GPUs share a DP rank's
// rows, each dispatching batch / tp of them).
AllToAll ComputeAllToAll(const AllToAllInputs& in, int64_t batch);

}  // namespace dsv4::plan
