// dsv4 make-tiny: writes a complete tiny checkpoint in the official layout.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "commands.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/presets.h"
#include "testing/tokenizer_generator.h"
#include "testing/weight_generator.h"
#include "model_arg.h"

namespace dsv4::cli {
namespace {

struct MakeTinyOptions {
  std::string arch = "v4";
  std::string out;
  std::string weights = "fp8";
  uint64_t seed = fixtures::kDefaultSeed;
  int shards = 2;
  std::string config;  // optional config.json to generate for instead of the tiny preset
  std::string layout;  // "april" | "0731" | "none"; empty: the drafter the config declares
  std::string experts = "mxfp4";  // V4 main-layer routed experts: "mxfp4" | "nvfp4"
};

// The drafter of a --layout name (checked by CLI::IsMember).
checkpoint::DraftFamily LayoutFamily(const std::string& layout) {
  if (layout == "0731") return checkpoint::DraftFamily::kDspark;
  return layout == "none" ? checkpoint::DraftFamily::kNone : checkpoint::DraftFamily::kMtp;
}

Status MakeTiny(const MakeTinyOptions& o) {
  checkpoint::ModelConfig c;
  if (!o.config.empty()) {
    DSV4_ASSIGN_OR_RETURN(c, checkpoint::LoadModelConfig(o.config));
  } else {
    c = o.arch == "v4" ? checkpoint::TinyV4Config() : checkpoint::TinyV32Config();
  }
  c.weight_format = o.weights == "fp8" ? checkpoint::WeightFormat::kFp8 : checkpoint::WeightFormat::kBf16;
  if (!o.layout.empty()) {
    if (c.arch != checkpoint::Arch::kV4) {
      return Status::InvalidArgument("--layout " + o.layout +
                                     " is a DeepSeek-V4 release layout; the config is " +
                                     std::string(checkpoint::ArchName(c.arch)));
    }
    c = checkpoint::WithDrafter(std::move(c), LayoutFamily(o.layout));
  }
  fixtures::GeneratorOptions gen{.seed = o.seed};
  if (o.experts == "nvfp4") {
    if (c.arch != checkpoint::Arch::kV4 || c.weight_format != checkpoint::WeightFormat::kFp8) {
      return Status::InvalidArgument("--experts nvfp4 needs a DeepSeek-V4 config with --weights "
                                     "fp8 (NVFP4 replaces the MXFP4 routed experts)");
    }
    gen.nvfp4_experts = true;
    c = fixtures::Nvfp4Config(std::move(c));
  }
  namespace fs = std::filesystem;
  const fs::path out(o.out);
  std::error_code ec;
  if (fs::exists(out, ec) && !(fs::is_directory(out, ec) && fs::is_empty(out, ec))) {
    return Status::InvalidArgument("--out " + o.out +
                                   " already exists and is not an empty folder; choose a new one");
  }
  DSV4_ASSIGN_OR_RETURN(std::vector<checkpoint::OwnedTensor> tensors, fixtures::GenerateWeights(c, gen));
  // Build the checkpoint beside the target and move it into place at the end, so a failure
  // never leaves a partial checkpoint under the requested name.
  fs::path staging = out;
  staging += ".partial-" + std::to_string(::getpid());
  fs::remove_all(staging, ec);
  // A real tokenizer.json for the tiny vocabulary, so text commands work on the result; a
  // config whose vocabulary cannot hold the byte alphabet gets none (token ids still work).
  Result<std::string> tokenizer = fixtures::GenerateTinyTokenizerJson(c.vocab_size);
  const std::string tokenizer_json = tokenizer.ok() ? *tokenizer : std::string();
  Status s = fixtures::WriteCheckpoint(staging, c, tensors, o.shards, tokenizer_json);
  if (s.ok()) {
    if (fs::exists(out, ec)) fs::remove(out, ec);  // the empty folder checked above
    fs::rename(staging, out, ec);
    if (ec) s = Status::IoError(o.out + ": cannot move the checkpoint into place: " + ec.message());
  }
  if (!s.ok()) fs::remove_all(staging, ec);
  DSV4_RETURN_IF_ERROR(s);
  uint64_t bytes = 0;
  for (const auto& t : tensors) bytes += t.data.size();
  std::printf("wrote %s: %s, %s weights, %s routed experts, drafter %s, %zu tensors, %llu bytes in %d shards "
              "(seed %llu)\n",
              o.out.c_str(), std::string(checkpoint::ArchName(c.arch)).c_str(), o.weights.c_str(),
              o.experts.c_str(), checkpoint::DescribeDrafter(c, c.draft_family()).c_str(), tensors.size(),
              static_cast<unsigned long long>(bytes), o.shards,
              static_cast<unsigned long long>(o.seed));
  if (tokenizer_json.empty()) {
    std::printf("no tokenizer.json: %s\n", tokenizer.status().message().c_str());
  } else {
    std::printf("wrote %s/tokenizer.json: byte-level BPE, vocab_size %lld\n", o.out.c_str(),
                static_cast<long long>(c.vocab_size));
  }
  return Status::Ok();
}

}  // namespace

void RegisterMakeTiny(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<MakeTinyOptions>();
  CLI::App* cmd = app.add_subcommand(
      "make-tiny", "Write a tiny random checkpoint in the official layout (tests, demos)");
  cmd->add_option("--arch", opts->arch, "Architecture")
      ->check(CLI::IsMember({"v4", "v3.2"}))
      ->capture_default_str();
  cmd->add_option("--out", opts->out, "Output folder (new or empty)")->required();
  cmd->add_option("--weights", opts->weights, "Weight storage: fp8 (official) or bf16 (exact "
                  "dequantised values of the fp8 variant)")
      ->check(CLI::IsMember({"fp8", "bf16"}))
      ->capture_default_str();
  cmd->add_option("--seed", opts->seed, "Random seed")->capture_default_str();
  cmd->add_option("--shards", opts->shards, "Number of safetensors shards")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--config", opts->config,
                  "Generate for this config.json instead of the tiny preset of --arch");
  cmd->add_option("--layout", opts->layout,
                  "V4 release layout of the drafter, same main model for the same seed: april "
                  "(one MTP layer), 0731 (the V4-Flash-0731 / V4-Pro-0813 DSpark draft blocks) "
                  "or none (no draft tensors); default: as the config declares (tiny: april)")
      ->check(CLI::IsMember({"april", "0731", "none"}));
  cmd->add_option("--experts", opts->experts,
                  "V4 main-layer routed experts: mxfp4 (official) or nvfp4 (NVIDIA's layout, "
                  "the lossless transcode of the same values; draft blocks stay MXFP4)")
      ->capture_default_str()
      ->check(CLI::IsMember({"mxfp4", "nvfp4"}));
  cmd->callback([opts, exit_code] {
    Status s = MakeTiny(*opts);
    if (!s.ok()) *exit_code = ReportError(s);
  });
}

}  // namespace dsv4::cli
