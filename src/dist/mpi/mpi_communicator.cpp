#include "dist/mpi/mpi_communicator.h"

#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
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
  MPI_Request request = MPI_REQUEST_NULL;
};

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
  MPI_Comm_rank(c->handle_->comm, &c->rank_);
  MPI_Comm_size(c->handle_->comm, &c->size_);
  return c;
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && handle_ && handle_->comm != MPI_COMM_NULL) MPI_Comm_free(&handle_->comm);
}

void MpiCommunicator::Fail(const std::string& what, int code) const {
  std::fprintf(stderr, "error: rank %d of %d: %s%s%s; ending the job\n", rank_, size_,
               what.c_str(), code == MPI_SUCCESS ? "" : ": ", code == MPI_SUCCESS ? "" : ErrorString(code).c_str());
  std::fflush(stderr);
  MPI_Abort(handle_->comm, 1);
  std::abort();  // MPI_Abort does not return; should it, never go on out of step
}

void MpiCommunicator::Wait(const char* what, bool bounded) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  // Spin briefly (an exchange between busy ranks completes in microseconds), then poll with
  // short sleeps so that a waiting rank leaves its cores to the others (oversubscribed runs,
  // an idle rank between steps).
  const auto spin = std::chrono::microseconds(50);
  for (;;) {
    int done = 0;
    const int rc = MPI_Test(&handle_->request, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) Fail(what, rc);
    if (done) return;
    const auto waited = Clock::now() - start;
    if (bounded && std::chrono::duration<double>(waited).count() > options_.collective_timeout_s) {
      Fail(std::string(what) + " did not complete within " +
               std::to_string(static_cast<int64_t>(options_.collective_timeout_s)) +
               " s (a rank stopped answering)",
           MPI_SUCCESS);
    }
    if (waited > spin) std::this_thread::sleep_for(std::chrono::microseconds(bounded ? 20 : 200));
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
  DSV4_CHECK(static_cast<int>(send_bytes.size()) == size_ &&
             static_cast<int>(recv_bytes.size()) == size_);
  std::vector<int> send_displs, recv_displs;
  const std::vector<int> send_counts = IntCounts(send_bytes, &send_displs);
  const std::vector<int> recv_counts = IntCounts(recv_bytes, &recv_displs);
  const int rc = MPI_Ialltoallv(send, send_counts.data(), send_displs.data(), MPI_BYTE, recv,
                                recv_counts.data(), recv_displs.data(), MPI_BYTE, handle_->comm,
                                &handle_->request);
  if (rc != MPI_SUCCESS) Fail("MPI_Ialltoallv", rc);
  Wait("the all-to-all of rows", true);
}

int64_t MpiCommunicator::AgreeMax(int64_t value) {
  int64_t result = 0;
  const int rc = MPI_Iallreduce(&value, &result, 1, MPI_INT64_T, MPI_MAX, handle_->comm,
                                &handle_->request);
  if (rc != MPI_SUCCESS) Fail("MPI_Iallreduce", rc);
  Wait("the step agreement", false);
  return result;
}

void MpiCommunicator::AllGather(int64_t value, std::span<int64_t> all) {
  DSV4_CHECK(static_cast<int>(all.size()) == size_);
  const int rc = MPI_Iallgather(&value, 1, MPI_INT64_T, all.data(), 1, MPI_INT64_T,
                                handle_->comm, &handle_->request);
  if (rc != MPI_SUCCESS) Fail("MPI_Iallgather", rc);
  Wait("the all-gather", true);
}

}  // namespace dsv4::dist
