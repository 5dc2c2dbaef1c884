#include "checkpoint/checkpoint.h"

#include <fstream>
#include <set>
#include <sstream>

#include "checkpoint/checkpoint_files.h"
#include "checkpoint/checkpoint_layout.h"

namespace dsv4::checkpoint {

namespace {

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
  return StoredLinear(w, format, index);
}

}  // namespace

Status VerifyTensors(const ModelConfig& config, const TensorSource& source, bool* has_mtp,
                     std::vector<std::string>* unexpected) {
  const std::vector<WeightSpec> weights = ListWeights(config);
  std::vector<TensorSpec> tensors;
  for (size_t i = 0; i < weights.size(); ++i) {
    DSV4_ASSIGN_OR_RETURN(std::vector<TensorSpec> stored,
                          StoredTensors(config, source, weights[i], static_cast<int64_t>(i)));
    for (TensorSpec& t : stored) tensors.push_back(std::move(t));
  }
  std::set<std::string> known;
  int64_t mtp_present = 0, mtp_total = 0;
  std::string first_mtp_missing;
  for (const TensorSpec& t : tensors) {
    known.insert(t.name);
    const bool mtp = weights[t.spec_index].mtp;
    if (mtp) {
      ++mtp_total;
      if (!source.Has(t.name)) {
        if (first_mtp_missing.empty()) first_mtp_missing = t.name;
        continue;
      }
      ++mtp_present;
    } else if (!source.Has(t.name)) {
      return Status::NotFound(source.label() + ": missing tensor '" + t.name + "' (expected " +
                              std::string(DTypeName(t.dtype)) + " " + ShapeToString(t.shape) +
                              ")");
    }
    DSV4_ASSIGN_OR_RETURN(TensorView v, source.Get(t.name, t.dtype, t.shape));
    (void)v;
  }
  if (mtp_present != 0 && mtp_present != mtp_total) {
    return Status::NotFound(source.label() + ": MTP module is incomplete: missing tensor '" +
                            first_mtp_missing + "' (" + std::to_string(mtp_present) + " of " +
                            std::to_string(mtp_total) + " MTP tensors present)");
  }
  *has_mtp = mtp_total > 0 && mtp_present == mtp_total;
  unexpected->clear();
  for (const std::string& n : source.names()) {
    if (!known.count(n)) unexpected->push_back(n);
  }
  return Status::Ok();
}

Result<Checkpoint> OpenCheckpoint(const std::filesystem::path& dir) {
  Checkpoint ck;
  DSV4_ASSIGN_OR_RETURN(ck.config, LoadModelConfig(dir));
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<CheckpointFiles> files, CheckpointFiles::Open(dir));
  ck.weights = std::move(files);
  DSV4_RETURN_IF_ERROR(VerifyTensors(ck.config, *ck.weights, &ck.has_mtp, &ck.unexpected));
  const std::filesystem::path tokenizer = dir / "tokenizer.json";
  std::error_code ec;
  if (std::filesystem::exists(tokenizer, ec)) {
    std::ifstream in(tokenizer, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in || text.bad()) return Status::IoError(tokenizer.string() + ": read failed");
    ck.tokenizer_json = text.str();
  }
  std::filesystem::path p = std::filesystem::absolute(dir).lexically_normal();
  ck.name = p.has_filename() ? p.filename().string() : p.parent_path().filename().string();
  return ck;
}

}  // namespace dsv4::checkpoint
