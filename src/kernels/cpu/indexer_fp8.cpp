#include "kernels/cpu/indexer_fp8.h"

#include <algorithm>
#include <bit>

#include "core/check.h"
#include "core/fp8.h"
#include "kernels/cpu/indexer_fp8_internal.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/streaming_topk.h"
#include "kernels/cpu/workspace_internal.h"

namespace dsv4::kernels {
namespace internal {

void IndexerFp8ScoresScalar(const IndexerFp8Prepared& q, const PagedRows& keys, int64_t begin,
                            int64_t end, float* scores, IndexerThreadScratch* scratch) {
  const int64_t dim = q.dim;
  std::vector<float>& key = scratch->key;
  key.resize(static_cast<size_t>(dim));
  for (int64_t i = begin; i < end; ++i) {
    const float scale = DecodeIndexerKeyFp8(keys.Row(i), dim, key.data());
    float total = 0.0f;
    for (int64_t h = 0; h < q.heads; ++h) {
      total += std::max(Dot8(q.q + h * dim, key.data(), dim), 0.0f) * q.w[h];
    }
    scores[i - begin] = total * scale;
  }
}

}  // namespace internal

namespace {

using ScoreFn = void (*)(const internal::IndexerFp8Prepared&, const PagedRows&, int64_t, int64_t,
                         float*, internal::IndexerThreadScratch*);

ScoreFn PickScores() {
  return ForActiveIsa<ScoreFn>(internal::IndexerFp8ScoresScalar, internal::IndexerFp8ScoresAvx2,
                               internal::IndexerFp8ScoresAvx512,
                               internal::IndexerFp8ScoresAvx512Bf16);
}

internal::IndexerFp8Prepared Prepare(const IndexerQueryFp8& query, internal::IndexerScratch* b) {
  DSV4_CHECK(query.heads > 0 && query.dim > 0 && query.dim % 16 == 0);
  const int64_t n = query.heads * query.dim;
  b->q.resize(static_cast<size_t>(n));
  b->w.assign(query.w, query.w + query.heads);
  b->q_pairs.resize(static_cast<size_t>(n / 2));
  for (int64_t i = 0; i < n; ++i) b->q[i] = E4M3ToF32(query.q[i]);
  // BF16 of an E4M3 value is its FP32 word's high half, exactly (at most 4 significant bits).
  auto bf16 = [&](int64_t i) { return std::bit_cast<uint32_t>(b->q[i]) >> 16; };
  for (int64_t g = 0; g < n / 16; ++g) {  // pair layout: [value 8 + j | value j]
    for (int64_t j = 0; j < 8; ++j) {
      b->q_pairs[g * 8 + j] = bf16(g * 16 + 8 + j) | bf16(g * 16 + j) << 16;
    }
  }
  return {b->q.data(), b->w.data(), query.heads, query.dim, b->q_pairs.data()};
}

}  // namespace

void IndexerScoresFp8(ThreadPool& pool, const IndexerQueryFp8& query, const PagedRows& keys,
                      int64_t n, float* scores, Workspace* ws) {
  if (n <= 0) return;
  DSV4_CHECK(keys.row_bytes == IndexerKeyFp8Bytes(query.dim));
  internal::IndexerScratch& buffers = ws->state().indexer;
  const internal::IndexerFp8Prepared q = Prepare(query, &buffers);
  const ScoreFn fn = PickScores();
  buffers.threads.Reserve(pool);
  pool.ParallelForWithThread(
      n, GrainForWork(q.heads * q.dim), [&](int64_t begin, int64_t end, int t) {
        for (int64_t b = begin; b < end; b += internal::kScanChunk) {
          fn(q, keys, b, std::min(end, b + internal::kScanChunk), scores + b, &buffers.threads[t]);
        }
      });
}

void IndexerTopKFp8(ThreadPool& pool, const IndexerQueryFp8& query, const PagedRows& keys,
                    int64_t n, int64_t k, std::vector<int64_t>* selected, Workspace* ws) {
  if (std::min(k, n) <= 0) {
    selected->clear();
    return;
  }
  DSV4_CHECK(keys.row_bytes == IndexerKeyFp8Bytes(query.dim));
  internal::IndexerScratch& buffers = ws->state().indexer;
  const internal::IndexerFp8Prepared q = Prepare(query, &buffers);
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
