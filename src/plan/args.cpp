#include "plan/args.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "checkpoint/presets.h"
#include "plan/units.h"

namespace dsv4::plan {
namespace {

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = std::min(s.find(sep, start), s.size());
    out.emplace_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// Presets win over paths; a path needs a '/' or a ".json" suffix so a typo in a preset name
// ("v4pro") is reported as an unknown preset, not as a missing file.
Result<checkpoint::ModelConfig> ResolveModel(const std::string& name, const ConfigLoader& load) {
  const std::vector<std::string> presets = checkpoint::PresetNames();
  for (const std::string& p : presets) {
    if (p == name) return checkpoint::PresetConfig(name);
  }
  const bool path =
      name.find('/') != std::string::npos || (name.size() > 5 && name.ends_with(".json"));
  if (path && load) return load(name);
  return Status::NotFound("unknown model preset '" + name + "': expected one of " + Join(presets) +
                          ", or a path to a config.json or checkpoint folder " +
                          "(with a '/', e.g. ./my-model)");
}

}  // namespace

// K/M/G are binary (1M = 2^20, the V4 max_position_embeddings); a decimal million must be
// spelled out (1e6), because that difference is one of the seed's assumptions.
Result<int64_t> ParseTokens(std::string_view s) {
  const std::string str(s);
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("bad context length '" + str + "': " + why +
                                   " (expected tokens like 131072, 128K, 1M = 2^20, or 1e6)");
  };
  if (str.empty()) return bad("empty");
  const char* begin = str.c_str();
  char* end = nullptr;
  const double v = std::strtod(begin, &end);
  if (end == begin || !std::isfinite(v)) return bad("not a number");
  double scale = 1;
  const std::string suffix(end);
  if (suffix == "K" || suffix == "k") {
    scale = 1024.0;
  } else if (suffix == "M" || suffix == "m") {
    scale = 1048576.0;
  } else if (suffix == "G" || suffix == "g") {
    scale = 1073741824.0;
  } else if (!suffix.empty()) {
    return bad("unknown suffix '" + suffix + "'");
  }
  const double tokens = v * scale;
  if (tokens < 1)
    return Status::InvalidArgument("context length must be >= 1 token, got '" + str + "'");
  if (tokens > static_cast<double>(kMaxPlanTokens)) return bad("more than 2^40 tokens");
  if (tokens != std::floor(tokens)) return bad("not a whole number of tokens");
  return static_cast<int64_t>(tokens);
}

Result<std::vector<LengthShare>> ParseMix(std::string_view s) {
  std::vector<LengthShare> mix;
  for (const std::string& part : Split(s, ',')) {
    const size_t colon = part.find(':');
    DSV4_ASSIGN_OR_RETURN(int64_t tokens, ParseTokens(part.substr(0, colon)));
    double weight = 1;
    if (colon != std::string::npos) {
      const std::string w = part.substr(colon + 1);
      char* end = nullptr;
      weight = std::strtod(w.c_str(), &end);
      if (w.empty() || *end != '\0' || !(weight > 0) || !std::isfinite(weight)) {
        return Status::InvalidArgument("bad mix weight '" + w + "' in '" + std::string(s) +
                                       "': expected a positive number (e.g. 8K:0.6,1M:0.4)");
      }
    }
    mix.push_back({tokens, weight});
  }
  return mix;
}

std::string_view EntryFormatName(kv::EntryFormat f) {
  return f == kv::EntryFormat::kFp8 ? "fp8" : "bf16";
}
std::string_view IndexerFormatName(kv::IndexerFormat f) {
  switch (f) {
    case kv::IndexerFormat::kFp4:
      return "fp4";
    case kv::IndexerFormat::kFp8:
      return "fp8";
    case kv::IndexerFormat::kBf16:
      return "bf16";
    case kv::IndexerFormat::kNone:
      return "none";
  }
  return "?";
}
std::string_view MlaFormatName(kv::MlaFormat f) {
  switch (f) {
    case kv::MlaFormat::kFp8:
      return "fp8";
    case kv::MlaFormat::kBf16:
      return "bf16";
    case kv::MlaFormat::kFp8NoScale:
      return "fp8-noscale";
    case kv::MlaFormat::kV4Entry:
      return "584";
    case kv::MlaFormat::kAllFp8NoScale:
      return "576";
  }
  return "?";
}

std::string_view DispatchDtypeName(DispatchDtype d) {
  return d == DispatchDtype::kFp8 ? "fp8" : "bf16";
}

Result<DispatchDtype> ParseDispatchDtype(std::string_view s) {
  for (auto d : {DispatchDtype::kBf16, DispatchDtype::kFp8}) {
    if (s == DispatchDtypeName(d)) return d;
  }
  return Status::InvalidArgument("unknown --a2a-dispatch '" + std::string(s) +
                                 "': expected bf16 (the engine's rows) or fp8 (DeepEP-style, "
                                 "an FP32 scale per 128)");
}

Result<kv::EntryFormat> ParseEntryFormat(std::string_view s) {
  for (auto f : {kv::EntryFormat::kFp8, kv::EntryFormat::kBf16}) {
    if (s == EntryFormatName(f)) return f;
  }
  return Status::InvalidArgument("unknown KV entry format '" + std::string(s) +
                                 "': expected fp8 (584 B) or bf16 (1024 B)");
}

Result<kv::IndexerFormat> ParseIndexerFormat(std::string_view s) {
  if (s == "mxfp4") return kv::IndexerFormat::kFp4;
  for (auto f : {kv::IndexerFormat::kFp4, kv::IndexerFormat::kFp8, kv::IndexerFormat::kBf16,
                 kv::IndexerFormat::kNone}) {
    if (s == IndexerFormatName(f)) return f;
  }
  return Status::InvalidArgument("unknown indexer format '" + std::string(s) +
                                 "': expected fp4 (68 B), fp8 (132 B), bf16 (256 B) or none");
}

Result<kv::MlaFormat> ParseMlaFormat(std::string_view s) {
  if (s == "656") return kv::MlaFormat::kFp8;
  if (s == "1152") return kv::MlaFormat::kBf16;
  if (s == "640") return kv::MlaFormat::kFp8NoScale;
  for (auto f : {kv::MlaFormat::kFp8, kv::MlaFormat::kBf16, kv::MlaFormat::kFp8NoScale,
                 kv::MlaFormat::kV4Entry, kv::MlaFormat::kAllFp8NoScale}) {
    if (s == MlaFormatName(f)) return f;
  }
  return Status::InvalidArgument("unknown MLA format '" + std::string(s) +
                                 "': expected fp8 (656 B), bf16 (1152), fp8-noscale (640), "
                                 "584 or 576");
}

Result<std::vector<PlanOptions>> ResolvePlanRequest(const PlanRequest& r,
                                                    const ConfigLoader& load) {
  // Conflicts first: a flag that another makes meaningless is an error, never silently dropped.
  if (r.kv_budget_gb && (r.util || r.workspace_gb)) {
    return Status::InvalidArgument(
        "conflicting flags: --kv-budget fixes the per-GPU KV budget, so --util and "
        "--workspace (which derive it from HBM) would be ignored; give one or the other");
  }
  if (r.hbm_gb && r.hardware.size() > 1) {
    return Status::InvalidArgument("conflicting flags: --hbm sets one GPU's memory but " +
                                   std::to_string(r.hardware.size()) +
                                   " hardware presets were given (" + Join(r.hardware) + ")");
  }
  PlanOptions base;
  DSV4_ASSIGN_OR_RETURN(
      base.layout,
      ResolveLayout(
          r.layout ? r.layout
                   : (r.tp || r.dp || r.ep ? std::nullopt : std::optional<std::string>("dep16")),
          r.tp, r.dp, r.ep, r.redundant_experts));
  if (r.util) base.memory.util = *r.util;
  if (r.workspace_gb) base.memory.workspace_gb = *r.workspace_gb;
  base.memory.kv_budget_gb = r.kv_budget_gb;
  base.include_compressor_state = !r.no_compressor_state;
  base.include_mtp_weights = !r.no_mtp_weights;
  if (r.dense_weights) {
    DSV4_ASSIGN_OR_RETURN(base.dense_basis, ParseDenseBasis(*r.dense_weights));
  }
  base.bw_efficiency = r.bw_efficiency;
  base.rack_gpus = r.rack_gpus;
  if (r.a2a_dispatch) {
    DSV4_ASSIGN_OR_RETURN(base.a2a_dispatch, ParseDispatchDtype(*r.a2a_dispatch));
  }
  for (const auto& [flag, v] : {std::pair{"--link-bw", r.link_gbs}, {"--nic-bw", r.nic_gbs}}) {
    if (v && !(*v > 0)) {
      return Status::InvalidArgument(std::string(flag) + " must be a positive number of GB/s, got " +
                                     FixedDigits(*v, 3));
    }
  }
  base.lengths.clear();
  for (const std::string& c : r.contexts) {
    DSV4_ASSIGN_OR_RETURN(int64_t t, ParseTokens(c));
    base.lengths.push_back(t);
  }
  if (r.mix) {
    DSV4_ASSIGN_OR_RETURN(base.mix, ParseMix(*r.mix));
  }
  if (base.lengths.empty() && base.mix.empty()) base.lengths = {int64_t{1} << 20};
  if (!r.concurrency.empty()) base.concurrency = r.concurrency;

  // Format flags override the per-architecture defaults of kv::DefaultKvFormats, which are
  // what the engine stores.
  std::optional<kv::EntryFormat> entry;
  std::optional<kv::IndexerFormat> indexer;
  std::optional<kv::MlaFormat> mla;
  std::optional<ExpertDtype> expert;
  if (r.entry) {
    DSV4_ASSIGN_OR_RETURN(entry, ParseEntryFormat(*r.entry));
  }
  if (r.indexer) {
    DSV4_ASSIGN_OR_RETURN(indexer, ParseIndexerFormat(*r.indexer));
  }
  if (r.mla) {
    DSV4_ASSIGN_OR_RETURN(mla, ParseMlaFormat(*r.mla));
  }
  if (r.expert_dtype) {
    DSV4_ASSIGN_OR_RETURN(expert, ParseExpertDtype(*r.expert_dtype));
  }

  const std::vector<std::string> models =
      r.models.empty() ? std::vector<std::string>{"v4-pro"} : r.models;
  std::vector<std::string> hardware = r.hardware;
  if (hardware.empty()) hardware = {r.hbm_gb ? "custom" : "gb300"};
  std::vector<GpuSpec> gpus;
  for (const std::string& h : hardware) {
    DSV4_ASSIGN_OR_RETURN(GpuSpec g, ResolveGpu(h, r.nominal, r.hbm_gb, r.bw_tbs));
    if (r.link_gbs) g.link_bytes_per_s = *r.link_gbs * 1e9;
    if (r.nic_gbs) g.nic_bytes_per_s = *r.nic_gbs * 1e9;
    gpus.push_back(g);
  }
  bool any_v4 = false, any_v32 = false;
  std::vector<PlanOptions> out;
  for (const std::string& m : models) {
    DSV4_ASSIGN_OR_RETURN(checkpoint::ModelConfig c, ResolveModel(m, load));
    const bool v4 = c.arch == checkpoint::Arch::kV4;
    (v4 ? any_v4 : any_v32) = true;
    DSV4_RETURN_IF_ERROR(ValidateLayout(base.layout, c, m));
    PlanOptions o = base;
    o.model_label = m;
    o.model = c;
    o.kv_formats = kv::DefaultKvFormats(c.arch);
    if (entry) o.kv_formats.entry = *entry;
    if (indexer) o.kv_formats.indexer = *indexer;
    if (mla) o.kv_formats.mla = *mla;
    o.expert_dtype = expert.value_or(NativeExpertDtype(c));
    for (const GpuSpec& g : gpus) {
      o.gpu = g;
      out.push_back(o);
    }
  }
  if (entry && !any_v4) {
    return Status::InvalidArgument("conflicting flags: --entry " + *r.entry +
                                   " sets the V4 KV entry format but no V4 model was given (" +
                                   Join(models) + ")");
  }
  if (mla && !any_v32) {
    return Status::InvalidArgument("conflicting flags: --mla " + *r.mla +
                                   " sets the V3.2 MLA format but no V3.2 model was given (" +
                                   Join(models) + ")");
  }
  return out;
}

}  // namespace dsv4::plan
