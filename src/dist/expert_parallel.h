// Expert parallelism as one process takes part in it (DEP: data-parallel attention, expert-
// parallel MoE): its rank, which rank holds each routed expert, the communicator, the step
// protocol that keeps the ranks in lockstep, and counters of what the MoE exchanges cost.
// The agreement before the first step waits for as long as loading takes; once steps have
// begun, a rank waiting for the next one ends the job when rank 0 stays silent
// (Communicator::RootSilenceLimit), so a rank 0 that dies never leaves the others waiting.
//
// Step protocol. Every MoE layer of every forward step is a collective (dist/expert_exchange.h),
// so all ranks must run the same steps. A rank that runs sequences calls BeginStep() at the
// start of each forward step; a rank with nothing to run loops on AwaitNext(), and for every
// step it returns kStep joins the step's collectives with zero rows (v4::Model::JoinStep);
// Finish() ends the others' loops. Data-parallel serving (engine/data_parallel.h) agrees on
// its steps itself (rank 0's control message says whether a step runs): there
// set_steps_agreed(true) makes BeginStep and Finish count only, and a rank with no rows in an
// agreed step joins it through v4::Model::JoinStep.
//
// Drafter calls. A speculative drafter's forward (v4::Mtp, v4::Dspark) has MoE layers too,
// run between the target's steps, a different number of times on each rank (one or more per
// drafting sequence). A rank announces each such call with BeginDraftCall() just before its
// MoE layers; the others join it with zero rows (runner::Drafter::JoinExpertParallelCall):
//   - commands run by rank 0 alone (logits, run): a follower's AwaitNext() returns
//     kDraftCall for it, as it returns kStep for a target step;
//   - agreed steps (serving): after every agreed step each rank joins the others' calls,
//     `while (AwaitDraftCall()) join`, once its own calls are done; every rank leaves that
//     loop on the same round (all announced calls joined), before the next control message.
//
// Not thread-safe: one thread per process uses it at a time (the engine's, or the CLI's).
#pragma once

#include <cstdint>
#include <memory>

#include "dist/communicator.h"
#include "dist/expert_map.h"

namespace dsv4::dist {

// What the MoE exchanges of this process sent and how long they took.
struct ExchangeStats {
  int64_t steps = 0;           // forward steps begun or joined
  int64_t draft_calls = 0;     // drafter forward passes begun or joined
  int64_t exchanges = 0;       // MoE layer exchanges (dispatch + combine)
  int64_t local_rows = 0;      // rows this rank routed (its tokens, summed over exchanges)
  int64_t rows_sent = 0;       // token rows dispatched to other ranks (once per rank)
  int64_t bytes_sent = 0;      // bytes to other ranks: rows + routing + expert outputs
  int64_t bytes_received = 0;  // bytes from other ranks
  double exchange_s = 0;       // seconds inside the all-to-alls (waiting for peers included)
};

class ExpertParallel {
 public:
  // `comm` null: loading only (which experts to read; dsv4 inspect, tests); the forward pass
  // needs it, and then its rank and size must be `rank` and map.num_ranks().
  ExpertParallel(ExpertMap map, int rank, std::shared_ptr<Communicator> comm = nullptr);

  int rank() const { return rank_; }
  int num_ranks() const { return map_.num_ranks(); }
  const ExpertMap& map() const { return map_; }
  bool holds(int64_t expert) const { return map_.owner(expert) == rank_; }
  // Null when loading only.
  Communicator* comm() const { return comm_.get(); }

  // A rank that runs sequences: a forward step begins now.
  void BeginStep();
  // What a rank with no sequences of its own joins next (AwaitNext).
  enum class Next { kStep, kDraftCall, kFinish };
  // A rank with no sequences: waits for the next target step, drafter call, or Finish.
  Next AwaitNext();
  // A rank that runs sequences: no more steps; every AwaitNext returns kFinish.
  void Finish();
  // A rank whose drafter is about to run its MoE layers on rows of its own (every check
  // passed): the other ranks join them.
  void BeginDraftCall();
  // Agreed steps, a rank whose own drafter calls of this step are done: whether another rank
  // announces one more (join it, then ask again) or every rank is done (false).
  bool AwaitDraftCall();

  // Steps are agreed outside (data-parallel serving): BeginStep only counts, Finish does
  // nothing, AwaitNext must not be called.
  void set_steps_agreed(bool agreed) { steps_agreed_ = agreed; }
  bool steps_agreed() const { return steps_agreed_; }
  // A rank with no rows in an agreed step (counted).
  void JoinAgreedStep() { ++stats_.steps; }

  ExchangeStats& stats() { return stats_; }
  const ExchangeStats& stats() const { return stats_; }

 private:
  ExpertMap map_;
  int rank_ = 0;
  std::shared_ptr<Communicator> comm_;
  ExchangeStats stats_;
  bool steps_agreed_ = false;
};

}  // namespace dsv4::dist
