#include "runner/make_drafter.h"

#include <string>

namespace dsv4::runner {

Result<std::unique_ptr<Drafter>> MakeDrafter(const LoadedModel& model,
                                             checkpoint::DraftFamily family,
                                             const MtpDrafterOptions& mtp) {
  const std::string name(checkpoint::DraftFamilyName(family));
  const v4::Model* target = model.lm != nullptr ? model.lm->v4_model() : nullptr;
  switch (family) {
    case checkpoint::DraftFamily::kNone:
      return Status::FailedPrecondition(model.name + ": no drafter requested (family 'none')");
    case checkpoint::DraftFamily::kMtp:
      if (target == nullptr || model.v4_draft == nullptr || !model.v4_draft->mtp.has_value()) {
        return Status::FailedPrecondition(model.name + " has no " + name +
                                          " weights (checkpoint drafter: '" +
                                          std::string(checkpoint::DraftFamilyName(model.drafter)) +
                                          "')");
      }
      for (const v4::ExpertWeights& e : model.v4_draft->mtp->block.experts) {
        // Expert parallelism loads each rank's share of the MTP block's experts too; the
        // drafter runs on one rank and does not exchange rows, so it needs all of them.
        if (e.w1.out == 0) {
          return Status::FailedPrecondition(
              model.name + ": the " + name + " module's experts are spread over expert-parallel "
              "ranks (--ep) and the drafter does not run across ranks: no speculative decoding");
        }
      }
      return std::unique_ptr<Drafter>(new MtpDrafter(*target, *model.v4_draft->mtp, mtp));
    case checkpoint::DraftFamily::kDspark:
      break;
  }
  return Status::Unimplemented("the DSpark drafter of " + model.name +
                               " (V4-Flash-0731 / V4-Pro-0813, spec §11.4) is not implemented "
                               "yet: speculative decoding needs the April MTP module");
}

}  // namespace dsv4::runner
