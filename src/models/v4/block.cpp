#include "models/v4/block.h"

#include <cstring>

#include "core/grow.h"
#include "kernels/cpu/linear.h"
#include "models/common/norm.h"
#include "models/v4/moe_parallel.h"

namespace dsv4::v4 {

MhcParams MhcParamsOf(const checkpoint::ModelConfig& c) {
  return {c.hc_mult, c.hidden_size, c.hc_sinkhorn_iters, static_cast<float>(c.hc_eps),
          static_cast<float>(c.rms_norm_eps)};
}

BF16* BlockAttentionInput(ThreadPool& pool, const checkpoint::ModelConfig& c,
                          const LayerWeights& w, const BF16* x, int64_t n, ForwardWorkspace* ws) {
  const int64_t D = c.hidden_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  BF16* u = GrowTo(ws->u, n * D);
  GrowTo(ws->f, n * D);
  HcPre(pool, MhcParamsOf(c), w.hc_attn, x, n, u, &ws->mix, &ws->mhc);
  for (int64_t t = 0; t < n; ++t) models::RmsNorm(u + t * D, w.attn_norm, D, eps, u + t * D);
  return u;
}

void BlockFinish(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                 const int32_t* tokens, BF16* x, int64_t n, ForwardWorkspace* ws,
                 dist::ExpertParallel* ep) {
  const int64_t D = c.hidden_size;
  const MhcParams mp = MhcParamsOf(c);
  const float eps = static_cast<float>(c.rms_norm_eps);
  BF16* u = ws->u.data();
  BF16* f = ws->f.data();
  HcPost(pool, mp, ws->mix, f, n, x);
  HcPre(pool, mp, w.hc_ffn, x, n, u, &ws->mix, &ws->mhc);
  for (int64_t t = 0; t < n; ++t) models::RmsNorm(u + t * D, w.ffn_norm, D, eps, u + t * D);
  if (ep != nullptr) {
    MoeForwardParallel(pool, c, w, *ep, tokens, u, n, f, &ws->moe, &ws->kernels);
  } else {
    MoeForward(pool, c, w, tokens, u, n, f, &ws->moe, &ws->kernels);
  }
  HcPost(pool, mp, ws->mix, f, n, x);
}

void BlockForward(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                  const RopeTable& rope, std::span<const SeqSlice> seqs, const int32_t* tokens,
                  BF16* x, int64_t n, ForwardWorkspace* ws, dist::ExpertParallel* ep) {
  const BF16* u = BlockAttentionInput(pool, c, w, x, n, ws);
  AttentionForward(pool, c, w, rope, seqs, u, n, ws->f.data(), &ws->attention);
  BlockFinish(pool, c, w, tokens, x, n, ws, ep);
}

const float* HeadForward(ThreadPool& pool, const checkpoint::ModelConfig& c,
                         const MhcWeights& hc_head, const float* norm, const LinearWeight& head,
                         const BF16* x, std::span<const int64_t> rows, ForwardWorkspace* ws) {
  const int64_t D = c.hidden_size, hc = c.hc_mult;
  const int64_t num_rows = static_cast<int64_t>(rows.size());
  const float eps = static_cast<float>(c.rms_norm_eps);
  BF16* xh = GrowTo(ws->xh, num_rows * hc * D);
  BF16* h = GrowTo(ws->h, num_rows * D);
  for (int64_t i = 0; i < num_rows; ++i) {
    std::memcpy(xh + i * hc * D, x + rows[i] * hc * D, hc * D * sizeof(BF16));
  }
  HcHead(pool, MhcParamsOf(c), hc_head, xh, num_rows, h, &ws->mhc);
  for (int64_t i = 0; i < num_rows; ++i) models::RmsNorm(h + i * D, norm, D, eps, h + i * D);
  float* logits = GrowTo(ws->logits, num_rows * c.vocab_size);
  kernels::LinearBf16InF32(pool, head, h, num_rows, logits, &ws->kernels);
  return logits;
}

int64_t AppendLogitRows(const SeqSlice& s, models::LogitsMode mode, bool wanted,
                        std::vector<int64_t>* rows) {
  if (!wanted || mode == models::LogitsMode::kNone || s.n == 0) return 0;
  const int64_t first = mode == models::LogitsMode::kLast ? s.n - 1 : 0;
  for (int64_t t = first; rows != nullptr && t < s.n; ++t) rows->push_back(s.row0 + t);
  return s.n - first;
}

}  // namespace dsv4::v4
