#include "runner/loaded_model.h"

namespace dsv4::runner {

Result<std::unique_ptr<LoadedModel>> LoadCheckpoint(checkpoint::Checkpoint checkpoint,
                                                    std::string source,
                                                    const checkpoint::LoadOptions& options) {
  auto m = std::make_unique<LoadedModel>();
  m->name = std::move(checkpoint.name);
  m->source = std::move(source);
  m->tokenizer_json = std::move(checkpoint.tokenizer_json);
  m->weights = std::move(checkpoint.weights);
  DSV4_ASSIGN_OR_RETURN(m->lm, CreateCausalLm(checkpoint.config, *m->weights, options));
  m->drafter = checkpoint.drafter;
  if (checkpoint.config.arch == checkpoint::Arch::kV4 &&
      checkpoint.drafter != checkpoint::DraftFamily::kNone) {
    DSV4_ASSIGN_OR_RETURN(m->v4_draft,
                          v4::LoadDraftWeights(checkpoint.config, *m->weights,
                                                  checkpoint.drafter, options));
  }
  return m;
}

Result<std::unique_ptr<LoadedModel>> OpenModelFolder(const std::string& dir,
                                                     const checkpoint::LoadOptions& options) {
  DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, checkpoint::OpenCheckpoint(dir));
  return LoadCheckpoint(std::move(ck), dir, options);
}

}  // namespace dsv4::runner
