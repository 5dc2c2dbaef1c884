// A model's weights ready for the engine: the validated config plus a TensorSource whose
// tensors have been checked against the official layout (names, dtypes, shapes).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "checkpoint/config.h"
#include "checkpoint/tensor.h"

namespace dsv4::checkpoint {

struct Checkpoint {
  std::string name;  // folder name, or kDefaultModelName for the built-in model
  ModelConfig config;
  std::unique_ptr<TensorSource> weights;
  // The drafter whose tensors are present and verified: config.draft_family(), or kNone when
  // the checkpoint has no draft tensors at all (the runner loads it; April MTP runs as a drafter).
  DraftFamily drafter = DraftFamily::kNone;
  std::vector<std::string> unexpected;  // tensors the layout does not know (ignored)
  // The text of tokenizer.json (parsed by dsv4::tokenizer, which model does not depend on);
  // empty when the folder has none. Token-id commands work without it.
  std::string tokenizer_json;
};

// Checks every tensor of ListTensors(config) against `source`, each linear in the format its
// tensors are stored in (DetectLinearFormat over AcceptedLinearFormats: a V3.2 FP8 checkpoint
// may hold BF16 linears). Main-stack tensors are required; the drafter's (`mtp.*`, April MTP
// or DSpark as config.draft_family() says) must be all present or all absent: *drafter is
// that family, or kNone when all are absent. Errors name the tensor, the expected and the
// actual dtype/shape (for a linear whose dtype fits no accepted format: the dtype found and
// the formats accepted); an incomplete drafter also says how many of its tensors are present
// and, when the tensors are the other family's, which config.json key is missing or extra.
Status VerifyTensors(const ModelConfig& config, const TensorSource& source, DraftFamily* drafter,
                     std::vector<std::string>* unexpected);

// "none", "April MTP, 1 layer", "DSpark, 3 blocks": `family` as `config` declares it.
std::string DescribeDrafter(const ModelConfig& config, DraftFamily family);

// Opens <dir>/config.json and the safetensors files in `dir` and verifies them; reads
// <dir>/tokenizer.json into tokenizer_json when present (ReadFileLimited's errors, at most
// kMaxTokenizerJsonBytes).
Result<Checkpoint> OpenCheckpoint(const std::filesystem::path& dir);

}  // namespace dsv4::checkpoint
