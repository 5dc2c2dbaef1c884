#include "dist/expert_parallel.h"

#include <utility>

#include "core/check.h"

namespace dsv4::dist {
namespace {

// What each rank contributes to the step agreement (the max over ranks wins).
constexpr int64_t kIdle = 0;    // nothing to run
constexpr int64_t kStep = 1;    // a forward step begins
constexpr int64_t kFinish = 2;  // the run is over

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

bool ExpertParallel::AwaitStep() {
  DSV4_CHECK(comm_ != nullptr && !steps_agreed_);
  // Once rank 0 has begun stepping, it begins a step (or finishes) within the timeout.
  if (comm_->AgreeMax(kIdle, /*bounded=*/stats_.steps > 0) != kStep) return false;
  ++stats_.steps;
  return true;
}

void ExpertParallel::Finish() {
  DSV4_CHECK(comm_ != nullptr);
  if (steps_agreed_) return;
  comm_->AgreeMax(kFinish, /*bounded=*/stats_.steps > 0);
}

}  // namespace dsv4::dist
