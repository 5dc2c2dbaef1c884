#include "bench_commands.h"
#include "checkpoint/presets.h"
#include "plan/args.h"

namespace dsv4::cli {

Result<std::vector<NamedConfig>> ResolveBenchModels(const std::vector<std::string>& presets,
                                                    const std::vector<std::string>& configs) {
  std::vector<NamedConfig> out;
  std::vector<std::string> names = presets;
  if (presets.empty() && configs.empty()) names = {"v3.2", "v4-pro", "v4-flash"};
  for (const std::string& n : names) {
    DSV4_ASSIGN_OR_RETURN(checkpoint::ModelConfig c, checkpoint::PresetConfig(n));
    out.push_back({n, std::move(c)});
  }
  for (const std::string& p : configs) {
    DSV4_ASSIGN_OR_RETURN(checkpoint::ModelConfig c, checkpoint::LoadModelConfig(p));
    out.push_back({p, std::move(c)});
  }
  return out;
}

Result<std::vector<int64_t>> ParseTokenCounts(const std::vector<std::string>& items,
                                              std::string_view flag) {
  std::vector<int64_t> out;
  for (const std::string& s : items) {
    Result<int64_t> n = plan::ParseTokens(s);
    if (!n.ok()) return Status::InvalidArgument(std::string(flag) + ": " + n.status().message());
    out.push_back(*n);
  }
  if (out.empty()) return Status::InvalidArgument(std::string(flag) + ": no values");
  return out;
}

std::string TokensLabel(int64_t n) {
  if (n >= (1 << 20) && n % (1 << 20) == 0) return std::to_string(n >> 20) + "M";
  if (n >= 1024 && n % 1024 == 0) return std::to_string(n >> 10) + "K";
  return std::to_string(n);
}

int BaselineIndex(const std::vector<NamedConfig>& models) {
  for (size_t i = 0; i < models.size(); ++i) {
    if (models[i].config.arch == checkpoint::Arch::kV32) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace dsv4::cli
