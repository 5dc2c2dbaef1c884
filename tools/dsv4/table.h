// Plain-text tables for CLI output: columns sized to their widest cell, numbers right-aligned.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsv4::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void Row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  // Renders with two spaces between columns; cells that look numeric are right-aligned.
  std::string Render() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// 1234567 -> "1,234,567".
std::string WithCommas(int64_t v);
// Bytes as "3.43 GiB" / "584 B" (binary units).
std::string HumanBytes(double bytes);

// v with `digits` decimals: Fixed(2.345, 1) -> "2.3".
std::string Fixed(double v, int digits);
// Decimal units, as bandwidth is quoted: "13.375 GB", "2.31 MB", "4.10 kB".
std::string Gb(double bytes);
// Milliseconds with about three significant digits: "2.35", "23.5", "235".
std::string Ms(double ms);

}  // namespace dsv4::cli
