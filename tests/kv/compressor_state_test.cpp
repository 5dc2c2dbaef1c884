// The compressor state's undo (speculative rollback) on random rows, without a model: a state
// marked at pos0, fed up to max_tokens more rows, rolled back to n is bit for bit (every row
// of kv and score) a state fed only the first n rows, for the overlapping (m = 4) and the
// HCA (m = 128) compressor, marks on both sides of window boundaries, and a mark set before
// the state was bound.
#include "kv/compressor_state.h"

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "core/rng.h"

namespace dsv4::kv {
namespace {

// Rows as the compressor step writes them: Write, then CloseWindow at a window's end (the
// pooling in between reads the state and changes nothing).
void Feed(CompressorState& s, const std::vector<float>& rows, int64_t from, int64_t to) {
  const int64_t row = s.row_width();
  for (int64_t pos = from; pos < to; ++pos) {
    s.Write(pos, rows.data() + (2 * pos) * row, rows.data() + (2 * pos + 1) * row);
    if (s.ClosesWindow(pos)) s.CloseWindow();
  }
}

struct Case {
  int64_t m, c;
};

TEST(CompressorUndo, RollbackEqualsAStateThatSawOnlyTheKeptRows) {
  Rng rng(7);
  for (const Case cs : {Case{4, 6}, Case{128, 3}}) {
    const int64_t floats = CompressorState::FloatsFor(cs.m, cs.c);
    const int64_t row = CompressorState::KappaFor(cs.m) * cs.c;
    std::vector<float> rows(static_cast<size_t>(2 * 400 * row));
    for (float& x : rows) x = static_cast<float>(rng.Normal());
    for (int64_t pos0 : {0, 1, 3, 4, 5, 124, 126, 127, 128, 129, 255, 256}) {
      for (int64_t max_tokens : {1, 3, 8}) {
        for (int64_t fed = pos0; fed <= pos0 + max_tokens; ++fed) {
          for (int64_t n = pos0; n <= fed; ++n) {
            std::vector<float> got_mem(static_cast<size_t>(floats)), want_mem(got_mem.size());
            CompressorState got, want;
            want.Bind(cs.m, cs.c, want_mem.data());
            want.Reset();
            Feed(want, rows, 0, n);
            CompressorUndo undo;
            if (pos0 == 0) {  // marked before any page: bound and reset afterwards
              undo.Begin(got, cs.m, cs.c, pos0, max_tokens);
              got.Bind(cs.m, cs.c, got_mem.data());
              got.Reset();
            } else {
              got.Bind(cs.m, cs.c, got_mem.data());
              got.Reset();
              Feed(got, rows, 0, pos0);
              undo.Begin(got, cs.m, cs.c, pos0, max_tokens);
            }
            // The rejected rows differ from the kept stream's.
            std::vector<float> junk(rows);
            for (float& x : junk) x += 1.0f;
            Feed(got, rows, pos0, n);
            Feed(got, junk, n, fed);
            undo.RollBack(got, n, fed);
            EXPECT_EQ(got.undo, nullptr);
            EXPECT_EQ(std::memcmp(got_mem.data(), want_mem.data(), got_mem.size() * sizeof(float)),
                      0)
                << "m " << cs.m << ", mark " << pos0 << ", max " << max_tokens << ", fed " << fed
                << ", kept " << n;
          }
        }
      }
    }
  }
}

TEST(CompressorUndo, OnlyOverlappingStatesLogAndEndStopsLogging) {
  std::vector<float> a(static_cast<size_t>(CompressorState::FloatsFor(4, 2)));
  std::vector<float> b(static_cast<size_t>(CompressorState::FloatsFor(128, 2)));
  CompressorState csa, hca;
  csa.Bind(4, 2, a.data());
  hca.Bind(128, 2, b.data());
  CompressorUndo u1, u2;
  u1.Begin(csa, 4, 2, 10, 8);
  u2.Begin(hca, 128, 2, 10, 8);
  EXPECT_EQ(csa.undo, &u1);
  EXPECT_EQ(hca.undo, nullptr);
  u1.End(csa);
  EXPECT_EQ(csa.undo, nullptr);
}

}  // namespace
}  // namespace dsv4::kv
