#include "runner/make_drafter.h"

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
  if (mtp_family) {
    return std::unique_ptr<Drafter>(new MtpDrafter(*target, *model.v4_draft->mtp, mtp));
  }
  return std::unique_ptr<Drafter>(new DsparkDrafter(*target, *model.v4_draft->dspark, dspark));
}

}  // namespace dsv4::runner
