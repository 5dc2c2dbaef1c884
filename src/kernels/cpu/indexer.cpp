#include "kernels/cpu/indexer.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "core/grow.h"
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

void IndexerScoresScalar(std::span<const IndexerPrepared> qs, const PagedRows& keys,
                         int64_t begin, int64_t end, float* scores, int64_t stride,
                         IndexerThreadScratch* scratch) {
  const int64_t dim = qs[0].dim;
  float* key = GrowTo(scratch->key, dim);
  for (int64_t i = begin; i < end; ++i) {
    DecodeIndexerKeyFp4(keys.Row(i), dim, key);
    for (size_t j = 0; j < qs.size(); ++j) {
      const IndexerPrepared& q = qs[j];
      if (i >= q.visible) continue;
      float total = 0.0f;
      for (int64_t h = 0; h < q.heads; ++h) {
        const float relu = std::max(RoundBf16(Dot8(q.q + h * dim, key, dim)), 0.0f);
        total += RoundBf16(q.w[h] * relu);
      }
      scores[static_cast<int64_t>(j) * stride + i - begin] = RoundBf16(total);
    }
  }
}

}  // namespace internal

namespace {

using ScoreFn = internal::ScoreLoop<internal::IndexerPrepared>;

ScoreFn PickScores() {
  return ForActiveIsa<ScoreFn>(internal::IndexerScoresScalar, internal::IndexerScoresAvx2,
                               internal::IndexerScoresAvx512, internal::IndexerScoresAvx512Bf16);
}

// The unbiased exponent range of the nonzero values of v[0, n) (IndexerPrepared::q_exp_min):
// min > max when all are zero, subnormals set min to -1000, NaN / inf set max to 1000.
void ExponentRange(const BF16* v, int64_t n, int* min, int* max) {
  *min = 1000;
  *max = -1000;
  for (int64_t i = 0; i < n; ++i) {
    if ((v[i].bits & 0x7FFF) == 0) continue;
    const int field = (v[i].bits >> 7) & 0xFF;
    const int e = field == 0 ? -1000 : field == 255 ? 1000 : field - 127;
    *min = std::min(*min, e);
    *max = std::max(*max, e);
  }
}

// The queries in the score loops' form (buffers in *b, grown only), query j seeing
// [0, visible[j]).
std::span<const internal::IndexerPrepared> Prepare(std::span<const IndexerQuery> queries,
                                                   std::span<const int64_t> visible,
                                                   internal::IndexerScratch* b) {
  DSV4_CHECK(!queries.empty() && queries.size() == visible.size());
  const int64_t heads = queries[0].heads, dim = queries[0].dim, n = heads * dim;
  DSV4_CHECK(dim % 32 == 0 && heads > 0);
  const int64_t count = static_cast<int64_t>(queries.size());
  const internal::QueryBuffers buf = internal::GrowQueryBuffers(b, count, heads, dim);
  float *qf = buf.q, *wf = buf.w;
  uint32_t* pairs = buf.pairs;
  internal::IndexerPrepared* prepared = GrowTo(b->prepared, count);
  for (int64_t j = 0; j < count; ++j) {
    const IndexerQuery& query = queries[j];
    DSV4_CHECK(query.heads == heads && query.dim == dim);
    internal::IndexerPrepared& p = prepared[j];
    p = {qf + j * n, wf + j * heads, heads, dim, pairs + j * n / 2};
    p.visible = visible[j];
    ExponentRange(query.q, n, &p.q_exp_min, &p.q_exp_max);
    ExponentRange(query.w, heads, &p.w_exp_min, &p.w_exp_max);
    float* q = qf + j * n;
    for (int64_t i = 0; i < n; ++i) q[i] = Bf16ToF32(query.q[i]);
    internal::StoreQueryPairs(n, [&](int64_t i) { return query.q[i].bits; }, pairs + j * n / 2);
    for (int64_t h = 0; h < heads; ++h) wf[j * heads + h] = Bf16ToF32(query.w[h]);
  }
  return {prepared, static_cast<size_t>(count)};
}

}  // namespace

void IndexerScoresFp4(ThreadPool& pool, const IndexerQuery& query, const PagedRows& keys, int64_t n,
                      float* scores, Workspace* ws) {
  internal::IndexerScratch& buffers = ws->state().indexer;
  const auto q = Prepare({&query, 1}, {&n, 1}, &buffers);
  internal::ScanScores(pool, q[0], PickScores(), keys, n, scores, &buffers);
}

void IndexerTopKFp4(ThreadPool& pool, const IndexerQuery& query, const PagedRows& keys, int64_t n,
                    int64_t k, std::vector<int64_t>* selected, Workspace* ws) {
  IndexerTopKFp4Group(pool, {&query, 1}, {&n, 1}, keys, k, selected, ws);
}

void IndexerTopKFp4Group(ThreadPool& pool, std::span<const IndexerQuery> queries,
                         std::span<const int64_t> visible, const PagedRows& keys, int64_t k,
                         std::vector<int64_t>* selected, Workspace* ws) {
  internal::IndexerScratch& buffers = ws->state().indexer;
  const auto q = Prepare(queries, visible, &buffers);
  internal::ScanGroupTopK(pool, q, visible, PickScores(), keys, k, &buffers, &ws->state().scan,
                          selected);
}

}  // namespace dsv4::kernels
