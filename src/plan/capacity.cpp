#include "plan/capacity.h"

#include <algorithm>
#include <cmath>

#include "plan/units.h"

namespace dsv4::plan {
namespace {

// kv/layout.h names the fixed FP32 compressor rows "*_compressor_state"; capacity.md §3
// tables leave them out, the engine allocates them.
bool IsCompressorState(const kv::KvComponent& c) {
  return c.name.find("compressor_state") != std::string::npos;
}

std::string Tok(int64_t tokens) { return Commas(tokens); }

// Everything a caller can get wrong, checked before any arithmetic so a bad option never
// turns into a negative count or a division by zero.
Status ValidateOptions(const PlanOptions& o) {
  auto bad = [&](const std::string& m) {
    return Status::InvalidArgument(o.model_label + ": " + m);
  };
  if (o.lengths.empty() && o.mix.empty()) return bad("no context length given (expected >= 1)");
  for (int64_t t : o.lengths) {
    if (t < 1) return bad("context length must be >= 1 token, got " + std::to_string(t));
    if (t > kMaxPlanTokens) {
      return bad("context length must be <= " + Commas(kMaxPlanTokens) + " tokens, got " +
                 Commas(t));
    }
  }
  for (const LengthShare& s : o.mix) {
    if (s.tokens < 1 || s.tokens > kMaxPlanTokens) {
      return bad("mix length must be in [1, 2^40] tokens, got " + std::to_string(s.tokens));
    }
    if (!(s.weight > 0) || !std::isfinite(s.weight)) {
      return bad("mix weight of " + Commas(s.tokens) + " tokens must be > 0, got " +
                 FixedDigits(s.weight, 3));
    }
  }
  for (int64_t n : o.concurrency) {
    if (n < 1) return bad("concurrency must be >= 1 request, got " + std::to_string(n));
  }
  const MemoryOptions& m = o.memory;
  if (!(m.util > 0 && m.util <= 1)) {
    return bad("memory utilisation must be in (0, 1], got " + FixedDigits(m.util, 3));
  }
  if (!(m.workspace_gb >= 0) || !std::isfinite(m.workspace_gb)) {
    return bad("workspace reserve must be >= 0 GB, got " + FixedDigits(m.workspace_gb, 3));
  }
  if (m.kv_budget_gb && !(*m.kv_budget_gb > 0)) {
    return bad("KV budget must be > 0 GB, got " + FixedDigits(*m.kv_budget_gb, 3));
  }
  if (!(o.bw_efficiency > 0 && o.bw_efficiency <= 1)) {
    return bad("bandwidth efficiency must be in (0, 1], got " + FixedDigits(o.bw_efficiency, 3));
  }
  if (!(o.gpu.hbm_bytes > 0)) return bad("GPU memory must be > 0 bytes (hardware not resolved?)");
  if (o.rack_gpus < 0)
    return bad("rack size must be >= 0 GPUs, got " + std::to_string(o.rack_gpus));
  if (o.layout.tp < 1 || o.layout.dp < 1 || o.layout.ep < 1 || o.layout.gpus() % o.layout.ep != 0) {
    return bad("layout " + o.layout.Name() + " is inconsistent (tp, dp, ep >= 1; ep | tp x dp)");
  }
  return ValidateLayout(o.layout, o.model, o.model_label);
}

std::vector<KvRate> Rates(const PlanOptions& o) {
  // At a multiple of 128 past the window every growing component is exactly linear in T.
  const int64_t t = int64_t{1} << 27;
  std::vector<KvRate> rates;
  for (const kv::KvComponent& c : KvFootprintForPlan(o, t).components) {
    KvRate r{c.name, c.layers, c.bytes_per_entry, 0, 0};
    if (c.fixed) {
      r.fixed_bytes = c.bytes();
    } else {
      r.bytes_per_token = static_cast<double>(c.bytes()) / static_cast<double>(t);
    }
    rates.push_back(r);
  }
  return rates;
}

// Memory is the only constraint the planner models per length, so the binding sentence says
// how close the last request came (or, at 0, how long a request could be).
std::string LengthBinding(const CapacityPlan& p, int64_t tokens, double kv, int64_t n) {
  const double budget = p.kv_budget_bytes;
  if (n >= 1) {
    return "KV memory: " + Commas(n) + " x " + DecimalBytes(kv) + " = " +
           GbString(static_cast<double>(n) * kv) + " of the " + GbString(budget) +
           " KV budget; request " + Commas(n + 1) + " would need " +
           DecimalBytes(static_cast<double>(n + 1) * kv - budget) + " more";
  }
  const int64_t alone = MaxTokensForBudget(p.options, budget, 1);
  return "KV memory: one request of " + Tok(tokens) + " tokens needs " + DecimalBytes(kv) +
         " but the KV budget is " + GbString(budget) + "; the longest request that fits alone " +
         "is " + Tok(alone) + " tokens";
}

// The inverse question: the longest length every one of `n` requests per rank can reach.
// The model's own position limit may bind first.
MaxContext MaxContextAt(const CapacityPlan& p, int64_t n) {
  const PlanOptions& o = p.options;
  MaxContext m;
  m.concurrency = n;
  m.memory_tokens = MaxTokensForBudget(o, p.kv_budget_bytes, n);
  const int64_t model_max = o.model.max_position_embeddings;
  m.max_tokens = model_max > 0 ? std::min(m.memory_tokens, model_max) : m.memory_tokens;
  const std::string ns = Commas(n);
  if (m.memory_tokens == 0) {
    m.binding = "KV memory: " + ns + " requests do not fit even at 1 token (" + ns + " x " +
                DecimalBytes(static_cast<double>(KvBytesPerRequest(o, 1))) + " > " +
                GbString(p.kv_budget_bytes) + ")";
  } else if (model_max > 0 && m.memory_tokens >= model_max) {
    m.binding = "model: max_position_embeddings " + Tok(model_max) +
                "; KV memory alone would allow " + Tok(m.memory_tokens) + " tokens each";
  } else {
    const double kv = static_cast<double>(KvBytesPerRequest(o, m.memory_tokens));
    m.binding = "KV memory: " + ns + " x " + DecimalBytes(kv) + " = " +
                GbString(static_cast<double>(n) * kv) + " of the " + GbString(p.kv_budget_bytes) +
                " KV budget";
  }
  return m;
}

DecodeInputs DecodeFor(const CapacityPlan& p) {
  const PlanOptions& o = p.options;
  return {&o.model, &p.params, o.expert_dtype, o.layout, o.gpu.bw_bytes_per_s, o.bw_efficiency};
}

AllToAll AllToAllFor(const PlanOptions& o, int64_t batch) {
  AllToAllInputs in;
  in.model = &o.model;
  in.layout = o.layout;
  in.dispatch = o.a2a_dispatch;
  in.link_bytes_per_s = o.gpu.link_bytes_per_s;
  in.nic_bytes_per_s = o.gpu.nic_bytes_per_s;
  in.domain_gpus = o.gpu.domain_gpus;
  return ComputeAllToAll(in, batch);
}

// A mix is planned by its mean KV per request (capacity.md §6.5: admit while the sum fits):
// exact in expectation for many requests, optimistic for a handful.
void AddMix(CapacityPlan& p) {
  const PlanOptions& o = p.options;
  if (o.mix.empty()) return;
  MixPlan mix;
  double total = 0;
  for (const LengthShare& s : o.mix) total += s.weight;
  double kv_read = 0;
  for (const LengthShare& s : o.mix) {
    const double w = s.weight / total;
    mix.shares.push_back({s.tokens, w});
    mix.mean_kv_bytes += w * static_cast<double>(KvBytesPerRequest(o, s.tokens));
    kv_read += w * KvReadBytesPerStep(o.model, o.kv_formats, s.tokens);
  }
  mix.n = ConcurrencyFor(p, mix.mean_kv_bytes);
  mix.decode = ComputeDecodeFloor(DecodeFor(p), mix.n.per_rank, kv_read);
  mix.a2a = AllToAllFor(o, mix.n.per_rank);
  mix.binding = "KV memory: " + Commas(mix.n.per_rank) + " requests x " +
                DecimalBytes(mix.mean_kv_bytes) + " (mean of the mix) fill the " +
                GbString(p.kv_budget_bytes) + " KV budget";
  p.mix = mix;
}

std::string Summary(const CapacityPlan& p) {
  const PlanOptions& o = p.options;
  std::string s = o.model_label + " on " + o.gpu.label + ", " + o.layout.Name() + ": ";
  if (p.fixed_budget) {
    s += "KV budget fixed at " + GbString(p.kv_budget_bytes) + " per GPU (weights " +
         GbString(p.weights.total()) + " not subtracted). ";
  } else {
    s += FixedDigits(o.memory.util, 2) + " x " + GbString(o.gpu.hbm_bytes) + " = " +
         GbString(p.usable_bytes) + " usable - " + GbString(p.weights.total()) + " weights - " +
         GbString(p.workspace_bytes) + " workspace = " + GbString(p.kv_budget_bytes) +
         " KV budget per GPU. ";
  }
  if (p.lengths.empty()) return s + (p.mix ? p.mix->binding : "");
  const LengthPlan& l = p.lengths.front();
  s += "One " + Tok(l.tokens) + "-token request needs " +
       DecimalBytes(static_cast<double>(l.kv_bytes));
  if (l.n.per_rank == 0) return s + ", more than the budget: not even one fits.";
  s += ", so KV memory binds at " + Commas(l.n.per_rank) + " per " +
       (o.layout.tp > 1 ? "DP rank of " + std::to_string(o.layout.tp) + " GPUs" : "GPU") + " (" +
       Commas(l.n.per_group) + " per group of " + std::to_string(o.layout.gpus()) + " GPUs";
  if (l.n.per_rack) {
    s += ", " + Commas(*l.n.per_rack) + " per " +
         (p.rack_gpus == o.gpu.domain_gpus ? o.gpu.domain_name
                                           : std::to_string(p.rack_gpus) + "-GPU rack") +
         " of " + std::to_string(p.groups_per_rack) +
         (p.groups_per_rack == 1 ? " group" : " groups");
  }
  return s + ").";
}

// Caveats the numbers alone do not show; each one names the assumption it flags.
void AddNotes(CapacityPlan& p) {
  const PlanOptions& o = p.options;
  auto& notes = p.notes;
  if (p.fixed_budget) {
    const double need = p.weights.total() + p.workspace_bytes + p.kv_budget_bytes;
    if (need > o.gpu.hbm_bytes) {
      notes.push_back("the fixed KV budget + weights + workspace (" + GbString(need) +
                      ") exceed the GPU's " + GbString(o.gpu.hbm_bytes) + " by " +
                      GbString(need - o.gpu.hbm_bytes));
    }
  }
  const bool fp4 = o.expert_dtype == ExpertDtype::kMxfp4 || o.expert_dtype == ExpertDtype::kNvfp4;
  if (fp4 && !o.gpu.native_fp4) {
    notes.push_back(o.gpu.name +
                    " has no native FP4: " + std::string(ExpertDtypeName(o.expert_dtype)) +
                    " experts need dequantising kernels (the memory figures still hold)");
  }
  if (o.layout.tp > 1) {
    notes.push_back("TP " + std::to_string(o.layout.tp) +
                    ": the MLA / shared-KV latent is replicated on every TP rank, so TP buys "
                    "no KV capacity per request (capacity.md §6.3)");
  }
  const int64_t model_max = o.model.max_position_embeddings;
  for (const LengthPlan& l : p.lengths) {
    if (l.beyond_model_context) {
      notes.push_back(Tok(l.tokens) + " tokens exceeds " + o.model_label +
                      "'s max_position_embeddings (" + Tok(model_max) +
                      "): a hypothetical extrapolation");
      break;
    }
  }
  if (o.kv_formats.indexer == kv::IndexerFormat::kNone) {
    notes.push_back(
        "indexer cache left out: reproduces published arithmetic only; the engine "
        "stores the indexer keys");
  }
  if (!o.include_compressor_state && o.model.arch == checkpoint::Arch::kV4) {
    notes.push_back("compressor state left out (capacity.md §3 basis); the engine allocates it");
  }
  if (p.groups_per_rack == 0) {
    notes.push_back("a group of " + std::to_string(o.layout.gpus()) + " GPUs is larger than one " +
                    o.gpu.domain_name + " (" + std::to_string(p.rack_gpus) +
                    " GPUs): no per-rack count (--rack-gpus sets one)");
  }
}

}  // namespace

kv::KvFootprint KvFootprintForPlan(const PlanOptions& o, int64_t tokens) {
  kv::KvFootprint fp = kv::ComputeKvFootprint(o.model, o.kv_formats, tokens);
  if (!o.include_compressor_state) {
    std::erase_if(fp.components, IsCompressorState);
  }
  return fp;
}

int64_t KvBytesPerRequest(const PlanOptions& o, int64_t tokens) {
  return KvFootprintForPlan(o, tokens).total_bytes();
}

// DP attention places each request whole on one rank; under attention TP every GPU of the
// rank holds a full copy (MLA / shared-KV MQA latents are not split by heads).
Concurrency ConcurrencyFor(const CapacityPlan& p, double kv_bytes) {
  Concurrency n;
  const ParallelLayout& l = p.options.layout;
  if (kv_bytes > 0 && p.kv_budget_bytes > 0) {
    n.per_rank = static_cast<int64_t>(std::floor(p.kv_budget_bytes / kv_bytes));
  }
  n.per_gpu = static_cast<double>(n.per_rank) / static_cast<double>(l.tp);
  n.per_group = n.per_rank * l.dp;
  if (p.groups_per_rack > 0) n.per_rack = n.per_group * p.groups_per_rack;
  return n;
}

int64_t MaxTokensForBudget(const PlanOptions& o, double budget_bytes, int64_t n) {
  auto fits = [&](int64_t t) {
    return static_cast<double>(n) * static_cast<double>(KvBytesPerRequest(o, t)) <= budget_bytes;
  };
  if (!fits(1)) return 0;
  int64_t lo = 1, hi = kMaxPlanTokens;  // invariant: fits(lo)
  if (fits(hi)) return hi;
  while (hi - lo > 1) {  // KV bytes never shrink as T grows, so fits() is monotone
    const int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

Result<CapacityPlan> PlanCapacity(const PlanOptions& o) {
  DSV4_RETURN_IF_ERROR(ValidateOptions(o));
  CapacityPlan p;
  p.options = o;
  p.params = CountParams(o.model);
  p.weights =
      ComputeWeightsPerGpu(o.model, p.params, o.expert_dtype, o.layout, o.include_mtp_weights,
                           o.dense_basis);
  p.usable_bytes = o.memory.util * o.gpu.hbm_bytes;
  p.workspace_bytes = o.memory.workspace_gb * 1e9;
  p.fixed_budget = o.memory.kv_budget_gb.has_value();
  if (p.fixed_budget) {
    p.kv_budget_bytes = *o.memory.kv_budget_gb * 1e9;
  } else {
    p.kv_budget_bytes = p.usable_bytes - p.weights.total() - p.workspace_bytes;
    if (p.kv_budget_bytes <= 0) {
      return Status::ResourceExhausted(
          "weights do not fit: " + o.model_label + " under " + o.layout.Name() + " with " +
          std::string(ExpertDtypeName(o.expert_dtype)) + " experts needs " +
          GbString(p.weights.total()) + " of weights + " + GbString(p.workspace_bytes) +
          " workspace per GPU, but " + o.gpu.label + " offers " + GbString(p.usable_bytes) +
          " (util " + FixedDigits(o.memory.util, 2) + " x " + GbString(o.gpu.hbm_bytes) +
          "); use more GPUs per group, a smaller expert dtype or more HBM");
    }
  }
  p.kv_rates = Rates(o);
  p.kv_bytes_per_token = kv::GrowingBytesPerToken(o.model, o.kv_formats);
  for (const KvRate& r : p.kv_rates) p.kv_fixed_bytes += r.fixed_bytes;
  p.kv_token_capacity = p.kv_budget_bytes / p.kv_bytes_per_token;
  p.rack_gpus = o.rack_gpus > 0 ? o.rack_gpus : o.gpu.domain_gpus;
  p.groups_per_rack = p.rack_gpus / o.layout.gpus();
  const DecodeInputs decode = DecodeFor(p);
  for (int64_t t : o.lengths) {
    LengthPlan l;
    l.tokens = t;
    l.footprint = KvFootprintForPlan(o, t);
    l.kv_bytes = l.footprint.total_bytes();
    l.n = ConcurrencyFor(p, static_cast<double>(l.kv_bytes));
    l.decode =
        ComputeDecodeFloor(decode, l.n.per_rank, KvReadBytesPerStep(o.model, o.kv_formats, t));
    l.a2a = AllToAllFor(o, l.n.per_rank);
    l.binding = LengthBinding(p, t, static_cast<double>(l.kv_bytes), l.n.per_rank);
    l.beyond_model_context =
        o.model.max_position_embeddings > 0 && t > o.model.max_position_embeddings;
    p.lengths.push_back(std::move(l));
  }
  AddMix(p);
  for (int64_t n : o.concurrency) p.max_context.push_back(MaxContextAt(p, n));
  p.summary = Summary(p);
  AddNotes(p);
  return p;
}

}  // namespace dsv4::plan
