// DeepSeek-V4's chat format, after encoding/encoding_dsv4.py of the V4-Flash-0731 release
// (encode_messages): reasoning-effort preambles, tools on the first system message, tool
// results folded into user turns, latest_reminder, task tokens, thinking on or off with
// drop_thinking. Rules and sources: docs/chat-format.md (R1-R14). Internal to src/tokenizer:
// callers use RenderChatSegments (chat_format.h) with ChatFormat::kV4.
#pragma once

#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/chat_format.h"

namespace dsv4::tokenizer {

// The task tokens of encoding_dsv4.py DS_TASK_SP_TOKENS ("action" -> "<｜action｜>", ...).
// InvalidArgument for a name that is not one of action, query, authority, domain, title,
// read_url.
Result<std::string> V4TaskToken(std::string_view task);

// `functions` are the request's tool schemas, unwrapped from {"type": "function", ...}.
// Errors as RenderChatSegments.
Result<std::vector<PromptSegment>> RenderV4ChatSegments(
    std::span<const ChatMessage> messages, std::span<const nlohmann::ordered_json> functions,
    const ChatTemplateOptions& options);

}  // namespace dsv4::tokenizer
