#include "models/v4/compressor.h"

#include <cmath>
#include <limits>

#include "core/check.h"

namespace dsv4::v4 {

bool CompressorStep(kv::CompressorState& s, const float* v, const float* z, int64_t pos,
                    float* pooled) {
  DSV4_CHECK(s.kappa * s.ratio <= 256);
  const int64_t m = s.ratio, c = s.width, row = s.row_width();
  const int64_t offset = s.kappa == 2 ? m : 0;  // overlapping: current window in rows m..2m-1
  s.Write(pos, v, z);
  if (!s.ClosesWindow(pos)) return false;

  // Candidates per feature f: previous window (rows 0..m-1, features [0, c)) when
  // overlapping, then the current window (rows offset.., features [offset? c : 0, ...)).
  const int64_t cur_col = s.kappa == 2 ? c : 0;
  for (int64_t f = 0; f < c; ++f) {
    float mx = -std::numeric_limits<float>::infinity();
    if (s.kappa == 2) {
      for (int64_t j = 0; j < m; ++j) mx = std::max(mx, s.score[j * row + f]);
    }
    for (int64_t j = 0; j < m; ++j) mx = std::max(mx, s.score[(offset + j) * row + cur_col + f]);
    // Softmax weights e/Σe, then Σ v·weight (the reference's order). Previous-window rows
    // of entry 0 hold score -inf: weight exactly 0.
    float e[256];
    int64_t idx[256];
    int64_t k = 0;
    if (s.kappa == 2) {
      for (int64_t j = 0; j < m; ++j) idx[k++] = j * row + f;
    }
    for (int64_t j = 0; j < m; ++j) idx[k++] = (offset + j) * row + cur_col + f;
    float den = 0.0f;
    for (int64_t j = 0; j < k; ++j) den += (e[j] = std::exp(s.score[idx[j]] - mx));
    float acc = 0.0f;
    for (int64_t j = 0; j < k; ++j) acc += s.kv[idx[j]] * (e[j] / den);
    pooled[f] = acc;
  }
  s.CloseWindow();  // overlapping: the current window becomes the next entry's previous
  return true;
}

}  // namespace dsv4::v4
