#include "expert_parallel_flags.h"

#include <pthread.h>
#include <unistd.h>

#include <csignal>

#include <cstdio>
#include <vector>

#include "model_arg.h"
#include "table.h"
#include "checkpoint/expert_shard.h"
#include "runner/loaded_model.h"
#include "runner/make_drafter.h"

namespace dsv4::cli {

namespace {

// FNV-1a over what all ranks must agree on: the model's dimensions and the expert map.
uint64_t Agreement(const checkpoint::ModelConfig& c, const dist::ExpertMap& map) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](int64_t v) {
    for (int i = 0; i < 8; ++i) h = (h ^ static_cast<uint64_t>((v >> (8 * i)) & 0xff)) * 1099511628211ull;
  };
  for (int64_t v : {static_cast<int64_t>(c.arch), c.hidden_size, c.num_hidden_layers,
                    c.vocab_size, c.n_routed_experts, c.num_experts_per_tok,
                    c.moe_intermediate_size}) {
    mix(v);
  }
  for (int32_t o : map.owners()) mix(o);
  return h;
}

}  // namespace

void AddEpFlags(CLI::App& cmd, EpFlags* flags) {
  cmd.add_option("--ep", flags->ep,
                 "Expert parallelism over N processes: launch with mpirun -np N; rank r "
                 "holds its share of the routed experts, everything else is replicated")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--expert-map", flags->expert_map,
                 "With --ep: which rank holds each routed expert, lines \"<rank>: <ids and "
                 "ranges a-b>\" (default: contiguous ranges)");
  cmd.add_option("--ep-timeout", flags->timeout_s,
                 "With --ep: seconds an all-to-all may wait for the other ranks before the "
                 "job is ended")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

Result<std::unique_ptr<EpSession>> EpSession::Start(const EpFlags& flags,
                                                    const checkpoint::Checkpoint& ck,
                                                    bool loads_drafter,
                                                    checkpoint::LoadOptions* load) {
  std::unique_ptr<EpSession> s(new EpSession());
  const int launched = dist::MpirunProcesses();
  if (flags.ep <= 1) {
    if (launched > 1) {
      return Status::InvalidArgument("mpirun started " + std::to_string(launched) +
                                     " processes but --ep is " + std::to_string(flags.ep) +
                                     ": give --ep " + std::to_string(launched) +
                                     " (or run one process)");
    }
    return s;
  }
  if (launched != flags.ep) {
    return Status::InvalidArgument(
        "--ep " + std::to_string(flags.ep) + " needs " + std::to_string(flags.ep) +
        " processes: launch with mpirun -np " + std::to_string(flags.ep) + " (this is " +
        (launched == 0 ? std::string("one process, not started by mpirun")
                       : std::to_string(launched) + " processes") + ")");
  }
  DSV4_ASSIGN_OR_RETURN(s->runtime_, dist::MpiRuntime::Start());
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<dist::MpiCommunicator> comm,
                        dist::MpiCommunicator::Create({.collective_timeout_s = flags.timeout_s}));
  const int64_t E = ck.config.n_routed_experts;
  Result<dist::ExpertMap> map = flags.expert_map.empty()
                                    ? dist::ExpertMap::Contiguous(E, flags.ep)
                                    : dist::ExpertMap::ReadFile(flags.expert_map, E, flags.ep);
  if (!map.ok()) return map.status();
  const int rank = comm->rank();
  // Every rank must run the same model dimensions with the same expert map (each host reads
  // its own copy of the checkpoint and of --expert-map): compared once here, so that a
  // mismatch is an error naming the rank rather than rows sent to the wrong place.
  std::vector<int64_t> all(static_cast<size_t>(flags.ep));
  comm->AllGather(static_cast<int64_t>(Agreement(ck.config, *map)), all);
  for (int q = 0; q < flags.ep; ++q) {
    if (all[static_cast<size_t>(q)] != all[0]) {
      return Status::InvalidArgument(
          "rank " + std::to_string(q) + " has a different model or expert map than rank 0 (" +
          ck.name + " here): every rank needs the same checkpoint and --expert-map");
    }
  }
  s->ep_ = std::make_shared<dist::ExpertParallel>(std::move(*map), rank, std::move(comm));
  load->expert_parallel = s->ep_;
  // V3.2's MTP layer is loaded by no command (runner::LoadedModel loads V4's drafters only).
  const bool drafter = loads_drafter && ck.config.arch == checkpoint::Arch::kV4;
  const checkpoint::ShardBytes bytes = checkpoint::CountShardBytes(
      checkpoint::StoredTensors(*ck.weights, ck.config, drafter), s->ep_->map());
  std::printf("rank %d of %d (pid %d): %s, weights %s (replicated %s + experts %s)\n", rank,
              flags.ep, static_cast<int>(getpid()), s->ep_->map().Describe(rank).c_str(),
              WithCommas(bytes.total(rank)).c_str(), WithCommas(bytes.replicated).c_str(),
              WithCommas(bytes.experts[static_cast<size_t>(rank)]).c_str());
  std::fflush(stdout);
  return s;
}

EpSession::~EpSession() {
  if (ep_ && ep_->rank() == 0) ep_->Finish();
  ep_.reset();
  runtime_.reset();
}

Status EpSession::Follow(checkpoint::Checkpoint ck, int threads,
                         const checkpoint::LoadOptions& load, bool drafter) {
  if (!drafter) ck.drafter = checkpoint::DraftFamily::kNone;  // not loaded
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<runner::LoadedModel> model,
                        runner::LoadCheckpoint(std::move(ck), "", load));
  // Rank 0 runs this drafter (when it drafts); this rank joins its MoE layers.
  std::unique_ptr<runner::Drafter> draft;
  if (model->drafter != checkpoint::DraftFamily::kNone) {
    DSV4_ASSIGN_OR_RETURN(draft, runner::MakeDrafter(*model, model->drafter));
  }
  ThreadPool pool(threads);
  DSV4_RETURN_IF_ERROR(model->lm->FollowExpertParallelSteps(pool, draft.get()));
  PrintCounters();
  return Status::Ok();
}

Status EpSession::ServeFollower(const ModelFactory& model, EngineOptions eo) {
  DSV4_CHECK(ep_ != nullptr && ep_->rank() != 0);
  // A terminal's Ctrl-C or hang-up reaches every rank: rank 0 shuts down and releases this
  // one, which must keep joining its steps until then.
  sigset_t interactive;
  sigemptyset(&interactive);
  sigaddset(&interactive, SIGINT);
  sigaddset(&interactive, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &interactive, nullptr);
  eo.data_parallel = ep_;
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(model, eo));
  std::printf("rank %d: serving the requests rank 0 places here\n", ep_->rank());
  std::fflush(stdout);
  engine->WaitUntilReleased();
  const EngineStats st = engine->Stats();
  engine.reset();  // its thread makes no more MPI calls past here
  std::printf("rank %d: %lld requests finished, %lld prompt tokens computed, %lld generated\n",
              ep_->rank(), static_cast<long long>(st.finished),
              static_cast<long long>(st.prompt_tokens),
              static_cast<long long>(st.generated_tokens));
  PrintCounters();
  return Status::Ok();
}

void EpSession::AbortJob(const Status& s) {
  ReportError(s);
  dist::AbortJob(1);
}

void EpSession::PrintCounters() const {
  if (!ep_) return;
  const dist::ExchangeStats& st = ep_->stats();
  char per_row[96] = "";
  if (st.local_rows > 0) {  // what crossed this rank's link per token of its own per layer
    std::snprintf(per_row, sizeof(per_row), " (%.0f bytes per local row per MoE layer)",
                  static_cast<double>(st.bytes_sent + st.bytes_received) /
                      static_cast<double>(st.local_rows));
  }
  std::printf("rank %d: %lld steps, %lld drafter calls, %lld MoE exchanges, %lld local rows; "
              "to other ranks %s bytes sent, %s received%s; all-to-all %.3f s (%.3f ms per "
              "step)\n",
              ep_->rank(), static_cast<long long>(st.steps),
              static_cast<long long>(st.draft_calls), static_cast<long long>(st.exchanges),
              static_cast<long long>(st.local_rows), WithCommas(st.bytes_sent).c_str(),
              WithCommas(st.bytes_received).c_str(), per_row, st.exchange_s,
              st.steps > 0 ? 1e3 * st.exchange_s / static_cast<double>(st.steps) : 0.0);
  std::fflush(stdout);
}

}  // namespace dsv4::cli
