// Number formatting shared by the planner's messages and reports: decimal GB (capacity.md
// convention), token counts with thousands separators, and the 1M = 2^20 token suffixes.
#pragma once

#include <cstdint>
#include <string>

namespace dsv4::plan {

std::string Commas(int64_t v);                  // 1048576 -> "1,048,576"
std::string FixedDigits(double v, int digits);  // printf("%.*f")
std::string GbString(double bytes);             // 5.28e9 -> "5.28 GB" (decimal, 2 digits)
// Bytes with a decimal unit that keeps 3 significant digits: "584 B", "4.56 MB", "5.28 GB".
std::string DecimalBytes(double bytes);
// Tokens in the planner's own notation: 1048576 -> "1M", 131072 -> "128K", 1000000 ->
// "1000000" (exact, so the output parses back with ParseTokens).
std::string TokensShort(int64_t tokens);

}  // namespace dsv4::plan
