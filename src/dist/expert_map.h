// Which rank holds each routed expert under expert parallelism: the same assignment for every
// MoE layer (and the drafter's). Contiguous ranges by default; any assignment from a map file
// (`--expert-map`), e.g. to balance measured expert loads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace dsv4::dist {

class ExpertMap {
 public:
  // One process holding every expert.
  ExpertMap() = default;

  // Rank r holds experts [r*E/N, (r+1)*E/N) (range sizes differ by at most one).
  // InvalidArgument when num_ranks < 1 or more ranks than experts.
  static Result<ExpertMap> Contiguous(int64_t num_experts, int num_ranks);
  // A map file's text: lines "<rank>: <experts>" where experts are ids and ranges "a-b"
  // separated by commas or spaces; '#' starts a comment; blank lines are skipped. Every
  // expert 0..E-1 exactly once, every rank in 0..N-1 at most once (a rank not listed holds
  // none). InvalidArgument naming `label`, the line and what is wrong.
  static Result<ExpertMap> Parse(std::string_view text, const std::string& label,
                                 int64_t num_experts, int num_ranks);
  // Parse of the file at `path` (ReadFileLimited's errors when it cannot be read).
  static Result<ExpertMap> ReadFile(const std::string& path, int64_t num_experts, int num_ranks);

  int num_ranks() const { return num_ranks_; }
  int64_t num_experts() const { return static_cast<int64_t>(owner_.size()); }
  // The rank holding expert e, for e in [0, num_experts()).
  int owner(int64_t e) const { return owner_[static_cast<size_t>(e)]; }
  const std::vector<int32_t>& owners() const { return owner_; }
  // How many experts `rank` holds.
  int64_t count(int rank) const;
  // "experts 0-3, 6 of 8" for `rank`.
  std::string Describe(int rank) const;

 private:
  std::vector<int32_t> owner_;  // [E]
  int num_ranks_ = 1;
};

}  // namespace dsv4::dist
