// One MoE layer's exchange of token rows under expert parallelism: Dispatch sends each local
// row to the ranks that hold its selected experts (once per rank, however many of its experts
// that rank holds) with its (expert, weight) pairs; each rank runs its experts on what it
// received; Combine returns every pair's expert output to the row's owner, which adds them in
// its own fixed order (the model's business: the exchange never adds anything, so the result
// is bit-identical to one process).
//
// Wire format, per (source, destination) block: Dispatch: rows BF16 [r, D], then r_pairs
// records {int32 row within the block, int32 expert, float weight}; Combine: BF16 [p, D] in
// the order of the received pairs. Counts travel first in an all-to-all of two int64 per peer.
// Every rank must call Dispatch and Combine for every MoE layer of every step, with zero rows
// when it has none. Buffers grow only (no allocation once warm); not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/bf16.h"
#include "dist/expert_parallel.h"

namespace dsv4::dist {

class ExpertExchange {
 public:
  // Local rows x BF16 [n, D]; row t chose experts expert_of[t*k ..] (ids < E) with weights
  // weight_of[t*k ..] (both [n, k]). Afterwards received_*() describe what this rank must
  // compute.
  void Dispatch(ExpertParallel& ep, const BF16* x, int64_t n, int64_t D,
                std::span<const int32_t> expert_of, std::span<const float> weight_of, int64_t k);

  // What Dispatch delivered: rows BF16 [num_received_rows, D], and pairs [num_pairs]: pair i
  // asks for expert pair_expert(i) on row pair_row(i) with routing weight pair_weight(i).
  // Pairs come grouped by source rank, each source's in its own (row, choice) order.
  int64_t num_received_rows() const { return num_recv_rows_; }
  const BF16* received_row(int64_t r) const { return recv_rows_.data() + r * D_; }
  int64_t num_pairs() const { return static_cast<int64_t>(pair_expert_.size()); }
  std::span<const int32_t> pair_experts() const { return pair_expert_; }
  std::span<const float> pair_weights() const { return pair_weight_; }
  int64_t pair_row(int64_t i) const { return pair_row_[static_cast<size_t>(i)]; }

  // out BF16 [num_pairs, D]: the expert output of every received pair, in pair order. Sends
  // them back; afterwards result(t, j) is the output for local row t's j-th choice.
  void Combine(ExpertParallel& ep, const BF16* out);
  // Combine in two halves (the caller computes in between, e.g. the shared expert, while the
  // other ranks finish their experts): `out` must stay untouched until FinishCombine.
  void StartCombine(ExpertParallel& ep, const BF16* out);
  void FinishCombine(ExpertParallel& ep);
  const BF16* result(int64_t t, int64_t j) const {
    return results_.data() + result_index_[static_cast<size_t>(t * k_ + j)] * D_;
  }

 private:
  int64_t D_ = 0, k_ = 0, n_ = 0;
  // Dispatch, sender side.
  std::vector<int64_t> send_rows_, send_pairs_;      // [ranks]: rows and pairs per destination
  std::vector<int64_t> last_row_;                    // [ranks]: last row queued per destination
  std::vector<int64_t> pair_slot_;                   // [n * k]: the pair's index at its destination
  std::vector<int32_t> pair_dest_;                   // [n * k]: its destination rank
  std::vector<int64_t> block_;                       // [ranks]: block offsets (then result bases)
  std::vector<int64_t> rows_done_, pairs_done_;      // [ranks]: fill cursors
  std::vector<int64_t> counts_send_, counts_recv_;   // [ranks * 2]
  std::vector<int64_t> send_bytes_, recv_bytes_;     // [ranks]
  std::vector<std::byte> send_, recv_;               // wire blocks
  // Dispatch, receiver side.
  int64_t num_recv_rows_ = 0;
  std::vector<BF16> recv_rows_;                      // [rows, D]
  std::vector<int64_t> pair_row_;                    // [pairs]
  std::vector<int32_t> pair_expert_;                 // [pairs]
  std::vector<float> pair_weight_;                   // [pairs]
  std::vector<int64_t> recv_pairs_;                  // [ranks]: pairs from each source
  // Combine.
  std::vector<BF16> results_;                        // [pairs sent, D]
  std::vector<int64_t> result_index_;                // [n * k]: its row in results_
};

}  // namespace dsv4::dist
