#include "checkpoint/field_reader.h"

#include <cmath>

namespace dsv4::checkpoint {

using nlohmann::json;

bool FieldReader::Has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }

Status FieldReader::Int(const char* key, int64_t* out, bool required) const {
  if (!Has(key)) return required ? Missing(key, "an integer") : Status::Ok();
  const json& v = j_.at(key);
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return Status::Ok();
  }
  if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) {
    *out = static_cast<int64_t>(v.get<double>());
    return Status::Ok();
  }
  return Wrong(key, "an integer", v);
}

Status FieldReader::Float(const char* key, double* out, bool required) const {
  if (!Has(key)) return required ? Missing(key, "a number") : Status::Ok();
  const json& v = j_.at(key);
  if (!v.is_number()) return Wrong(key, "a number", v);
  *out = v.get<double>();
  return Status::Ok();
}

Status FieldReader::Bool(const char* key, bool* out, bool required) const {
  if (!Has(key)) return required ? Missing(key, "a boolean") : Status::Ok();
  const json& v = j_.at(key);
  if (!v.is_boolean()) return Wrong(key, "a boolean", v);
  *out = v.get<bool>();
  return Status::Ok();
}

Status FieldReader::String(const char* key, std::string* out, bool required) const {
  if (!Has(key)) return required ? Missing(key, "a string") : Status::Ok();
  const json& v = j_.at(key);
  if (!v.is_string()) return Wrong(key, "a string", v);
  *out = v.get<std::string>();
  return Status::Ok();
}

Status FieldReader::IntList(const char* key, std::vector<int64_t>* out) const {
  if (!Has(key)) return Missing(key, "a list of integers");
  const json& v = j_.at(key);
  if (!v.is_array()) return Wrong(key, "a list of integers", v);
  out->clear();
  for (const json& e : v) {
    if (!e.is_number_integer()) return Wrong(key, "a list of integers", v);
    out->push_back(e.get<int64_t>());
  }
  return Status::Ok();
}

Status FieldReader::StringList(const char* key, std::vector<std::string>* out) const {
  if (!Has(key)) return Status::Ok();
  const json& v = j_.at(key);
  bool ok = v.is_array();
  for (size_t i = 0; ok && i < v.size(); ++i) ok = v[i].is_string();
  if (!ok) return Wrong(key, "a list of strings", v);
  out->clear();
  for (const json& e : v) out->push_back(e.get<std::string>());
  return Status::Ok();
}

Status FieldReader::Missing(const char* key, const char* what) const {
  return Status::InvalidArgument(std::string(label_) + ": missing field '" + key + "' (expected " +
                                 what + ")");
}

Status FieldReader::Wrong(const char* key, const char* what, const json& v) const {
  return Status::InvalidArgument(std::string(label_) + ": field '" + key + "' must be " + what +
                                 ", got " + v.dump());
}

}  // namespace dsv4::checkpoint
