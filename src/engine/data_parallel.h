// Data-parallel serving under expert parallelism (DEP, README "Multi-node"): one engine per
// rank, each with its own scheduler, KV pages and prefix cache, running its own sequences;
// the MoE layers of every step exchange rows between all ranks (dist/expert_exchange.h).
//
// Who owns what. Rank 0 owns the clients: its Engine takes every Submit and Cancel (the
// server and `bench serve` see one engine), places each new request on a rank (the least
// KV-loaded first, ties to the lowest rank id, rank 0 included), keeps the RequestStream of
// every request and pushes the events of the requests other ranks run into them. Rank q owns
// the sequences placed on it: their pages, scheduling, sampling and stop conditions. Every
// rank holds its share of the experts and a full copy of every other weight.
//
// The per-step protocol (a "tick"), run by every rank's engine thread:
//   1. Control, rank 0 -> all (Communicator::Broadcast): the requests placed since the last
//      tick (rank 0's id, the rank, the request), the cancellations of requests other ranks
//      run, whether a forward step runs (some rank has sequences) and whether to stop.
//      A follower waits here without spinning. While no rank has work rank 0 sends a tick
//      that runs no step every Communicator::KeepAliveInterval (at most 1 s), so an idle
//      server costs no CPU anywhere and a follower that hears nothing from rank 0 for
//      Communicator::RootSilenceLimit ends the job (rank 0 died); until rank 0's first tick
//      (ranks load at different speeds) the first control and report wait without a timeout.
//   2. Step: every rank with sequences runs its engine step (one ForwardBatch); when the
//      control says a step runs, a rank without rows joins it with zero rows
//      (runner::CausalLm::JoinExpertParallelStep), so every MoE layer's all-to-all is joined
//      by every rank.
//   3. Report, all -> rank 0 (Communicator::GatherToRoot, bounded by --ep-timeout, naming a
//      rank that does not answer): each rank's token events since the last tick (with rank
//      0's ids), whether it still has sequences, its KV use and counters.
// Requests never move between ranks, and each sequence's logits are bit-identical whatever
// else runs on any rank (the MoE combine adds in one canonical order), so a request's output
// does not depend on the rank that serves it.
//
// Failure: a rank that stops answering makes a collective time out; rank 0 then finds which
// ranks still answer (a roll call), marks the engine unavailable (Engine::unavailable(): the
// server answers 503 naming the rank), ends every stream with that error, waits a moment for
// clients to get it, and ends the job with a non-zero status.
//
// The ticks themselves are Engine::Impl's LoopLeader and LoopFollower
// (engine/data_parallel_loop.cpp).
//
// Not thread-safe: the engine thread alone uses these.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "dsv4/engine.h"
#include "dist/expert_parallel.h"

namespace dsv4::engine {

// Step 1's message.
struct DpControl {
  struct Placed {
    RequestId id = 0;  // rank 0's
    int32_t rank = 0;
    GenerationRequest request;
  };
  bool stop = false;
  bool step = false;
  std::vector<Placed> placed;         // for ranks > 0 only
  std::vector<RequestId> cancelled;   // requests ranks > 0 run
};

// Step 3's message.
struct DpReport {
  struct Event {
    RequestId id = 0;
    TokenEvent event;
  };
  bool has_work = false;  // sequences left after the step
  EngineRankStats stats;  // rank filled in by the receiver
  std::vector<Event> events;
};

void EncodeControl(const DpControl& c, std::vector<std::byte>* out);
// Internal on a malformed message (the ranks run the same build: a bug, never user input).
Status DecodeControl(std::span<const std::byte> in, DpControl* c);
void EncodeReport(const DpReport& r, std::vector<std::byte>* out);
Status DecodeReport(std::span<const std::byte> in, DpReport* r);

// Rank 0's bookkeeping: where requests run, the streams of those on other ranks, the ranks'
// loads and counters.
class DpLeader {
 public:
  explicit DpLeader(int num_ranks);

  // Where a new request runs: the least KV-loaded rank (the KV bytes its sequences held at
  // its last report, cached prefixes not counted, plus what requests placed since will need,
  // `kv_needed` each), ties to the lowest id; `local_kv_used`: rank 0's sequences' bytes now.
  // Counted in the rank's stats.
  int Place(int64_t local_kv_used, int64_t kv_needed);
  // A request placed on rank > 0: its stream receives the events the rank reports.
  void Forward(RequestId id, int rank, std::shared_ptr<RequestStream> stream);
  bool IsRemote(RequestId id) const { return remote_.count(id) != 0; }
  // The reports of step 3, [ranks] (rank 0's own included). Update: the ranks' loads and
  // counters; returns how many remote requests the reports end. Deliver, after it (so that a
  // client who saw its request end sees the counters that include it): pushes the events.
  int64_t Update(std::span<const DpReport> reports);
  void Deliver(std::span<const DpReport> reports);
  // Whether a rank other than 0 still had sequences at its last report.
  bool others_busy() const;
  // Ends every remote stream: kError with `error` (a rank failed), or kCancelled (stopped).
  void EndAll(FinishReason reason, const std::string& error = "");
  const std::vector<EngineRankStats>& ranks() const { return ranks_; }
  std::vector<EngineRankStats>& mutable_ranks() { return ranks_; }

 private:
  struct Remote {
    int rank = 0;
    std::shared_ptr<RequestStream> stream;
  };
  std::vector<EngineRankStats> ranks_;
  std::vector<int64_t> pending_kv_;  // [ranks]: placed since the rank's last report
  std::vector<bool> busy_;           // [ranks]
  std::unordered_map<RequestId, Remote> remote_;
};

}  // namespace dsv4::engine
