#include "checkpoint/checkpoint.h"

#include <set>

#include "checkpoint/checkpoint_files.h"
#include "checkpoint/checkpoint_layout.h"
#include "core/file_read.h"

namespace dsv4::checkpoint {

namespace {

// Why a drafter is incomplete when its tensors belong to the other family (a config.json
// that does not match its checkpoint); empty otherwise.
std::string FamilyMismatchHint(const ModelConfig& config, const TensorSource& source) {
  const DraftFamily f = config.draft_family();
  if (f == DraftFamily::kMtp && source.Has("mtp.0.main_proj.weight")) {
    return "; the checkpoint holds DSpark draft blocks (mtp.0.main_proj.weight) but config.json "
           "has no dspark_target_layer_ids";
  }
  if (f == DraftFamily::kDspark && source.Has("mtp.0.e_proj.weight")) {
    return "; the checkpoint holds the April MTP module (mtp.0.e_proj.weight) but config.json "
           "declares DSpark draft blocks (dspark_target_layer_ids)";
  }
  return "";
}

// The tensors `source` stores weight `w` (index `index` of ListWeights) as: a linear in the
// format DetectLinearFormat reads from its tensors, or, when its weight tensor is absent, in
// the config's format (so that the caller reports it missing).
Result<std::vector<TensorSpec>> StoredTensors(const ModelConfig& config,
                                              const TensorSource& source, const WeightSpec& w,
                                              int64_t index) {
  if (w.kind == WeightKind::kPlain || !source.Has(w.name + ".weight")) {
    return ExpandWeight(config, w, index);
  }
  const std::vector<LinearFormat> accepted = AcceptedLinearFormats(config, w.kind);
  DSV4_ASSIGN_OR_RETURN(LinearFormat format, DetectLinearFormat(source, w.name, accepted));
  // The tensors decide; a declaration they contradict (spec §11.5: main-layer routed experts
  // NVFP4, the draft blocks' experts and the ignored modules in their original formats) is
  // refused.
  const DeclaredQuant d =
      DeclaredFor(config.modelopt, w.name, w.kind == WeightKind::kExpertLinear && !w.mtp);
  if (!d.by.empty() && d.nvfp4 != (format == LinearFormat::kNvfp4)) {
    return Status::InvalidArgument(
        source.label() + ": tensor '" + w.name + ".weight' is " + LinearFormatName(format) +
        " but the quantisation config declares " + d.by + " (expected " +
        (d.nvfp4 ? LinearFormatName(LinearFormat::kNvfp4) : std::string("a format other than NVFP4")) +
        ")");
  }
  return StoredLinear(w, format, index);
}

}  // namespace

Status VerifyTensors(const ModelConfig& config, const TensorSource& source, DraftFamily* drafter,
                     std::vector<std::string>* unexpected) {
  const std::vector<WeightSpec> weights = ListWeights(config);
  std::vector<TensorSpec> tensors;
  for (size_t i = 0; i < weights.size(); ++i) {
    DSV4_ASSIGN_OR_RETURN(std::vector<TensorSpec> stored,
                          StoredTensors(config, source, weights[i], static_cast<int64_t>(i)));
    for (TensorSpec& t : stored) tensors.push_back(std::move(t));
  }
  std::set<std::string> known;
  int64_t draft_present = 0, draft_total = 0;
  std::string first_draft_missing;
  for (const TensorSpec& t : tensors) {
    known.insert(t.name);
    if (t.optional && !source.Has(t.name)) continue;
    const bool draft = weights[t.spec_index].mtp;
    if (draft) {
      ++draft_total;
      if (!source.Has(t.name)) {
        if (first_draft_missing.empty()) first_draft_missing = t.name;
        continue;
      }
      ++draft_present;
    } else if (!source.Has(t.name)) {
      return Status::NotFound(source.label() + ": missing tensor '" + t.name + "' (expected " +
                              std::string(DTypeName(t.dtype)) + " " + ShapeToString(t.shape) +
                              ")");
    }
    DSV4_ASSIGN_OR_RETURN(TensorView v, source.Get(t.name, t.dtype, t.shape));
    (void)v;
  }
  if (draft_present != 0 && draft_present != draft_total) {
    const bool dspark = config.draft_family() == DraftFamily::kDspark;
    return Status::NotFound(source.label() + ": " +
                            (dspark ? "DSpark draft blocks are" : "MTP module is") +
                            " incomplete: missing tensor '" + first_draft_missing + "' (" +
                            std::to_string(draft_present) + " of " + std::to_string(draft_total) +
                            (dspark ? " DSpark" : " MTP") + " tensors present" +
                            FamilyMismatchHint(config, source) + ")");
  }
  *drafter = draft_total > 0 && draft_present == draft_total ? config.draft_family()
                                                             : DraftFamily::kNone;
  unexpected->clear();
  for (const std::string& n : source.names()) {
    if (!known.count(n)) unexpected->push_back(n);
  }
  return Status::Ok();
}

std::string DescribeDrafter(const ModelConfig& config, DraftFamily family) {
  switch (family) {
    case DraftFamily::kNone: return "none";
    case DraftFamily::kMtp: return config.arch == Arch::kV4 ? "April MTP, 1 layer" : "MTP, 1 layer";
    case DraftFamily::kDspark: {
      const int64_t n = config.dspark.num_blocks;
      return "DSpark, " + std::to_string(n) + (n == 1 ? " block" : " blocks");
    }
  }
  return "?";
}

Result<Checkpoint> OpenCheckpoint(const std::filesystem::path& dir) {
  Checkpoint ck;
  DSV4_ASSIGN_OR_RETURN(ck.config, LoadModelConfig(dir));
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<CheckpointFiles> files, CheckpointFiles::Open(dir));
  ck.weights = std::move(files);
  DSV4_RETURN_IF_ERROR(VerifyTensors(ck.config, *ck.weights, &ck.drafter, &ck.unexpected));
  const std::filesystem::path tokenizer = dir / "tokenizer.json";
  std::error_code ec;
  if (std::filesystem::exists(tokenizer, ec)) {
    DSV4_ASSIGN_OR_RETURN(ck.tokenizer_json,
                          ReadFileLimited(tokenizer, kMaxTokenizerJsonBytes, "tokenizer file"));
  }
  std::filesystem::path p = std::filesystem::absolute(dir).lexically_normal();
  ck.name = p.has_filename() ? p.filename().string() : p.parent_path().filename().string();
  return ck;
}

}  // namespace dsv4::checkpoint
