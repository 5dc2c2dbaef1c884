// SVG line plot of max concurrent requests per GPU against context length (log-log axes),
// one line per planned (model, hardware) case, for `dsv4 plan --svg FILE`. Returns the
// document as a string; the caller writes it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "plan/report.h"

namespace dsv4::plan {

struct SvgOptions {
  int64_t min_tokens = 0;  // 0: min(4K, shortest planned length), rounded down to 2^k
  int64_t max_tokens = 0;  // 0: max(1M, longest planned length), rounded up to 2^k
  int points_per_octave = 4;
  std::string title = "Max concurrent requests per GPU vs context length";
};

// One (tokens, requests per GPU) sample of a case; requests at full length each.
struct SvgPoint {
  int64_t tokens = 0;
  double requests_per_gpu = 0;
};
std::vector<SvgPoint> ConcurrencyCurve(const CapacityPlan& p, const std::vector<int64_t>& xs);
// The x samples: powers of 2^(1/points_per_octave) between the bounds, plus the planned lengths.
std::vector<int64_t> CurveTokens(const std::vector<PlanCase>& cases, const SvgOptions& o);

// Cases without a plan are listed in the legend as "weights do not fit". A case whose count
// drops to 0 ends its line there.
std::string RenderSvg(const std::vector<PlanCase>& cases, const SvgOptions& o = {});

}  // namespace dsv4::plan
