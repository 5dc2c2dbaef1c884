// Generates a complete random checkpoint for any (small) ModelConfig, in the official layout
// (checkpoint_layout.h): FP8 e4m3 with 128x128 E8M0 block scales (V3.2: F32
// weight_scale_inv), V4 routed experts as packed FP4 with E8M0 per 32, BF16/F32 elsewhere.
// The BF16 variant holds the exact dequantised values of the FP8 variant, so the two are the
// same model. The V4 shared expert is "hot" (pre-activations beyond swiglu_limit for ordinary
// tokens), so its clamp shows in the logits. The same generator, run in memory, is the
// engine's built-in default model.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/config.h"
#include "checkpoint/tensor.h"
#include "checkpoint/tensor_store.h"

namespace dsv4::fixtures {

using checkpoint::Checkpoint;
using checkpoint::ModelConfig;
using checkpoint::OwnedTensor;

inline constexpr uint64_t kDefaultSeed = 1234;
// Generation refuses configs above this many stored bytes (a real-size config would need
// hundreds of GB; use it with the planner instead).
inline constexpr uint64_t kMaxGeneratedBytes = 4ull << 30;

// What GenerateWeights makes beyond what the config says.
struct GeneratorOptions {
  uint64_t seed = kDefaultSeed;
  // Linears stored as BF16 whatever c.weight_format says: every linear whose module name ends
  // with one of these (".eh_proj", ".indexer.wk": what V3.2 releases and forks ship). They
  // hold the exact dequantised values of the quantised storage, as the BF16 variant does.
  std::vector<std::string> bf16_linears;
  // V4: the main layers' routed experts stored as NVFP4, the lossless transcode of the MXFP4
  // values (spec §11.5: per matrix G = 8 - max e, block scale per 16 = 2^(e+G) in E4M3,
  // weight_scale_2 = 2^-G, input_scale 1, codes unchanged); draft-block experts stay MXFP4.
  // Pair with NvfpConfig(c) for the matching quantization_config keys.
  bool nvfp4_experts = false;
};

// `c` with the ModelOpt quantization_config keys of NVIDIA's NVFP4 checkpoints.
ModelConfig Nvfp4Config(ModelConfig c);

// Every tensor of ListTensors(c), in that order (an overridden linear: its BF16 tensor in place
// of its FP8 ones). Each logical weight draws from its own stream seeded by (seed, name), so
// its values do not depend on the rest of the config, on c.weight_format or on the overrides.
// ResourceExhausted if the checkpoint would exceed kMaxGeneratedBytes; InvalidArgument for a
// BF16 override of a linear the layout does not accept as BF16 (any V4 FP8 linear).
Result<std::vector<OwnedTensor>> GenerateWeights(const ModelConfig& c, const GeneratorOptions& o);
// GenerateWeights(c, {.seed = seed}).
Result<std::vector<OwnedTensor>> GenerateWeights(const ModelConfig& c, uint64_t seed);

// Writes config.json plus `num_shards` safetensors shards and the index into `dir`, and
// tokenizer.json when `tokenizer_json` is not empty.
Status WriteCheckpoint(const std::filesystem::path& dir, const ModelConfig& c,
                       std::span<const OwnedTensor> tensors, int num_shards,
                       std::string_view tokenizer_json = {});

// The built-in default model: TinyV4Config() with FP8 weights and kDefaultSeed, in memory,
// with the generated tiny tokenizer (tokenizer_generator.h) in tokenizer_json.
Result<Checkpoint> BuiltinDefaultModel();

// The built-in DeepSeek-V3.2 counterpart: TinyV32Config() with FP8 weights and kDefaultSeed, in
// memory, with the same tiny tokenizer (the V4-vs-V3.2 serving comparison, engine tests).
inline constexpr std::string_view kTinyV32ModelName = "v3.2-tiny";
Result<Checkpoint> BuiltinTinyV32Model();

}  // namespace dsv4::fixtures
