// The process group that expert parallelism runs over (one process per rank, ranks 0..size-1):
// the collectives the MoE exchange (dist/expert_exchange.h) and the lockstep step protocol
// (dist/expert_parallel.h) need, and nothing else. MpiCommunicator (dist/mpi/mpi_communicator.h)
// implements it over MPI.
//
// Every call is collective: all ranks make the same calls in the same order. A failed or
// timed-out collective cannot be recovered (the ranks are then out of step), so an
// implementation reports it naming the rank and the operation and ends the whole job; the
// calls therefore return no Status. Not thread-safe: one thread per process at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace dsv4::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Fixed-size all-to-all of int64 values, `count` per peer: send [size * count] (the
  // values for rank q at q * count), recv [size * count] (what rank q sent this rank).
  virtual void AllToAll(std::span<const int64_t> send, std::span<int64_t> recv,
                        int64_t count) = 0;
  // Variable all-to-all of bytes: send holds the blocks for ranks 0..size-1 back to back,
  // send_bytes[q] bytes for rank q; recv receives rank q's block for this rank at the sum
  // of recv_bytes[0..q). Both count lists [size]; each block under 2 GiB. Bounded by the
  // implementation's collective timeout (a rank that stops answering ends the job).
  virtual void AllToAllV(const std::byte* send, std::span<const int64_t> send_bytes,
                         std::byte* recv, std::span<const int64_t> recv_bytes) = 0;
  // The same in two halves, so a rank can compute while its peers catch up: StartAllToAllV
  // posts it (send, recv and the counts' values must stay untouched until the finish),
  // FinishAllToAllV waits for it within the collective timeout. At most one outstanding, and
  // no other collective in between.
  virtual void StartAllToAllV(const std::byte* send, std::span<const int64_t> send_bytes,
                              std::byte* recv, std::span<const int64_t> recv_bytes) = 0;
  virtual void FinishAllToAllV() = 0;
  // The largest `value` over the ranks. Waits without a timeout and without spinning: a rank
  // may wait here between steps for as long as the others take (an idle server).
  virtual int64_t AgreeMax(int64_t value) = 0;
  // Every rank's `value`: [size].
  virtual void AllGather(int64_t value, std::span<int64_t> all) = 0;

  // Data-parallel serving (dist/serving_protocol.h). Rank 0's `bytes` to every rank (the
  // others' *bytes are replaced). The other ranks wait without a timeout and without spinning:
  // an idle server waits here for its next request.
  virtual void Broadcast(std::vector<std::byte>* bytes) = 0;
  // Every rank's `mine` to rank 0, which gets all [size] (its own included; others' `all` is
  // untouched). Rank 0 waits for each rank within the collective timeout: a rank that does
  // not send in time ends the job, named.
  virtual void GatherToRoot(std::span<const std::byte> mine,
                            std::vector<std::vector<std::byte>>* all) = 0;
  // Called once, on the failing thread, with the error line (naming the rank that stopped
  // answering when it can be found) before the job is ended; it may block for a while (rank 0
  // answers its clients) and then returns. Unset: the job ends at once.
  virtual void SetFailureHandler(std::function<void(const std::string&)> handler) = 0;
};

}  // namespace dsv4::dist
