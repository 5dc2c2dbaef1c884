// dsv4 bench draft: what a checkpoint's own drafter (April MTP or DSpark, spec §11.3-11.4)
// costs per decode step next to the target's one-token step, on that checkpoint's weights:
// after a prompt of --context random tokens, each timed step feeds one token to the target
// (recording the hidden rows the drafter reads) and then has the drafter consume that
// position and propose its maximum number of drafts. The drafts are not verified (output is
// never affected by a drafter); this measures the drafter's cost alone.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_commands.h"
#include "core/elapsed.h"
#include "core/rng.h"
#include "core/thread_pool.h"
#include "model_arg.h"
#include "runner/loaded_model.h"
#include "runner/make_drafter.h"

namespace dsv4::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct DraftCliOptions {
  std::string model;
  int64_t context = 64;
  int64_t iters = 20;
  int threads = 0;
  uint64_t seed = 1;
  bool json = false;
};

Status RunDraft(const DraftCliOptions& o) {
  DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, LoadModelArg(o.model));
  const std::string name = ck.name;
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<runner::LoadedModel> m,
                        runner::LoadCheckpoint(std::move(ck), name));
  if (m->drafter == checkpoint::DraftFamily::kNone) {
    return Status::FailedPrecondition(m->name + " has no drafter to measure");
  }
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<runner::Drafter> d, runner::MakeDrafter(*m, m->drafter));
  const runner::CausalLm& lm = *m->lm;
  ThreadPool pool(o.threads);
  Rng rng(o.seed);
  std::vector<int32_t> tokens;
  for (int64_t i = 0; i < o.context + o.iters + 2; ++i) {
    tokens.push_back(static_cast<int32_t>(rng.Below(static_cast<uint64_t>(lm.config().vocab_size))));
  }
  std::unique_ptr<kv::SequenceState> seq = lm.NewSequence();
  std::unique_ptr<runner::DraftState> state = d->NewState();
  std::vector<BF16> hidden;
  std::vector<float> logits;
  std::vector<int32_t> drafts;
  const int64_t k = d->max_draft_tokens();
  // One step: the target feeds token p (its hidden rows recorded), the drafter consumes it
  // and drafts k tokens after token p + 1.
  auto step = [&](int64_t p, int64_t len, double* target_ms, double* draft_ms) -> Status {
    runner::CausalLm::BatchItem item{seq.get(), {tokens.data() + p, static_cast<size_t>(len)},
                                     runner::LogitsMode::kLast, &logits,
                                     d->needs_hidden() ? &hidden : nullptr};
    item.hidden_rows = d->hidden_rows();
    Clock::time_point t0 = Clock::now();
    DSV4_RETURN_IF_ERROR(lm.ForwardBatch(pool, {&item, 1}));
    *target_ms = MsSince(t0);
    t0 = Clock::now();
    DSV4_RETURN_IF_ERROR(d->Propose(pool, *state,
                                    {tokens.data(), static_cast<size_t>(p + len + 1)},
                                    d->needs_hidden() ? std::span<const BF16>(hidden)
                                                      : std::span<const BF16>(),
                                    k, &drafts));
    *draft_ms = MsSince(t0);
    return Status::Ok();
  };
  double prompt_target = 0, prompt_draft = 0, warm_t = 0, warm_d = 0;
  DSV4_RETURN_IF_ERROR(step(0, o.context, &prompt_target, &prompt_draft));
  DSV4_RETURN_IF_ERROR(step(o.context, 1, &warm_t, &warm_d));  // warm-up
  std::vector<double> target_ms, draft_ms;
  for (int64_t i = 0; i < o.iters; ++i) {
    double t = 0, dm = 0;
    DSV4_RETURN_IF_ERROR(step(o.context + 1 + i, 1, &t, &dm));
    target_ms.push_back(t);
    draft_ms.push_back(dm);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double t = median(target_ms), dm = median(draft_ms);
  const std::string drafter(d->name());
  if (o.json) {
    nlohmann::json j = {{"model", m->name},
                        {"drafter", drafter},
                        {"draft_tokens", k},
                        {"context", o.context},
                        {"threads", pool.num_threads()},
                        {"target_step_ms", t},
                        {"draft_step_ms", dm},
                        {"draft_over_target", t > 0 ? dm / t : 0.0},
                        {"prompt_target_ms", prompt_target},
                        {"prompt_draft_ms", prompt_draft}};
    std::printf("%s\n", j.dump(2).c_str());
    return Status::Ok();
  }
  std::printf("Drafter cost per decode step (dsv4 bench draft): %s, drafter %s (%lld draft "
              "tokens per step), context %lld, %d threads, median of %lld steps\n",
              m->name.c_str(), drafter.c_str(), static_cast<long long>(k),
              static_cast<long long>(o.context), pool.num_threads(),
              static_cast<long long>(o.iters));
  std::printf("prompt: target %.2f ms, drafter consumes it in %.2f ms\n", prompt_target,
              prompt_draft);
  std::printf("target one-token step: %.3f ms\ndrafter step (consume 1 position + draft %lld): "
              "%.3f ms (%.2fx the target step)\n",
              t, static_cast<long long>(k), dm, t > 0 ? dm / t : 0.0);
  return Status::Ok();
}

}  // namespace

void RegisterBenchDraft(CLI::App& bench, int* exit_code) {
  auto o = std::make_shared<DraftCliOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "draft", "Cost of the checkpoint's drafter (MTP / DSpark) per decode step vs the target's");
  cmd->add_option("--model", o->model, "Checkpoint folder (default: the built-in tiny model)");
  cmd->add_option("--context", o->context, "Prompt tokens before the timed steps")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--iters", o->iters, "Timed steps (after one warm-up step)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "Worker threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", o->seed, "Seed of the random tokens")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o, exit_code] {
    Status s = RunDraft(*o);
    if (!s.ok()) *exit_code = ReportError(s);
  });
}

}  // namespace dsv4::cli
