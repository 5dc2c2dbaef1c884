// Machine-readable planner output: JSON and CSV renderings of one or more plans. Returns
// strings; the caller writes them (the library does no I/O).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "plan/capacity.h"

namespace dsv4::plan {

// One (model, hardware) case: its plan, or why there is none (e.g. weights do not fit).
struct PlanCase {
  PlanOptions options;
  std::optional<CapacityPlan> plan;
  Status status;  // OK iff plan is set
};
std::vector<PlanCase> PlanAll(const std::vector<PlanOptions>& options);

// "fp8 entries (584 B) + fp4 indexer keys (68 B)" / "fp8 MLA (656 B) + fp8 indexer keys
// (132 B)", with the byte sizes of the model's dimensions.
std::string KvFormatLabel(const PlanOptions& o);

// {"plans": [...], "errors": [{"model", "hardware", "error"}]}; field names in snake_case,
// bytes as integers or doubles, GB fields decimal.
nlohmann::json PlanJson(const CapacityPlan& p);
nlohmann::json PlansJson(const std::vector<PlanCase>& cases);
// One header line, then one row per (case, length), a "mix" row per case with a mix, and a
// row per failed case whose binding column holds the error.
std::string PlansCsv(const std::vector<PlanCase>& cases);

}  // namespace dsv4::plan
