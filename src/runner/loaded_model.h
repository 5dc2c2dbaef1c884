// A model ready to serve: its forward pass plus what callers need to know about it besides
// (name, where it came from, tokenizer text), owning everything the forward pass reads. What
// an Engine's ModelFactory returns (include/dsv4/engine.h); the engine owns it from then on.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/load_options.h"
#include "checkpoint/tensor.h"
#include "models/v4/draft_weights.h"
#include "runner/causal_lm.h"

namespace dsv4::runner {

struct LoadedModel {
  std::string name;            // "dsv4-tiny", a checkpoint folder's name, ...
  std::string source;          // where it came from, for messages (the folder as given)
  std::string tokenizer_json;  // the text of tokenizer.json; empty: the model has none
  std::unique_ptr<checkpoint::TensorSource> weights;  // read by `lm`; null for stand-ins
  std::unique_ptr<CausalLm> lm;  // declared after `weights`, so destroyed before them
  // The checkpoint's drafter (Checkpoint::drafter) and, for V4, its weights loaded and checked
  // (null for kNone and V3.2); for speculative decoding (runner/make_drafter.h: April MTP runs,
  // DSpark not yet).
  checkpoint::DraftFamily drafter = checkpoint::DraftFamily::kNone;
  std::unique_ptr<v4::DraftWeights> v4_draft;  // views into `weights`, declared after them
};

// The forward pass of `checkpoint`'s architecture over its weights, and a V4 checkpoint's
// drafter weights; `source` names it in messages. Errors of CreateCausalLm and
// v4::LoadDraftWeights (missing or mis-shaped tensors, NaN/Inf values with
// options.check_finite).
Result<std::unique_ptr<LoadedModel>> LoadCheckpoint(checkpoint::Checkpoint checkpoint,
                                                    std::string source,
                                                    const checkpoint::LoadOptions& options = {});

// Opens the checkpoint folder `dir` (checkpoint::OpenCheckpoint) and loads it.
Result<std::unique_ptr<LoadedModel>> OpenModelFolder(const std::string& dir,
                                                     const checkpoint::LoadOptions& options = {});

}  // namespace dsv4::runner
