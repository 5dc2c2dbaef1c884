#include "testing/thread_communicator.h"

#include <algorithm>
#include <barrier>
#include <cstring>
#include <thread>

#include "core/check.h"

namespace dsv4::fixtures {
namespace {

// What each rank posts for the collective in progress.
struct Post {
  const std::byte* data = nullptr;   // its send buffer
  const int64_t* counts = nullptr;   // AllToAllV: its send_bytes [size]
  int64_t value = 0;                 // AgreeMax, AllGather
  const std::vector<std::byte>* bytes = nullptr;  // Broadcast (rank 0)
  std::span<const std::byte> mine;   // GatherToRoot
};

struct Board {
  explicit Board(int n) : sync(n), posts(static_cast<size_t>(n)) {}
  std::barrier<> sync;
  std::vector<Post> posts;  // [ranks]
};

class ThreadCommunicator final : public dist::Communicator {
 public:
  ThreadCommunicator(std::shared_ptr<Board> board, int rank)
      : board_(std::move(board)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(board_->posts.size()); }
  double timeout_s() const override { return 300.0; }  // the --ep-timeout default; unused

  void AllToAll(std::span<const int64_t> send, std::span<int64_t> recv, int64_t count) override {
    DSV4_CHECK(static_cast<int64_t>(send.size()) == size() * count &&
               static_cast<int64_t>(recv.size()) == size() * count);
    Posted([&](Post& p) { p.data = reinterpret_cast<const std::byte*>(send.data()); }, [&] {
      for (int q = 0; q < size(); ++q) {
        const auto* from = reinterpret_cast<const int64_t*>(board_->posts[q].data);
        std::copy_n(from + rank_ * count, count, recv.data() + q * count);
      }
    });
  }

  void AllToAllV(const std::byte* send, std::span<const int64_t> send_bytes, std::byte* recv,
                 std::span<const int64_t> recv_bytes) override {
    Posted(
        [&](Post& p) {
          p.data = send;
          p.counts = send_bytes.data();
        },
        [&] {
          int64_t at = 0;
          for (int q = 0; q < size(); ++q) {
            const Post& p = board_->posts[q];
            int64_t offset = 0;  // rank q's block for this rank
            for (int r = 0; r < rank_; ++r) offset += p.counts[r];
            DSV4_CHECK_MSG(p.counts[rank_] == recv_bytes[q], "all-to-allv counts disagree");
            if (recv_bytes[q] > 0) std::memcpy(recv + at, p.data + offset, recv_bytes[q]);
            at += recv_bytes[q];
          }
        });
  }

  void StartAllToAllV(const std::byte* send, std::span<const int64_t> send_bytes,
                      std::byte* recv, std::span<const int64_t> recv_bytes) override {
    DSV4_CHECK(!pending_);
    pending_ = true;
    pending_send_ = send;
    pending_send_bytes_ = send_bytes;
    pending_recv_ = recv;
    pending_recv_bytes_ = recv_bytes;
  }
  void FinishAllToAllV() override {
    DSV4_CHECK(pending_);
    pending_ = false;
    AllToAllV(pending_send_, pending_send_bytes_, pending_recv_, pending_recv_bytes_);
  }

  // Threads of one process never wait on a dead rank: `bounded` changes nothing here.
  int64_t AgreeMax(int64_t value, bool /*bounded*/) override {
    int64_t m = value;
    Posted([&](Post& p) { p.value = value; }, [&] {
      for (const Post& p : board_->posts) m = std::max(m, p.value);
    });
    return m;
  }

  void AllGather(int64_t value, std::span<int64_t> all) override {
    Posted([&](Post& p) { p.value = value; }, [&] {
      for (int q = 0; q < size(); ++q) all[q] = board_->posts[q].value;
    });
  }

  void Broadcast(std::vector<std::byte>* bytes, bool /*bounded*/) override {
    Posted([&](Post& p) { p.bytes = bytes; }, [&] {
      if (rank_ != 0) *bytes = *board_->posts[0].bytes;
    });
  }

  void GatherToRoot(std::span<const std::byte> mine,
                    std::vector<std::vector<std::byte>>* all, bool /*bounded*/) override {
    Posted([&](Post& p) { p.mine = mine; }, [&] {
      if (rank_ != 0) return;
      all->resize(static_cast<size_t>(size()));
      for (int q = 0; q < size(); ++q) {
        (*all)[q].assign(board_->posts[q].mine.begin(), board_->posts[q].mine.end());
      }
    });
  }

  // Threads of one process do not fail apart: the handler is never called.
  void SetFailureHandler(std::function<void(const std::string&)>) override {}

 private:
  // Posts this rank's part, waits for every rank's, reads, and waits until every rank has read.
  template <class PostFn, class ReadFn>
  void Posted(PostFn post, ReadFn read) {
    post(board_->posts[rank_]);
    board_->sync.arrive_and_wait();
    read();
    board_->sync.arrive_and_wait();
  }

  std::shared_ptr<Board> board_;
  int rank_;
  bool pending_ = false;
  const std::byte* pending_send_ = nullptr;
  std::span<const int64_t> pending_send_bytes_, pending_recv_bytes_;
  std::byte* pending_recv_ = nullptr;
};

}  // namespace

std::vector<std::shared_ptr<dist::Communicator>> ThreadCommunicators(int n) {
  auto board = std::make_shared<Board>(n);
  std::vector<std::shared_ptr<dist::Communicator>> out;
  for (int r = 0; r < n; ++r) out.push_back(std::make_shared<ThreadCommunicator>(board, r));
  return out;
}

void OnEveryRank(const dist::ExpertMap& map,
                 FunctionRef<void(int rank, std::shared_ptr<dist::ExpertParallel> ep)> fn) {
  const std::vector<std::shared_ptr<dist::Communicator>> comms = ThreadCommunicators(map.num_ranks());
  std::vector<std::thread> threads;
  for (int r = 0; r < map.num_ranks(); ++r) {
    threads.emplace_back([&, r] { fn(r, std::make_shared<dist::ExpertParallel>(map, r, comms[r])); });
  }
  for (std::thread& t : threads) t.join();
}

}  // namespace dsv4::fixtures
