// The JSON form of `dsv4 bench decode` (its --json output): the measured reports, the machine
// figures they are set against (STREAM-style bandwidth; roofline limits and the bound per
// layer type and per token), and the V4 / V3.2 ratios.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "bench/decode_cost.h"
#include "bench/roofline.h"
#include "kernels/cpu/isa.h"

namespace dsv4::bench {

// What one run measured besides the reports.
struct DecodeRunInfo {
  int threads = 0;
  int64_t iters = 0;  // timed tokens per depth
  Bandwidth bandwidth{};
  MachineLimits limits{};  // those DecodeOptions::limits held
  Peak peak = Peak::kFma;
  kernels::Isa isa = kernels::Isa::kScalar;  // the kernels' ISA
  int baseline = -1;  // index of the V3.2 report the others are compared with; -1: none
};

// Every report's points in the order of DecodeOptions::depths; with a baseline, every report
// has as many points as it.
nlohmann::json DecodeJson(const std::vector<DecodeReport>& reports, const DecodeRunInfo& run);

}  // namespace dsv4::bench
