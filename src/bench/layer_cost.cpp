#include "bench/layer_cost.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <set>

#include "bench/attention_weights.h"
#include "bench/decode_bound.h"
#include "bench/decode_cost.h"
#include "bench/layer_subset.h"
#include "bench/synthetic_kv.h"
#include "core/check.h"
#include "core/elapsed.h"
#include "core/rng.h"
#include "kv/kv_manager.h"
#include "kv/layout.h"
#include "kv/page_layout.h"
#include "kv/v4_cache.h"
#include "models/v4/block.h"
#include "models/v4/rope.h"

namespace dsv4::bench {
namespace {

using Clock = std::chrono::steady_clock;
using checkpoint::LayerKind;
using checkpoint::ModelConfig;

// Counts steps for the progress callback.
struct Progress {
  const LayerBenchOptions& o;
  int64_t done = 0, total = 0;
  void Step() {
    ++done;
    if (o.progress) o.progress(done, total);
  }
};

// Random BF16 residual streams / sublayer inputs in a unit range, and random token ids.
std::vector<BF16> RandomBf16(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<BF16> x(static_cast<size_t>(n));
  for (BF16& v : x) v = F32ToBf16(static_cast<float>(rng.Uniform(-1.7, 1.7)));
  return x;
}

StepCost MakeStep(StepMode mode, int64_t sequences, int64_t rows) {
  StepCost s;
  s.mode = mode;
  s.sequences = sequences;
  s.rows = rows;
  return s;
}

// Measures one layer type: every decode batch, verify k = 0 and every k, then the prefill.
Status RunType(ThreadPool& pool, const ModelConfig& full, LayerKind kind,
               const LayerBenchOptions& o, Progress& progress, LayerTypeCost& out) {
  DSV4_ASSIGN_OR_RETURN(const ModelConfig c, SingleLayerConfig(full, kind));
  const std::unique_ptr<V4BlockWeights> bw = MakeV4BlockWeights(c, 0, o.seed, &pool);
  out.dense_bytes = bw->dense_bytes;
  out.expert_bytes = bw->expert_bytes;
  const v4::RopeTable rope = v4::RopeTable::ForLayer(c, 0);
  kv::KvManager mgr(kv::PageLayout(c, kv::DefaultKvFormats(c.arch)),
                    std::numeric_limits<int64_t>::max() / 2, /*backing=*/true);
  const EntryPool entries(c, o.seed);
  const int64_t max_b = *std::max_element(o.batches.begin(), o.batches.end());
  std::vector<std::unique_ptr<kv::V4SequenceCache>> caches;
  for (int64_t i = 0; i < max_b; ++i) {
    caches.push_back(std::make_unique<kv::V4SequenceCache>(c, &mgr));
    DSV4_RETURN_IF_ERROR(FillV4Cache(c, entries, o.depth, o.seed + static_cast<uint64_t>(i),
                                     *caches.back()));
  }
  const int64_t hcD = c.hc_mult * c.hidden_size, k_top = c.num_experts_per_tok;
  const int64_t max_k = o.drafts.empty() ? 0 : *std::max_element(o.drafts.begin(), o.drafts.end());
  const int64_t max_rows = std::max({max_b, o.prefill, 1 + max_k});
  const std::vector<BF16> x0 = RandomBf16(max_rows * hcD, o.seed + 101);
  std::vector<int32_t> tokens(static_cast<size_t>(max_rows));
  Rng trng(o.seed + 202);
  for (int32_t& t : tokens) {
    t = static_cast<int32_t>(trng.Below(static_cast<uint64_t>(c.vocab_size)));
  }
  std::vector<BF16> x(x0.size());
  v4::ForwardWorkspace ws;  // kept across steps, as the runner keeps it

  // One step over `seqs`; adds its time and work to *sc when timed.
  auto step = [&](std::vector<v4::SeqSlice>& seqs, bool timed, StepCost* sc) -> Status {
    int64_t rows = 0;
    for (const v4::SeqSlice& s : seqs) {
      DSV4_RETURN_IF_ERROR(s.cache->Reserve(s.pos0 + s.n));
      rows += s.n;
    }
    std::copy(x0.begin(), x0.begin() + rows * hcD, x.begin());
    const auto t0 = Clock::now();
    v4::BlockForward(pool, c, bw->w, rope, seqs, tokens.data(), x.data(), rows, &ws);
    const double ms = MsSince(t0);
    if (timed) {
      const std::set<int32_t> touched(ws.moe.expert_of.begin(),
                                      ws.moe.expert_of.begin() + rows * k_top);
      StepWork w;
      w.experts_touched = static_cast<double>(touched.size());
      w.weight_bytes = static_cast<double>(bw->dense_bytes) +
                       w.experts_touched * static_cast<double>(bw->expert_bytes);
      int64_t macs = rows * (bw->dense_macs + k_top * bw->expert_macs);
      for (const v4::SeqSlice& s : seqs) {
        w.kv_bytes += static_cast<double>(StepKvBytes(c, kind, s.pos0, s.n));
        macs += StepAttentionMacs(c, kind, s.pos0, s.n);
      }
      w.flops = 2.0 * static_cast<double>(macs);
      const double n = static_cast<double>(o.iters);
      sc->ms += ms / n;
      sc->work.weight_bytes += w.weight_bytes / n;
      sc->work.kv_bytes += w.kv_bytes / n;
      sc->work.flops += w.flops / n;
      sc->work.experts_touched += w.experts_touched / n;
    }
    for (const v4::SeqSlice& s : seqs) s.cache->set_num_tokens(s.pos0 + s.n);
    progress.Step();
    return Status::Ok();
  };
  auto finish = [&](StepCost& sc) {
    if (o.limits.read_bytes_per_s > 0) sc.bound_ms = StepBoundMs(sc.work, o.limits, o.peak);
    out.steps.push_back(sc);
  };
  for (int64_t b : o.batches) {
    StepCost sc = MakeStep(StepMode::kDecode, b, b);
    for (int64_t i = 0; i <= o.iters; ++i) {
      std::vector<v4::SeqSlice> seqs;
      for (int64_t s = 0; s < b; ++s) {
        seqs.push_back({caches[s].get(), caches[s]->num_tokens(), s, 1});
      }
      DSV4_RETURN_IF_ERROR(step(seqs, i > 0, &sc));
    }
    finish(sc);
  }
  std::vector<int64_t> ks = {0};
  ks.insert(ks.end(), o.drafts.begin(), o.drafts.end());
  for (int64_t k : ks) {
    StepCost sc = MakeStep(StepMode::kVerify, 1, k + 1);
    for (int64_t i = 0; i <= o.iters; ++i) {
      std::vector<v4::SeqSlice> seqs = {{caches[0].get(), caches[0]->num_tokens(), 0, k + 1}};
      DSV4_RETURN_IF_ERROR(step(seqs, i > 0, &sc));
    }
    finish(sc);
  }
  if (o.prefill > 0) {
    StepCost sc = MakeStep(StepMode::kPrefill, 1, o.prefill);
    for (int64_t i = 0; i <= o.iters; ++i) {
      kv::V4SequenceCache fresh(c, &mgr);  // every chunk from depth 0
      std::vector<v4::SeqSlice> seqs = {{&fresh, 0, 0, o.prefill}};
      DSV4_RETURN_IF_ERROR(step(seqs, i > 0, &sc));
    }
    finish(sc);
  }
  return Status::Ok();
}

// The head at every row count in `rows`.
void RunHeads(ThreadPool& pool, const ModelConfig& c, const std::set<int64_t>& rows,
              const LayerBenchOptions& o, Progress& progress, LayerBenchReport& r) {
  WeightBuffers b(o.seed + 303);
  const int64_t D = c.hidden_size, hc = c.hc_mult;
  v4::MhcWeights hc_head;
  hc_head.fn = b.F32Values(hc, hc * D, 0.01f);
  hc_head.base = b.Vector(hc, -1.0f, 1.0f);
  hc_head.scale = b.Vector(1, 0.5f, 1.5f);
  const float* norm = b.Vector(D, 0.9f, 1.1f);
  const kernels::LinearWeight head = b.F32(c.vocab_size, D);
  const int64_t max_rows = *rows.rbegin();
  const std::vector<BF16> x = RandomBf16(max_rows * hc * D, o.seed + 404);
  std::vector<int64_t> row_ids(static_cast<size_t>(max_rows));
  for (int64_t i = 0; i < max_rows; ++i) row_ids[static_cast<size_t>(i)] = i;
  v4::ForwardWorkspace ws;
  for (int64_t n : rows) {
    HeadCost h;
    h.rows = n;
    for (int64_t i = 0; i <= o.iters; ++i) {
      const auto t0 = Clock::now();
      v4::HeadForward(pool, c, hc_head, norm, head, x.data(),
                      {row_ids.data(), static_cast<size_t>(n)}, &ws);
      if (i > 0) h.ms += MsSince(t0) / static_cast<double>(o.iters);
      progress.Step();
    }
    h.work.weight_bytes = static_cast<double>(b.linear_bytes());
    h.work.flops = 2.0 * static_cast<double>(n * b.linear_macs());
    if (o.limits.read_bytes_per_s > 0) h.bound_ms = StepBoundMs(h.work, o.limits, o.peak);
    r.heads.push_back(h);
  }
}

int64_t HeadRows(StepMode mode, int64_t rows) { return mode == StepMode::kPrefill ? 1 : rows; }

}  // namespace

std::string_view StepModeName(StepMode m) {
  switch (m) {
    case StepMode::kDecode:
      return "decode";
    case StepMode::kVerify:
      return "verify";
    case StepMode::kPrefill:
      return "prefill";
  }
  return "?";
}

const StepCost* LayerTypeCost::Find(StepMode m, int64_t rows) const {
  for (const StepCost& s : steps) {
    if (s.mode == m && s.rows == rows) return &s;
  }
  return nullptr;
}

const HeadCost* LayerBenchReport::Head(int64_t rows) const {
  for (const HeadCost& h : heads) {
    if (h.rows == rows) return &h;
  }
  return nullptr;
}

bool LayerBenchReport::complete() const {
  int64_t counted = 0;
  for (const LayerTypeCost& t : types) counted += t.full_count;
  return counted == config.num_hidden_layers;
}

int64_t StepKvBytes(const ModelConfig& c, LayerKind kind, int64_t pos0, int64_t rows) {
  return DecodeKvBytesPerLayer(c, kind, pos0 + rows - 1);
}

int64_t StepAttentionMacs(const ModelConfig& c, LayerKind kind, int64_t pos0, int64_t rows) {
  int64_t macs = 0;
  for (int64_t p = pos0; p < pos0 + rows; ++p) {
    const DecodeKernelWork w = DecodeKernelWorkPerLayer(c, kind, p);
    macs += w.indexer_macs + w.attention_macs;
  }
  return macs;
}

double StepBoundMs(const StepWork& w, const MachineLimits& m, Peak peak) {
  return 1e3 * RooflineSeconds(m, w.weight_bytes + w.kv_bytes, w.flops, peak);
}

Result<LayerBenchReport> MeasureLayers(ThreadPool& pool, const ModelConfig& c, std::string label,
                                       const LayerBenchOptions& o) {
  if (c.arch != checkpoint::Arch::kV4) {
    return Status::InvalidArgument(label + ": bench layer runs V4 models only");
  }
  if (o.batches.empty()) return Status::InvalidArgument("--batch needs at least one size");
  for (int64_t b : o.batches) {
    if (b < 1) return Status::InvalidArgument("--batch " + std::to_string(b) + " must be >= 1");
  }
  for (int64_t k : o.drafts) {
    if (k < 1) return Status::InvalidArgument("--verify " + std::to_string(k) + " must be >= 1");
  }
  if (o.prefill < 0 || o.depth < 1 || o.iters < 1) {
    return Status::InvalidArgument("--prefill must be >= 0, --depth and --iters >= 1");
  }
  if (o.limits.read_bytes_per_s > 0 && PeakFlops(o.limits, o.peak) <= 0) {
    return Status::InvalidArgument("the " + std::string(PeakName(o.peak)) +
                                   " peak of the limits must be > 0 for a bound");
  }
  LayerBenchReport r;
  r.label = std::move(label);
  r.config = c;
  r.depth = o.depth;
  std::vector<LayerKind> kinds = o.kinds;
  if (kinds.empty()) {
    for (LayerKind k : {LayerKind::kSwa, LayerKind::kCsa, LayerKind::kHca}) {
      if (c.CountLayers(k) > 0 || c.layer_kind(c.num_hidden_layers) == k) kinds.push_back(k);
    }
  }
  std::sort(kinds.begin(), kinds.end());
  kinds.erase(std::unique(kinds.begin(), kinds.end()), kinds.end());
  std::set<int64_t> head_rows = {1};
  for (int64_t b : o.batches) head_rows.insert(b);
  for (int64_t k : o.drafts) head_rows.insert(k + 1);
  const int64_t shapes = static_cast<int64_t>(o.batches.size() + o.drafts.size()) + 1 +
                         (o.prefill > 0 ? 1 : 0);
  Progress progress{o};
  progress.total = (static_cast<int64_t>(kinds.size()) * shapes +
                    static_cast<int64_t>(head_rows.size())) * (o.iters + 1);
  for (LayerKind k : kinds) {
    LayerTypeCost t;
    t.name = std::string(checkpoint::LayerKindName(k));
    t.kind = k;
    t.full_count = c.CountLayers(k);
    DSV4_RETURN_IF_ERROR(RunType(pool, c, k, o, progress, t));
    r.types.push_back(std::move(t));
  }
  RunHeads(pool, c, head_rows, o, progress, r);
  return r;
}

ModelStep WholeModelStep(const LayerBenchReport& r, StepMode mode, int64_t rows) {
  const HeadCost* h = r.Head(HeadRows(mode, rows));
  if (!r.complete() || h == nullptr) return {};
  ModelStep m{h->ms, h->bound_ms, h->work.weight_bytes + h->work.kv_bytes, h->work.flops};
  for (const LayerTypeCost& t : r.types) {
    const StepCost* s = t.Find(mode, rows);
    if (s == nullptr) return {};
    const double n = static_cast<double>(t.full_count);
    m.ms += n * s->ms;
    m.bound_ms += n * s->bound_ms;
    m.bytes += n * (s->work.weight_bytes + s->work.kv_bytes);
    m.flops += n * s->work.flops;
  }
  return m;
}

double WholeModelBoundMsOn(const LayerBenchReport& r, StepMode mode, int64_t rows,
                           const OtherMachine& m, const MachineLimits& here, Peak peak,
                           int threads_here) {
  const HeadCost* h = r.Head(HeadRows(mode, rows));
  if (!r.complete() || h == nullptr || m.read_bytes_per_s <= 0 || m.cores <= 0) return 0;
  MachineLimits there = here;
  const double scale = static_cast<double>(m.cores) / static_cast<double>(threads_here);
  there.read_bytes_per_s = m.read_bytes_per_s;
  there.muladd_flops *= scale;
  there.fma_flops *= scale;
  there.bf16_flops *= scale;
  there.vnni_ops *= scale;
  double ms = StepBoundMs(h->work, there, peak);
  for (const LayerTypeCost& t : r.types) {
    const StepCost* s = t.Find(mode, rows);
    if (s == nullptr) return 0;
    ms += static_cast<double>(t.full_count) * StepBoundMs(s->work, there, peak);
  }
  return ms;
}

double ExpectedTokensPerStep(double alpha, int64_t k) {
  if (alpha >= 1.0) return static_cast<double>(k + 1);
  return (1.0 - std::pow(alpha, static_cast<double>(k + 1))) / (1.0 - alpha);
}

double DraftMs(const LayerBenchReport& r) {
  const LayerKind mtp = r.config.layer_kind(r.config.num_hidden_layers);
  const HeadCost* h = r.Head(1);
  for (const LayerTypeCost& t : r.types) {
    const StepCost* s = t.Find(StepMode::kVerify, 1);  // one token of one sequence
    if (t.kind == mtp && s != nullptr && h != nullptr) return s->ms + h->ms;
  }
  return 0;
}

double SpeculativeTokensPerS(const LayerBenchReport& r, int64_t k, double alpha) {
  const ModelStep v = WholeModelStep(r, StepMode::kVerify, k + 1);
  const double draft = DraftMs(r);
  if (v.ms <= 0 || draft <= 0) return 0;
  return 1e3 * ExpectedTokensPerStep(alpha, k) / (v.ms + static_cast<double>(k) * draft);
}

}  // namespace dsv4::bench
