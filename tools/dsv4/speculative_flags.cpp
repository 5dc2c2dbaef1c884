#include "speculative_flags.h"

#include <cstdio>

namespace dsv4::cli {

void AddSpeculativeFlags(CLI::App& cmd, SpeculativeFlags* flags) {
  cmd.add_option("--speculative", flags->mode,
                 "Speculative decoding: mtp (April MTP), dspark (0731 / 0813 draft blocks), "
                 "off, or auto (the checkpoint's drafter when this build runs it, paused per "
                 "request while it does not pay)")
      ->check(CLI::IsMember({"auto", "mtp", "dspark", "off"}))
      ->capture_default_str();
  cmd.add_option("--draft-tokens", flags->draft_tokens,
                 "Drafted tokens verified per step and sequence (0: the drafter's maximum)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

void ApplySpeculativeFlags(const SpeculativeFlags& flags, EngineOptions* options) {
  options->speculative = flags.mode == "mtp"      ? SpeculativeMode::kMtp
                         : flags.mode == "dspark" ? SpeculativeMode::kDspark
                         : flags.mode == "off"    ? SpeculativeMode::kOff
                                                  : SpeculativeMode::kAuto;
  options->draft_tokens = flags.draft_tokens;
}

std::string SpeculativeReport(const Engine& engine, const EngineStats& s) {
  std::string out = "speculative: " + engine.speculative_summary();
  if (s.spec_verifications == 0) return out;
  char buf[160];
  std::snprintf(buf, sizeof(buf),
                "; %lld verifications, %lld of %lld drafts accepted (%.1f%%), mean accepted "
                "length %.2f; per position (accepted/drafted):",
                static_cast<long long>(s.spec_verifications),
                static_cast<long long>(s.spec_accepted_tokens),
                static_cast<long long>(s.spec_draft_tokens), 100 * s.spec_acceptance_rate(),
                s.spec_mean_accepted_length());
  out += buf;
  for (size_t i = 0; i < s.spec_drafted_at.size(); ++i) {
    std::snprintf(buf, sizeof(buf), " %lld/%lld", static_cast<long long>(s.spec_accepted_at[i]),
                  static_cast<long long>(s.spec_drafted_at[i]));
    out += buf;
  }
  if (s.spec_paused > 0) {
    std::snprintf(buf, sizeof(buf), "; drafting paused %lld times (it did not pay)",
                  static_cast<long long>(s.spec_paused));
    out += buf;
  }
  return out;
}

}  // namespace dsv4::cli
