// What a kernels::Workspace holds: each kernel family's scratch, defined beside its internal
// interface. Internal to the kernels.
#pragma once

#include "kernels/cpu/attention_internal.h"
#include "kernels/cpu/indexer_internal.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/streaming_topk.h"
#include "kernels/cpu/workspace.h"

namespace dsv4::kernels::internal {

struct WorkspaceState {
  LinearScratch linear;
  AttnScratch attention;
  IndexerScratch indexer;  // both indexer scans (FP4 and FP8 keys)
  ScanScratch scan;        // the scans' streaming top-k
};

}  // namespace dsv4::kernels::internal
