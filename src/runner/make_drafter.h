// The drafter of a loaded checkpoint, by family (spec §11.3 April MTP, §11.4 DSpark): the one
// place that maps a drafter family to its implementation.
#pragma once

#include <memory>

#include "core/status.h"
#include "checkpoint/config.h"
#include "runner/drafter.h"
#include "runner/loaded_model.h"
#include "runner/dspark_drafter.h"
#include "runner/mtp_drafter.h"

namespace dsv4::runner {

// The `family` drafter of `model` (usually model.drafter), reading its weights
// (model.v4_draft) and sharing the target's embedding and head; `model` must outlive it.
// kMtp: an MtpDrafter with `mtp` options; kDspark (V4-Flash-0731, V4-Pro-0813): a
// DsparkDrafter with `dspark` options. FailedPrecondition when the checkpoint has no such
// drafter (kNone, another family's weights, a V3.2 or stand-in model). Under expert
// parallelism each rank holds its share of the drafter's experts and the drafter's MoE
// exchanges rows like the target's (Drafter::JoinExpertParallelCall).
Result<std::unique_ptr<Drafter>> MakeDrafter(const LoadedModel& model,
                                             checkpoint::DraftFamily family,
                                             const MtpDrafterOptions& mtp = {},
                                             const DsparkDrafterOptions& dspark = {});

}  // namespace dsv4::runner
