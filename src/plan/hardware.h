// Accelerator presets for the capacity planner (capacity.md §7): HBM capacity (nominal and the
// usable figure software reports), HBM bandwidth, dense tensor throughput and the size of the
// NVLink domain a serving group can span. Pure data; no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace dsv4::plan {

struct Hardware {
  std::string name;           // preset key: "gb300"
  std::string description;    // "NVIDIA GB300 (NVL72)"
  double hbm_nominal_gb = 0;  // decimal GB (10^9 B) per GPU, the datasheet figure
  double hbm_usable_gb = 0;   // what nvidia-smi / MLPerf report; the planning default
  double hbm_bw_tbs = 0;      // HBM bandwidth, TB/s (10^12 B/s)
  double fp8_tflops = 0;      // dense (non-sparse)
  double fp4_tflops = 0;      // dense; 0 when the GPU has no native FP4
  int64_t domain_gpus = 8;    // GPUs in one NVLink domain (72 for an NVL72 rack)
  std::string domain_name;    // "NVL72 rack", "8-GPU node"
  // Scale-up link bandwidth per GPU and direction, GB/s (half the vendor's bidirectional
  // aggregate: NVLink 4 900 -> 450, NVLink 5 1,800 -> 900, MI300X Infinity Fabric 896 -> 448).
  double link_gbs = 0;
};

// Default scale-out bandwidth per GPU and direction across domains: one 400 Gb/s NIC per GPU.
inline constexpr double kDefaultNicGbs = 50;

// Every preset, in the order of capacity.md §7.
const std::vector<Hardware>& HardwareTable();
std::vector<std::string> HardwareNames();
// NotFound listing the valid names for an unknown one.
Result<Hardware> FindHardware(std::string_view name);

// The memory and bandwidth one plan uses, resolved from a preset and the user's overrides.
struct GpuSpec {
  std::string name;      // preset key, or "custom"
  std::string label;     // "gb300 (279 GB usable)" for reports
  double hbm_bytes = 0;  // capacity the plan budgets against
  double hbm_nominal_bytes = 0;
  double bw_bytes_per_s = 0;  // 0: unknown (no bandwidth floor)
  bool native_fp4 = false;
  int64_t domain_gpus = 8;
  std::string domain_name;
  double link_bytes_per_s = 0;  // scale-up, per direction; 0: unknown
  double nic_bytes_per_s = kDefaultNicGbs * 1e9;  // scale-out, per direction
};

// `name` empty means "custom" and needs `hbm_gb`. `nominal` picks the datasheet capacity
// instead of the usable one and conflicts with `hbm_gb`. Overrides must be positive.
Result<GpuSpec> ResolveGpu(std::string_view name, bool nominal, std::optional<double> hbm_gb,
                           std::optional<double> bw_tbs);

}  // namespace dsv4::plan
