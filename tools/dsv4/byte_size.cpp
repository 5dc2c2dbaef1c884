#include "byte_size.h"

#include <cmath>
#include <cstdlib>
#include <string>

namespace dsv4::cli {

Result<int64_t> ParseByteSize(std::string_view text) {
  const std::string s(text);
  char* end = nullptr;
  const double value = std::strtod(s.c_str(), &end);
  std::string unit(end);
  for (char& ch : unit) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  struct Unit {
    const char* name;
    double bytes;
  };
  static constexpr Unit kUnits[] = {
      {"", 1},          {"b", 1},         {"kb", 1e3},           {"mb", 1e6},
      {"gb", 1e9},      {"tb", 1e12},     {"kib", 1024.0},       {"mib", 1048576.0},
      {"gib", 1073741824.0}, {"tib", 1099511627776.0}, {"k", 1024.0}, {"m", 1048576.0},
      {"g", 1073741824.0}, {"t", 1099511627776.0}};
  if (end == s.c_str() || !std::isfinite(value)) {
    return Status::InvalidArgument("'" + s + "' is not a byte size (e.g. 8GiB, 2TB, 4096)");
  }
  for (const Unit& u : kUnits) {
    if (unit == u.name) {
      const double bytes = value * u.bytes;
      if (bytes < 1 || bytes > 9e18) {
        return Status::InvalidArgument("byte size '" + s + "' must be between 1 B and 9e18 B");
      }
      return static_cast<int64_t>(bytes);
    }
  }
  return Status::InvalidArgument("'" + s + "' has an unknown unit '" + unit +
                                 "' (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)");
}

}  // namespace dsv4::cli
