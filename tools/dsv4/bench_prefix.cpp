// `dsv4 bench prefix`: what the prefix cache's disk tier buys at long prefixes. Per length N:
// a cold engine prefills a random N+1-token prompt (its snapshot at N is written to the
// --kv-cache-dir folder at shutdown); a second engine on the same folder (a restart) restores
// the prefix from disk and prefills the one remaining token; the same engine then hits the RAM
// tier. Reported: time to first token of each, the disk restore time alone (read, check,
// copy into pages), the file size and its bytes per token, and whether the three generated
// tokens agree (they must: the restore is bit-exact). --compare-v32 runs every length on the
// built-in tiny V3.2 model too (its snapshots are page references in RAM; its files hold the
// MLA records and indexer keys) and prints the file bytes per token of V4 over V3.2.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "bench_commands.h"
#include "byte_size.h"
#include "core/rng.h"
#include "dsv4/engine.h"
#include "kv_cache_flags.h"
#include "model_arg.h"
#include "runner/loaded_model.h"
#include "table.h"
#include "testing/weight_generator.h"

namespace dsv4::cli {
namespace {

namespace fs = std::filesystem;

struct PrefixOptions {
  std::vector<std::string> lens = {"32K", "128K"};
  int threads = 0;
  std::string kv_budget = "64GiB";
  KvCacheDiskFlags kv_cache;  // default folder: a temporary one, removed afterwards
  bool compare_v32 = false;
  bool json = false;
};

struct PrefixRow {
  std::string model;  // "dsv4-tiny" / "v3.2-tiny"
  int64_t len = 0;
  double cold_ttft_s = 0, disk_ttft_s = 0, disk_restore_s = 0, ram_ttft_s = 0;
  int64_t file_bytes = 0, kv_bytes = 0;
  bool identical = false;
};

// The built-in model (or the built-in tiny V3.2 one) with its context raised to `context`
// (weights unchanged: the tiny models stop at 64K; positions past it only extrapolate RoPE,
// which changes no timing).
ModelFactory BuiltinWithContext(bool v32, int64_t context) {
  return [v32, context]() -> Result<std::unique_ptr<runner::LoadedModel>> {
    DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, v32 ? fixtures::BuiltinTinyV32Model()
                                                         : fixtures::BuiltinDefaultModel());
    ck.config.max_position_embeddings = std::max(ck.config.max_position_embeddings, context);
    return runner::LoadCheckpoint(std::move(ck), v32 ? "the built-in V3.2 model"
                                                     : "the built-in model");
  };
}

// Submits `prompt` for one token; returns it and the seconds to it.
Result<std::pair<int32_t, double>> FirstToken(Engine& e, const std::vector<int32_t>& prompt) {
  GenerationRequest r;
  r.prompt = prompt;
  r.stop.max_new_tokens = 1;
  r.stop.ignore_eos = true;
  DSV4_ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> s, e.Submit(r));
  TokenEvent ev;
  std::pair<int32_t, double> out{-1, 0};
  while (s->Next(&ev)) {
    if (ev.finished) {
      if (ev.reason == FinishReason::kError) return Status::Internal(ev.error);
    } else {
      out = {ev.token, ev.seconds};
    }
  }
  return out;
}

Result<PrefixRow> RunOne(const PrefixOptions& o, const std::string& dir, bool v32, int64_t len) {
  PrefixRow row;
  row.model = v32 ? "v3.2-tiny" : "dsv4-tiny";
  row.len = len;
  EngineOptions eo;
  eo.threads = o.threads;
  DSV4_RETURN_IF_ERROR(ApplyKvCacheDiskFlags(o.kv_cache, &eo));
  // One folder per model and length: the file size read back is this prefix's alone.
  eo.kv_cache_dir = (fs::path(dir) / row.model / std::to_string(len)).string();
  DSV4_ASSIGN_OR_RETURN(eo.kv_budget_bytes, ParseByteSize(o.kv_budget));
  eo.max_num_batched_tokens = 4096;
  eo.prefix_snapshot_interval = len;  // one snapshot: at N
  Rng rng(static_cast<uint64_t>(len));
  std::vector<int32_t> prompt;
  for (int64_t i = 0; i <= len; ++i) prompt.push_back(static_cast<int32_t>(rng.Below(512)));
  const ModelFactory model = BuiltinWithContext(v32, len + 2);
  int32_t cold_token = -1;
  {
    DSV4_ASSIGN_OR_RETURN(std::unique_ptr<Engine> e, Engine::Create(model, eo));
    DSV4_ASSIGN_OR_RETURN(auto cold, FirstToken(*e, prompt));
    cold_token = cold.first;
    row.cold_ttft_s = cold.second;
    row.kv_bytes = e->KvBytesAt(len);
  }  // shutdown writes the snapshot at N to the folder
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<Engine> e, Engine::Create(model, eo));
  const EngineStats at_start = e->Stats();
  if (at_start.prefix_disk_entries == 0) {
    return Status::Internal("no snapshot file was written to " + dir);
  }
  row.file_bytes = at_start.prefix_disk_bytes;
  DSV4_ASSIGN_OR_RETURN(auto disk, FirstToken(*e, prompt));
  const EngineStats after_disk = e->Stats();
  if (after_disk.prefix_disk_hits != 1) return Status::Internal("the restart missed the disk tier");
  row.disk_ttft_s = disk.second;
  row.disk_restore_s = after_disk.prefix_disk_restore_seconds;
  DSV4_ASSIGN_OR_RETURN(auto ram, FirstToken(*e, prompt));
  row.ram_ttft_s = ram.second;
  row.identical = cold_token == disk.first && cold_token == ram.first;
  e->ClearPrefixCache();  // deletes the file
  return row;
}

Status RunBenchPrefix(const PrefixOptions& o) {
  DSV4_ASSIGN_OR_RETURN(std::vector<int64_t> lens, ParseTokenCounts(o.lens, "--lens"));
  for (int64_t n : lens) {
    if (n < 128 || n % 128 != 0) {
      return Status::InvalidArgument("--lens: each length must be a positive multiple of 128, got " +
                                     std::to_string(n));
    }
  }
  const bool temp = o.kv_cache.dir.empty();
  const std::string dir = temp ? (fs::temp_directory_path() /
                                  ("dsv4-bench-prefix-" + std::to_string(::getpid()))).string()
                               : o.kv_cache.dir;
  std::vector<PrefixRow> rows;
  Status status;
  for (int64_t n : lens) {
    for (bool v32 : o.compare_v32 ? std::vector<bool>{true, false} : std::vector<bool>{false}) {
      Result<PrefixRow> r = RunOne(o, dir, v32, n);
      if (!r.ok()) {
        status = r.status();
        break;
      }
      rows.push_back(*r);
      if (!o.json) {
        std::fprintf(stderr, "%s %s done: cold %.2f s, disk restore %.3f s\n",
                     r->model.c_str(), TokensLabel(n).c_str(), r->cold_ttft_s, r->disk_restore_s);
      }
    }
    if (!status.ok()) break;
  }
  if (temp) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  DSV4_RETURN_IF_ERROR(status);
  if (o.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const PrefixRow& r : rows) {
      j.push_back({{"model", r.model},
                   {"prefix_tokens", r.len},
                   {"cold_ttft_s", r.cold_ttft_s},
                   {"disk_ttft_s", r.disk_ttft_s},
                   {"disk_restore_s", r.disk_restore_s},
                   {"ram_ttft_s", r.ram_ttft_s},
                   {"file_bytes", r.file_bytes},
                   {"file_bytes_per_token", double(r.file_bytes) / double(r.len)},
                   {"kv_bytes", r.kv_bytes},
                   {"identical_tokens", r.identical}});
    }
    std::printf("%s\n", j.dump(2).c_str());
    return Status::Ok();
  }
  Table t({"model", "prefix", "re-prefill TTFT", "disk hit TTFT", "disk restore", "RAM hit TTFT",
           "file", "file B/token", "KV pages B/token", "same token"});
  for (const PrefixRow& r : rows) {
    char c[32], d[32], dr[32], ram[32], bpt[32], kvpt[32];
    std::snprintf(c, sizeof c, "%.2f s", r.cold_ttft_s);
    std::snprintf(d, sizeof d, "%.3f s", r.disk_ttft_s);
    std::snprintf(dr, sizeof dr, "%.3f s", r.disk_restore_s);
    std::snprintf(ram, sizeof ram, "%.3f s", r.ram_ttft_s);
    std::snprintf(bpt, sizeof bpt, "%.1f", double(r.file_bytes) / double(r.len));
    std::snprintf(kvpt, sizeof kvpt, "%.1f", double(r.kv_bytes) / double(r.len));
    t.Row({r.model, TokensLabel(r.len), c, d, dr, ram, HumanBytes(double(r.file_bytes)), bpt, kvpt,
           r.identical ? "yes" : "NO"});
  }
  std::printf("built-in tiny model(s), one N+1-token prompt per row, 1 generated token:\n%s",
              t.Render().c_str());
  // Rows come in (V3.2, V4) pairs per length with --compare-v32, as in bench serve.
  for (size_t i = 0; o.compare_v32 && i + 1 < rows.size(); i += 2) {
    std::printf("%s: V4 file bytes / V3.2 file bytes = %.3f\n", TokensLabel(rows[i].len).c_str(),
                double(rows[i + 1].file_bytes) / double(rows[i].file_bytes));
  }
  return Status::Ok();
}

}  // namespace

void RegisterBenchPrefix(CLI::App& bench, int* exit_code) {
  auto o = std::make_shared<PrefixOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "prefix", "Prefix cache disk tier: restore from disk vs re-prefill, bytes per token");
  cmd->add_option("--lens", o->lens, "Prefix lengths, multiples of 128 (e.g. 32K,128K,1M)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "Worker threads (0: all cores)");
  cmd->add_option("--kv-budget", o->kv_budget, "KV cache budget")->capture_default_str();
  AddKvCacheDiskFlags(*cmd, &o->kv_cache);
  cmd->add_flag("--compare-v32", o->compare_v32,
                "Also run each length on the built-in tiny V3.2 model (file bytes ratio)");
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o, exit_code] {
    Status s = RunBenchPrefix(*o);
    if (!s.ok()) *exit_code = ReportError(s);
  });
}

}  // namespace dsv4::cli
