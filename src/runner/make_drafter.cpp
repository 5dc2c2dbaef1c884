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
      return std::unique_ptr<Drafter>(new MtpDrafter(*target, *model.v4_draft->mtp, mtp));
    case checkpoint::DraftFamily::kDspark:
      break;
  }
  return Status::Unimplemented("the DSpark drafter of " + model.name +
                               " (V4-Flash-0731 / V4-Pro-0813, spec §11.4) is not implemented "
                               "yet: speculative decoding needs the April MTP module");
}

}  // namespace dsv4::runner
