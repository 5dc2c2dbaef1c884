#include "dist/mpi/mpi_communicator.h"

#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <vector>

#include "core/check.h"

namespace dsv4::dist {
namespace {

std::string ErrorString(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<size_t>(len));
}

// MPI counts and displacements are int: every block must stay under 2 GiB.
std::vector<int> IntCounts(std::span<const int64_t> bytes, std::vector<int>* displs) {
  std::vector<int> counts(bytes.size());
  displs->assign(bytes.size(), 0);
  int64_t offset = 0;
  for (size_t q = 0; q < bytes.size(); ++q) {
    DSV4_CHECK_MSG(bytes[q] >= 0 && bytes[q] <= INT_MAX && offset <= INT_MAX,
                   "an all-to-all block or offset past 2 GiB");
    counts[q] = static_cast<int>(bytes[q]);
    (*displs)[q] = static_cast<int>(offset);
    offset += bytes[q];
  }
  return counts;
}

}  // namespace

struct MpiCommunicator::Handle {
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm roll = MPI_COMM_NULL;  // the roll call after a timeout (dist/communicator.h)
  MPI_Request request = MPI_REQUEST_NULL;
};

namespace {
// Point-to-point tags of the serving protocol on the communicator.
constexpr int kTagBroadcastSize = 11, kTagBroadcast = 12, kTagGatherSize = 13, kTagGather = 14;
constexpr int kTagAlive = 21;
}  // namespace

Result<std::unique_ptr<MpiRuntime>> MpiRuntime::Start() {
  int provided = 0;
  const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
  if (rc != MPI_SUCCESS) {
    return Status::FailedPrecondition("MPI_Init_thread failed: " + ErrorString(rc));
  }
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    return Status::FailedPrecondition(
        "the MPI library gives thread level " + std::to_string(provided) +
        ", expected at least MPI_THREAD_SERIALIZED (" + std::to_string(MPI_THREAD_SERIALIZED) + ")");
  }
  return std::unique_ptr<MpiRuntime>(new MpiRuntime());
}

MpiRuntime::~MpiRuntime() { MPI_Finalize(); }

void AbortJob(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();
}

int MpirunProcesses() {
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");  // set by OpenMPI's mpirun
  return size == nullptr ? 0 : std::atoi(size);
}

Result<std::unique_ptr<MpiCommunicator>> MpiCommunicator::Create(const MpiOptions& options) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) return Status::FailedPrecondition("MPI is not started (no MpiRuntime)");
  std::unique_ptr<MpiCommunicator> c(new MpiCommunicator());
  c->handle_ = std::make_unique<Handle>();
  c->options_ = options;
  int rc = MPI_Comm_dup(MPI_COMM_WORLD, &c->handle_->comm);
  if (rc != MPI_SUCCESS) return Status::FailedPrecondition("MPI_Comm_dup: " + ErrorString(rc));
  MPI_Comm_set_errhandler(c->handle_->comm, MPI_ERRORS_RETURN);
  rc = MPI_Comm_dup(MPI_COMM_WORLD, &c->handle_->roll);
  if (rc != MPI_SUCCESS) return Status::FailedPrecondition("MPI_Comm_dup: " + ErrorString(rc));
  MPI_Comm_set_errhandler(c->handle_->roll, MPI_ERRORS_RETURN);
  MPI_Comm_rank(c->handle_->comm, &c->rank_);
  MPI_Comm_size(c->handle_->comm, &c->size_);
  return c;
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && handle_ && handle_->comm != MPI_COMM_NULL) MPI_Comm_free(&handle_->comm);
  if (!finalized && handle_ && handle_->roll != MPI_COMM_NULL) MPI_Comm_free(&handle_->roll);
}

void MpiCommunicator::Fail(const std::string& what, int code, bool timed_out) {
  std::string line = "rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ": " +
                     what + (code == MPI_SUCCESS ? "" : ": " + ErrorString(code));
  if (on_failure_) {
    std::function<void(const std::string&)> handler = std::move(on_failure_);
    on_failure_ = nullptr;  // once: a failure inside the handler ends the job at once
    if (timed_out) {
      const std::string silent = RollCall();
      if (!silent.empty()) line += " (not answering:" + silent.substr(1) + ")";
    }
    std::fprintf(stderr, "error: %s; ending the job\n", line.c_str());
    std::fflush(stderr);
    handler(line);
    SignalLauncher();
  } else {
    std::fprintf(stderr, "error: %s; ending the job\n", line.c_str());
    std::fflush(stderr);
  }
  MPI_Abort(handle_->comm, 1);
  std::abort();  // MPI_Abort does not return; should it, never go on out of step
}

void MpiCommunicator::FailRootSilent(const std::string& what, double waited_s) {
  std::fprintf(stderr, "error: rank %d of %d: no message from rank 0 for %.0f s (%s); ending the job\n",
               rank_, size_, waited_s, what.c_str());
  std::fflush(stderr);
  SignalLauncher();
  MPI_Abort(handle_->comm, 1);
  std::abort();
}

void MpiCommunicator::SignalLauncher() {
  // Under `mpirun --enable-recovery` (which keeps rank 0 alive when another rank dies, so that
  // it can answer its clients) OpenMPI 4.1 exits 0 whatever its ranks' status, MPI_Abort
  // included; a SIGTERM to the launcher (mpirun, or the host's orted) makes it end the job
  // with a non-zero status.
  const pid_t parent = getppid();
  std::ifstream comm("/proc/" + std::to_string(parent) + "/comm");
  std::string name;
  std::getline(comm, name);
  if (name == "mpirun" || name == "mpiexec" || name == "orterun" || name == "orted") {
    kill(parent, SIGTERM);
  }
}

std::string MpiCommunicator::RollCall() {
  using Clock = std::chrono::steady_clock;
  int32_t alive = 1;
  if (rank_ != 0) {
    MPI_Request req = MPI_REQUEST_NULL;
    if (MPI_Isend(&alive, 1, MPI_INT32_T, 0, kTagAlive, handle_->roll, &req) != MPI_SUCCESS) return "";
    const auto start = Clock::now();
    for (int done = 0; !done && Clock::now() - start < std::chrono::seconds(2);) {
      if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) break;
      if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return "";
  }
  std::vector<int32_t> got(static_cast<size_t>(size_), 0);
  std::vector<MPI_Request> reqs(static_cast<size_t>(size_), MPI_REQUEST_NULL);
  for (int q = 1; q < size_; ++q) {
    MPI_Irecv(&got[static_cast<size_t>(q)], 1, MPI_INT32_T, q, kTagAlive, handle_->roll, &reqs[static_cast<size_t>(q)]);
  }
  std::vector<bool> heard(static_cast<size_t>(size_), false);
  heard[0] = true;
  const auto start = Clock::now();
  const auto limit = std::chrono::duration<double>(options_.collective_timeout_s);
  for (int left = size_ - 1; left > 0 && Clock::now() - start < limit;) {
    for (int q = 1; q < size_; ++q) {
      int done = 0;
      if (heard[static_cast<size_t>(q)]) continue;
      if (MPI_Test(&reqs[static_cast<size_t>(q)], &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && done) {
        heard[static_cast<size_t>(q)] = true;
        --left;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::string silent;
  for (int q = 1; q < size_; ++q) {
    if (!heard[static_cast<size_t>(q)]) silent += ", rank " + std::to_string(q);
  }
  return silent;
}

void MpiCommunicator::Wait(const char* what, bool bounded) {
  WaitOn(&handle_->request, what, bounded, -1);
}

void MpiCommunicator::WaitOn(void* request, const std::string& what, bool bounded, int peer) {
  using Clock = std::chrono::steady_clock;
  MPI_Request* req = static_cast<MPI_Request*>(request);
  const auto start = Clock::now();
  // Spin briefly (an exchange between busy ranks completes in microseconds), then poll with
  // short sleeps so that a waiting rank leaves its cores to the others (oversubscribed runs);
  // an unbounded wait and a wait for rank 0 (an idle rank) back off to sleeps of 5 ms, so
  // idle ranks cost no CPU.
  const auto spin = std::chrono::microseconds(50);
  auto nap = std::chrono::microseconds(bounded ? 20 : 200);
  const bool on_root = rank_ != 0 && peer == 0;
  const double limit_s = on_root ? RootSilenceLimit() : options_.collective_timeout_s;
  for (;;) {
    int done = 0;
    const int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
      Fail(what + (peer >= 0 ? " (rank " + std::to_string(peer) + ")" : std::string()), rc);
    }
    if (done) return;
    const auto waited = Clock::now() - start;
    if (bounded && std::chrono::duration<double>(waited).count() > limit_s) {
      if (on_root) FailRootSilent(what, std::chrono::duration<double>(waited).count());
      if (peer >= 0) {
        Fail("rank " + std::to_string(peer) + " stopped answering: " + what +
                 " did not complete within " +
                 std::to_string(static_cast<int64_t>(options_.collective_timeout_s)) + " s",
             MPI_SUCCESS);
      }
      Fail(what + " did not complete within " +
               std::to_string(static_cast<int64_t>(options_.collective_timeout_s)) +
               " s (a rank stopped answering)",
           MPI_SUCCESS, /*timed_out=*/true);
    }
    if (waited > spin) {
      std::this_thread::sleep_for(nap);
      if ((!bounded || on_root) && waited > std::chrono::milliseconds(20)) {
        nap = std::min<std::chrono::microseconds>(nap * 2, std::chrono::milliseconds(5));
      }
    }
  }
}

void MpiCommunicator::AllToAll(std::span<const int64_t> send, std::span<int64_t> recv,
                               int64_t count) {
  DSV4_CHECK(static_cast<int64_t>(send.size()) == size_ * count &&
             static_cast<int64_t>(recv.size()) == size_ * count);
  const int rc = MPI_Ialltoall(send.data(), static_cast<int>(count), MPI_INT64_T, recv.data(),
                               static_cast<int>(count), MPI_INT64_T, handle_->comm,
                               &handle_->request);
  if (rc != MPI_SUCCESS) Fail("MPI_Ialltoall", rc);
  Wait("the all-to-all of counts", true);
}

void MpiCommunicator::AllToAllV(const std::byte* send, std::span<const int64_t> send_bytes,
                                std::byte* recv, std::span<const int64_t> recv_bytes) {
  StartAllToAllV(send, send_bytes, recv, recv_bytes);
  FinishAllToAllV();
}

void MpiCommunicator::StartAllToAllV(const std::byte* send, std::span<const int64_t> send_bytes,
                                     std::byte* recv, std::span<const int64_t> recv_bytes) {
  DSV4_CHECK(!v_pending_);
  DSV4_CHECK(static_cast<int>(send_bytes.size()) == size_ &&
             static_cast<int>(recv_bytes.size()) == size_);
  v_send_counts_ = IntCounts(send_bytes, &v_send_displs_);
  v_recv_counts_ = IntCounts(recv_bytes, &v_recv_displs_);
  const int rc = MPI_Ialltoallv(send, v_send_counts_.data(), v_send_displs_.data(), MPI_BYTE,
                                recv, v_recv_counts_.data(), v_recv_displs_.data(), MPI_BYTE,
                                handle_->comm, &handle_->request);
  if (rc != MPI_SUCCESS) Fail("MPI_Ialltoallv", rc);
  v_pending_ = true;
}

void MpiCommunicator::FinishAllToAllV() {
  DSV4_CHECK(v_pending_);
  v_pending_ = false;
  Wait("the all-to-all of rows", true);
}

int64_t MpiCommunicator::AgreeMax(int64_t value, bool bounded) {
  int64_t result = 0;
  const int rc = MPI_Iallreduce(&value, &result, 1, MPI_INT64_T, MPI_MAX, handle_->comm,
                                &handle_->request);
  if (rc != MPI_SUCCESS) Fail("MPI_Iallreduce", rc);
  // Between steps the other ranks wait for rank 0 (the one that leads the steps).
  if (rank_ == 0) {
    WaitOn(&handle_->request, "the step agreement", bounded, -1);
  } else {
    WaitOn(&handle_->request, "waiting for its next step", bounded, 0);
  }
  return result;
}

void MpiCommunicator::AllGather(int64_t value, std::span<int64_t> all) {
  DSV4_CHECK(static_cast<int>(all.size()) == size_);
  const int rc = MPI_Iallgather(&value, 1, MPI_INT64_T, all.data(), 1, MPI_INT64_T,
                                handle_->comm, &handle_->request);
  if (rc != MPI_SUCCESS) Fail("MPI_Iallgather", rc);
  Wait("the all-gather", true);
}

void MpiCommunicator::Broadcast(std::vector<std::byte>* bytes, bool bounded) {
  // Point to point from rank 0 (size, then the bytes): the others wait for rank 0 alone.
  int64_t size = static_cast<int64_t>(bytes->size());
  if (rank_ == 0) {
    std::vector<MPI_Request> reqs;
    reqs.reserve(static_cast<size_t>(2 * size_));
    for (int q = 1; q < size_; ++q) {
      reqs.emplace_back();
      int rc = MPI_Isend(&size, 1, MPI_INT64_T, q, kTagBroadcastSize, handle_->comm, &reqs.back());
      if (rc != MPI_SUCCESS) Fail("sending the step's control to rank " + std::to_string(q), rc);
      reqs.emplace_back();
      DSV4_CHECK(size <= INT_MAX);
      rc = MPI_Isend(bytes->data(), static_cast<int>(size), MPI_BYTE, q, kTagBroadcast,
                     handle_->comm, &reqs.back());
      if (rc != MPI_SUCCESS) Fail("sending the step's control to rank " + std::to_string(q), rc);
    }
    for (size_t i = 0; i < reqs.size(); ++i) {
      WaitOn(&reqs[i], "sending the step's control", bounded, static_cast<int>(i / 2) + 1);
    }
    return;
  }
  MPI_Request req = MPI_REQUEST_NULL;
  int rc = MPI_Irecv(&size, 1, MPI_INT64_T, 0, kTagBroadcastSize, handle_->comm, &req);
  if (rc != MPI_SUCCESS) Fail("receiving the step's control", rc);
  WaitOn(&req, "waiting for the step's control", bounded, 0);
  bytes->resize(static_cast<size_t>(size));
  rc = MPI_Irecv(bytes->data(), static_cast<int>(size), MPI_BYTE, 0, kTagBroadcast,
                 handle_->comm, &req);
  if (rc != MPI_SUCCESS) Fail("receiving the step's control", rc);
  WaitOn(&req, "receiving the step's control", true, 0);
}

void MpiCommunicator::GatherToRoot(std::span<const std::byte> mine,
                                   std::vector<std::vector<std::byte>>* all, bool bounded) {
  DSV4_CHECK(mine.size() <= INT_MAX);
  int64_t size = static_cast<int64_t>(mine.size());
  if (rank_ != 0) {
    MPI_Request reqs[2];
    int rc = MPI_Isend(&size, 1, MPI_INT64_T, 0, kTagGatherSize, handle_->comm, &reqs[0]);
    if (rc != MPI_SUCCESS) Fail("sending the step's report to rank 0", rc);
    rc = MPI_Isend(mine.data(), static_cast<int>(size), MPI_BYTE, 0, kTagGather, handle_->comm,
                   &reqs[1]);
    if (rc != MPI_SUCCESS) Fail("sending the step's report to rank 0", rc);
    WaitOn(&reqs[0], "sending the step's report", true, 0);
    WaitOn(&reqs[1], "sending the step's report", true, 0);
    return;
  }
  all->resize(static_cast<size_t>(size_));
  (*all)[0].assign(mine.begin(), mine.end());
  for (int q = 1; q < size_; ++q) {
    std::vector<std::byte>& out = (*all)[static_cast<size_t>(q)];
    MPI_Request req = MPI_REQUEST_NULL;
    int64_t n = 0;
    int rc = MPI_Irecv(&n, 1, MPI_INT64_T, q, kTagGatherSize, handle_->comm, &req);
    if (rc != MPI_SUCCESS) Fail("receiving the step's report of rank " + std::to_string(q), rc);
    WaitOn(&req, "its step's report", bounded, q);
    DSV4_CHECK(n >= 0 && n <= INT_MAX);
    out.resize(static_cast<size_t>(n));
    rc = MPI_Irecv(out.data(), static_cast<int>(n), MPI_BYTE, q, kTagGather, handle_->comm, &req);
    if (rc != MPI_SUCCESS) Fail("receiving the step's report of rank " + std::to_string(q), rc);
    WaitOn(&req, "its step's report", true, q);
  }
}

}  // namespace dsv4::dist
