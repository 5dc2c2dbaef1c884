#include "plan/parallel.h"

#include <cctype>

namespace dsv4::plan {

std::string ParallelLayout::Name() const {
  const std::string red = redundant_experts ? "+r" + std::to_string(redundant_experts) : "";
  if (tp == 1 && ep == dp) return "dep" + std::to_string(dp) + red;
  if (dp == 1 && ep == tp) return "tp" + std::to_string(tp) + red;
  return "tp" + std::to_string(tp) + "dp" + std::to_string(dp) + "ep" + std::to_string(ep) + red;
}

// Shorthands as NVIDIA / SGLang / Dynamo write them: "dep16" is 16-way DP attention with
// 16-way EP. EP defaults to the whole group because that is how wide-EP decode is deployed
// and, for memory, any ep x expert-TP = tp x dp split costs the same.
Result<ParallelLayout> ParseLayout(std::string_view s) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("bad layout '" + std::string(s) + "': " + why +
                                   " (expected e.g. dep16, dep8, tp8, tp2dp8, dp16ep16)");
  };
  std::optional<int64_t> tp, dp, ep;
  size_t i = 0;
  if (s.empty()) return bad("empty");
  while (i < s.size()) {
    if (s[i] == '-' || s[i] == ',' || s[i] == '_') {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && std::isalpha(static_cast<unsigned char>(s[j]))) ++j;
    const std::string kind(s.substr(i, j - i));
    size_t k = j;
    int64_t n = 0;
    while (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k])) && n < 1000000) {
      n = n * 10 + (s[k] - '0');
      ++k;
    }
    if (k == j) return bad("'" + kind + "' needs a degree after it");
    if (n < 1) return bad("degree of '" + kind + "' must be >= 1, got " + std::to_string(n));
    auto set = [&](std::optional<int64_t>& slot, const char* what) -> Status {
      if (slot) return bad(std::string(what) + " given twice");
      slot = n;
      return Status::Ok();
    };
    if (kind == "dep") {
      DSV4_RETURN_IF_ERROR(set(dp, "dp"));
      DSV4_RETURN_IF_ERROR(set(ep, "ep"));
    } else if (kind == "tp") {
      DSV4_RETURN_IF_ERROR(set(tp, "tp"));
    } else if (kind == "dp") {
      DSV4_RETURN_IF_ERROR(set(dp, "dp"));
    } else if (kind == "ep") {
      DSV4_RETURN_IF_ERROR(set(ep, "ep"));
    } else {
      return bad("unknown part '" + kind + "'");
    }
    i = k;
  }
  ParallelLayout l;
  l.tp = tp.value_or(1);
  l.dp = dp.value_or(1);
  l.ep = ep.value_or(l.gpus());
  if (l.gpus() % l.ep != 0) {
    return bad("ep " + std::to_string(l.ep) + " must divide the " + std::to_string(l.gpus()) +
               " GPUs of the group (tp x dp)");
  }
  return l;
}

Result<ParallelLayout> ResolveLayout(const std::optional<std::string>& shorthand,
                                     std::optional<int64_t> tp, std::optional<int64_t> dp,
                                     std::optional<int64_t> ep, int64_t redundant_experts) {
  if (redundant_experts < 0) {
    return Status::InvalidArgument("--redundant-experts must be >= 0, got " +
                                   std::to_string(redundant_experts));
  }
  ParallelLayout l;
  if (shorthand) {
    if (tp || dp || ep) {
      return Status::InvalidArgument("conflicting flags: --layout " + *shorthand +
                                     " and --tp/--dp/--ep both set the layout; give one");
    }
    DSV4_ASSIGN_OR_RETURN(l, ParseLayout(*shorthand));
  } else {
    for (auto [v, name] : {std::pair{tp, "--tp"}, std::pair{dp, "--dp"}, std::pair{ep, "--ep"}}) {
      if (v && *v < 1) {
        return Status::InvalidArgument(std::string(name) + " must be >= 1, got " +
                                       std::to_string(*v));
      }
    }
    l.tp = tp.value_or(1);
    l.dp = dp.value_or(1);
    l.ep = ep.value_or(l.gpus());
    if (l.gpus() % l.ep != 0) {
      return Status::InvalidArgument("--ep " + std::to_string(l.ep) + " must divide the " +
                                     std::to_string(l.gpus()) + " GPUs of the group (tp " +
                                     std::to_string(l.tp) + " x dp " + std::to_string(l.dp) + ")");
    }
  }
  l.redundant_experts = redundant_experts;
  return l;
}

Status ValidateLayout(const ParallelLayout& l, const checkpoint::ModelConfig& c,
                      std::string_view model_label) {
  if (c.num_attention_heads % l.tp != 0) {
    return Status::InvalidArgument("TP " + std::to_string(l.tp) + " does not divide the " +
                                   std::to_string(c.num_attention_heads) + " attention heads of " +
                                   std::string(model_label));
  }
  const int64_t experts = c.n_routed_experts + l.redundant_experts;
  if (experts % l.ep != 0) {
    return Status::InvalidArgument(
        "EP " + std::to_string(l.ep) + " does not divide the " + std::to_string(experts) +
        " routed experts of " + std::string(model_label) +
        (l.redundant_experts ? " (incl. " + std::to_string(l.redundant_experts) + " redundant)"
                             : "") +
        ": expected an EP degree that divides " + std::to_string(experts));
  }
  return Status::Ok();
}

}  // namespace dsv4::plan
