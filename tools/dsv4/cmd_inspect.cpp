// dsv4 inspect: what a checkpoint is (architecture, layer schedule, parameters, files) and
// what it costs in KV cache per token, by component.
#include <cstdio>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "kv/layout.h"
#include "checkpoint/checkpoint_files.h"
#include "checkpoint/checkpoint_layout.h"
#include "checkpoint/expert_shard.h"
#include "checkpoint/presets.h"
#include "dist/expert_map.h"
#include "plan/parallel.h"
#include "plan/weights.h"
#include "model_arg.h"
#include "table.h"

namespace dsv4::cli {
namespace {

using checkpoint::Arch;
using checkpoint::Checkpoint;
using checkpoint::DraftFamily;
using checkpoint::ModelConfig;

struct InspectOptions {
  std::string dir;
  std::string preset;  // architecture only: no weights
  bool json = false;
  int ep = 0;              // 0: no expert-parallel section
  std::string expert_map;  // with ep: the map file (default contiguous ranges)
};

constexpr int64_t kContexts[] = {4096, 131072, 1048576};

// "MTP" for the April module, "draft 0".. for DSpark blocks.
std::string DraftLayerName(const ModelConfig& c, int64_t i) {
  return c.draft_family() == DraftFamily::kMtp ? "MTP" : "draft " + std::to_string(i);
}

std::string Dims(const Checkpoint& ck) {
  const ModelConfig& c = ck.config;
  std::string extra;
  if (ck.drafter == DraftFamily::kMtp) extra = " (+1 MTP)";
  if (ck.drafter == DraftFamily::kDspark) {
    extra = " (+" + std::to_string(c.dspark.num_blocks) + " DSpark blocks)";
  }
  std::string s = "hidden " + std::to_string(c.hidden_size) + ", layers " +
                  std::to_string(c.num_hidden_layers) + extra + ", heads " +
                  std::to_string(c.num_attention_heads) + ", q_lora " +
                  std::to_string(c.q_lora_rank) + ", vocab " + std::to_string(c.vocab_size);
  if (c.arch == Arch::kV4) {
    s += "\nattention: head_dim " + std::to_string(c.head_dim) + " (" + std::to_string(c.d_nope()) +
         " FP8 + " + std::to_string(c.qk_rope_head_dim) + " RoPE), shared K=V head, o_groups " +
         std::to_string(c.o_groups) + " x rank " + std::to_string(c.o_lora_rank) + ", window " +
         std::to_string(c.sliding_window) + ", indexer " + std::to_string(c.index_n_heads) + "x" +
         std::to_string(c.index_head_dim) + " top-" + std::to_string(c.index_topk) + ", mHC " +
         std::to_string(c.hc_mult) + " streams";
  } else {
    s += "\nattention: MLA kv_lora " + std::to_string(c.kv_lora_rank) + " + rope " +
         std::to_string(c.qk_rope_head_dim) + ", qk_nope " + std::to_string(c.qk_nope_head_dim) +
         ", v " + std::to_string(c.v_head_dim) + ", DSA indexer " +
         std::to_string(c.index_n_heads) + "x" + std::to_string(c.index_head_dim) + " top-" +
         std::to_string(c.index_topk);
  }
  s += "\nmoe: " + std::to_string(c.n_routed_experts) + " routed + " +
       std::to_string(c.n_shared_experts) + " shared, top-" +
       std::to_string(c.num_experts_per_tok) + ", width " +
       std::to_string(c.moe_intermediate_size) + ", " + c.scoring_func;
  return s;
}

// V4: the storage of layer `layer`'s routed experts as read from expert 0's w1 (the formats
// are decided per tensor: NVFP4 main layers beside MXFP4 draft blocks); "-" for a preset.
std::string ExpertFormat(const Checkpoint& ck, int64_t layer) {
  const ModelConfig& c = ck.config;
  if (ck.weights == nullptr) return "-";
  const int64_t L = c.num_hidden_layers;
  const std::string prefix =
      layer < L ? "layers." + std::to_string(layer) + "." : "mtp." + std::to_string(layer - L) + ".";
  const std::vector<checkpoint::LinearFormat> accepted =
      checkpoint::AcceptedLinearFormats(c, checkpoint::WeightKind::kExpertLinear);
  Result<checkpoint::LinearFormat> f =
      checkpoint::DetectLinearFormat(*ck.weights, prefix + "ffn.experts.0.w1", accepted);
  if (!f.ok()) return "?";
  switch (*f) {
    case checkpoint::LinearFormat::kFp4E8M0: return "MXFP4";
    case checkpoint::LinearFormat::kFp4U8E8M0: return "MXFP4 (U8)";
    case checkpoint::LinearFormat::kNvfp4: return "NVFP4";
    default: return "BF16";
  }
}

// Main layers, then the layers of the drafter the checkpoint carries.
std::string Schedule(const Checkpoint& ck) {
  const ModelConfig& c = ck.config;
  const int64_t L = c.num_hidden_layers;
  const int64_t draft_layers = ck.drafter == DraftFamily::kNone ? 0 : c.num_draft_layers();
  if (c.arch == Arch::kV4) {
    Table t({"layer", "attention", "ratio", "ffn", "experts"});
    for (int64_t i = 0; i < L + draft_layers; ++i) {
      const bool main = i < L;
      const std::string name = main ? std::to_string(i) : DraftLayerName(c, i - L);
      t.Row({name, std::string(checkpoint::LayerKindName(c.layer_kind(i))),
             std::to_string(c.ratio(i)), (main && c.is_hash_layer(i)) ? "hash MoE" : "MoE",
             ExpertFormat(ck, i)});
    }
    return t.Render();
  }
  Table t({"layer", "attention", "ratio", "ffn"});
  for (int64_t i = 0; i < L + draft_layers; ++i) {
    const bool main = i < L;
    const std::string name = main ? std::to_string(i) : DraftLayerName(c, i - L);
    t.Row({name, "MLA+DSA", "-", (main && c.is_dense_layer(i)) ? "dense" : "MoE"});
  }
  return t.Render();
}

// What the drafter line adds after the family: DSpark's parameters; nothing runs it yet.
std::string DrafterDetails(const Checkpoint& ck) {
  const ModelConfig& c = ck.config;
  std::string s;
  if (ck.drafter == DraftFamily::kDspark) {
    std::string ids;
    for (int64_t id : c.dspark.target_layer_ids) {
      ids += (ids.empty() ? "" : ", ") + std::to_string(id);
    }
    s = " (block size " + std::to_string(c.dspark.block_size) + ", target layers [" + ids +
        "], Markov rank " + std::to_string(c.dspark.markov_rank) + ", noise token " +
        std::to_string(c.dspark.noise_token_id) + ")";
  }
  return s + (ck.weights ? ", tensors verified; not used yet" : "");
}

// {"family": "none" | "mtp" | "dspark", "layers", "description"} plus DSpark's parameters.
nlohmann::json DrafterJson(const Checkpoint& ck) {
  const ModelConfig& c = ck.config;
  const char* family = ck.drafter == DraftFamily::kMtp      ? "mtp"
                       : ck.drafter == DraftFamily::kDspark ? "dspark"
                                                            : "none";
  nlohmann::json j = {{"family", family},
                      {"layers", ck.drafter == DraftFamily::kNone ? 0 : c.num_draft_layers()},
                      {"description", checkpoint::DescribeDrafter(c, ck.drafter)}};
  if (ck.drafter == DraftFamily::kDspark) {
    j["block_size"] = c.dspark.block_size;
    j["target_layer_ids"] = c.dspark.target_layer_ids;
    j["markov_rank"] = c.dspark.markov_rank;
    j["noise_token_id"] = c.dspark.noise_token_id;
  }
  return j;
}

void StoredSection(const Checkpoint& ck, nlohmann::json& j, std::string& out);
Status EpSection(const Checkpoint& ck, const InspectOptions& o, nlohmann::json& j,
                 std::string& out);
void ParamsSection(const Checkpoint& ck, nlohmann::json& j, std::string& out);
void KvSection(const ModelConfig& c, nlohmann::json& j, std::string& out);

nlohmann::json Inspect(const Checkpoint& ck, std::string* text) {
  const ModelConfig& c = ck.config;
  nlohmann::json j;
  j["model"] = ck.name;
  j["source"] = ck.weights ? ck.weights->label() : "preset";
  j["architecture"] = checkpoint::ArchName(c.arch);
  j["weights"] = c.weight_format == checkpoint::WeightFormat::kFp8 ? "fp8" : "bf16";
  const std::string drafter = checkpoint::DescribeDrafter(c, ck.drafter);
  j["drafter"] = DrafterJson(ck);
  j["unexpected_tensors"] = ck.unexpected;
  std::string& out = *text;
  out += "model: " + ck.name + " (" + j["source"].get<std::string>() + ")\n";
  out += "architecture: " + std::string(checkpoint::ArchName(c.arch)) + ", weights " +
         j["weights"].get<std::string>() + "\n" + "drafter: " + drafter +
         (ck.drafter == DraftFamily::kNone ? "" : DrafterDetails(ck)) + "\n" + Dims(ck) +
         "\n\nlayer schedule:\n" + Schedule(ck);

  if (ck.weights == nullptr) {
    out += "\n(preset: architecture only, no weights)\n";
  } else {
    StoredSection(ck, j, out);
  }
  ParamsSection(ck, j, out);
  KvSection(c, j, out);
  return j;
}

void StoredSection(const Checkpoint& ck, nlohmann::json& j, std::string& out) {
  // Stored tensors by dtype.
  struct Agg { int64_t tensors = 0, elements = 0, bytes = 0; };
  std::map<std::string, Agg> by_dtype;
  for (const std::string& n : ck.weights->names()) {
    checkpoint::TensorView v = ck.weights->Get(n).value();
    Agg& a = by_dtype[std::string(DTypeName(v.dtype))];
    a.tensors += 1;
    a.elements += v.numel();
    a.bytes += static_cast<int64_t>(v.bytes.size());
  }
  Table td({"dtype", "tensors", "elements", "bytes"});
  for (const auto& [name, a] : by_dtype) {
    td.Row({name, WithCommas(a.tensors), WithCommas(a.elements), WithCommas(a.bytes)});
    j["stored_by_dtype"][name] = {{"tensors", a.tensors}, {"elements", a.elements}, {"bytes", a.bytes}};
  }
  out += "\nstored tensors by dtype:\n" + td.Render();
  if (const auto* files = dynamic_cast<const checkpoint::CheckpointFiles*>(ck.weights.get())) {
    Table tf({"file", "bytes"});
    for (const auto& f : files->files()) {
      tf.Row({f->path().filename().string(), WithCommas(static_cast<int64_t>(f->file_size()))});
      j["files"][f->path().filename().string()] = f->file_size();
    }
    tf.Row({"total", WithCommas(static_cast<int64_t>(files->total_file_bytes()))});
    out += "\nfiles:\n" + tf.Render();
  } else {
    out += "\nfiles: none (generated in memory)\n";
  }
}

void ParamsSection(const Checkpoint& ck, nlohmann::json& j, std::string& out) {
  const ModelConfig& c = ck.config;
  // Logical parameters by group (FP4 values count one each).
  std::map<std::string, int64_t> by_group;
  int64_t total = 0;
  for (const checkpoint::WeightSpec& w :
       checkpoint::ListWeights(c, ck.drafter != DraftFamily::kNone)) {
    std::string g(checkpoint::ParamGroupName(w.group));
    if (w.mtp) g = "mtp/" + g;
    by_group[g] += w.num_params();
    total += w.num_params();
  }
  Table tg({"group", "parameters"});
  for (const auto& [g, n] : by_group) {
    tg.Row({g, WithCommas(n)});
    j["parameters_by_group"][g] = n;
  }
  tg.Row({"total", WithCommas(total)});
  j["parameters_total"] = total;
  out += "\nparameters by group:\n" + tg.Render();
}

void KvSection(const ModelConfig& c, nlohmann::json& j, std::string& out) {
  // KV cache by component in the engine's storage formats (spec §13.1).
  const kv::KvFormats f = kv::DefaultKvFormats(c.arch);
  std::vector<std::string> header = {"component", "layers", "bytes/entry"};
  for (int64_t n : kContexts) header.push_back(n >= 1048576 ? "@" + std::to_string(n / 1048576) + "M" : "@" + std::to_string(n / 1024) + "K");
  Table tk(header);
  std::vector<kv::KvFootprint> fps;
  for (int64_t n : kContexts) fps.push_back(kv::ComputeKvFootprint(c, f, n));
  for (size_t k = 0; k < fps[0].components.size(); ++k) {
    const kv::KvComponent& comp = fps[0].components[k];
    std::vector<std::string> row = {comp.name + (comp.fixed ? " (fixed)" : ""),
                                    std::to_string(comp.layers),
                                    WithCommas(comp.bytes_per_entry)};
    for (const auto& fp : fps) row.push_back(HumanBytes(static_cast<double>(fp.components[k].bytes())));
    tk.Row(row);
    j["kv"]["components"][comp.name] = {{"layers", comp.layers},
                                        {"bytes_per_entry", comp.bytes_per_entry},
                                        {"fixed", comp.fixed}};
  }
  std::vector<std::string> total_row = {"total", "", ""};
  for (const auto& fp : fps) {
    total_row.push_back(HumanBytes(static_cast<double>(fp.total_bytes())));
    j["kv"]["bytes_per_sequence"][std::to_string(fp.num_tokens)] = fp.total_bytes();
  }
  tk.Row(total_row);
  const double per_token = kv::GrowingBytesPerToken(c, f);
  j["kv"]["growing_bytes_per_token"] = per_token;
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%.2f", per_token);
  out += "\nKV cache per sequence (main stack; " +
         std::string(c.arch == Arch::kV4 ? "FP8+BF16 entries, FP4 indexer keys"
                                         : "FP8 MLA records, FP8 indexer keys") +
         "):\n" + tk.Render() + "growing KV bytes per token: " + buf + "\n";
}

// What each rank holds under `--ep N` (checkpoint bytes: the stored tensors of a folder, the
// native formats' for a preset), beside the planner's weights per GPU for layout depN.
Status EpSection(const Checkpoint& ck, const InspectOptions& o, nlohmann::json& j,
                 std::string& out) {
  const ModelConfig& c = ck.config;
  const int64_t E = c.n_routed_experts;
  Result<dist::ExpertMap> map = o.expert_map.empty()
                                    ? dist::ExpertMap::Contiguous(E, o.ep)
                                    : dist::ExpertMap::ReadFile(o.expert_map, E, o.ep);
  if (!map.ok()) return map.status();
  // V3.2's MTP layer is loaded by no command (runner::LoadedModel loads V4's drafters only).
  const bool drafter = ck.drafter != DraftFamily::kNone && c.arch == Arch::kV4;
  const checkpoint::ShardBytes bytes = checkpoint::CountShardBytes(
      ck.weights ? checkpoint::StoredTensors(*ck.weights, c, drafter)
                 : checkpoint::NativeTensors(c, drafter),
      *map);
  plan::ParallelLayout layout;
  layout.dp = layout.ep = o.ep;
  const plan::WeightsPerGpu planned = plan::ComputeWeightsPerGpu(
      c, plan::CountParams(c), plan::NativeExpertDtype(c), layout, drafter,
      plan::DenseBasis::kStored);
  Table t({"rank", "experts", "replicated", "experts bytes", "total", "vs plan"});
  nlohmann::json ranks = nlohmann::json::array();
  for (int r = 0; r < o.ep; ++r) {
    const int64_t total = bytes.total(r);
    char diff[32];
    std::snprintf(diff, sizeof(diff), "%+.2f%%",
                  100.0 * (static_cast<double>(total) - planned.total()) / planned.total());
    t.Row({std::to_string(r), map->Describe(r), WithCommas(bytes.replicated),
           WithCommas(bytes.experts[static_cast<size_t>(r)]), WithCommas(total), diff});
    ranks.push_back({{"rank", r}, {"experts", map->count(r)}, {"bytes", total}});
  }
  j["expert_parallel"] = {{"ranks", o.ep},
                          {"replicated_bytes", bytes.replicated},
                          {"per_rank", ranks},
                          {"plan_layout", layout.Name()},
                          {"plan_bytes_per_gpu", planned.total()}};
  char line[200];
  std::snprintf(line, sizeof(line),
                "plan --layout %s: %s bytes of weights per GPU (experts %s, replicated %s)%s\n",
                layout.Name().c_str(), WithCommas(static_cast<int64_t>(planned.total())).c_str(),
                WithCommas(static_cast<int64_t>(planned.routed_experts)).c_str(),
                WithCommas(static_cast<int64_t>(planned.replicated())).c_str(),
                drafter ? ", drafter included" : "");
  out += "\nexpert parallelism over " + std::to_string(o.ep) + " ranks (" +
         (ck.weights ? "stored tensors" : "native formats") + (drafter ? ", drafter included" : "") +
         "):\n" + t.Render() + line;
  return Status::Ok();
}

Result<Checkpoint> PresetArg(const std::string& name) {
  DSV4_ASSIGN_OR_RETURN(ModelConfig c, checkpoint::PresetConfig(name));
  Checkpoint ck;
  ck.name = name;
  ck.config = c;
  ck.drafter = c.draft_family();
  return ck;
}

}  // namespace

void RegisterInspect(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand(
      "inspect", "Describe a checkpoint: architecture, layers, parameters, files, KV per token");
  cmd->add_option("dir", opts->dir, "Checkpoint folder (default: the built-in dsv4-tiny model)");
  cmd->add_option("--preset", opts->preset,
                  "Describe a built-in architecture instead (v4-flash, v4-pro, v3.2, ...)")
      ->excludes(cmd->get_option("dir"));
  cmd->add_flag("--json", opts->json, "Print JSON instead of tables");
  cmd->add_option("--ep", opts->ep,
                  "Also show what each of N expert-parallel ranks holds (dsv4 ... --ep N), "
                  "beside dsv4 plan --layout depN")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--expert-map", opts->expert_map, "With --ep: the expert map file");
  cmd->callback([opts, exit_code] {
    Result<Checkpoint> ck = opts->preset.empty() ? LoadModelArg(opts->dir) : PresetArg(opts->preset);
    if (!ck.ok()) {
      *exit_code = ReportError(ck.status());
      return;
    }
    std::string text;
    nlohmann::json j = Inspect(*ck, &text);
    if (opts->ep > 0) {
      if (Status s = EpSection(*ck, *opts, j, text); !s.ok()) {
        *exit_code = ReportError(s);
        return;
      }
    }
    std::fputs(opts->json ? (j.dump(2) + "\n").c_str() : text.c_str(), stdout);
  });
}

}  // namespace dsv4::cli
