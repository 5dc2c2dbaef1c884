// FieldReader: typed reads of one JSON object's fields (config.json, its quantisation
// objects, hf_quant_config.json), each error naming the label and the field, the type
// expected and the value found. A missing or null field is absent.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace dsv4::checkpoint {

class FieldReader {
 public:
  // `j` must outlive the reader; `label` names the object in errors ("DIR/config.json").
  FieldReader(const nlohmann::json& j, std::string_view label) : j_(j), label_(label) {}

  bool Has(const char* key) const;

  // InvalidArgument when the field has another type, or is absent and `required`. An absent
  // optional field leaves *out as it was.
  Status Int(const char* key, int64_t* out, bool required = true) const;  // integral numbers
  Status Float(const char* key, double* out, bool required = true) const;
  Status Bool(const char* key, bool* out, bool required = true) const;
  Status String(const char* key, std::string* out, bool required = true) const;
  Status IntList(const char* key, std::vector<int64_t>* out) const;       // required
  Status StringList(const char* key, std::vector<std::string>* out) const;  // optional

  Status Missing(const char* key, const char* what) const;
  Status Wrong(const char* key, const char* what, const nlohmann::json& v) const;

 private:
  const nlohmann::json& j_;
  std::string_view label_;
};

}  // namespace dsv4::checkpoint
