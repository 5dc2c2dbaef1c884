#include "dist/expert_exchange.h"

#include <chrono>
#include <cstring>

#include "core/check.h"
#include "core/elapsed.h"
#include "core/grow.h"

namespace dsv4::dist {
namespace {

// One routing record of the Dispatch wire format.
struct PairRecord {
  int32_t row;     // within the source's block
  int32_t expert;
  float weight;
};
static_assert(sizeof(PairRecord) == 12);

}  // namespace

void ExpertExchange::Dispatch(ExpertParallel& ep, const BF16* x, int64_t n, int64_t D,
                              std::span<const int32_t> expert_of,
                              std::span<const float> weight_of, int64_t k) {
  Communicator& comm = *ep.comm();
  const ExpertMap& map = ep.map();
  const int N = ep.num_ranks(), me = ep.rank();
  DSV4_CHECK(static_cast<int64_t>(expert_of.size()) >= n * k &&
             static_cast<int64_t>(weight_of.size()) >= n * k);
  n_ = n, D_ = D, k_ = k;
  const int64_t row_bytes = D * static_cast<int64_t>(sizeof(BF16));
  // Count rows (once per destination) and pairs per destination; number each pair there.
  send_rows_.assign(static_cast<size_t>(N), 0);
  send_pairs_.assign(static_cast<size_t>(N), 0);
  last_row_.assign(static_cast<size_t>(N), -1);
  int64_t* slot = GrowTo(pair_slot_, n * k);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      const int q = map.owner(expert_of[static_cast<size_t>(t * k + j)]);
      if (last_row_[q] != t) ++send_rows_[q], last_row_[q] = t;
      slot[t * k + j] = send_pairs_[q]++;
    }
  }
  counts_send_.resize(static_cast<size_t>(2 * N));
  counts_recv_.resize(static_cast<size_t>(2 * N));
  send_bytes_.resize(static_cast<size_t>(N));
  recv_bytes_.resize(static_cast<size_t>(N));
  std::vector<int64_t>& block = block_;
  block.resize(static_cast<size_t>(N));
  int64_t total = 0;
  for (int q = 0; q < N; ++q) {
    counts_send_[2 * q] = send_rows_[q];
    counts_send_[2 * q + 1] = send_pairs_[q];
    send_bytes_[q] = send_rows_[q] * row_bytes + send_pairs_[q] * sizeof(PairRecord);
    block[q] = total;
    total += send_bytes_[q];
  }
  std::byte* send = GrowTo(send_, total);
  // Fill: each destination's rows first, its pair records after them.
  std::vector<int64_t>& rows_done = rows_done_;
  std::vector<int64_t>& pairs_done = pairs_done_;
  rows_done.assign(static_cast<size_t>(N), 0);
  pairs_done.assign(static_cast<size_t>(N), 0);
  std::vector<int64_t>& offset = last_row_;  // now: the last local row written per destination
  offset.assign(static_cast<size_t>(N), -1);
  int32_t* dest = GrowTo(pair_dest_, n * k);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      const int32_t e = expert_of[static_cast<size_t>(t * k + j)];
      const int q = map.owner(e);
      dest[t * k + j] = q;
      if (offset[q] != t) {
        std::memcpy(send + block[q] + rows_done[q] * row_bytes, x + t * D, row_bytes);
        ++rows_done[q];
        offset[q] = t;
      }
      const PairRecord rec{static_cast<int32_t>(rows_done[q] - 1), e,
                           weight_of[static_cast<size_t>(t * k + j)]};
      std::memcpy(send + block[q] + send_rows_[q] * row_bytes +
                      pairs_done[q] * static_cast<int64_t>(sizeof(PairRecord)),
                  &rec, sizeof(rec));
      ++pairs_done[q];
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  comm.AllToAll(counts_send_, counts_recv_, 2);
  int64_t recv_total = 0;
  for (int q = 0; q < N; ++q) {
    recv_bytes_[q] = counts_recv_[2 * q] * row_bytes + counts_recv_[2 * q + 1] * sizeof(PairRecord);
    recv_total += recv_bytes_[q];
  }
  std::byte* recv = GrowTo(recv_, recv_total);
  comm.AllToAllV(send, send_bytes_, recv, recv_bytes_);
  ExchangeStats& st = ep.stats();
  st.exchange_s += SecondsSince(t0);
  ++st.exchanges;
  st.local_rows += n;
  for (int q = 0; q < N; ++q) {
    if (q == me) continue;
    st.rows_sent += send_rows_[q];
    st.bytes_sent += send_bytes_[q];
    st.bytes_received += recv_bytes_[q];
  }
  // Unpack: rows back to back, pair rows renumbered into them.
  num_recv_rows_ = 0;
  int64_t num_pairs = 0;
  for (int q = 0; q < N; ++q) num_recv_rows_ += counts_recv_[2 * q], num_pairs += counts_recv_[2 * q + 1];
  BF16* rows = GrowTo(recv_rows_, num_recv_rows_ * D);
  pair_row_.resize(static_cast<size_t>(num_pairs));
  pair_expert_.resize(static_cast<size_t>(num_pairs));
  pair_weight_.resize(static_cast<size_t>(num_pairs));
  recv_pairs_.resize(static_cast<size_t>(N));
  const std::byte* p = recv;
  int64_t row_base = 0, pair = 0;
  for (int q = 0; q < N; ++q) {
    const int64_t r = counts_recv_[2 * q], m = counts_recv_[2 * q + 1];
    std::memcpy(rows + row_base * D, p, r * row_bytes);
    p += r * row_bytes;
    for (int64_t i = 0; i < m; ++i, ++pair, p += sizeof(PairRecord)) {
      PairRecord rec;
      std::memcpy(&rec, p, sizeof(rec));
      DSV4_CHECK(rec.row >= 0 && rec.row < r && ep.holds(rec.expert));
      pair_row_[pair] = row_base + rec.row;
      pair_expert_[pair] = rec.expert;
      pair_weight_[pair] = rec.weight;
    }
    recv_pairs_[q] = m;
    row_base += r;
  }
}

void ExpertExchange::Combine(ExpertParallel& ep, const BF16* out) {
  StartCombine(ep, out);
  FinishCombine(ep);
}

void ExpertExchange::StartCombine(ExpertParallel& ep, const BF16* out) {
  Communicator& comm = *ep.comm();
  const int N = ep.num_ranks();
  const int64_t row_bytes = D_ * static_cast<int64_t>(sizeof(BF16));
  // Back along the reverse path: what this rank computed for source q goes to q; what q
  // computed for this rank's pairs comes back in the order they were sent.
  std::vector<int64_t>& base = block_;  // now: the first result row from each rank
  int64_t total = 0;
  for (int q = 0; q < N; ++q) {
    send_bytes_[q] = recv_pairs_[q] * row_bytes;
    recv_bytes_[q] = send_pairs_[q] * row_bytes;
    base[q] = total;
    total += send_pairs_[q];
  }
  BF16* results = GrowTo(results_, total * D_);
  const auto t0 = std::chrono::steady_clock::now();
  comm.StartAllToAllV(reinterpret_cast<const std::byte*>(out), send_bytes_,
                      reinterpret_cast<std::byte*>(results), recv_bytes_);
  ep.stats().exchange_s += SecondsSince(t0);
}

void ExpertExchange::FinishCombine(ExpertParallel& ep) {
  const int N = ep.num_ranks(), me = ep.rank();
  const auto t0 = std::chrono::steady_clock::now();
  ep.comm()->FinishAllToAllV();
  ExchangeStats& st = ep.stats();
  st.exchange_s += SecondsSince(t0);
  for (int q = 0; q < N; ++q) {
    if (q == me) continue;
    st.bytes_sent += send_bytes_[q];
    st.bytes_received += recv_bytes_[q];
  }
  const std::vector<int64_t>& base = block_;
  int64_t* index = GrowTo(result_index_, n_ * k_);
  for (int64_t i = 0; i < n_ * k_; ++i) index[i] = base[pair_dest_[i]] + pair_slot_[i];
}

}  // namespace dsv4::dist
