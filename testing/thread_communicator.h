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

#include "dist/communicator.h"

namespace dsv4::fixtures {

// `n` communicators of one group: element r is rank r's, for the thread that runs rank r.
std::vector<std::shared_ptr<dist::Communicator>> ThreadCommunicators(int n);

}  // namespace dsv4::fixtures
