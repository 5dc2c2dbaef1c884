#include "testing/weight_generator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "core/bf16.h"
#include "core/fp8.h"
#include "core/quant.h"
#include "core/rng.h"
#include "checkpoint/checkpoint_layout.h"
#include "checkpoint/presets.h"
#include "testing/safetensors_writer.h"
#include "testing/tokenizer_generator.h"

namespace dsv4::fixtures {
using checkpoint::Arch;
using checkpoint::Checkpoint;
using checkpoint::ModelConfig;
using checkpoint::OwnedTensor;
using checkpoint::ParamGroup;
using checkpoint::TensorSpec;
using checkpoint::TensorStore;
using checkpoint::WeightKind;
using checkpoint::WeightSpec;
using checkpoint::AcceptedLinearFormats;
using checkpoint::ExpandWeight;
using checkpoint::LinearFormat;
using checkpoint::LinearFormatName;
using checkpoint::StoredLinear;
using checkpoint::ListWeights;
using checkpoint::ModelConfigToJson;
using checkpoint::NumElements;
using checkpoint::TinyV4Config;
using checkpoint::ValidateModelConfig;
using checkpoint::VerifyTensors;

namespace {

constexpr double kResidualGain = 0.1;
constexpr double kRoutedExpertGain = 0.05;
constexpr double kRouterGain = 1.0;
// The V4 shared expert is "hot": w1 and w3 have this gain, so with unit-RMS inputs their
// pre-activations are about N(0, 5²) and every ordinary token has some above swiglu_limit
// (10): the clamp the current reference applies to the shared expert (spec §10.3) changes
// the logits, and a path that drops it fails the reference comparisons. SiLU(a)·b grows
// about as the gain squared, so w2's gain is divided by that: the branch still only nudges
// the residual stream (and the FP8 and BF16 variants stay within cosine 0.999).
constexpr double kHotSharedExpertGain = 5.0;

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

template <typename T>
std::vector<std::byte> ToBytes(const std::vector<T>& v) {
  std::vector<std::byte> out(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}

std::vector<std::byte> ToBf16Bytes(std::span<const float> v) {
  std::vector<BF16> b(v.size());
  for (size_t i = 0; i < v.size(); ++i) b[i] = F32ToBf16(v[i]);
  return ToBytes(b);
}

// Draws `n` values: N(0, std) or U(lo, hi) around `center`.
std::vector<float> Normal(Rng& rng, int64_t n, double std, double center = 0.0) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(center + std * rng.Normal());
  return v;
}

// Value distribution of a plain tensor, chosen so activations stay well conditioned:
// projections keep unit variance, norms are near 1, mixing logits near 0.
std::vector<float> PlainValues(const ModelConfig& c, const WeightSpec& w, Rng& rng) {
  const int64_t n = w.num_params();
  const double fan_in = w.shape.size() == 2 ? static_cast<double>(w.shape[1]) : 1.0;
  const std::string& name = w.name;
  if (EndsWith(name, "norm.weight")) return Normal(rng, n, 0.05, 1.0);
  if (EndsWith(name, "norm.bias")) return Normal(rng, n, 0.05);
  if (EndsWith(name, "embed.weight") || EndsWith(name, "embed_tokens.weight")) {
    return Normal(rng, n, 1.0);
  }
  if (EndsWith(name, "_fn")) return Normal(rng, n, 0.5 / std::sqrt(fan_in));
  if (EndsWith(name, "_base")) return Normal(rng, n, 0.5);
  if (EndsWith(name, "_scale")) return Normal(rng, n, 0.1, 1.0);
  if (EndsWith(name, "attn_sink")) return Normal(rng, n, 1.0);
  if (EndsWith(name, "ape")) return Normal(rng, n, 0.5);
  if (EndsWith(name, "bias")) return Normal(rng, n, 0.1);
  // A decisive router: well-separated expert scores, so small activation differences (FP8
  // vs BF16 weights) rarely flip which experts a token uses.
  if (EndsWith(name, "gate.weight")) return Normal(rng, n, kRouterGain / std::sqrt(fan_in));
  return Normal(rng, n, 1.0 / std::sqrt(fan_in));  // matrices: head, gate, compressor, ...
}

// Projections that write into the residual stream get a small gain (as deep nets scale their
// residual branches), so each sublayer nudges the streams instead of replacing them: the
// tiny model then stays well conditioned through many layers, and FP8 activation noise or
// a flipped routing decision moves the logits a little, not chaotically.
double OutputGain(const ModelConfig& c, const WeightSpec& w) {
  // Routed experts get the smallest gain: which experts a token uses is a discrete choice,
  // and a flipped choice should move the residual stream only slightly.
  if (w.group == ParamGroup::kRoutedExperts && (EndsWith(w.name, ".w2") || EndsWith(w.name, "down_proj"))) {
    return kRoutedExpertGain;
  }
  if (c.arch == Arch::kV4 && w.group == ParamGroup::kSharedExperts) {
    const double g = kHotSharedExpertGain;
    return EndsWith(w.name, ".w2") ? kResidualGain / (g * g) : g;
  }
  for (std::string_view s : {".wo_b", ".w2", "down_proj", "o_proj"}) {
    if (EndsWith(w.name, s)) return kResidualGain;
  }
  return 1.0;
}

// tid2eid: each token's row holds num_experts_per_tok distinct expert ids.
std::vector<int64_t> HashTable(const ModelConfig& c, Rng& rng) {
  const int64_t k = c.num_experts_per_tok, e = c.n_routed_experts;
  std::vector<int64_t> table(static_cast<size_t>(c.vocab_size * k));
  std::vector<int64_t> perm(static_cast<size_t>(e));
  for (int64_t t = 0; t < c.vocab_size; ++t) {
    std::iota(perm.begin(), perm.end(), 0);
    for (int64_t j = 0; j < k; ++j) {  // partial Fisher-Yates
      std::swap(perm[j], perm[j + static_cast<int64_t>(rng.Below(e - j))]);
      table[t * k + j] = perm[j];
    }
  }
  return table;
}

// The NVFP4 tensors (weight, weight_scale, weight_scale_2, input_scale) holding exactly the
// values of an MXFP4 matrix (spec §11.5): G = 8 - max e over the matrix, each 32-block's
// scale 2^e becomes two E4M3 16-block scales 2^(e+G), weight_scale_2 = 2^-G.
std::vector<std::vector<std::byte>> TranscodeToNvfp4(const std::vector<uint8_t>& packed,
                                                     const std::vector<uint8_t>& e8m0) {
  int max_e = -127;
  for (uint8_t b : e8m0) max_e = std::max(max_e, static_cast<int>(b) - 127);
  const int g = 8 - max_e;
  std::vector<uint8_t> e4m3(2 * e8m0.size());
  for (size_t i = 0; i < e8m0.size(); ++i) {
    const float v = std::ldexp(1.0f, static_cast<int>(e8m0[i]) - 127 + g);
    const uint8_t code = F32ToE4M3(v);
    DSV4_CHECK_MSG(E4M3ToF32(code) == v, "MXFP4 scale range too wide for an exact NVFP4 transcode");
    e4m3[2 * i] = e4m3[2 * i + 1] = code;
  }
  const std::vector<float> global = {std::ldexp(1.0f, -g)}, input = {1.0f};
  return {ToBytes(packed), ToBytes(e4m3), ToBytes(global), ToBytes(input)};
}

// Stored tensors of one logical weight (a linear: in `format`, StoredLinear order). A linear's
// values are one draw quantised as the config's FP8 variant stores it (V4 routed experts: FP4
// per row per 32; otherwise FP8 per 128 x 128 tile); kBf16 holds their exact dequantisation,
// so every format of a linear holds the same values.
std::vector<std::vector<std::byte>> GenerateOne(const ModelConfig& c, const WeightSpec& w,
                                                LinearFormat format, uint64_t seed) {
  Rng rng(seed ^ HashString(w.name));
  if (w.kind == WeightKind::kPlain) {
    if (w.dtype == DType::kI64) return {ToBytes(HashTable(c, rng))};
    std::vector<float> v = PlainValues(c, w, rng);
    if (w.dtype == DType::kF32) return {ToBytes(v)};
    return {ToBf16Bytes(v)};
  }
  const int64_t rows = w.shape[0], cols = w.shape[1];
  std::vector<float> f = Normal(rng, rows * cols, OutputGain(c, w) / std::sqrt(static_cast<double>(cols)));
  std::vector<float> deq(f.size());
  if (w.kind == WeightKind::kExpertLinear && c.arch == Arch::kV4) {
    std::vector<uint8_t> packed(static_cast<size_t>(rows * cols / 2));
    std::vector<uint8_t> scales(static_cast<size_t>(rows * cols / 32));
    QuantizeFp4Row32(f, rows, cols, packed, scales);
    if (format == LinearFormat::kFp4E8M0) return {ToBytes(packed), ToBytes(scales)};
    if (format == LinearFormat::kNvfp4) return TranscodeToNvfp4(packed, scales);
    DSV4_CHECK(format == LinearFormat::kBf16);
    DequantizeFp4Row32(packed, scales, rows, cols, deq);
    return {ToBf16Bytes(deq)};
  }
  const int64_t grid = ((rows + 127) / 128) * ((cols + 127) / 128);
  std::vector<uint8_t> codes(f.size());
  std::vector<uint8_t> scales(static_cast<size_t>(grid));
  QuantizeFp8Block128(f, rows, cols, codes, scales);
  switch (format) {
    case LinearFormat::kBf16:
      DequantizeFp8Block128(codes, scales, rows, cols, deq);
      return {ToBf16Bytes(deq)};
    case LinearFormat::kFp8F32: {  // F32 weight_scale_inv holding the same powers of two
      std::vector<float> inv(scales.size());
      for (size_t i = 0; i < scales.size(); ++i) inv[i] = E8M0ToF32(scales[i]);
      return {ToBytes(codes), ToBytes(inv)};
    }
    case LinearFormat::kFp8E8M0:
      return {ToBytes(codes), ToBytes(scales)};
    case LinearFormat::kFp4E8M0:
    case LinearFormat::kFp4U8E8M0:
    case LinearFormat::kNvfp4:
      break;
  }
  DSV4_CHECK_MSG(false, "FP4 storage for a linear that is not a V4 routed expert");
  return {};
}

bool IsBf16Override(const GeneratorOptions& o, const WeightSpec& w) {
  if (w.kind == WeightKind::kPlain) return false;
  return std::any_of(o.bf16_linears.begin(), o.bf16_linears.end(),
                     [&](const std::string& s) { return EndsWith(w.name, s); });
}

// The tensors weight `w` (index `index`) is generated as, with `*format` its linear format:
// the config's, or BF16 where `o` overrides it (InvalidArgument if the layout does not accept
// BF16 for that linear, so the generator never writes what the loaders refuse).
Result<std::vector<TensorSpec>> Specs(const ModelConfig& c, const GeneratorOptions& o,
                                      const WeightSpec& w, int64_t index, LinearFormat* format) {
  if (w.kind == WeightKind::kPlain) return ExpandWeight(c, w, index);
  const std::vector<LinearFormat> accepted = AcceptedLinearFormats(c, w.kind);
  *format = accepted.front();
  if (o.nvfp4_experts && w.kind == WeightKind::kExpertLinear && !w.mtp && c.arch == Arch::kV4 &&
      c.weight_format == checkpoint::WeightFormat::kFp8) {
    *format = LinearFormat::kNvfp4;
  }
  if (IsBf16Override(o, w)) {
    if (std::find(accepted.begin(), accepted.end(), LinearFormat::kBf16) == accepted.end()) {
      return Status::InvalidArgument("generator: the linear '" + w.name +
                                     "' cannot be stored as BF16 in this checkpoint (accepted: " +
                                     LinearFormatName(accepted.front()) + ")");
    }
    *format = LinearFormat::kBf16;
  }
  return StoredLinear(w, *format, index);
}

}  // namespace

ModelConfig Nvfp4Config(ModelConfig c) {
  c.modelopt.quant_algo = "MIXED_PRECISION";
  c.modelopt.moe_quant_algo = "NVFP4";
  c.modelopt.group_size = 16;
  c.modelopt.producer = "modelopt";
  c.modelopt.ignore = {"*.attn.*", "*.ffn.shared_experts.*", "head", "mtp.*"};
  return c;
}

Result<std::vector<OwnedTensor>> GenerateWeights(const ModelConfig& c, uint64_t seed) {
  GeneratorOptions o;
  o.seed = seed;
  return GenerateWeights(c, o);
}

Result<std::vector<OwnedTensor>> GenerateWeights(const ModelConfig& c, const GeneratorOptions& o) {
  DSV4_RETURN_IF_ERROR(ValidateModelConfig(c, "generator config"));
  const std::vector<WeightSpec> weights = ListWeights(c);
  std::vector<std::vector<TensorSpec>> specs(weights.size());
  std::vector<LinearFormat> formats(weights.size(), LinearFormat::kBf16);
  uint64_t total = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    DSV4_ASSIGN_OR_RETURN(specs[i], Specs(c, o, weights[i], static_cast<int64_t>(i), &formats[i]));
    for (const TensorSpec& t : specs[i]) {
      total += static_cast<uint64_t>(NumElements(t.shape)) * DTypeSize(t.dtype);
    }
  }
  if (total > kMaxGeneratedBytes) {
    return Status::ResourceExhausted(
        "the config needs " + std::to_string(total) + " bytes of weights; the generator makes at "
        "most " + std::to_string(kMaxGeneratedBytes) + " (it is meant for tiny test models)");
  }
  std::vector<OwnedTensor> out;
  for (size_t i = 0; i < weights.size(); ++i) {
    std::vector<std::vector<std::byte>> data = GenerateOne(c, weights[i], formats[i], o.seed);
    DSV4_CHECK(data.size() == specs[i].size());
    for (size_t k = 0; k < specs[i].size(); ++k) {
      TensorSpec& t = specs[i][k];
      out.push_back({std::move(t.name), t.dtype, std::move(t.shape), std::move(data[k])});
    }
  }
  return out;
}

namespace {

// Writes `text` to dir/name through a temporary file, so a reader never sees half a file.
Status WriteTextFile(const std::filesystem::path& dir, const std::string& name,
                     std::string_view text) {
  const std::filesystem::path file = dir / name;
  const std::filesystem::path tmp = dir / (name + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    if (!out.good()) return Status::IoError(tmp.string() + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return Status::IoError(file.string() + ": rename failed");
  }
  return Status::Ok();
}

}  // namespace

Status WriteCheckpoint(const std::filesystem::path& dir, const ModelConfig& c,
                       std::span<const OwnedTensor> tensors, int num_shards,
                       std::string_view tokenizer_json) {
  DSV4_RETURN_IF_ERROR(WriteShardedCheckpoint(dir, tensors, num_shards));
  DSV4_RETURN_IF_ERROR(WriteTextFile(dir, "config.json", ModelConfigToJson(c).dump(2) + "\n"));
  if (!tokenizer_json.empty()) {
    DSV4_RETURN_IF_ERROR(WriteTextFile(dir, "tokenizer.json", tokenizer_json));
  }
  return Status::Ok();
}

namespace {

// A generated checkpoint of `c` (kDefaultSeed, c's weight format) in memory, with the tiny
// tokenizer.
Result<Checkpoint> BuiltinModel(std::string name, const ModelConfig& c) {
  Checkpoint m;
  m.name = std::move(name);
  m.config = c;
  DSV4_ASSIGN_OR_RETURN(std::vector<OwnedTensor> tensors, GenerateWeights(m.config, kDefaultSeed));
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<TensorStore> store,
                        TensorStore::Create("built-in " + m.name, std::move(tensors)));
  m.weights = std::move(store);
  DSV4_RETURN_IF_ERROR(VerifyTensors(m.config, *m.weights, &m.drafter, &m.unexpected));
  DSV4_ASSIGN_OR_RETURN(m.tokenizer_json, GenerateTinyTokenizerJson(m.config.vocab_size));
  return m;
}

}  // namespace

Result<Checkpoint> BuiltinDefaultModel() {
  return BuiltinModel(std::string(checkpoint::kDefaultModelName), TinyV4Config());
}

Result<Checkpoint> BuiltinTinyV32Model() {
  return BuiltinModel(std::string(kTinyV32ModelName), checkpoint::TinyV32Config());
}

}  // namespace dsv4::fixtures
