#include "checkpoint/checkpoint.h"

#include <set>

#include "checkpoint/checkpoint_files.h"
#include "checkpoint/checkpoint_layout.h"
#include "core/file_read.h"

namespace dsv4::checkpoint {

Status VerifyTensors(const ModelConfig& config, const TensorSource& source, bool* has_mtp,
                     std::vector<std::string>* unexpected) {
  const std::vector<WeightSpec> weights = ListWeights(config);
  const std::vector<TensorSpec> tensors = ListTensors(config);
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
    DSV4_ASSIGN_OR_RETURN(ck.tokenizer_json,
                          ReadFileLimited(tokenizer, kMaxTokenizerJsonBytes, "tokenizer file"));
  }
  std::filesystem::path p = std::filesystem::absolute(dir).lexically_normal();
  ck.name = p.has_filename() ? p.filename().string() : p.parent_path().filename().string();
  return ck;
}

}  // namespace dsv4::checkpoint
