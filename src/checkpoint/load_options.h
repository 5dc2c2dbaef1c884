// How a model's weights are loaded from a TensorSource (checkpoint::TensorReader, the models'
// LoadWeights, runner::CreateCausalLm and the functions that open a model folder).
#pragma once

namespace dsv4::checkpoint {

struct LoadOptions {
  // Refuse every floating-point tensor the model reads (F32, BF16, F16, F8_E4M3 weights,
  // F8_E8M0 and F32 scales) that holds a NaN or an infinity: DataLoss naming the file, the
  // tensor and the first bad element (TensorSource::CheckFinite). One NaN in a norm weight
  // would make every logit NaN. The check reads each of those tensors once at load, which for
  // a mapped checkpoint also reads them from disk (packed FP4 expert codes are never read:
  // they cannot be non-finite); `dsv4 ... --no-weight-check` turns it off.
  bool check_finite = true;
};

}  // namespace dsv4::checkpoint
