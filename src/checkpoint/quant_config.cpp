#include "checkpoint/quant_config.h"

#include <fnmatch.h>

#include <nlohmann/json.hpp>

#include "checkpoint/field_reader.h"
#include "checkpoint/json_file.h"
#include "core/file_read.h"

namespace dsv4::checkpoint {
namespace {

using nlohmann::json;

bool KnownAlgo(const std::string& algo) {
  return algo == "NVFP4" || algo == "MIXED_PRECISION" || algo == "FP8";
}

Status ParseQuantizedLayers(const json& q, const std::string& where,
                            std::map<std::string, std::string>* out) {
  if (!q.contains("quantized_layers") || q.at("quantized_layers").is_null()) return Status::Ok();
  const json& layers = q.at("quantized_layers");
  if (!layers.is_object()) {
    return Status::InvalidArgument(where + ": field 'quantized_layers' must be an object, got " +
                                   layers.dump());
  }
  for (const auto& [module, entry] : layers.items()) {
    const std::string label = where + " quantized_layers['" + module + "']";
    if (!entry.is_object()) {
      return Status::InvalidArgument(label + ": must be an object, got " + entry.dump());
    }
    std::string algo;
    DSV4_RETURN_IF_ERROR(FieldReader(entry, label).String("quant_algo", &algo));
    if (algo != "NVFP4" && algo != "FP8") {
      return Status::Unimplemented(label + ": quant_algo '" + algo + "' (expected NVFP4 or FP8)");
    }
    (*out)[module] = algo;
  }
  return Status::Ok();
}

// The ModelOpt keys of a quantisation object (config.json quantization_config, or
// hf_quant_config.json "quantization" with `exclude_modules` for `ignore`), validated: the
// algorithms this engine knows, group_size 16 whenever NVFP4 is named.
Status ParseModelOpt(const json& q, const std::string& where, const char* ignore_key,
                     ModelOptQuant* m) {
  FieldReader r(q, where);
  DSV4_RETURN_IF_ERROR(r.String("quant_algo", &m->quant_algo, false));
  DSV4_RETURN_IF_ERROR(r.String("moe_quant_algo", &m->moe_quant_algo, false));
  DSV4_RETURN_IF_ERROR(r.Int("group_size", &m->group_size, false));
  for (const std::string* algo : {&m->quant_algo, &m->moe_quant_algo}) {
    if (!algo->empty() && !KnownAlgo(*algo)) {
      return Status::Unimplemented(where + ": quantisation algorithm '" + *algo +
                                   "' (expected NVFP4, MIXED_PRECISION or FP8)");
    }
  }
  if (m->nvfp4_experts() && m->group_size != 0 && m->group_size != 16) {
    return Status::InvalidArgument(where + ": field 'group_size' must be 16 for NVFP4, got " +
                                   std::to_string(m->group_size));
  }
  if (r.Has("producer")) {
    const json& p = q.at("producer");
    if (p.is_string()) {
      m->producer = p.get<std::string>();
    } else if (p.is_object() && p.contains("name") && p.at("name").is_string()) {
      m->producer = p.at("name").get<std::string>();
    } else {
      return r.Wrong("producer", "a string or an object with a 'name'", p);
    }
  }
  DSV4_RETURN_IF_ERROR(r.StringList(ignore_key, &m->ignore));
  return ParseQuantizedLayers(q, where, &m->quantized_layers);
}

}  // namespace

Status ParseQuantizationConfig(const json& config, std::string_view label, WeightFormat* format,
                               ModelOptQuant* m) {
  if (!config.contains("quantization_config") || config.at("quantization_config").is_null()) {
    *format = WeightFormat::kBf16;
    return Status::Ok();
  }
  const json& q = config.at("quantization_config");
  const std::string where = std::string(label) + " quantization_config";
  if (!q.is_object()) {
    return Status::InvalidArgument(where + ": must be an object, got " + q.dump());
  }
  FieldReader r(q, where);
  std::string method;
  DSV4_RETURN_IF_ERROR(r.String("quant_method", &method));
  if (method != "fp8" && method != "modelopt") {
    return Status::Unimplemented(where + ": quant_method '" + method +
                                 "' (expected 'fp8' or 'modelopt')");
  }
  DSV4_RETURN_IF_ERROR(ParseModelOpt(q, where, "ignore", m));
  std::string fmt = "e4m3";
  DSV4_RETURN_IF_ERROR(r.String("fmt", &fmt, false));
  if (fmt != "e4m3") return Status::Unimplemented(where + ": fmt '" + fmt + "' (expected 'e4m3')");
  if (r.Has("weight_block_size")) {
    std::vector<int64_t> block;
    DSV4_RETURN_IF_ERROR(r.IntList("weight_block_size", &block));
    if (block != std::vector<int64_t>{128, 128}) {
      return Status::Unimplemented(where + ": weight_block_size " +
                                   q.at("weight_block_size").dump() + " (expected [128, 128])");
    }
  }
  *format = WeightFormat::kFp8;
  return Status::Ok();
}

Status MergeHfQuantConfig(const std::filesystem::path& file, ModelOptQuant* m) {
  DSV4_ASSIGN_OR_RETURN(const json h,
                        ReadJsonFile(file, kMaxConfigJsonBytes, "quantisation config file"));
  const std::string where = file.string() + " quantization";
  if (!h.is_object() || !h.contains("quantization") || !h.at("quantization").is_object()) {
    return Status::InvalidArgument(file.string() + ": expected an object with a 'quantization' "
                                   "object, got " + h.dump().substr(0, 200));
  }
  ModelOptQuant hf;
  DSV4_RETURN_IF_ERROR(ParseModelOpt(h.at("quantization"), where, "exclude_modules", &hf));
  // config.json's keys win where both are given; the two must not disagree on the experts.
  if (!m->moe_quant_algo.empty() && hf.nvfp4_experts() != m->nvfp4_experts()) {
    return Status::InvalidArgument(where + ": quant_algo '" + hf.quant_algo +
                                   "' contradicts config.json moe_quant_algo '" +
                                   m->moe_quant_algo + "'");
  }
  for (const auto& [module, algo] : hf.quantized_layers) {
    auto [it, inserted] = m->quantized_layers.emplace(module, algo);
    if (!inserted && it->second != algo) {
      return Status::InvalidArgument(where + ": quantized_layers['" + module + "'] is " + algo +
                                     " but config.json says " + it->second);
    }
  }
  if (m->quant_algo.empty()) m->quant_algo = hf.quant_algo;
  if (m->moe_quant_algo.empty() && hf.quant_algo == "NVFP4") m->moe_quant_algo = "NVFP4";
  if (m->group_size == 0) m->group_size = hf.group_size;
  if (m->producer.empty()) m->producer = hf.producer;
  if (m->ignore.empty()) m->ignore = hf.ignore;
  return Status::Ok();
}

DeclaredQuant DeclaredFor(const ModelOptQuant& m, const std::string& module, bool routed_expert) {
  if (auto it = m.quantized_layers.find(module); it != m.quantized_layers.end()) {
    return {it->second == "NVFP4", "quantized_layers['" + module + "'] " + it->second};
  }
  for (const std::string& pattern : m.ignore) {
    if (fnmatch(pattern.c_str(), module.c_str(), 0) == 0) {
      return {false, "ignore pattern '" + pattern + "'"};
    }
  }
  if (routed_expert && m.nvfp4_experts()) return {true, "moe_quant_algo NVFP4"};
  return {};
}

json ModelOptToJson(const ModelOptQuant& m) {
  json q = json::object();
  if (!m.quant_algo.empty()) q["quant_algo"] = m.quant_algo;
  if (!m.moe_quant_algo.empty()) q["moe_quant_algo"] = m.moe_quant_algo;
  if (m.group_size != 0) q["group_size"] = m.group_size;
  if (!m.producer.empty()) q["producer"] = {{"name", m.producer}};
  if (!m.ignore.empty()) q["ignore"] = m.ignore;
  for (const auto& [module, algo] : m.quantized_layers) {
    q["quantized_layers"][module] = {{"quant_algo", algo}};
  }
  return q;
}

}  // namespace dsv4::checkpoint
