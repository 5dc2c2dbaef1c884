#include "dist/expert_map.h"

#include <charconv>

#include "core/file_read.h"

namespace dsv4::dist {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool ParseInt(std::string_view s, int64_t* v) {
  s = Trim(s);
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

Result<ExpertMap> ExpertMap::Contiguous(int64_t num_experts, int num_ranks) {
  if (num_ranks < 1 || num_ranks > num_experts) {
    return Status::InvalidArgument("expert parallelism over " + std::to_string(num_ranks) +
                                   " ranks: expected 1 to the model's " +
                                   std::to_string(num_experts) + " routed experts");
  }
  ExpertMap m;
  m.num_ranks_ = num_ranks;
  m.owner_.resize(static_cast<size_t>(num_experts));
  for (int r = 0; r < num_ranks; ++r) {
    const int64_t begin = r * num_experts / num_ranks, end = (r + 1) * num_experts / num_ranks;
    for (int64_t e = begin; e < end; ++e) m.owner_[static_cast<size_t>(e)] = r;
  }
  return m;
}

Result<ExpertMap> ExpertMap::Parse(std::string_view text, const std::string& label,
                                   int64_t num_experts, int num_ranks) {
  if (num_ranks < 1) return Status::InvalidArgument(label + ": expected at least one rank");
  ExpertMap m;
  m.num_ranks_ = num_ranks;
  m.owner_.assign(static_cast<size_t>(num_experts), -1);
  std::vector<bool> rank_seen(static_cast<size_t>(num_ranks), false);
  int64_t line_no = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    const std::string where = label + " line " + std::to_string(line_no);
    if (const size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = Trim(line);
    if (line.empty()) continue;
    const size_t colon = line.find(':');
    int64_t rank = -1;
    if (colon == std::string_view::npos || !ParseInt(line.substr(0, colon), &rank)) {
      return Status::InvalidArgument(where + ": expected \"<rank>: <experts>\", got \"" +
                                     std::string(line) + "\"");
    }
    if (rank < 0 || rank >= num_ranks) {
      return Status::InvalidArgument(where + ": rank " + std::to_string(rank) + ", expected 0.." +
                                     std::to_string(num_ranks - 1));
    }
    if (rank_seen[static_cast<size_t>(rank)]) {
      return Status::InvalidArgument(where + ": rank " + std::to_string(rank) + " listed twice");
    }
    rank_seen[static_cast<size_t>(rank)] = true;
    std::string_view items = line.substr(colon + 1);
    while (!items.empty()) {
      const size_t sep = items.find_first_of(", \t");
      const std::string_view item = items.substr(0, sep);
      items = sep == std::string_view::npos ? std::string_view() : items.substr(sep + 1);
      if (Trim(item).empty()) continue;
      int64_t lo = 0, hi = 0;
      const size_t dash = item.find('-');
      const bool ok = dash == std::string_view::npos
                          ? ParseInt(item, &lo) && ParseInt(item, &hi)
                          : ParseInt(item.substr(0, dash), &lo) && ParseInt(item.substr(dash + 1), &hi);
      if (!ok || lo > hi) {
        return Status::InvalidArgument(where + ": \"" + std::string(item) +
                                       "\" is not an expert id or a range a-b");
      }
      for (int64_t e = lo; e <= hi; ++e) {
        if (e < 0 || e >= num_experts) {
          return Status::InvalidArgument(where + ": expert " + std::to_string(e) +
                                         ", expected 0.." + std::to_string(num_experts - 1));
        }
        if (m.owner_[static_cast<size_t>(e)] >= 0) {
          return Status::InvalidArgument(where + ": expert " + std::to_string(e) +
                                         " already held by rank " +
                                         std::to_string(m.owner_[static_cast<size_t>(e)]));
        }
        m.owner_[static_cast<size_t>(e)] = static_cast<int32_t>(rank);
      }
    }
  }
  for (int64_t e = 0; e < num_experts; ++e) {
    if (m.owner_[static_cast<size_t>(e)] < 0) {
      return Status::InvalidArgument(label + ": expert " + std::to_string(e) +
                                     " is held by no rank (every expert 0.." +
                                     std::to_string(num_experts - 1) + " must be listed once)");
    }
  }
  return m;
}

Result<ExpertMap> ExpertMap::ReadFile(const std::string& path, int64_t num_experts,
                                      int num_ranks) {
  DSV4_ASSIGN_OR_RETURN(std::string text, ReadFileLimited(path, 16ull << 20, "expert map"));
  return Parse(text, path, num_experts, num_ranks);
}

int64_t ExpertMap::count(int rank) const {
  int64_t n = 0;
  for (int32_t o : owner_) n += o == rank ? 1 : 0;
  return n;
}

std::string ExpertMap::Describe(int rank) const {
  std::string s;
  const int64_t E = num_experts();
  for (int64_t e = 0; e < E;) {
    if (owner(e) != rank) {
      ++e;
      continue;
    }
    int64_t end = e;
    while (end + 1 < E && owner(end + 1) == rank) ++end;
    s += (s.empty() ? "" : ", ") + std::to_string(e) + (end > e ? "-" + std::to_string(end) : "");
    e = end + 1;
  }
  return "experts " + (s.empty() ? std::string("none") : s) + " of " + std::to_string(E);
}

}  // namespace dsv4::dist
