#include "testing/deepseek_v4_tokens.h"

#include <iterator>
#include <nlohmann/json.hpp>

namespace dsv4::fixtures {
namespace {

constexpr V4AddedToken kV4AddedTokens[] = {
    {0, "<｜begin▁of▁sentence｜>", true, false},
    {1, "<｜end▁of▁sentence｜>", true, false},
    {2, "<｜▁pad▁｜>", true, false},
    {128800, "<｜fim▁hole｜>", false, false},
    {128801, "<｜fim▁begin｜>", false, false},
    {128802, "<｜fim▁end｜>", false, false},
    {128803, "<｜User｜>", false, true},
    {128804, "<｜Assistant｜>", false, true},
    {128805, "<|EOT|>", true, false},
    {128806, "<｜tool▁calls▁begin｜>", false, false},
    {128807, "<｜tool▁calls▁end｜>", false, false},
    {128808, "<｜tool▁call▁begin｜>", false, false},
    {128809, "<｜tool▁call▁end｜>", false, false},
    {128810, "<｜tool▁outputs▁begin｜>", false, false},
    {128811, "<｜tool▁outputs▁end｜>", false, false},
    {128812, "<｜tool▁output▁begin｜>", false, false},
    {128813, "<｜tool▁output▁end｜>", false, false},
    {128814, "<｜tool▁sep｜>", false, false},
    {128821, "<think>", false, true},
    {128822, "</think>", false, true},
    {128825, "｜DSML｜", false, true},
    {128828, "<｜latest_reminder｜>", false, true},
    {128840, "<dsml:", false, false},
    {128841, "</dsml:", false, false},
};

constexpr int64_t kFirstV4OnlyId = 128800;

}  // namespace

std::span<const V4AddedToken> DeepSeekV4AddedTokens() { return kV4AddedTokens; }

Result<std::string> DeepSeekV4StyleTokenizerJson(std::string_view v3_json) {
  nlohmann::json j = nlohmann::json::parse(v3_json, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("added_tokens") ||
      !j.at("added_tokens").is_array()) {
    return Status::InvalidArgument(
        "DeepSeek-V3 tokenizer.json: expected a JSON object with an 'added_tokens' list");
  }
  nlohmann::json added = nlohmann::json::array();
  for (const auto& e : j.at("added_tokens")) {
    if (e.is_object() && e.contains("id") && e.at("id").is_number_integer() &&
        e.at("id").get<int64_t>() < kFirstV4OnlyId) {
      added.push_back(e);
    }
  }
  for (const V4AddedToken& t : kV4AddedTokens) {
    if (t.id < kFirstV4OnlyId) continue;
    added.push_back({{"id", t.id},
                     {"content", std::string(t.content)},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", !t.special},
                     {"special", t.special}});
  }
  j["added_tokens"] = std::move(added);
  return j.dump();
}

}  // namespace dsv4::fixtures
