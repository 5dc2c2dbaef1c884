// The process group that expert parallelism runs over (one process per rank, ranks 0..size-1):
// the collectives the MoE exchange (dist/expert_exchange.h) and the lockstep step protocol
// (dist/expert_parallel.h) need, and nothing else. MpiCommunicator (dist/mpi/mpi_communicator.h)
// implements it over MPI.
//
// Every call is collective: all ranks make the same calls in the same order. A failed or
// timed-out collective cannot be recovered (the ranks are then out of step), so an
// implementation reports it naming the rank and the operation and ends the whole job; the
// calls therefore return no Status. Not thread-safe: one thread per process at a time.
//
// Waiting for rank 0. Rank 0 leads (it runs the command, or serves); the other ranks wait for
// its next step or control message, which may be long in coming while rank 0 loads or has
// nothing to do. Those waits take `bounded`: false (before rank 0 has begun: ranks load at
// different speeds) waits as long as it takes; true ends the job, naming rank 0, when nothing
// comes from rank 0 within RootSilenceLimit (rank 0 died, or its host dropped). Rank 0 keeps
// talking while it runs: a step at least every collective timeout, or a control message at
// least every KeepAliveInterval while it serves with nothing to do.
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
  // The collective timeout (--ep-timeout), seconds.
  virtual double timeout_s() const = 0;
  // How long a rank other than 0 waits for rank 0 once it has begun: twice the collective
  // timeout plus 5 s, the time rank 0 itself may take to find a silent rank, hold its roll
  // call and answer its clients before it ends the job (so that a rank waiting for rank 0
  // never ends the job while rank 0 is still reporting another rank's failure).
  double RootSilenceLimit() const { return 2.0 * timeout_s() + 5.0; }
  // How often rank 0 sends a control message while it serves with nothing to do: a quarter
  // of the collective timeout, at most 1 s.
  double KeepAliveInterval() const { return timeout_s() / 4.0 < 1.0 ? timeout_s() / 4.0 : 1.0; }

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
  // The largest `value` over the ranks (the step agreement of dist/expert_parallel.h). Waits
  // without spinning; unbounded, or `bounded` as above (rank 0: within the collective
  // timeout; the others: within RootSilenceLimit, then the job ends naming rank 0).
  virtual int64_t AgreeMax(int64_t value, bool bounded) = 0;
  // Every rank's `value`: [size].
  virtual void AllGather(int64_t value, std::span<int64_t> all) = 0;

  // Data-parallel serving (engine/data_parallel.h). Rank 0's `bytes` to every rank (the
  // others' *bytes are replaced). The other ranks wait without spinning, `bounded` as above;
  // rank 0 waits for its sends within the collective timeout when `bounded`.
  virtual void Broadcast(std::vector<std::byte>* bytes, bool bounded) = 0;
  // Every rank's `mine` to rank 0, which gets all [size] (its own included; others' `all` is
  // untouched). Rank 0 waits for each rank, `bounded`: within the collective timeout (a rank
  // that does not send in time ends the job, named), else as long as it takes (the first
  // time, while the others may still be loading).
  virtual void GatherToRoot(std::span<const std::byte> mine,
                            std::vector<std::vector<std::byte>>* all, bool bounded) = 0;
  // Called once, on the failing thread, with the error line (naming the rank that stopped
  // answering when it can be found) before the job is ended; it may block for a while (rank 0
  // answers its clients) and then returns. Unset: the job ends at once.
  virtual void SetFailureHandler(std::function<void(const std::string&)> handler) = 0;
};

}  // namespace dsv4::dist
