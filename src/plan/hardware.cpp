#include "plan/hardware.h"

#include <cstdio>

namespace dsv4::plan {

const std::vector<Hardware>& HardwareTable() {
  // capacity.md §7. Usable HBM: GB200 186 GB (13.4 TB per rack / 72), GB300 ~279 GB, B200
  // ~179 GB, B300 268 GB (the low end of the 268-270 GB listings; it reproduces §5.1). The
  // others list one figure, used for both. Links: half the vendors' bidirectional figures
  // (NVLink 4 900 GB/s, NVLink 5 1.8 TB/s, MI300X 896 GB/s, MI355X 1,075 GB/s).
  static const std::vector<Hardware> kTable = {
      {"h100", "NVIDIA H100 SXM", 80, 80, 3.35, 1979, 0, 8, "8-GPU node", 450},
      {"h200", "NVIDIA H200 SXM", 141, 141, 4.8, 1979, 0, 8, "8-GPU node", 450},
      {"b200", "NVIDIA B200 (HGX)", 180, 179, 8.0, 4500, 9000, 8, "8-GPU node", 900},
      {"b300", "NVIDIA B300 (HGX)", 288, 268, 8.0, 4500, 13500, 8, "8-GPU node", 900},
      {"gb200", "NVIDIA GB200 (NVL72)", 192, 186, 8.0, 5000, 10000, 72, "NVL72 rack", 900},
      {"gb300", "NVIDIA GB300 (NVL72)", 288, 279, 8.0, 5000, 15000, 72, "NVL72 rack", 900},
      {"mi300x", "AMD Instinct MI300X", 192, 192, 5.3, 2615, 0, 8, "8-GPU node", 448},
      {"mi355x", "AMD Instinct MI355X", 288, 288, 8.0, 5033, 10066, 8, "8-GPU node", 537.6},
  };
  return kTable;
}

std::vector<std::string> HardwareNames() {
  std::vector<std::string> names;
  for (const Hardware& h : HardwareTable()) names.push_back(h.name);
  return names;
}

Result<Hardware> FindHardware(std::string_view name) {
  std::string valid;
  for (const Hardware& h : HardwareTable()) {
    if (h.name == name) return h;
    valid += (valid.empty() ? "" : ", ") + h.name;
  }
  return Status::NotFound("unknown hardware preset '" + std::string(name) + "': expected one of " +
                          valid + " (or --hbm GB and --bw TB/s for a custom GPU)");
}

namespace {

std::string Gb(double gb) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", gb);
  return buf;
}

}  // namespace

Result<GpuSpec> ResolveGpu(std::string_view name, bool nominal, std::optional<double> hbm_gb,
                           std::optional<double> bw_tbs) {
  if (nominal && hbm_gb) {
    return Status::InvalidArgument(
        "conflicting flags: --nominal picks the preset's datasheet HBM, --hbm " + Gb(*hbm_gb) +
        " sets it explicitly; give one");
  }
  if (hbm_gb && !(*hbm_gb > 0)) {
    return Status::InvalidArgument("--hbm must be a positive number of GB, got " + Gb(*hbm_gb));
  }
  if (bw_tbs && !(*bw_tbs > 0)) {
    return Status::InvalidArgument("--bw must be a positive number of TB/s, got " + Gb(*bw_tbs));
  }
  GpuSpec g;
  if (name.empty() || name == "custom") {
    if (!hbm_gb) {
      return Status::InvalidArgument(
          "a custom GPU needs --hbm GB (and --bw TB/s for the bandwidth floor); or pick a "
          "preset");
    }
    if (nominal) return Status::InvalidArgument("--nominal needs a hardware preset");
    g.name = "custom";
    g.hbm_bytes = g.hbm_nominal_bytes = *hbm_gb * 1e9;
    g.bw_bytes_per_s = bw_tbs ? *bw_tbs * 1e12 : 0;
    g.label = "custom (" + Gb(*hbm_gb) + " GB)";
    g.domain_gpus = 8;
    g.domain_name = "8-GPU node";
    g.native_fp4 = true;  // unknown: do not warn
    return g;
  }
  DSV4_ASSIGN_OR_RETURN(Hardware h, FindHardware(name));
  g.name = h.name;
  g.hbm_nominal_bytes = h.hbm_nominal_gb * 1e9;
  g.bw_bytes_per_s = (bw_tbs ? *bw_tbs : h.hbm_bw_tbs) * 1e12;
  g.native_fp4 = h.fp4_tflops > 0;
  g.domain_gpus = h.domain_gpus;
  g.domain_name = h.domain_name;
  g.link_bytes_per_s = h.link_gbs * 1e9;
  if (hbm_gb) {
    g.hbm_bytes = *hbm_gb * 1e9;
    g.label = h.name + " (" + Gb(*hbm_gb) + " GB set by --hbm)";
  } else if (nominal || h.hbm_usable_gb == h.hbm_nominal_gb) {
    g.hbm_bytes = h.hbm_nominal_gb * 1e9;
    g.label = h.name + " (" + Gb(h.hbm_nominal_gb) + " GB" + (nominal ? " nominal)" : ")");
  } else {
    g.hbm_bytes = h.hbm_usable_gb * 1e9;
    g.label = h.name + " (" + Gb(h.hbm_usable_gb) + " GB usable)";
  }
  return g;
}

}  // namespace dsv4::plan
