#include "kernels/cpu/indexer.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "core/kv_entry.h"
#include "kernels/cpu/indexer_internal.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/streaming_topk.h"
#include "kernels/cpu/workspace_internal.h"

namespace dsv4::kernels {
namespace internal {

void IndexerScoresScalar(const IndexerPrepared& q, const PagedRows& keys, int64_t begin,
                         int64_t end, float* scores, IndexerThreadScratch* scratch) {
  const int64_t dim = q.dim;
  std::vector<float>& key = scratch->key;
  key.resize(static_cast<size_t>(dim));
  for (int64_t i = begin; i < end; ++i) {
    DecodeIndexerKeyFp4(keys.Row(i), dim, key.data());
    float total = 0.0f;
    for (int64_t h = 0; h < q.heads; ++h) {
      const float relu = std::max(RoundBf16(Dot8(q.q + h * dim, key.data(), dim)), 0.0f);
      total += RoundBf16(q.w[h] * relu);
    }
    scores[i - begin] = RoundBf16(total);
  }
}

}  // namespace internal

namespace {

using ScoreFn = void (*)(const internal::IndexerPrepared&, const PagedRows&, int64_t, int64_t,
                         float*, internal::IndexerThreadScratch*);

ScoreFn PickScores() {
  return ForActiveIsa<ScoreFn>(internal::IndexerScoresScalar, internal::IndexerScoresAvx2,
                               internal::IndexerScoresAvx512, internal::IndexerScoresAvx512Bf16);
}

internal::IndexerPrepared Prepare(const IndexerQuery& query, internal::IndexerScratch* b) {
  DSV4_CHECK(query.dim % 32 == 0 && query.heads > 0);
  const int64_t n = query.heads * query.dim;
  b->q.resize(static_cast<size_t>(n));
  b->w.resize(static_cast<size_t>(query.heads));
  b->q_pairs.resize(static_cast<size_t>(n / 2));
  internal::IndexerPrepared p{b->q.data(), b->w.data(), query.heads, query.dim};
  p.q_exp_min = 1000;
  p.q_exp_max = -1000;
  for (int64_t i = 0; i < n; ++i) {
    b->q[i] = Bf16ToF32(query.q[i]);
    const int field = (query.q[i].bits >> 7) & 0xFF;
    if ((query.q[i].bits & 0x7FFF) == 0) continue;
    const int e = field == 0 ? -1000 : field == 255 ? 1000 : field - 127;
    p.q_exp_min = std::min(p.q_exp_min, e);
    p.q_exp_max = std::max(p.q_exp_max, e);
  }
  for (int64_t g = 0; g < n / 16; ++g) {  // pair layout: [value 8 + j | value j]
    for (int64_t j = 0; j < 8; ++j) {
      b->q_pairs[g * 8 + j] = static_cast<uint32_t>(query.q[g * 16 + 8 + j].bits) |
                              static_cast<uint32_t>(query.q[g * 16 + j].bits) << 16;
    }
  }
  for (size_t h = 0; h < b->w.size(); ++h) b->w[h] = Bf16ToF32(query.w[h]);
  p.q_pairs = b->q_pairs.data();
  return p;
}

}  // namespace

void IndexerScoresFp4(ThreadPool& pool, const IndexerQuery& query, const PagedRows& keys, int64_t n,
                      float* scores, Workspace* ws) {
  internal::IndexerScratch& buffers = ws->state().indexer;
  const internal::IndexerPrepared q = Prepare(query, &buffers);
  const ScoreFn fn = PickScores();
  buffers.threads.Reserve(pool);
  pool.ParallelForWithThread(
      n, GrainForWork(q.heads * q.dim), [&](int64_t begin, int64_t end, int t) {
        for (int64_t b = begin; b < end; b += internal::kScanChunk) {
          fn(q, keys, b, std::min(end, b + internal::kScanChunk), scores + b, &buffers.threads[t]);
        }
      });
}

void IndexerTopKFp4(ThreadPool& pool, const IndexerQuery& query, const PagedRows& keys, int64_t n,
                    int64_t k, std::vector<int64_t>* selected, Workspace* ws) {
  if (std::min(k, n) <= 0) {
    selected->clear();
    return;
  }
  internal::IndexerScratch& buffers = ws->state().indexer;
  const internal::IndexerPrepared q = Prepare(query, &buffers);
  const ScoreFn fn = PickScores();
  buffers.threads.Reserve(pool);
  internal::ScanTopK(
      pool, n, k, GrainForWork(q.heads * q.dim),
      [&](int64_t begin, int64_t end, float* scores, int t) {
        fn(q, keys, begin, end, scores, &buffers.threads[t]);
      },
      &ws->state().scan, selected);
}

}  // namespace dsv4::kernels
