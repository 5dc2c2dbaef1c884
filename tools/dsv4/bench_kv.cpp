// dsv4 bench kv: the KV bytes of one sequence of V3.2, V4-Pro and V4-Flash (or any config) at
// context lengths up to 1M, measured from the engine's real caches (bench/kv_measure.h), by
// component, with the V4/V3.2 ratios. A subset of layers is allocated for real and scaled by
// layer type; the output says so.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/kv_measure.h"
#include "bench_commands.h"
#include "kv/layout.h"
#include "model_arg.h"
#include "table.h"

namespace dsv4::cli {
namespace {

struct KvOptions {
  std::vector<std::string> models, configs;
  std::vector<std::string> lengths = {"8K", "32K", "128K", "512K", "1M"};
  int64_t layers = 0;
  bool json = false;
};

std::string Percent(double f) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f%%", 100.0 * f);
  return buf;
}

// The spec §13.2 basis: growing entries plus window rings, compressor state left out.
int64_t RatioBasis(const bench::KvPoint& p) { return p.growing_bytes() + p.window_bytes(); }

int64_t PhysicalMemory() {
  return static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) *
         static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

std::string FormatsLine() {
  return "formats: V4 entries 584 B (448 E4M3 + 7 E8M0 + 64 BF16 + pad) and FP4 indexer keys "
         "68 B, in pages of 64 entries (window rings: 16 rows); FP32 compressor state, one page "
         "per layer. V3.2 MLA records 656 B (512 E4M3 + 4 FP32 scales + 64 BF16) and FP8 "
         "indexer keys 132 B, in contiguous per-layer arrays (no page rounding). Sizes are "
         "those of the real presets; tiny or custom configs scale them.";
}

nlohmann::json ToJson(const std::vector<bench::KvReport>& reports, int base) {
  nlohmann::json models = nlohmann::json::array();
  for (const bench::KvReport& r : reports) {
    nlohmann::json points = nlohmann::json::array();
    for (size_t i = 0; i < r.points.size(); ++i) {
      const bench::KvPoint& p = r.points[i];
      nlohmann::json comps = nlohmann::json::array();
      for (const auto& c : p.components) {
        comps.push_back({{"name", c.name},
                         {"fixed", c.fixed},
                         {"layers", c.layers},
                         {"bytes_per_entry", c.entry_bytes},
                         {"entries_per_layer", c.entries},
                         {"exact_bytes", c.exact_bytes},
                         {"pages", c.pages},
                         {"page_bytes", c.page_bytes}});
      }
      nlohmann::json pj = {{"tokens", p.num_tokens},
                           {"components", comps},
                           {"growing_bytes", p.growing_bytes()},
                           {"window_bytes", p.window_bytes()},
                           {"compressor_state_bytes", p.state_bytes()},
                           {"exact_bytes", p.exact_bytes()},
                           {"page_bytes", p.page_bytes()},
                           {"subset_usage_bytes", p.subset_usage_bytes},
                           {"subset_manager_bytes", p.subset_manager_bytes},
                           {"fill_seconds", p.fill_seconds}};
      if (base >= 0) {
        const bench::KvPoint& b = reports[static_cast<size_t>(base)].points[i];
        pj["vs_v32"] = double(RatioBasis(p)) / double(b.exact_bytes());
        pj["vs_v32_with_state"] = double(p.exact_bytes()) / double(b.exact_bytes());
      }
      points.push_back(pj);
    }
    models.push_back({{"model", r.label},
                      {"architecture", std::string(checkpoint::ArchName(r.config.arch))},
                      {"layers", r.config.num_hidden_layers},
                      {"measured", r.subset.Describe(r.config.num_hidden_layers)},
                      {"scaled_by_layer_type", r.subset.scaled()},
                      {"paged", r.paged},
                      {"points", points}});
  }
  return {{"what", "KV bytes per sequence measured from the engine's caches"},
          {"formats", FormatsLine()},
          {"ratio_basis",
           "vs_v32: (growing entries + window rings) / V3.2 total, as spec "
           "13.2; vs_v32_with_state adds the compressor state"},
          {"models", models}};
}

// One model's table: a column per component (bytes held by entries), then the totals.
void PrintComponents(const bench::KvReport& r) {
  // Columns from the longest length, which holds every component, in page-layout order.
  const bench::KvPoint* longest = &r.points.front();
  for (const auto& p : r.points) {
    if (p.num_tokens > longest->num_tokens) longest = &p;
  }
  std::vector<std::string> names;
  for (const auto& c : longest->components) names.push_back(c.name);
  std::vector<std::string> header = {"tokens"};
  header.insert(header.end(), names.begin(), names.end());
  header.insert(header.end(),
                {"entries total", r.paged ? "pages total" : "held (contiguous)", "page rounding"});
  Table t(header);
  for (const auto& p : r.points) {
    std::vector<std::string> row = {TokensLabel(p.num_tokens)};
    for (const std::string& name : names) {
      std::string cell = "-";
      for (const auto& c : p.components) {
        if (c.name == name) cell = HumanBytes(double(c.exact_bytes));
      }
      row.push_back(cell);
    }
    row.push_back(HumanBytes(double(p.exact_bytes())));
    row.push_back(HumanBytes(double(p.page_bytes())));
    row.push_back(WithCommas(p.page_bytes() - p.exact_bytes()) + " B");
    t.Row(std::move(row));
  }
  std::printf("\n%s: bytes held by entries, by component (full stack)\n%s", r.label.c_str(),
              t.Render().c_str());
}

void PrintText(const std::vector<bench::KvReport>& reports, int base) {
  std::printf("KV cache per sequence, measured from the engine's caches (dsv4 bench kv)\n%s\n",
              FormatsLine().c_str());
  for (const bench::KvReport& r : reports) {
    double secs = 0;
    for (const auto& p : r.points) secs += p.fill_seconds;
    std::printf("%s: allocated %s for real%s; filled in %.1f s\n", r.label.c_str(),
                r.subset.Describe(r.config.num_hidden_layers).c_str(),
                r.subset.scaled() ? ", bytes scaled to the full stack by layer type" : "", secs);
  }
  for (const bench::KvReport& r : reports) PrintComponents(r);
  std::vector<std::string> sh = {"model",        "tokens",           "growing (exact B)",
                                 "window rings", "compressor state", "total (pages)"};
  if (base >= 0) sh.insert(sh.end(), {"vs V3.2", "vs V3.2 with state"});
  Table s(sh);
  for (size_t i = 0; i < reports.front().points.size(); ++i) {
    for (const bench::KvReport& r : reports) {
      const bench::KvPoint& p = r.points[i];
      std::vector<std::string> row = {r.label,
                                      TokensLabel(p.num_tokens),
                                      WithCommas(p.growing_bytes()),
                                      p.window_bytes() ? HumanBytes(double(p.window_bytes())) : "-",
                                      p.state_bytes() ? HumanBytes(double(p.state_bytes())) : "-",
                                      HumanBytes(double(p.page_bytes()))};
      if (base >= 0) {
        const double b = double(reports[static_cast<size_t>(base)].points[i].exact_bytes());
        row.push_back(Percent(double(RatioBasis(p)) / b));
        row.push_back(Percent(double(p.exact_bytes()) / b));
      }
      s.Row(std::move(row));
    }
  }
  std::printf(
      "\nsummary: growing = compressed entries, indexer keys, MLA records; fixed = window "
      "rings + compressor state\n%s",
      s.Render().c_str());
  if (base >= 0) {
    std::printf(
        "vs V3.2 = (growing + window rings) / V3.2 total, the spec 13.2 basis; \"with "
        "state\" adds the compressor state. V3.2 supports 163,840 positions: longer V3.2 "
        "lengths extrapolate its format.\n");
  }
}

Status RunKv(const KvOptions& o) {
  DSV4_ASSIGN_OR_RETURN(std::vector<NamedConfig> models, ResolveBenchModels(o.models, o.configs));
  bench::KvMeasureOptions mo;
  DSV4_ASSIGN_OR_RETURN(mo.lengths, ParseTokenCounts(o.lengths, "--lengths"));
  mo.num_layers = o.layers;
  mo.max_bytes = PhysicalMemory() / 10 * 6;
  std::vector<bench::KvReport> reports;
  for (const NamedConfig& m : models) {
    DSV4_ASSIGN_OR_RETURN(bench::KvReport r, bench::MeasureKv(m.config, m.label, mo));
    reports.push_back(std::move(r));
  }
  const int base = BaselineIndex(models);
  if (o.json) {
    std::printf("%s\n", ToJson(reports, base).dump(2).c_str());
  } else {
    PrintText(reports, base);
  }
  return Status::Ok();
}

}  // namespace

void RegisterBenchKv(CLI::App& bench, int* exit_code) {
  auto o = std::make_shared<KvOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "kv", "KV bytes per sequence measured from the engine's caches, by component, V4 vs V3.2");
  cmd->add_option("--models", o->models, "Presets, comma-separated (default: v3.2,v4-pro,v4-flash)")
      ->delimiter(',');
  cmd->add_option("--config", o->configs, "config.json files or checkpoint folders (repeatable)");
  cmd->add_option("--lengths", o->lengths, "Tokens per sequence, comma-separated (1M = 2^20)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--layers", o->layers,
                  "Layers allocated for real per model (default: one per layer type; the rest "
                  "scaled by layer type)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o, exit_code] {
    Status s = RunKv(*o);
    if (!s.ok()) *exit_code = ReportError(s);
  });
}

}  // namespace dsv4::cli
