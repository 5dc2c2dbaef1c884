// The drafter a checkpoint brings (LoadedModel::drafter: April MTP or DSpark), as the engine
// runs it for speculative decoding. The one place that maps a drafter family to its
// implementation.
#pragma once

#include <memory>

#include "core/status.h"
#include "runner/drafter.h"
#include "runner/loaded_model.h"

namespace dsv4::runner {

// The drafter of `model`'s checkpoint, reading its weights (model.v4_draft; `model` must
// outlive it). FailedPrecondition when the checkpoint has no drafter; Unimplemented, naming
// the family, when this build has no implementation of it.
Result<std::unique_ptr<Drafter>> CreateCheckpointDrafter(const LoadedModel& model);

}  // namespace dsv4::runner
