#include "runner/make_drafter.h"

#include <algorithm>
#include <string>

namespace dsv4::runner {

Result<std::unique_ptr<Drafter>> MakeDrafter(const LoadedModel& model,
                                             checkpoint::DraftFamily family,
                                             const MtpDrafterOptions& mtp,
                                             const DsparkDrafterOptions& dspark) {
  const std::string name(checkpoint::DraftFamilyName(family));
  const v4::Model* target = model.lm != nullptr ? model.lm->v4_model() : nullptr;
  switch (family) {
    case checkpoint::DraftFamily::kNone:
      return Status::FailedPrecondition(model.name + ": no drafter requested (family 'none')");
    case checkpoint::DraftFamily::kMtp:
    case checkpoint::DraftFamily::kDspark:
      break;
  }
  const bool mtp_family = family == checkpoint::DraftFamily::kMtp;
  if (target == nullptr || model.v4_draft == nullptr ||
      (mtp_family ? !model.v4_draft->mtp.has_value() : !model.v4_draft->dspark.has_value())) {
    return Status::FailedPrecondition(model.name + " has no " + name +
                                      " weights (checkpoint drafter: '" +
                                      std::string(checkpoint::DraftFamilyName(model.drafter)) +
                                      "')");
  }
  // Expert parallelism loads each rank's share of the drafter's experts too; the drafter
  // runs on one rank and does not exchange rows, so it needs all of them.
  const auto spread = [](const v4::LayerWeights& block) {
    return std::any_of(block.experts.begin(), block.experts.end(),
                       [](const v4::ExpertWeights& e) { return e.w1.out == 0; });
  };
  const bool any_spread =
      mtp_family ? spread(model.v4_draft->mtp->block)
                 : std::any_of(model.v4_draft->dspark->blocks.begin(),
                               model.v4_draft->dspark->blocks.end(), spread);
  if (any_spread) {
    return Status::FailedPrecondition(
        model.name + ": the " + name + " drafter's experts are spread over expert-parallel "
        "ranks (--ep) and the drafter does not run across ranks: no speculative decoding");
  }
  if (mtp_family) {
    return std::unique_ptr<Drafter>(new MtpDrafter(*target, *model.v4_draft->mtp, mtp));
  }
  return std::unique_ptr<Drafter>(new DsparkDrafter(*target, *model.v4_draft->dspark, dspark));
}

}  // namespace dsv4::runner
