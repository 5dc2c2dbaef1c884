// The Communicator over MPI (Debian's OpenMPI): a duplicate of MPI_COMM_WORLD with
// MPI_ERRORS_RETURN, so that every failed call is reported by this code, naming the rank, the
// call and MPI's error string, before the job is ended with MPI_Abort (the other ranks are
// then killed by mpirun rather than left waiting). Collectives inside a step are
// non-blocking calls polled against a deadline, so a rank that stops answering (stuck, or on
// a host that dropped without its process exiting) ends the job after the timeout instead of
// hanging it; a rank that exits is noticed by mpirun itself, which kills every other rank.
// A rank other than 0 that hears nothing from rank 0 within RootSilenceLimit (bounded waits,
// dist/communicator.h) ends the job itself, naming rank 0: under `mpirun --enable-recovery`
// nothing else would end it when rank 0 dies.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "dist/communicator.h"

namespace dsv4::dist {

// MPI_Init_thread / MPI_Finalize for the life of the object (one per process; the thread
// that creates it is the one that may call MPI, MPI_THREAD_SERIALIZED: other threads may make
// calls too as long as no two run at once).
class MpiRuntime {
 public:
  // FailedPrecondition when MPI cannot start or gives less than MPI_THREAD_SERIALIZED.
  static Result<std::unique_ptr<MpiRuntime>> Start();
  ~MpiRuntime();  // MPI_Finalize (every MpiCommunicator must be gone by then)
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

 private:
  MpiRuntime() = default;
};

// How many processes mpirun started this one among (OpenMPI's OMPI_COMM_WORLD_SIZE), read
// without starting MPI; 0 when not started by mpirun.
int MpirunProcesses();

// Ends every process of the job now with exit status `code` (MPI_Abort on MPI_COMM_WORLD):
// for a rank 0 that fails while the other ranks wait for it to send them work.
[[noreturn]] void AbortJob(int code);

struct MpiOptions {
  // How long an all-to-all inside a step may take before the job is ended (seconds).
  double collective_timeout_s = 300.0;
};

class MpiCommunicator final : public Communicator {
 public:
  // Over MPI_COMM_WORLD; needs a live MpiRuntime (which must outlive the result).
  static Result<std::unique_ptr<MpiCommunicator>> Create(const MpiOptions& options = {});
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  double timeout_s() const override { return options_.collective_timeout_s; }
  void AllToAll(std::span<const int64_t> send, std::span<int64_t> recv, int64_t count) override;
  void AllToAllV(const std::byte* send, std::span<const int64_t> send_bytes, std::byte* recv,
                 std::span<const int64_t> recv_bytes) override;
  void StartAllToAllV(const std::byte* send, std::span<const int64_t> send_bytes,
                      std::byte* recv, std::span<const int64_t> recv_bytes) override;
  void FinishAllToAllV() override;
  int64_t AgreeMax(int64_t value, bool bounded) override;
  void AllGather(int64_t value, std::span<int64_t> all) override;
  void Broadcast(std::vector<std::byte>* bytes, bool bounded) override;
  void GatherToRoot(std::span<const std::byte> mine,
                    std::vector<std::vector<std::byte>>* all, bool bounded) override;
  void SetFailureHandler(std::function<void(const std::string&)> handler) override {
    on_failure_ = std::move(handler);
  }

 private:
  MpiCommunicator() = default;
  // Prints "error: rank r of n: <what>: <MPI's message>" and ends the job (MPI_Abort).
  // With a failure handler, a timeout first runs the roll call (RollCall) and then the handler.
  [[noreturn]] void Fail(const std::string& what, int code, bool timed_out = false);
  // A rank other than 0 heard nothing from rank 0 for `waited_s` while `what`: prints
  // "error: rank r of n: no message from rank 0 for S s (<what>); ending the job" and ends
  // the job (the failure handler, which leaves the ending to rank 0, is not run).
  [[noreturn]] void FailRootSilent(const std::string& what, double waited_s);
  // After a timeout: every rank but 0 tells rank 0 it is alive; rank 0 waits for them (up to
  // the collective timeout) and returns the ranks not heard from, as ", rank q, ..." ("" on
  // the other ranks or when every rank answered).
  std::string RollCall();
  // Data-parallel serving: makes mpirun end the job with a non-zero status (see the .cpp).
  static void SignalLauncher();
  // Waits for `request` like Wait; `peer` >= 0 is named when it times out. A rank other than
  // 0 waiting on rank 0 (`peer` 0) waits up to RootSilenceLimit, then FailRootSilent.
  void WaitOn(void* request, const std::string& what, bool bounded, int peer);
  struct Handle;  // the MPI_Comm (mpi.h stays out of this header)
  // Waits for the non-blocking call `what` (on `handle_`'s pending request) to complete:
  // within the collective timeout when `bounded`, else for as long as it takes.
  void Wait(const char* what, bool bounded);

  std::unique_ptr<Handle> handle_;
  // An outstanding StartAllToAllV's counts and displacements (MPI reads them until it ends).
  std::vector<int> v_send_counts_, v_send_displs_, v_recv_counts_, v_recv_displs_;
  bool v_pending_ = false;
  int rank_ = 0, size_ = 1;
  MpiOptions options_;
  std::function<void(const std::string&)> on_failure_;
};

}  // namespace dsv4::dist
