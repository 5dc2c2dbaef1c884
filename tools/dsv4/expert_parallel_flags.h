// --ep N / --expert-map FILE / --ep-timeout S: expert parallelism across N processes started
// by mpirun (src/dist). Rank 0 runs the command; every other rank loads its experts and joins
// each forward step rank 0 runs (with zero rows of its own) until rank 0 finishes. Without
// --ep (or --ep 1) outside mpirun nothing starts: one process, as before.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "core/status.h"
#include "core/thread_pool.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/load_options.h"
#include "dsv4/engine.h"
#include "dist/expert_parallel.h"
#include "dist/mpi/mpi_communicator.h"
#include "runner/causal_lm.h"

namespace dsv4::cli {

struct EpFlags {
  int ep = 1;
  std::string expert_map;  // empty: contiguous ranges
  double timeout_s = 300;
};

void AddEpFlags(CLI::App& cmd, EpFlags* flags);

// One command's part in expert parallelism. Declare it before anything that runs the model
// (it must be destroyed last): its destructor ends the other ranks' steps (rank 0), then MPI.
class EpSession {
 public:
  // --ep N > 1: starts MPI, checks that mpirun started N processes, builds the expert map for
  // `c` and puts this rank's ExpertParallel into load->expert_parallel; then prints this
  // rank's line (its experts and the checkpoint bytes it loads of `ck`, the drafter's
  // included when `loads_drafter`: every rank then holds its share of the drafter's experts
  // and a copy of its other tensors). Inactive otherwise. Errors: InvalidArgument for a process
  // count that differs from --ep (mpirun without --ep included), a bad --expert-map;
  // FailedPrecondition when MPI does not start.
  static Result<std::unique_ptr<EpSession>> Start(const EpFlags& flags,
                                                  const checkpoint::Checkpoint& ck,
                                                  bool loads_drafter,
                                                  checkpoint::LoadOptions* load);
  ~EpSession();

  bool active() const { return ep_ != nullptr; }
  // Whether this process runs the command (rank 0, or the only process).
  bool leads() const { return !ep_ || ep_->rank() == 0; }
  // This rank's expert parallelism (EngineOptions::data_parallel); null when inactive.
  const std::shared_ptr<dist::ExpertParallel>& expert_parallel() const { return ep_; }
  // Data-parallel serving (serve, bench serve), a rank other than 0: runs an engine with
  // `eo` (data_parallel set here) on the main model of `model` until rank 0's engine stops,
  // then prints its counters.
  Status ServeFollower(const ModelFactory& model, EngineOptions eo);
  // A rank other than 0: loads the main model of `ck` with `load` (its experts only) and,
  // when `drafter` and the checkpoint has one, its drafter (its share of the drafter's
  // experts), joins rank 0's steps and drafter calls until it finishes, then prints its
  // counters. `threads` 0: all cores.
  Status Follow(checkpoint::Checkpoint ck, int threads, const checkpoint::LoadOptions& load,
                bool drafter);
  // Data-parallel serving (serve, bench serve): every rank runs an engine that steps with
  // the others (engine/data_parallel.h). Call right after Start, before anything can fail.
  void ServeDataParallel() {
    if (ep_) ep_->set_steps_agreed(true);
  }
  // Rank 0 of data-parallel serving failed: reports `s` and ends the whole job with status 1
  // (the other ranks wait for rank 0's messages and would never learn of it otherwise).
  [[noreturn]] void AbortJob(const Status& s);
  // "rank r: S steps, ... bytes sent per local row per MoE layer ..." (nothing when inactive).
  void PrintCounters() const;

 private:
  EpSession() = default;
  std::unique_ptr<dist::MpiRuntime> runtime_;
  std::shared_ptr<dist::ExpertParallel> ep_;
};

}  // namespace dsv4::cli
