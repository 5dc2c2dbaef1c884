// The streaming state of one V4 token compressor (spec §7.6) and what taking tokens back out
// of it needs (speculative decoding). The state is a view into page memory (or any buffer);
// it owns the two ways a token changes it, writing its row and closing a window, so that the
// forward pass (models/v4/compressor.cpp, which also pools) and a rollback's replay change it
// through the same code.
// Not thread-safe: one sequence is stepped by one thread at a time.
#pragma once

#include <cstdint>
#include <vector>

namespace dsv4::kv {

class CompressorUndo;

// kv and score rows [kappa*m, kappa*c] FP32, scores with the position bias already added.
// Overlapping (kappa 2, m 4): rows m..2m-1 are the current window, rows 0..m-1 the previous
// one; kappa 1 (m 128): rows 0..m-1 are the current window.
struct CompressorState {
  int64_t ratio = 0;  // m
  int64_t width = 0;  // c
  int64_t kappa = 1;  // 2 for overlapping windows (m == 4)
  float* kv = nullptr;
  float* score = nullptr;
  // Set while a speculation mark is active on an overlapping state: Write logs each row.
  CompressorUndo* undo = nullptr;

  static int64_t KappaFor(int64_t m) { return m == 4 ? 2 : 1; }
  static int64_t FloatsFor(int64_t m, int64_t c);  // kv + score
  // Points the state at `storage` (FloatsFor(m, c) floats) without touching it (nor `undo`).
  void Bind(int64_t m, int64_t c, float* storage);
  // kv = 0, score = -inf: a sequence's initial state.
  void Reset();
  int64_t row_width() const { return kappa * width; }
  int64_t rows() const { return kappa * ratio; }
  // The row token `pos` writes: (kappa - 1)*m + pos mod m.
  int64_t SlotOf(int64_t pos) const { return (kappa - 1) * ratio + pos % ratio; }
  // Whether token `pos` closes a window (the compressor then emits entry pos / m).
  bool ClosesWindow(int64_t pos) const { return (pos + 1) % ratio == 0; }

  // Token `pos`'s rows: v, z FP32 [row_width()] into row SlotOf(pos) (and into the undo log
  // when one is set).
  void Write(int64_t pos, const float* v, const float* z);
  // After the window that a token closed has been pooled: an overlapping state moves the
  // current window into the previous-window rows; kappa 1 keeps everything (its rows are
  // all overwritten before the next window is pooled).
  void CloseWindow();
};

// What RollbackTo needs to bring a compressor state back to any position of
// [pos0, pos0 + max_tokens] after tokens up to pos0 + max_tokens were fed: kappa 2 keeps the
// whole state at pos0 and logs the rows written after it (a rollback restores it, then
// replays the kept positions' writes and window shifts without pooling); kappa 1 keeps the
// rows that positions [pos0, pos0 + max_tokens) will overwrite (a rollback puts back those
// of the positions taken back: nothing else of a kappa-1 state changes). Buffers only grow,
// so a warm mark allocates nothing.
class CompressorUndo {
 public:
  // Starts the mark on `s` at position `pos0`; `s` may be unbound (no pages yet: its initial
  // state is kept then). m, c: the compressor's ratio and width; max_tokens >= 1, and <= m
  // when kappa is 1.
  void Begin(CompressorState& s, int64_t m, int64_t c, int64_t pos0, int64_t max_tokens);
  // Called by CompressorState::Write while marked.
  void Log(int64_t pos, const float* v, const float* z);
  // `s` (bound) has seen positions up to `fed`: makes it the state of position n
  // (pos0 <= n <= fed <= pos0 + max_tokens) and ends the mark.
  void RollBack(CompressorState& s, int64_t n, int64_t fed);
  // Ends the mark, keeping the state as it is.
  void End(CompressorState& s) { s.undo = nullptr; }

 private:
  int64_t kappa_ = 1, ratio_ = 0, row_ = 0;
  int64_t pos0_ = 0, max_tokens_ = 0;
  // kappa 2: the whole state at pos0 (kv then score, FloatsFor(m, c)); kappa 1: kv rows then
  // score rows of positions [pos0, pos0 + max_tokens), FP32 [2, max_tokens, row].
  std::vector<float> saved_;
  std::vector<float> log_;  // kappa 2: FP32 [max_tokens, 2, row]: v, z of position pos0 + i
};

}  // namespace dsv4::kv
