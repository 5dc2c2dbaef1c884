#include "kernels/cpu/indexer_fp8.h"

#include <algorithm>
#include <bit>

#include "core/check.h"
#include "core/grow.h"
#include "core/fp8.h"
#include "kernels/cpu/indexer_fp8_internal.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/streaming_topk.h"
#include "kernels/cpu/workspace_internal.h"

namespace dsv4::kernels {
namespace internal {

void IndexerFp8ScoresScalar(std::span<const IndexerFp8Prepared> qs, const PagedRows& keys,
                            int64_t begin, int64_t end, float* scores, int64_t stride,
                            IndexerThreadScratch* scratch) {
  const int64_t dim = qs[0].dim;
  float* key = GrowTo(scratch->key, dim);
  for (int64_t i = begin; i < end; ++i) {
    const float scale = DecodeIndexerKeyFp8(keys.Row(i), dim, key);
    for (size_t j = 0; j < qs.size(); ++j) {
      const IndexerFp8Prepared& q = qs[j];
      if (i >= q.visible) continue;
      float total = 0.0f;
      for (int64_t h = 0; h < q.heads; ++h) {
        total += std::max(Dot8(q.q + h * dim, key, dim), 0.0f) * q.w[h];
      }
      scores[static_cast<int64_t>(j) * stride + i - begin] = total * scale;
    }
  }
}

}  // namespace internal

namespace {

using ScoreFn = internal::ScoreLoop<internal::IndexerFp8Prepared>;

ScoreFn PickScores() {
  return ForActiveIsa<ScoreFn>(internal::IndexerFp8ScoresScalar, internal::IndexerFp8ScoresAvx2,
                               internal::IndexerFp8ScoresAvx512,
                               internal::IndexerFp8ScoresAvx512Bf16);
}

// The queries in the score loops' form (buffers in *b, grown only), query j seeing
// [0, visible[j]).
std::span<const internal::IndexerFp8Prepared> Prepare(std::span<const IndexerQueryFp8> queries,
                                                      std::span<const int64_t> visible,
                                                      internal::IndexerScratch* b) {
  DSV4_CHECK(!queries.empty() && queries.size() == visible.size());
  const int64_t heads = queries[0].heads, dim = queries[0].dim, n = heads * dim;
  DSV4_CHECK(heads > 0 && dim > 0 && dim % 16 == 0);
  const int64_t count = static_cast<int64_t>(queries.size());
  const internal::QueryBuffers buf = internal::GrowQueryBuffers(b, count, heads, dim);
  float *qf = buf.q, *wf = buf.w;
  uint32_t* pairs = buf.pairs;
  internal::IndexerFp8Prepared* prepared = GrowTo(b->prepared_fp8, count);
  for (int64_t j = 0; j < count; ++j) {
    const IndexerQueryFp8& query = queries[j];
    DSV4_CHECK(query.heads == heads && query.dim == dim);
    float* q = qf + j * n;
    for (int64_t i = 0; i < n; ++i) q[i] = E4M3ToF32(query.q[i]);
    std::copy_n(query.w, heads, wf + j * heads);
    // BF16 of an E4M3 value is its FP32 word's high half, exactly (at most 4 significant bits).
    auto bf16 = [&](int64_t i) { return std::bit_cast<uint32_t>(q[i]) >> 16; };
    uint32_t* qp = pairs + j * n / 2;
    internal::StoreQueryPairs(n, bf16, qp);
    prepared[j] = {q, wf + j * heads, heads, dim, qp, visible[j]};
  }
  return {prepared, static_cast<size_t>(count)};
}

}  // namespace

void IndexerScoresFp8(ThreadPool& pool, const IndexerQueryFp8& query, const PagedRows& keys,
                      int64_t n, float* scores, Workspace* ws) {
  if (n <= 0) return;
  DSV4_CHECK(keys.row_bytes == IndexerKeyFp8Bytes(query.dim));
  internal::IndexerScratch& buffers = ws->state().indexer;
  const auto q = Prepare({&query, 1}, {&n, 1}, &buffers);
  internal::ScanScores(pool, q[0], PickScores(), keys, n, scores, &buffers);
}

void IndexerTopKFp8(ThreadPool& pool, const IndexerQueryFp8& query, const PagedRows& keys,
                    int64_t n, int64_t k, std::vector<int64_t>* selected, Workspace* ws) {
  IndexerTopKFp8Group(pool, {&query, 1}, {&n, 1}, keys, k, selected, ws);
}

void IndexerTopKFp8Group(ThreadPool& pool, std::span<const IndexerQueryFp8> queries,
                         std::span<const int64_t> visible, const PagedRows& keys, int64_t k,
                         std::vector<int64_t>* selected, Workspace* ws) {
  DSV4_CHECK(!queries.empty() && keys.row_bytes == IndexerKeyFp8Bytes(queries[0].dim));
  internal::IndexerScratch& buffers = ws->state().indexer;
  const auto q = Prepare(queries, visible, &buffers);
  internal::ScanGroupTopK(pool, q, visible, PickScores(), keys, k, &buffers, &ws->state().scan,
                          selected);
}

}  // namespace dsv4::kernels
