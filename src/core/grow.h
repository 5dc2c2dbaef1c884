// Grow-only scratch buffers: a step's workspace keeps its vectors across calls, and resizing
// them to each call's size would value-initialise (zero-fill) every element past the last
// call's size each time the size goes up again (a prefill chunk, then decode, then another
// chunk). GrowTo grows the vector only past its largest size so far and never shrinks it, so
// a warm buffer is neither reallocated nor re-zeroed; callers use the first n elements
// through the returned pointer, never v.size().
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dsv4 {

// v.data() after making v hold at least n elements. Elements keep their old values (or are
// value-initialised when v grows): callers write every element they later read.
template <class T, class A>
T* GrowTo(std::vector<T, A>& v, int64_t n) {
  if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
  return v.data();
}

}  // namespace dsv4
