#include "plan/units.h"

#include <cmath>
#include <cstdio>

namespace dsv4::plan {

std::string Commas(int64_t v) {
  const std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string FixedDigits(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string GbString(double bytes) { return FixedDigits(bytes / 1e9, 2) + " GB"; }

std::string DecimalBytes(double bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  double v = bytes;
  while (std::fabs(v) >= 1000.0 && u < 4) {
    v /= 1000.0;
    ++u;
  }
  if (u == 0) return FixedDigits(v, 0) + " B";
  return FixedDigits(v, std::fabs(v) >= 100 ? 1 : 2) + " " + units[u];
}

std::string TokensShort(int64_t tokens) {
  if (tokens > 0 && tokens % (int64_t{1} << 20) == 0) {
    return std::to_string(tokens >> 20) + "M";
  }
  if (tokens > 0 && tokens % 1024 == 0) return std::to_string(tokens >> 10) + "K";
  return std::to_string(tokens);
}

}  // namespace dsv4::plan
