#include "runner/checkpoint_drafter.h"

#include <string>

namespace dsv4::runner {

Result<std::unique_ptr<Drafter>> CreateCheckpointDrafter(const LoadedModel& model) {
  const std::string family(checkpoint::DraftFamilyName(model.drafter));
  switch (model.drafter) {
    case checkpoint::DraftFamily::kNone:
      return Status::FailedPrecondition(model.name + " has no drafter (its checkpoint holds "
                                        "neither MTP nor DSpark tensors)");
    case checkpoint::DraftFamily::kMtp:
    case checkpoint::DraftFamily::kDspark:
      break;
  }
  return Status::Unimplemented("speculative decoding with the " + family + " drafter of " +
                               model.name + " is not implemented in this build");
}

}  // namespace dsv4::runner
