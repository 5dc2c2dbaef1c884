// The AVX-512 BF16 linears' row-group driver, shared by linear_avx512bf16.cpp and
// linear_fp8_shift_avx512bf16.cpp: one tile's outputs for every input row, 4 rows per pass,
// rounded to BF16.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/simd.h"

namespace dsv4::kernels::internal {

// All input rows over one tile n0 (`count` outputs), 4 at a time: rows_tile(R, xw, res) with
// R a std::integral_constant of the rows (1-4) computes res[R] from xw[R] (row r's
// full-width pairs: xw_all + r * in); the outputs are rounded to BF16 in call.y.
template <class RowsTile>
DSV4_TARGET_AVX512BF16 void TileRowsBy4(const LinearCall& call, int64_t n0,
                                        const uint32_t* xw_all, int64_t count,
                                        RowsTile&& rows_tile) {
  const LinearWeight& w = *call.w;
  for (int64_t r0 = 0; r0 < call.rows; r0 += 4) {
    const int rows = static_cast<int>(std::min<int64_t>(4, call.rows - r0));
    const uint32_t* xw[4];
    for (int r = 0; r < rows; ++r) xw[r] = xw_all + (r0 + r) * w.in;
    __m512 res[4];
    switch (rows) {
      case 1: rows_tile(std::integral_constant<int, 1>{}, xw, res); break;
      case 2: rows_tile(std::integral_constant<int, 2>{}, xw, res); break;
      case 3: rows_tile(std::integral_constant<int, 3>{}, xw, res); break;
      default: rows_tile(std::integral_constant<int, 4>{}, xw, res); break;
    }
    for (int r = 0; r < rows; ++r) {
      alignas(64) float out[kAvx512Tile];
      _mm512_store_ps(out, res[r]);
      BF16* y = call.y + (r0 + r) * w.out + n0;
      for (int64_t i = 0; i < count; ++i) y[i] = F32ToBf16(out[i]);
    }
  }
}

}  // namespace dsv4::kernels::internal
