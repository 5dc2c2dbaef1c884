#include "bench/decode_cost.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <memory>

#include "bench/attention_weights.h"
#include "bench/decode_bound.h"
#include "bench/synthetic_kv.h"
#include "core/check.h"
#include "core/elapsed.h"
#include "core/rng.h"
#include "kv/kv_manager.h"
#include "kv/layout.h"
#include "kv/page_layout.h"
#include "kv/v32_cache.h"
#include "kv/v4_cache.h"
#include "models/v32/attention.h"
#include "models/v4/attention.h"
#include "models/v4/rope.h"

namespace dsv4::bench {
namespace {

using Clock = std::chrono::steady_clock;
using checkpoint::LayerKind;
using checkpoint::ModelConfig;

// One depth's timings: ms[l] summed over the timed tokens, positions the timed tokens had.
struct Timings {
  std::vector<double> ms;
  std::vector<int64_t> positions;
};

// The group's roofline bound per layer, mean over the timed positions (none without limits).
void AddBound(const ModelConfig& full, LayerKind kind, const std::vector<int64_t>& positions,
              const DecodeOptions& o, DecodeGroupCost& gc) {
  if (o.limits.read_bytes_per_s <= 0) return;
  const double tokens = static_cast<double>(positions.size());
  for (int64_t pos : positions) {
    const DecodeBound b = DecodeBoundPerLayer(DecodeKernelWorkPerLayer(full, kind, pos),
                                              gc.weight_bytes_per_layer, o.limits, o.peak);
    gc.bound_weights_ms += b.weights_ms / tokens;
    gc.bound_indexer_ms += b.indexer_ms / tokens;
    gc.bound_attention_ms += b.attention_ms / tokens;
  }
}

DecodePoint Summarise(const ModelConfig& full, const LayerSubset& s, const Timings& t,
                      const std::vector<int64_t>& weight_bytes, int64_t depth,
                      const DecodeOptions& o) {
  DecodePoint p;
  p.depth = depth;
  const double tokens = static_cast<double>(t.positions.size());
  for (const LayerGroup& g : s.groups) {
    DecodeGroupCost gc;
    gc.name = g.name;
    gc.full_count = g.full_count;
    gc.ran_layers = static_cast<int64_t>(g.subset_layers.size());
    int64_t kv = 0;
    for (int64_t pos : t.positions) kv += DecodeKvBytesPerLayer(full, g.kind, pos);
    gc.kv_bytes_per_layer = kv / static_cast<int64_t>(t.positions.size());
    for (int64_t l : g.subset_layers) {
      gc.ms_per_layer += t.ms[l] / tokens;
      gc.weight_bytes_per_layer += weight_bytes[l];
    }
    gc.ms_per_layer /= static_cast<double>(gc.ran_layers);
    gc.weight_bytes_per_layer /= gc.ran_layers;
    AddBound(full, g.kind, t.positions, o, gc);
    p.groups.push_back(gc);
  }
  return p;
}

// Stops before the machine runs out of memory: the attention weights of the layers made so
// far must fit in what the cache and its scratch leave.
Status CheckWeightBudget(const DecodeReport& r, int64_t layers, int64_t budget) {
  if (budget <= 0 || r.weight_bytes_ran <= budget) return Status::Ok();
  return Status::ResourceExhausted(
      r.label + ": the attention weights of " + std::to_string(layers) + " of the " +
      std::to_string(r.subset.config.num_hidden_layers) + " layers to run already take " +
      std::to_string(r.weight_bytes_ran >> 20) + " MiB, more than the " +
      std::to_string(budget >> 20) + " MiB the cache leaves; use fewer --layers");
}

// A BF16 attention input [D] with unit-scale entries (what attn_norm hands attention).
std::vector<BF16> RandomInput(int64_t dim, uint64_t seed) {
  Rng rng(seed);
  std::vector<BF16> x(static_cast<size_t>(dim));
  for (BF16& v : x) v = F32ToBf16(static_cast<float>(rng.Uniform(-1.7, 1.7)));
  return x;
}

Status RunV4(ThreadPool& pool, const DecodeOptions& o, const std::vector<int64_t>& depths,
             int64_t weight_budget, DecodeReport& r, std::map<int64_t, DecodePoint>& at) {
  const ModelConfig& c = r.subset.config;
  const int64_t L = c.num_hidden_layers, D = c.hidden_size;
  std::vector<std::unique_ptr<V4AttentionWeights>> weights;
  std::vector<v4::RopeTable> ropes;
  std::vector<int64_t> weight_bytes;
  for (int64_t l = 0; l < L; ++l) {
    weights.push_back(MakeV4AttentionWeights(c, l, o.seed));
    ropes.push_back(v4::RopeTable::ForLayer(c, l));
    weight_bytes.push_back(weights.back()->buffers.linear_bytes());
    r.weight_bytes_ran += weight_bytes.back();
    DSV4_RETURN_IF_ERROR(CheckWeightBudget(r, l + 1, weight_budget));
  }
  kv::KvManager mgr(kv::PageLayout(c, kv::DefaultKvFormats(c.arch)),
                    std::numeric_limits<int64_t>::max() / 2, /*backing=*/true);
  kv::V4SequenceCache cache(c, &mgr);
  const EntryPool entries(c, o.seed);
  const std::vector<BF16> x = RandomInput(D, o.seed);
  std::vector<BF16> out(static_cast<size_t>(D));
  v4::AttentionWorkspace ws;  // reused by every timed call, as in a forward
  for (int64_t depth : depths) {
    if (depth < cache.num_tokens()) cache.Release();  // the previous depth's tokens went past
    const auto t0 = Clock::now();
    DSV4_RETURN_IF_ERROR(FillV4Cache(c, entries, depth, o.seed, cache));
    DSV4_RETURN_IF_ERROR(cache.Reserve(depth + 1 + o.iters));
    const double fill = MsSince(t0) / 1e3;
    Timings t;
    t.ms.assign(static_cast<size_t>(L), 0.0);
    for (int64_t i = 0; i <= o.iters; ++i) {  // i == 0: the untimed warm-up token
      const int64_t pos = cache.num_tokens();
      const v4::SeqSlice s{&cache, pos, 0, 1};
      for (int64_t l = 0; l < L; ++l) {
        const auto t1 = Clock::now();
        v4::AttentionForward(pool, c, weights[l]->w, ropes[l], {&s, 1}, x.data(), 1, out.data(),
                             &ws);
        if (i > 0) t.ms[l] += MsSince(t1);
      }
      if (i > 0) t.positions.push_back(pos);
      cache.set_num_tokens(pos + 1);
    }
    at[depth] = Summarise(r.config, r.subset, t, weight_bytes, depth, o);
    at[depth].fill_seconds = fill;
  }
  return Status::Ok();
}

Status RunV32(ThreadPool& pool, const DecodeOptions& o, const std::vector<int64_t>& depths,
              int64_t weight_budget, DecodeReport& r, std::map<int64_t, DecodePoint>& at) {
  const ModelConfig& c = r.subset.config;
  const int64_t L = c.num_hidden_layers, D = c.hidden_size;
  std::vector<std::unique_ptr<V32AttentionWeights>> weights;
  std::vector<int64_t> weight_bytes;
  for (int64_t l = 0; l < L; ++l) {
    weights.push_back(MakeV32AttentionWeights(c, l, o.seed));
    weight_bytes.push_back(weights.back()->buffers.linear_bytes());
    r.weight_bytes_ran += weight_bytes.back();
    DSV4_RETURN_IF_ERROR(CheckWeightBudget(r, l + 1, weight_budget));
  }
  const v32::MlaConstants k = v32::MakeMlaConstants(c);
  kv::V32SequenceCache cache(c);
  const EntryPool entries(c, o.seed);
  const std::vector<BF16> x = RandomInput(D, o.seed);
  std::vector<BF16> out(static_cast<size_t>(D));
  kernels::Workspace kernel_ws;  // reused by every timed call, as in a forward
  for (int64_t depth : depths) {
    if (depth < cache.num_tokens()) cache.Release();
    const auto t0 = Clock::now();
    DSV4_RETURN_IF_ERROR(FillV32Cache(c, entries, depth, cache));
    const double fill = MsSince(t0) / 1e3;
    Timings t;
    t.ms.assign(static_cast<size_t>(L), 0.0);
    // The warm-up token also absorbs the first use of a fresh page.
    for (int64_t i = 0; i <= o.iters; ++i) {
      const int64_t pos = cache.num_tokens();
      DSV4_RETURN_IF_ERROR(cache.Reserve(pos + 1));
      for (int64_t l = 0; l < L; ++l) {
        const auto t1 = Clock::now();
        v32::AttentionForward(pool, c, weights[l]->w, k, cache, pos, x.data(), 1, out.data(),
                              &kernel_ws);
        if (i > 0) t.ms[l] += MsSince(t1);
      }
      if (i > 0) t.positions.push_back(pos);
      cache.set_num_tokens(pos + 1);
    }
    at[depth] = Summarise(r.config, r.subset, t, weight_bytes, depth, o);
    at[depth].fill_seconds = fill;
  }
  return Status::Ok();
}

}  // namespace

double DecodePoint::ran_ms() const {
  double s = 0;
  for (const auto& g : groups) s += g.ms_per_layer * static_cast<double>(g.ran_layers);
  return s;
}
double DecodePoint::full_ms() const {
  double s = 0;
  for (const auto& g : groups) s += g.ms_per_layer * static_cast<double>(g.full_count);
  return s;
}
int64_t DecodePoint::kv_bytes() const {
  int64_t s = 0;
  for (const auto& g : groups) s += g.kv_bytes_per_layer * g.full_count;
  return s;
}
int64_t DecodePoint::weight_bytes() const {
  int64_t s = 0;
  for (const auto& g : groups) s += g.weight_bytes_per_layer * g.full_count;
  return s;
}
double DecodePoint::gb_per_s() const {
  const double ms = full_ms();
  return ms > 0 ? static_cast<double>(kv_bytes() + weight_bytes()) / (ms * 1e6) : 0.0;
}
double DecodePoint::bound_ms() const {
  double s = 0;
  for (const auto& g : groups) s += g.bound_ms_per_layer() * static_cast<double>(g.full_count);
  return s;
}
double DecodePoint::measured_over_bound() const {
  const double b = bound_ms();
  return b > 0 ? full_ms() / b : 0.0;
}

int64_t DecodeKvBytesPerLayer(const ModelConfig& c, LayerKind kind, int64_t pos) {
  const DecodeKernelWork w = DecodeKernelWorkPerLayer(c, kind, pos);
  return w.indexer_bytes + w.attention_bytes;
}

Result<DecodeReport> MeasureDecode(ThreadPool& pool, const ModelConfig& c, std::string label,
                                   const DecodeOptions& o) {
  if (o.depths.empty()) return Status::InvalidArgument("no depths to measure");
  for (int64_t d : o.depths) {
    if (d < 1) return Status::InvalidArgument("depth " + std::to_string(d) + " must be >= 1");
  }
  if (o.iters < 1) {
    return Status::InvalidArgument("--iters " + std::to_string(o.iters) + " must be >= 1");
  }
  if (o.limits.read_bytes_per_s > 0 && PeakFlops(o.limits, o.peak) <= 0) {
    return Status::InvalidArgument("the " + std::string(PeakName(o.peak)) +
                                   " peak of the limits must be > 0 for a bound");
  }
  DecodeReport r;
  r.label = std::move(label);
  r.config = c;
  DSV4_ASSIGN_OR_RETURN(r.subset, SelectLayers(c, o.num_layers));
  std::vector<int64_t> depths = o.depths;
  std::sort(depths.begin(), depths.end());
  depths.erase(std::unique(depths.begin(), depths.end()), depths.end());
  int64_t weight_budget = 0;  // what max_bytes leaves for weights; 0: no limit
  if (o.max_bytes > 0) {
    const ModelConfig& sc = r.subset.config;
    const int64_t deepest = depths.back() + 1 + o.iters;
    const int64_t cache = kv::PageLayout(sc, kv::DefaultKvFormats(sc.arch)).BytesAt(deepest);
    // V3.2: arrays that grow by doubling, and every key decoded to FP32 codes + a scale for
    // the scan; V4: the CSA keys decoded to FP32.
    const int64_t need = c.arch == checkpoint::Arch::kV32
                             ? 2 * cache + deepest * (c.index_head_dim + 2) * 4
                             : cache + deepest / 4 * c.index_head_dim * 4;
    if (need > o.max_bytes) {
      return Status::ResourceExhausted(
          r.label + ": " + std::to_string(sc.num_hidden_layers) +
          (sc.num_hidden_layers == 1 ? " layer at depth " : " layers at depth ") +
          std::to_string(depths.back()) + " would need ~" + std::to_string(need >> 20) +
          " MiB of cache and scratch, more than the " + std::to_string(o.max_bytes >> 20) +
          " MiB allowed here; use fewer --layers or smaller --depths");
    }
    weight_budget = o.max_bytes - need;
  }
  std::map<int64_t, DecodePoint> at;
  if (c.arch == checkpoint::Arch::kV4) {
    DSV4_RETURN_IF_ERROR(RunV4(pool, o, depths, weight_budget, r, at));
  } else {
    DSV4_RETURN_IF_ERROR(RunV32(pool, o, depths, weight_budget, r, at));
  }
  for (int64_t d : o.depths) r.points.push_back(at[d]);
  return r;
}

Bandwidth MeasureBandwidth(ThreadPool& pool, int64_t buffer_bytes, int reps) {
  Bandwidth bw;
  const int64_t n = buffer_bytes / static_cast<int64_t>(sizeof(uint64_t));
  bw.buffer_bytes = n * static_cast<int64_t>(sizeof(uint64_t));
  std::unique_ptr<uint64_t[]> a(new uint64_t[static_cast<size_t>(n)]);
  std::unique_ptr<uint64_t[]> b(new uint64_t[static_cast<size_t>(n)]);
  const int64_t grain = int64_t{1} << 16;
  // First touch from the pool, so pages are mapped before anything is timed.
  pool.ParallelFor(n, grain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) a[i] = static_cast<uint64_t>(i), b[i] = 0;
  });
  const double bytes = static_cast<double>(bw.buffer_bytes);
  const int64_t blocks = static_cast<int64_t>(pool.num_threads()) * 8;
  std::vector<uint64_t> sums(static_cast<size_t>(blocks));
  uint64_t checksum = 0;
  for (int rep = 0; rep < reps; ++rep) {
    auto t0 = Clock::now();
    pool.ParallelFor(n, grain, [&](int64_t s, int64_t e) {
      std::memcpy(b.get() + s, a.get() + s, static_cast<size_t>(e - s) * sizeof(uint64_t));
    });
    bw.copy_gb_per_s = std::max(bw.copy_gb_per_s, 2.0 * bytes / (MsSince(t0) * 1e6));
    t0 = Clock::now();
    // Integer sums vectorise without reassociating floating point.
    pool.ParallelFor(blocks, 1, [&](int64_t s, int64_t e) {
      for (int64_t blk = s; blk < e; ++blk) {
        const int64_t lo = n * blk / blocks, hi = n * (blk + 1) / blocks;
        uint64_t acc = 0;
        for (int64_t i = lo; i < hi; ++i) acc += b[i];
        sums[blk] = acc;
      }
    });
    bw.read_gb_per_s = std::max(bw.read_gb_per_s, bytes / (MsSince(t0) * 1e6));
    for (uint64_t s : sums) checksum += s;
  }
  // The sums are a function of the copy: a mismatch would mean the copy did not happen.
  DSV4_CHECK(checksum == static_cast<uint64_t>(reps) * (static_cast<uint64_t>(n) * (n - 1) / 2));
  return bw;
}

}  // namespace dsv4::bench
