#include "dist/expert_parallel.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "core/check.h"

namespace dsv4::dist {
namespace {

// What each rank contributes to the step agreement (the max over ranks wins).
constexpr int64_t kIdle = 0;    // nothing to run
constexpr int64_t kStep = 1;    // a forward step begins
constexpr int64_t kFinish = 2;  // the run is over
constexpr int64_t kDraft = 3;   // a drafter forward begins (its MoE layers exchange rows)

// The largest `value` over the ranks for a drafter call. Commands run by rank 0: AgreeMax (the
// followers wait in AwaitNext, which matches it). Agreed steps: an all-gather, because it is
// bounded by the collective timeout (every rank is inside the same step), so a rank that dies
// while the others draft ends the job instead of hanging it.
int64_t AgreeInStep(Communicator& comm, bool steps_agreed, int64_t value) {
  // A drafter call follows a step, so the followers already wait within the timeout.
  if (!steps_agreed) return comm.AgreeMax(value, /*bounded=*/true);
  std::vector<int64_t> all(static_cast<size_t>(comm.size()));
  comm.AllGather(value, all);
  return *std::max_element(all.begin(), all.end());
}

}  // namespace

ExpertParallel::ExpertParallel(ExpertMap map, int rank, std::shared_ptr<Communicator> comm)
    : map_(std::move(map)), rank_(rank), comm_(std::move(comm)) {
  DSV4_CHECK(rank_ >= 0 && rank_ < map_.num_ranks());
  DSV4_CHECK(comm_ == nullptr || (comm_->rank() == rank_ && comm_->size() == map_.num_ranks()));
}

void ExpertParallel::BeginStep() {
  DSV4_CHECK(comm_ != nullptr);
  ++stats_.steps;
  if (steps_agreed_) return;
  // The first step waits for every rank to have loaded (as long as that takes); later ones
  // for ranks that are between steps, within the timeout.
  DSV4_CHECK_MSG(comm_->AgreeMax(kStep, /*bounded=*/stats_.steps > 1) == kStep,
                 "a rank finished while another stepped");
}

ExpertParallel::Next ExpertParallel::AwaitNext() {
  DSV4_CHECK(comm_ != nullptr && !steps_agreed_);
  // Once rank 0 has begun stepping, it begins a step or a drafter call (or finishes) within
  // the timeout.
  const int64_t v =
      comm_->AgreeMax(kIdle, /*bounded=*/stats_.steps + stats_.draft_calls > 0);
  DSV4_CHECK_MSG(v != kIdle, "AwaitNext: no rank runs anything");
  if (v == kStep) {
    ++stats_.steps;
    return Next::kStep;
  }
  if (v == kDraft) {
    ++stats_.draft_calls;
    return Next::kDraftCall;
  }
  return Next::kFinish;
}

void ExpertParallel::BeginDraftCall() {
  DSV4_CHECK(comm_ != nullptr);
  ++stats_.draft_calls;
  DSV4_CHECK_MSG(AgreeInStep(*comm_, steps_agreed_, kDraft) == kDraft,
                 "a rank finished while another drafted");
}

bool ExpertParallel::AwaitDraftCall() {
  DSV4_CHECK(comm_ != nullptr && steps_agreed_);
  if (AgreeInStep(*comm_, steps_agreed_, kIdle) != kDraft) return false;
  ++stats_.draft_calls;
  return true;
}

void ExpertParallel::Finish() {
  DSV4_CHECK(comm_ != nullptr);
  if (steps_agreed_) return;
  comm_->AgreeMax(kFinish, /*bounded=*/stats_.steps > 0);
}

}  // namespace dsv4::dist
