// From what a user typed (CLI flags or an API caller's strings) to PlanOptions: token counts
// ("1M" = 2^20), length mixes, KV format names, model and hardware names, defaults, and the
// conflicts between flags. Pure: reading a config.json is delegated to a loader the caller
// passes in.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "kv/layout.h"
#include "plan/capacity.h"

namespace dsv4::plan {

// "131072", "128K" (x 1024), "1M" (x 2^20), "1.5M", "1G" (x 2^30), "1e6" (decimal). >= 1.
Result<int64_t> ParseTokens(std::string_view s);
// "8K:0.6,128K:0.3,1M:0.1": lengths with relative weights (a missing weight counts 1).
Result<std::vector<LengthShare>> ParseMix(std::string_view s);

// The expert all-to-all's dispatch row format: bf16 | fp8.
Result<DispatchDtype> ParseDispatchDtype(std::string_view s);
std::string_view DispatchDtypeName(DispatchDtype d);

// KV format names, as flags take them and reports print them.
Result<kv::EntryFormat> ParseEntryFormat(std::string_view s);      // fp8 | bf16
Result<kv::IndexerFormat> ParseIndexerFormat(std::string_view s);  // fp4 | fp8 | bf16 | none
// fp8 (656 B) | bf16 (1152) | fp8-noscale (640) | 584 | 576
Result<kv::MlaFormat> ParseMlaFormat(std::string_view s);
std::string_view EntryFormatName(kv::EntryFormat f);
std::string_view IndexerFormatName(kv::IndexerFormat f);
std::string_view MlaFormatName(kv::MlaFormat f);

// Reads a model config from a path (config.json or a checkpoint folder). The CLI passes
// checkpoint::LoadModelConfig; tests pass a fake.
using ConfigLoader = std::function<Result<checkpoint::ModelConfig>(const std::string& path)>;

// The request as typed; an empty optional or list means "not given" (defaults apply).
struct PlanRequest {
  std::vector<std::string> models;    // presets or config paths; default v4-pro
  std::vector<std::string> hardware;  // presets; default gb300 (none with --hbm: custom)
  bool nominal = false;
  std::optional<double> hbm_gb;
  std::optional<double> bw_tbs;
  std::optional<std::string> layout;  // shorthand; default dep16 unless tp/dp/ep are given
  std::optional<int64_t> tp, dp, ep;
  int64_t redundant_experts = 0;
  std::optional<std::string> expert_dtype;  // default: the checkpoint's own
  std::optional<std::string> dense_weights;  // stored (default) | fp8
  std::optional<std::string> entry, indexer, mla;
  bool no_compressor_state = false;
  bool no_mtp_weights = false;
  std::optional<double> util, workspace_gb, kv_budget_gb;
  std::vector<std::string> contexts;  // default 1M (unless a mix is given)
  std::optional<std::string> mix;
  std::vector<int64_t> concurrency;  // default 1
  double bw_efficiency = 1.0;
  int64_t rack_gpus = 0;
  std::optional<double> link_gbs, nic_gbs;  // all-to-all link bandwidths, GB/s per direction
  std::optional<std::string> a2a_dispatch;  // bf16 (default) | fp8
};

// One PlanOptions per (model, hardware) pair, models outer. Errors name the flag and value:
// unknown model or hardware preset, bad lengths, conflicting flags (--layout with --tp/--dp/
// --ep, --nominal with --hbm, --kv-budget with --util/--workspace, --hbm with several
// presets, --entry without a V4 model, --mla without a V3.2 model).
Result<std::vector<PlanOptions>> ResolvePlanRequest(const PlanRequest& r, const ConfigLoader& load);

}  // namespace dsv4::plan
