// A dist::Communicator between threads of one process, one thread per rank: the transport of
// the expert-parallel unit tests, which run every rank of a step (the MoE exchange, the step
// protocol, data-parallel steps) in one test binary without mpirun. Each collective posts this
// rank's buffers on a board shared by the ranks, waits until every rank has posted, copies what
// is addressed to it, and waits again before any buffer can be reused. A split all-to-allv
// (StartAllToAllV) runs entirely in FinishAllToAllV, which the contract allows. Nothing fails
// or times out: a rank that never calls blocks the others (tests join their threads).
#pragma once

#include <memory>
#include <vector>

#include "core/function_ref.h"
#include "dist/communicator.h"
#include "dist/expert_parallel.h"

namespace dsv4::fixtures {

// `n` communicators of one group: element r is rank r's, for the thread that runs rank r.
std::vector<std::shared_ptr<dist::Communicator>> ThreadCommunicators(int n);

// Runs fn(r, rank r's ExpertParallel over `map` and a group of ThreadCommunicators) for every
// rank r of `map` on its own thread, and returns when all have returned.
void OnEveryRank(const dist::ExpertMap& map,
                 FunctionRef<void(int rank, std::shared_ptr<dist::ExpertParallel> ep)> fn);

}  // namespace dsv4::fixtures
