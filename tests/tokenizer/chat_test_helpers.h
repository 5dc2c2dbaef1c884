// What the chat-format tests share: the control strings, message builders, the tiny
// tokenizer and a Render that checks the segments and the encoding of every golden.
// Header-only; each test file includes it once.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/tokenizer_generator.h"
#include "tokenizer/chat_format.h"

namespace dsv4::tokenizer::chat_test {

inline const std::string kBos = "<｜begin▁of▁sentence｜>";
inline const std::string kEos = "<｜end▁of▁sentence｜>";
inline const std::string kUser = "<｜User｜>";
inline const std::string kAsst = "<｜Assistant｜>";

inline ChatMessage M(Role role, std::string content, std::string reasoning = "") {
  ChatMessage m;
  m.role = role;
  m.content = std::move(content);
  m.reasoning_content = std::move(reasoning);
  return m;
}

inline ChatMessage Calls(std::vector<ToolCall> calls, std::string content = "",
                         std::string reasoning = "") {
  ChatMessage m = M(Role::kAssistant, std::move(content), std::move(reasoning));
  m.tool_calls = std::move(calls);
  return m;
}

inline const Tokenizer& Tiny() {
  static const std::unique_ptr<Tokenizer> t =
      Tokenizer::FromJson(fixtures::GenerateTinyTokenizerJson(512).value(), "tiny").value();
  return *t;
}

// The rendered prompt. Also checks that the segments join to it and that, as long as no
// client text spells a control token, EncodeChatPrompt gives the ids of the whole string
// encoded with special tokens matched (the encoding before client text was kept apart).
inline std::string Render(const std::vector<ChatMessage>& messages,
                          const ChatTemplateOptions& options,
                          const nlohmann::ordered_json& tools = nullptr) {
  Result<std::string> r = RenderChatPrompt(messages, tools, options);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return std::string();
  const std::vector<PromptSegment> segments = RenderChatSegments(messages, tools, options).value();
  std::string joined;
  for (const PromptSegment& s : segments) joined += s.text;
  EXPECT_EQ(joined, *r);
  EXPECT_EQ(EncodeChatPrompt(Tiny(), messages, tools, options).value(), Tiny().Encode(*r).value());
  return *r;
}

}  // namespace dsv4::tokenizer::chat_test
