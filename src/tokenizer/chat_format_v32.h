// DeepSeek-V3.2's chat format, after encoding/encoding_dsv32.py of the DeepSeek-V3.2 release
// (encode_messages): every user turn hands over with "<｜Assistant｜>" and a thinking token,
// developer messages carry "# The user's message is:", tool results are their own
// <function_results> block after the calls, tool calls are a DSML "function_calls" block.
// Rules and sources: docs/chat-format.md (V1-V9). Internal to src/tokenizer: callers use
// RenderChatSegments (chat_format.h) with ChatFormat::kV32.
#pragma once

#include <nlohmann/json.hpp>
#include <span>
#include <vector>

#include "core/status.h"
#include "tokenizer/chat_format.h"

namespace dsv4::tokenizer {

// `functions` are the request's tool schemas, unwrapped from {"type": "function", ...}.
// Errors as RenderChatSegments.
Result<std::vector<PromptSegment>> RenderV32ChatSegments(
    std::span<const ChatMessage> messages, std::span<const nlohmann::ordered_json> functions,
    const ChatTemplateOptions& options);

}  // namespace dsv4::tokenizer
