// The tensor inventory of an official checkpoint, derived from a ModelConfig alone: names,
// dtypes and shapes of every tensor (spec §12 for V4, §14.1b for V3.2). One source of truth
// for the tiny-model generator, the loader's checks, `dsv4 inspect` and the parameter counts
// the capacity planner uses.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "checkpoint/config.h"
#include "checkpoint/linear_format.h"

namespace dsv4::checkpoint {

// What a logical weight is, which decides how it is stored (a linear: in one of
// AcceptedLinearFormats(c, kind); the comments give the config's format).
enum class WeightKind {
  kPlain,        // stored as `dtype` under `name` exactly
  kDenseLinear,  // FP8 e4m3 + 128x128 block scale (V4: E8M0 ".scale", V3.2: F32 ".weight_scale_inv")
  kExpertLinear, // V4 routed expert: packed FP4 (I8 [N, K/2]) + E8M0 ".scale" [N, K/32],
                 // also accepted with U8 codes or as NVFP4 (linear_format.h);
                 // V3.2 experts are kDenseLinear
};

// Which budget a weight belongs to (weights-per-GPU accounting).
enum class ParamGroup {
  kEmbedding,
  kHead,
  kAttention,      // projections, norms, sink, compressors, indexer
  kMhc,            // hc_* mixing parameters
  kNorm,           // final / block norms
  kRouter,         // gate weight, bias, tid2eid
  kRoutedExperts,
  kSharedExperts,
  kDenseFfn,       // V3.2 dense layers
  kMtpProjection,  // drafter inputs: MTP e_proj / h_proj / eh_proj, DSpark main_proj, and
                   // the drafter-only norms
  kDraftHead,      // DSpark Markov head (markov_w1, markov_w2) and confidence head
};
std::string_view ParamGroupName(ParamGroup g);

// One logical weight. For linears, `shape` is the logical [out, in] and `name` is the module
// path without ".weight"; for plain tensors `name` is the full tensor name.
struct WeightSpec {
  std::string name;
  WeightKind kind = WeightKind::kPlain;
  DType dtype = DType::kBF16;  // plain tensors only
  std::vector<int64_t> shape;
  ParamGroup group = ParamGroup::kAttention;
  bool mtp = false;            // belongs to the drafter (MTP module or DSpark blocks, `mtp.*`)
  int64_t layer = -1;          // -1 for globals; num_hidden_layers + i for draft layer i

  int64_t num_params() const;  // logical elements (FP4 counts 1 per value)
};

// One stored tensor of a checkpoint.
struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  int64_t spec_index;  // index into the WeightSpec list it came from
  bool optional = false;  // may be absent (NVFP4 input_scale)
};

// The formats a linear of `kind` may be stored in (empty for kPlain), the one c.weight_format
// names first: the generator writes that one and ExpandWeight lists its tensors. A V3.2 dense
// linear also accepts the other of FP8 (+ F32 weight_scale_inv) and BF16, decided per tensor
// (spec §14.1b: BF16 MTP eh_proj in DeepSeek's V3-family releases, BF16 indexer wk in forks).
// A V4 dense linear accepts FP8 + E8M0 and BF16 (the config's first); a V4 routed expert
// accepts MXFP4 (I8 or U8 codes), NVFP4 and BF16 (the config's first: MXFP4 I8 for FP8
// configs), decided per tensor, so one model may mix them per layer (NVFP4 main experts with
// MXFP4 draft-block experts, spec §11.5).
std::vector<LinearFormat> AcceptedLinearFormats(const ModelConfig& c, WeightKind kind);

// All logical weights of `c` in checkpoint order (globals first, then layers, then the
// drafter c.draft_family() declares: the MTP module, or the DSpark blocks in order).
// `include_mtp` false: the main model only.
std::vector<WeightSpec> ListWeights(const ModelConfig& c, bool include_mtp = true);
// The tensors `w` is stored as under `c.weight_format` (for a linear: in the first of
// AcceptedLinearFormats).
std::vector<TensorSpec> ExpandWeight(const ModelConfig& c, const WeightSpec& w, int64_t index);
// The tensors of the linear `w` stored in `format` (LinearTensors with the spec's index).
std::vector<TensorSpec> StoredLinear(const WeightSpec& w, LinearFormat format, int64_t index);
// Every tensor of the checkpoint.
std::vector<TensorSpec> ListTensors(const ModelConfig& c, bool include_mtp = true);

}  // namespace dsv4::checkpoint
