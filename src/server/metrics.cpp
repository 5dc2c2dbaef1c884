#include "server/metrics.h"

#include <algorithm>
#include <charconv>

namespace dsv4::server {
namespace {

// Shortest text that reads back as the same double ("0.005", "1e-05", "42").
std::string Num(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

void Header(std::string* out, std::string_view name, std::string_view type,
            std::string_view help) {
  *out += "# HELP ";
  *out += name;
  *out += ' ';
  *out += help;
  *out += "\n# TYPE ";
  *out += name;
  *out += ' ';
  *out += type;
  *out += '\n';
}

void Sample(std::string* out, std::string_view name, std::string_view labels, double v) {
  *out += name;
  if (!labels.empty()) {
    *out += '{';
    *out += labels;
    *out += '}';
  }
  *out += ' ';
  *out += Num(v);
  *out += '\n';
}

// Data-parallel serving: one sample per rank of each per-rank series (nothing without it).
void RenderRanks(const std::vector<EngineRankStats>& ranks, std::string* out);

void One(std::string* out, std::string_view name, std::string_view type, std::string_view help,
         double v) {
  Header(out, name, type, help);
  Sample(out, name, "", v);
}

constexpr std::string_view kApiPaths[] = {"/v1/completions", "/v1/chat/completions",
                                          "/v1/models", "/health", "/metrics", "/tokenize",
                                          "/detokenize", "/apply-template"};

}  // namespace

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double v) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  ++counts_[i];  // le is inclusive: v == bound lands in that bucket
  sum_ += v;
  ++count_;
}

void Histogram::Render(std::string_view name, std::string* out) const {
  const std::string bucket = std::string(name) + "_bucket";
  int64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < bounds_.size() ? Num(bounds_[i]) : "+Inf";
    Sample(out, bucket, "le=\"" + le + "\"", static_cast<double>(cumulative));
  }
  Sample(out, std::string(name) + "_sum", "", sum_);
  Sample(out, std::string(name) + "_count", "", static_cast<double>(count_));
}

ServerMetrics::ServerMetrics()
    : ttft_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      tpot_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}) {}

void ServerMetrics::CountRequest(std::string_view path, int status) {
  std::string endpoint = "other";
  for (std::string_view p : kApiPaths) {
    if (path == p) endpoint = std::string(p);
  }
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{endpoint, status}];
}

void ServerMetrics::CountGeneration(int64_t prompt_tokens, int64_t completion_tokens,
                                    double ttft_s, double tpot_s) {
  std::lock_guard<std::mutex> lock(mu_);
  ++generations_;
  prompt_tokens_ += prompt_tokens;
  completion_tokens_ += completion_tokens;
  if (ttft_s >= 0) ttft_.Observe(ttft_s);
  if (tpot_s >= 0) tpot_.Observe(tpot_s);
}

void ServerMetrics::CountAbortedStream() {
  std::lock_guard<std::mutex> lock(mu_);
  ++aborted_streams_;
}

void ServerMetrics::CountAbandonedRequest() {
  std::lock_guard<std::mutex> lock(mu_);
  ++abandoned_requests_;
}

std::string ServerMetrics::Render(const EngineStats* e, std::string_view model, bool ready,
                                  int64_t in_flight, const http::HttpStats& h) const {
  std::string out;
  Header(&out, "dsv4_model_ready", "gauge", "1 once the model is loaded and serving.");
  Sample(&out, "dsv4_model_ready", "model=\"" + EscapeLabelValue(model) + "\"", ready ? 1 : 0);
  {
    std::lock_guard<std::mutex> lock(mu_);
    Header(&out, "dsv4_http_requests_total", "counter",
           "HTTP requests answered, by endpoint and status code.");
    for (const auto& [key, n] : requests_) {
      Sample(&out, "dsv4_http_requests_total",
             "endpoint=\"" + EscapeLabelValue(key.first) + "\",status=\"" +
                 std::to_string(key.second) + "\"",
             static_cast<double>(n));
    }
    One(&out, "dsv4_generations_total", "counter", "Generation requests that ran to an end.",
        static_cast<double>(generations_));
    One(&out, "dsv4_streams_aborted_total", "counter",
        "Streamed responses cut off (client gone, write timeout, shutdown); each cancelled "
        "its request.",
        static_cast<double>(aborted_streams_));
    One(&out, "dsv4_requests_abandoned_total", "counter",
        "Non-streaming requests whose client went away before the answer; each was cancelled.",
        static_cast<double>(abandoned_requests_));
    One(&out, "dsv4_prompt_tokens_total", "counter", "Prompt tokens of finished requests.",
        static_cast<double>(prompt_tokens_));
    One(&out, "dsv4_generation_tokens_total", "counter", "Tokens generated for clients.",
        static_cast<double>(completion_tokens_));
    Header(&out, "dsv4_time_to_first_token_seconds", "histogram",
           "From submission to the first generated token.");
    ttft_.Render("dsv4_time_to_first_token_seconds", &out);
    Header(&out, "dsv4_time_per_output_token_seconds", "histogram",
           "Mean time between generated tokens of a request, after the first.");
    tpot_.Render("dsv4_time_per_output_token_seconds", &out);
  }
  One(&out, "dsv4_http_connections_open", "gauge",
      "Client connections open (reading, in a handler, or idle keep-alive).",
      static_cast<double>(h.open_connections));
  One(&out, "dsv4_http_connections_total", "counter", "Client connections accepted.",
      static_cast<double>(h.connections_total));
  One(&out, "dsv4_http_connections_refused_total", "counter",
      "Connections closed at once with 503: --max-connections were open.",
      static_cast<double>(h.connections_refused));
  One(&out, "dsv4_http_read_timeouts_total", "counter",
      "Requests whose head or body did not arrive in time (408).",
      static_cast<double>(h.read_timeouts));
  One(&out, "dsv4_http_malformed_requests_total", "counter",
      "Requests the HTTP layer refused as malformed or over a size limit.",
      static_cast<double>(h.malformed_requests));
  One(&out, "dsv4_requests_in_flight", "gauge",
      "Generation requests the server holds (queued in the engine or running).",
      static_cast<double>(in_flight));
  if (e == nullptr) return out;
  One(&out, "dsv4_requests_running", "gauge", "Sequences the engine is running.",
      static_cast<double>(e->running));
  One(&out, "dsv4_requests_waiting", "gauge", "Requests queued in the engine, not yet admitted.",
      static_cast<double>(e->waiting));
  One(&out, "dsv4_engine_requests_finished_total", "counter", "Requests the engine finished.",
      static_cast<double>(e->finished));
  One(&out, "dsv4_preemptions_total", "counter",
      "Sequences preempted (pages freed, recomputed later) to make room.",
      static_cast<double>(e->preemptions));
  One(&out, "dsv4_engine_steps_total", "counter", "Engine steps (forward passes).",
      static_cast<double>(e->steps));
  One(&out, "dsv4_engine_prompt_tokens_computed_total", "counter",
      "Prompt tokens computed, recomputation after preemption included.",
      static_cast<double>(e->prompt_tokens));
  One(&out, "dsv4_prefix_cache_hits_total", "counter",
      "Requests that continued from a cached prompt prefix.",
      static_cast<double>(e->prefix_hits));
  One(&out, "dsv4_prefix_cache_hit_tokens_total", "counter",
      "Prompt tokens not recomputed thanks to cached prefixes.",
      static_cast<double>(e->prefix_hit_tokens));
  One(&out, "dsv4_prefix_cache_entries", "gauge", "Cached prompt prefixes.",
      static_cast<double>(e->prefix_cache_entries));
  // Per tier (RAM: snapshots in KV pages; disk: files under --kv-cache-dir).
  auto tiers = [&](const char* name, const char* type, const char* help, double ram, double disk) {
    Header(&out, name, type, help);
    Sample(&out, name, "tier=\"ram\"", ram);
    Sample(&out, name, "tier=\"disk\"", disk);
  };
  tiers("dsv4_prefix_cache_tier_hits_total", "counter",
        "Requests that continued from a cached prefix, by the tier it came from.",
        static_cast<double>(e->prefix_ram_hits), static_cast<double>(e->prefix_disk_hits));
  tiers("dsv4_prefix_cache_tier_hit_tokens_total", "counter",
        "Prompt tokens restored from a cached prefix, by tier.",
        static_cast<double>(e->prefix_ram_hit_tokens),
        static_cast<double>(e->prefix_disk_hit_tokens));
  tiers("dsv4_prefix_cache_tier_restore_seconds_total", "counter",
        "Time spent restoring cached prefixes, by tier (disk: read, check, copy into pages).",
        e->prefix_ram_restore_seconds, e->prefix_disk_restore_seconds);
  tiers("dsv4_prefix_cache_tier_bytes", "gauge",
        "Bytes the cached prefixes hold, by tier (RAM: pages they own alone; disk: files).",
        static_cast<double>(e->prefix_ram_bytes), static_cast<double>(e->prefix_disk_bytes));
  One(&out, "dsv4_prefix_cache_draft_state_bytes", "gauge",
      "Heap bytes the RAM tier's cached prefixes keep of the drafter's state (speculative "
      "decoding; the disk tier's files hold it too, in their bytes).",
      static_cast<double>(e->prefix_ram_draft_bytes));
  One(&out, "dsv4_prefix_cache_disk_entries", "gauge", "Cached prefixes in files.",
      static_cast<double>(e->prefix_disk_entries));
  One(&out, "dsv4_prefix_cache_disk_written_bytes_total", "counter",
      "Bytes of prefix snapshots written to disk.",
      static_cast<double>(e->prefix_disk_written_bytes));
  One(&out, "dsv4_prefix_cache_disk_read_bytes_total", "counter",
      "Bytes of prefix snapshots read back from disk.",
      static_cast<double>(e->prefix_disk_read_bytes));
  One(&out, "dsv4_prefix_cache_disk_rejected_files_total", "counter",
      "Snapshot files skipped as truncated, corrupt, of another model or version.",
      static_cast<double>(e->prefix_disk_rejected_files));
  One(&out, "dsv4_prefix_cache_disk_storing", "gauge",
      "1 while the disk tier writes snapshots; 0 without one or after a write failed.",
      e->prefix_disk_storing ? 1.0 : 0.0);
  One(&out, "dsv4_prefix_cache_turn_snapshots_total", "counter",
      "Finished requests whose prompt + output were cached for the next turn.",
      static_cast<double>(e->prefix_turn_snapshots));
  // Speculative decoding: drafts verified and accepted, overall and per draft position.
  One(&out, "dsv4_spec_verifications_total", "counter",
      "Sequence steps that verified at least one drafted token.",
      static_cast<double>(e->spec_verifications));
  One(&out, "dsv4_spec_draft_tokens_total", "counter", "Drafted tokens verified.",
      static_cast<double>(e->spec_draft_tokens));
  One(&out, "dsv4_spec_accepted_tokens_total", "counter",
      "Drafted tokens the target accepted.", static_cast<double>(e->spec_accepted_tokens));
  One(&out, "dsv4_spec_acceptance_rate", "gauge",
      "Accepted / verified drafted tokens since the start (0 before any).",
      e->spec_acceptance_rate());
  One(&out, "dsv4_spec_mean_accepted_length", "gauge",
      "Tokens a verifying step emits per sequence on average: 1 + accepted drafts (0 before "
      "any).",
      e->spec_mean_accepted_length());
  auto positions = [&](const char* name, const char* help, const std::vector<int64_t>& v) {
    Header(&out, name, "counter", help);
    for (size_t i = 0; i < v.size(); ++i) {
      Sample(&out, name, "position=\"" + std::to_string(i + 1) + "\"",
             static_cast<double>(v[i]));
    }
  };
  positions("dsv4_spec_draft_tokens_by_position_total",
            "Drafted tokens verified, by position in the draft (1: right after the last token).",
            e->spec_drafted_at);
  positions("dsv4_spec_accepted_tokens_by_position_total",
            "Drafted tokens accepted, by position in the draft.", e->spec_accepted_at);
  One(&out, "dsv4_spec_restored_states_total", "counter",
      "Requests that continued from a cached prefix with their drafter's state restored "
      "from it.", static_cast<double>(e->spec_restored_states));
  One(&out, "dsv4_spec_unrestored_states_total", "counter",
      "Requests that continued from a cached prefix whose drafter's state could not be "
      "restored (a drafter that needs hidden rows then does not draft for them).",
      static_cast<double>(e->spec_unrestored_states));
  One(&out, "dsv4_spec_drafting_paused_total", "counter",
      "Times auto mode paused a request's drafting because it did not pay.",
      static_cast<double>(e->spec_paused));
  One(&out, "dsv4_spec_paused_requests_total", "counter",
      "Requests whose drafting auto mode paused at least once.",
      static_cast<double>(e->spec_paused_requests));
  One(&out, "dsv4_spec_paused_requests", "gauge",
      "Requests whose drafting is paused now (auto mode).",
      static_cast<double>(e->spec_paused_now));
  One(&out, "dsv4_kv_budget_bytes", "gauge", "KV cache budget.",
      static_cast<double>(e->kv.budget_bytes));
  One(&out, "dsv4_kv_used_bytes", "gauge", "KV cache bytes in pages in use.",
      static_cast<double>(e->kv.used_bytes));
  Header(&out, "dsv4_kv_component_bytes", "gauge", "KV bytes in use, by cache component.");
  for (const KvComponentStats& c : e->kv.components) {
    Sample(&out, "dsv4_kv_component_bytes", "component=\"" + EscapeLabelValue(c.name) + "\"",
           static_cast<double>(c.bytes_in_use));
  }
  Header(&out, "dsv4_kv_component_pages", "gauge", "KV pages in use, by cache component.");
  for (const KvComponentStats& c : e->kv.components) {
    Sample(&out, "dsv4_kv_component_pages", "component=\"" + EscapeLabelValue(c.name) + "\"",
           static_cast<double>(c.pages_in_use));
  }
  Header(&out, "dsv4_kv_component_page_bytes", "gauge", "Bytes of one page, by component.");
  for (const KvComponentStats& c : e->kv.components) {
    Sample(&out, "dsv4_kv_component_page_bytes",
           "component=\"" + EscapeLabelValue(c.name) + "\"", static_cast<double>(c.page_bytes));
  }
  RenderRanks(e->ranks, &out);
  return out;
}

namespace {

void RenderRanks(const std::vector<EngineRankStats>& ranks, std::string* out) {
  if (ranks.empty()) return;
  auto series = [&](const char* name, const char* type, const char* help, auto value) {
    Header(out, name, type, help);
    for (const EngineRankStats& r : ranks) {
      Sample(out, name, "rank=\"" + std::to_string(r.rank) + "\"", static_cast<double>(value(r)));
    }
  };
  series("dsv4_dp_requests_placed_total", "counter",
         "Requests rank 0 placed on each rank (least KV-loaded first, ties to the lowest rank).",
         [](const EngineRankStats& r) { return r.placed; });
  series("dsv4_dp_requests_running", "gauge", "Sequences each rank runs.",
         [](const EngineRankStats& r) { return r.running; });
  series("dsv4_dp_requests_waiting", "gauge", "Requests queued on each rank, not yet admitted.",
         [](const EngineRankStats& r) { return r.waiting; });
  series("dsv4_dp_requests_finished_total", "counter", "Requests each rank finished.",
         [](const EngineRankStats& r) { return r.finished; });
  series("dsv4_dp_kv_used_bytes", "gauge", "KV cache bytes in use on each rank.",
         [](const EngineRankStats& r) { return r.kv_used_bytes; });
  series("dsv4_dp_steps_total", "counter", "Engine steps each rank ran with rows of its own.",
         [](const EngineRankStats& r) { return r.steps; });
  series("dsv4_dp_joined_steps_total", "counter",
         "Steps each rank joined with zero rows (computing its experts for the others).",
         [](const EngineRankStats& r) { return r.joined_steps; });
  series("dsv4_dp_prompt_tokens_computed_total", "counter", "Prompt tokens each rank computed.",
         [](const EngineRankStats& r) { return r.prompt_tokens; });
  series("dsv4_dp_generated_tokens_total", "counter", "Tokens each rank generated.",
         [](const EngineRankStats& r) { return r.generated_tokens; });
  series("dsv4_dp_exchange_sent_bytes_total", "counter",
         "MoE bytes each rank sent to other ranks (rows, routing, expert outputs).",
         [](const EngineRankStats& r) { return r.exchange_bytes_sent; });
  series("dsv4_dp_exchange_received_bytes_total", "counter",
         "MoE bytes each rank received from other ranks.",
         [](const EngineRankStats& r) { return r.exchange_bytes_received; });
  series("dsv4_dp_exchange_seconds_total", "counter",
         "Seconds each rank spent in the MoE all-to-alls (waiting for peers included).",
         [](const EngineRankStats& r) { return r.exchange_seconds; });
}

}  // namespace

}  // namespace dsv4::server
