#include "tokenizer/python_json.h"

#include <charconv>
#include <cmath>
#include <string_view>

namespace dsv4::tokenizer {
namespace {

using nlohmann::ordered_json;

// repr(float) of CPython: the shortest digits that round-trip, written in positional form
// when the decimal exponent is in [-4, 16) ("0.0001", "1000000000000000.0") and as d.ddde+XX
// otherwise ("1e-05", "1e+16"). nlohmann switches to exponents at other points.
std::string PythonFloatRepr(double d) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string_view sci(buf, end - buf);  // "-1.2345e+19"
  std::string out;
  if (sci.front() == '-') {
    out.push_back('-');
    sci.remove_prefix(1);
  }
  const size_t e_pos = sci.find('e');
  std::string digits;
  for (char ch : sci.substr(0, e_pos)) {
    if (ch != '.') digits.push_back(ch);
  }
  const int exponent = std::stoi(std::string(sci.substr(e_pos + 1)));
  if (exponent < -4 || exponent >= 16) {
    out.push_back(digits[0]);
    if (digits.size() > 1) {
      out.push_back('.');
      out.append(digits, 1);
    }
    const int mag = exponent < 0 ? -exponent : exponent;
    out.push_back('e');
    out.push_back(exponent < 0 ? '-' : '+');
    if (mag < 10) out.push_back('0');
    out.append(std::to_string(mag));
    return out;
  }
  const int point = exponent + 1;  // digits before the decimal point
  if (point <= 0) {
    out.append("0.").append(static_cast<size_t>(-point), '0').append(digits);
  } else if (point >= static_cast<int>(digits.size())) {
    out.append(digits).append(point - digits.size(), '0').append(".0");
  } else {
    out.append(digits, 0, point).append(".").append(digits, point);
  }
  return out;
}

void Dump(const ordered_json& v, std::string* out) {
  switch (v.type()) {
    case ordered_json::value_t::object: {
      out->push_back('{');
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out->append(", ");
        first = false;
        Dump(ordered_json(it.key()), out);
        out->append(": ");
        Dump(it.value(), out);
      }
      out->push_back('}');
      return;
    }
    case ordered_json::value_t::array: {
      out->push_back('[');
      bool first = true;
      for (const ordered_json& e : v) {
        if (!first) out->append(", ");
        first = false;
        Dump(e, out);
      }
      out->push_back(']');
      return;
    }
    case ordered_json::value_t::number_float: {
      const double d = v.get<double>();
      // Python writes the non-finite values as bare words (not valid JSON, but its spelling).
      if (std::isnan(d)) {
        out->append("NaN");
      } else if (std::isinf(d)) {
        out->append(d > 0 ? "Infinity" : "-Infinity");
      } else {
        out->append(PythonFloatRepr(d));
      }
      return;
    }
    default:
      // Strings, integers, booleans and null: nlohmann escapes strings exactly as Python does
      // with ensure_ascii=False (control characters only, lowercase \u00XX).
      out->append(v.dump(-1, ' ', false, ordered_json::error_handler_t::replace));
      return;
  }
}

}  // namespace

std::string PythonJsonDumps(const ordered_json& value) {
  std::string out;
  Dump(value, &out);
  return out;
}

}  // namespace dsv4::tokenizer
