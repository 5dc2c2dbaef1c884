// How much memory this process has used: the peak resident set size, for the commands'
// summaries (a long prompt's prefill must keep it flat in the prompt length).
#pragma once

#include <cstdint>

namespace dsv4 {

// Peak resident set size of this process so far in bytes (getrusage), 0 if unavailable.
int64_t PeakRssBytes();

}  // namespace dsv4
