#include "plan/bandwidth.h"

#include <algorithm>
#include <cmath>

namespace dsv4::plan {

using checkpoint::Arch;
using checkpoint::LayerKind;

double KvReadBytesPerStep(const checkpoint::ModelConfig& c, const kv::KvFormats& f, int64_t tokens) {
  const double t = static_cast<double>(tokens);
  const double layers = static_cast<double>(c.num_hidden_layers);
  const double key = static_cast<double>(kv::IndexerKeyBytes(c.index_head_dim, f.indexer));
  if (c.arch == Arch::kV32) {
    const double mla = static_cast<double>(kv::MlaRecordBytes(c, f.mla));
    if (f.indexer == kv::IndexerFormat::kNone) return layers * t * mla;
    const double selected = static_cast<double>(std::min(tokens, c.index_topk));
    return layers * (t * key + selected * mla);
  }
  const double entry = static_cast<double>(kv::EntryBytes(c, f.entry));
  const double window = static_cast<double>(std::min(tokens, c.sliding_window));
  const double csa_entries = static_cast<double>(tokens / 4);
  const double selected = static_cast<double>(std::min(tokens / 4, c.index_topk));
  const double hca_entries = static_cast<double>(tokens / 128);
  return layers * window * entry +
         static_cast<double>(c.CountLayers(LayerKind::kCsa)) *
             (csa_entries * key + selected * entry) +
         static_cast<double>(c.CountLayers(LayerKind::kHca)) * hca_entries * entry;
}

double ExpertHitFraction(const checkpoint::ModelConfig& c, double group_tokens) {
  if (c.n_routed_experts <= 0 || group_tokens <= 0) return 0;
  const double miss =
      1.0 - static_cast<double>(c.num_experts_per_tok) / static_cast<double>(c.n_routed_experts);
  return 1.0 - std::pow(std::max(miss, 0.0), group_tokens);
}

DecodeFloor ComputeDecodeFloor(const DecodeInputs& in, int64_t batch, double kv_read_per_request) {
  DecodeFloor d;
  if (batch <= 0) return d;
  const checkpoint::ModelConfig& c = *in.model;
  const ParamBreakdown& p = *in.params;
  const ParallelLayout& l = in.layout;
  d.batch = static_cast<double>(batch) / static_cast<double>(l.tp);
  // Every dp rank runs `batch` requests; their tokens are routed over the whole EP group.
  const double hit = ExpertHitFraction(c, static_cast<double>(batch * l.dp));
  const double redundancy =
      static_cast<double>(c.n_routed_experts + l.redundant_experts) / c.n_routed_experts;
  const double experts = static_cast<double>(p.routed) * BytesPerParam(in.expert_dtype) *
                         redundancy / static_cast<double>(l.gpus());
  // The embedding reads only the batch's rows (negligible); the LM head is read whole.
  d.weight_read_bytes =
      (static_cast<double>(p.other) * DenseBytesPerParam(c) + static_cast<double>(p.head) * 2.0) /
          static_cast<double>(l.tp) +
      experts * hit;
  // MLA / shared-KV MQA: every TP rank holds and reads each request's whole cache.
  d.kv_read_bytes = static_cast<double>(batch) * kv_read_per_request;
  if (in.bw_bytes_per_s > 0) {
    d.step_seconds = (d.weight_read_bytes + d.kv_read_bytes) / (in.bw_bytes_per_s * in.efficiency);
    d.tokens_per_second_per_gpu = d.batch / d.step_seconds;
  }
  return d;
}

}  // namespace dsv4::plan
