// How a model's weights are loaded from a TensorSource (checkpoint::TensorReader, the models'
// LoadWeights, runner::CreateCausalLm and the functions that open a model folder).
#pragma once

#include <memory>

#include "dist/expert_parallel.h"

namespace dsv4::checkpoint {

struct LoadOptions {
  // Refuse every floating-point tensor the model reads (F32, BF16, F16, F8_E4M3 weights,
  // F8_E8M0 and F32 scales) that holds a NaN or an infinity: DataLoss naming the file, the
  // tensor and the first bad element (TensorSource::CheckFinite). One NaN in a norm weight
  // would make every logit NaN. The check reads each of those tensors once at load, which for
  // a mapped checkpoint also reads them from disk (packed FP4 expert codes are never read:
  // they cannot be non-finite); `dsv4 ... --no-weight-check` turns it off.
  bool check_finite = true;
  // Expert parallelism (dist/expert_parallel.h); null: one process holding every expert.
  // When set, the routed experts of other ranks are never read (not mapped in, scanned,
  // promoted or repacked) and the forward pass exchanges rows with the other ranks through
  // its communicator. DeepSeek-V4 and V3.2.
  std::shared_ptr<dist::ExpertParallel> expert_parallel;
  // Whether routed expert `e` is loaded by this process.
  bool LoadsExpert(int64_t e) const { return !expert_parallel || expert_parallel->holds(e); }
};

}  // namespace dsv4::checkpoint
