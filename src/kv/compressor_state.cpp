#include "kv/compressor_state.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/check.h"
#include "core/grow.h"

namespace dsv4::kv {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

void CopyRow(float* to, const float* from, int64_t n) {
  std::memcpy(to, from, static_cast<size_t>(n) * sizeof(float));
}

}  // namespace

int64_t CompressorState::FloatsFor(int64_t m, int64_t c) {
  const int64_t kappa = KappaFor(m);
  return 2 * (kappa * m) * (kappa * c);
}

void CompressorState::Bind(int64_t m, int64_t c, float* storage) {
  ratio = m;
  width = c;
  kappa = KappaFor(m);
  kv = storage;
  score = storage + rows() * row_width();
}

void CompressorState::Reset() {
  const int64_t n = rows() * row_width();
  std::fill(kv, kv + n, 0.0f);
  std::fill(score, score + n, kNegInf);
}

void CompressorState::Write(int64_t pos, const float* v, const float* z) {
  const int64_t row = row_width(), slot = SlotOf(pos);
  CopyRow(kv + slot * row, v, row);
  CopyRow(score + slot * row, z, row);
  if (undo != nullptr) undo->Log(pos, v, z);
}

void CompressorState::CloseWindow() {
  if (kappa != 2) return;
  const int64_t n = ratio * row_width();  // rows m..2m-1 -> rows 0..m-1
  CopyRow(kv, kv + n, n);
  CopyRow(score, score + n, n);
}

// ---- Undo ----------------------------------------------------------------------------------

void CompressorUndo::Begin(CompressorState& s, int64_t m, int64_t c, int64_t pos0,
                           int64_t max_tokens) {
  kappa_ = CompressorState::KappaFor(m);
  DSV4_CHECK(max_tokens >= 1 && (kappa_ == 2 || max_tokens <= m));
  DSV4_CHECK(s.kv == nullptr || (s.ratio == m && s.width == c));
  ratio_ = m;
  row_ = kappa_ * c;
  pos0_ = pos0;
  max_tokens_ = max_tokens;
  const bool bound = s.kv != nullptr;
  if (kappa_ == 2) {
    const int64_t half = CompressorState::FloatsFor(m, c) / 2;
    float* saved = GrowTo(saved_, 2 * half);
    if (bound) {
      CopyRow(saved, s.kv, half);
      CopyRow(saved + half, s.score, half);
    } else {  // the state Reserve will bind and reset
      std::fill(saved, saved + half, 0.0f);
      std::fill(saved + half, saved + 2 * half, kNegInf);
    }
    GrowTo(log_, max_tokens * 2 * row_);
    s.undo = this;
    return;
  }
  float* kv = GrowTo(saved_, 2 * max_tokens * row_);
  float* score = kv + max_tokens * row_;
  for (int64_t i = 0; i < max_tokens; ++i) {
    if (bound) {
      const int64_t slot = s.SlotOf(pos0 + i);
      CopyRow(kv + i * row_, s.kv + slot * row_, row_);
      CopyRow(score + i * row_, s.score + slot * row_, row_);
    } else {
      std::fill(kv + i * row_, kv + (i + 1) * row_, 0.0f);
      std::fill(score + i * row_, score + (i + 1) * row_, kNegInf);
    }
  }
  s.undo = nullptr;  // kappa 1 needs no log
}

void CompressorUndo::Log(int64_t pos, const float* v, const float* z) {
  const int64_t i = pos - pos0_;
  DSV4_CHECK(i >= 0 && i < max_tokens_);
  CopyRow(log_.data() + (2 * i) * row_, v, row_);
  CopyRow(log_.data() + (2 * i + 1) * row_, z, row_);
}

void CompressorUndo::RollBack(CompressorState& s, int64_t n, int64_t fed) {
  DSV4_CHECK(s.kv != nullptr && pos0_ <= n && n <= fed && fed <= pos0_ + max_tokens_);
  s.undo = nullptr;
  if (n == fed) return;  // everything kept
  if (kappa_ == 2) {
    // The state at pos0, then the kept positions' writes and shifts (no pooling: their
    // entries are already in the cache).
    const int64_t half = s.rows() * s.row_width();
    CopyRow(s.kv, saved_.data(), half);
    CopyRow(s.score, saved_.data() + half, half);
    for (int64_t pos = pos0_; pos < n; ++pos) {
      const float* logged = log_.data() + 2 * (pos - pos0_) * row_;
      s.Write(pos, logged, logged + row_);
      if (s.ClosesWindow(pos)) s.CloseWindow();
    }
    return;
  }
  // kappa 1: the rows of the positions taken back get their values from before the mark.
  const float* kv = saved_.data();
  const float* score = kv + max_tokens_ * row_;
  for (int64_t pos = n; pos < fed; ++pos) {
    const int64_t i = pos - pos0_, slot = s.SlotOf(pos);
    CopyRow(s.kv + slot * row_, kv + i * row_, row_);
    CopyRow(s.score + slot * row_, score + i * row_, row_);
  }
}

}  // namespace dsv4::kv
