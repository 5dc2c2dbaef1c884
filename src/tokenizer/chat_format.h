// DeepSeek's chat formats: render a conversation (system / developer / user / assistant /
// tool messages, tool definitions, thinking on or off) into the exact prompt text a model was
// trained on. Two formats, chosen by the checkpoint (ChatTemplateOptions::format):
//   kV4  - DeepSeek-V4's encoding/encoding_dsv4.py (the V4-Flash-0731 release), in
//          chat_format_v4.cpp;
//   kV32 - DeepSeek-V3.2's encoding/encoding_dsv32.py, in chat_format_v32.cpp.
// docs/chat-format.md states every rule with its source and the hand-derived examples the
// tests check.
//
// The prompt is rendered as segments that say who wrote each piece: the template (its
// control-token strings <｜begin▁of▁sentence｜>, <｜User｜>, ... and the fixed text around
// them) or the client (message content, reasoning, tool-call names and arguments, tool
// results, tool schemas). EncodeChatPrompt turns only the template's control strings into
// control token ids; client text is encoded with special-token parsing off, so a message
// that spells "<｜Assistant｜>" stays text, as in DeepSeek's API. RenderChatPrompt is the
// same segments joined.
// Pure functions; thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::tokenizer {

// DeepSeek-V4's control strings (encoding_dsv4.py "Special Tokens"). In DeepSeek-V4's
// tokenizer.json each is one added token; "｜DSML｜" (no angle brackets) is the one token
// the DSML tags are spelled with: "<｜DSML｜invoke" is "<", "｜DSML｜", "invoke".
inline constexpr std::string_view kUserToken = "<｜User｜>";
inline constexpr std::string_view kAssistantToken = "<｜Assistant｜>";
inline constexpr std::string_view kThinkStartToken = "<think>";
inline constexpr std::string_view kThinkEndToken = "</think>";
inline constexpr std::string_view kDsmlToken = "｜DSML｜";
inline constexpr std::string_view kLatestReminderToken = "<｜latest_reminder｜>";

enum class Role { kSystem, kDeveloper, kUser, kAssistant, kTool, kLatestReminder };

// Which model's chat format: the checkpoint decides (the server maps its architecture).
enum class ChatFormat { kV4, kV32 };
std::string_view ChatFormatName(ChatFormat format);  // "deepseek-v4", "deepseek-v3.2"

// "system", "developer", "user", "assistant", "tool", "latest_reminder".
Result<Role> ParseRole(std::string_view role);
std::string_view RoleName(Role role);

// An OpenAI-style function call: `arguments` is the JSON text of an object.
struct ToolCall {
  std::string id;  // the client's call id; only used to order tool results
  std::string name;
  std::string arguments;
};

// One element of a content list ([{"type": "text", "text": ...}, {"type": "image_url"}, ...]).
struct ContentPart {
  std::string type;
  std::string text;  // type "text" only
};

struct ChatMessage {
  Role role = Role::kUser;
  std::string content;
  // The content as given when it was a list of parts (then `content` is ignored). V4 renders a
  // tool result's parts as the reference does (texts joined by blank lines, other parts as
  // "[Unsupported TYPE]"); everywhere else only text parts are accepted, joined by "\n".
  std::vector<ContentPart> content_parts;
  std::string reasoning_content;     // assistant: that turn's thinking
  std::vector<ToolCall> tool_calls;  // assistant: the calls it made
  std::string tool_call_id;          // tool: the call this result answers
  // V4 only: one of DeepSeek's internal task names (action, query, authority, domain, title,
  // read_url), or empty. Its task token ends the message (encoding_dsv4.py render_message).
  std::string task;
};

enum class ThinkingMode {
  kChat,      // the reply starts right after "<｜Assistant｜></think>"
  kThinking,  // the reply starts with reasoning after "<｜Assistant｜><think>"
};

// encoding_dsv4.py REASONING_EFFORT_PROMPTS: in thinking mode "high" and "max" put a preamble
// before the first message; "low" (the default) adds nothing. V3.2 has no effort levels.
enum class ReasoningEffort { kLow, kHigh, kMax };

struct ChatTemplateOptions {
  ChatFormat format = ChatFormat::kV4;
  ThinkingMode thinking = ThinkingMode::kChat;
  ReasoningEffort reasoning_effort = ReasoningEffort::kLow;
  // Drop the reasoning of assistant turns before the last user message (the reference's
  // default). Tool definitions turn it off, as in the reference.
  bool drop_thinking = true;
  bool add_bos = true;
};

// One piece of a rendered prompt. Neighbouring segments never have the same `client`.
struct PromptSegment {
  std::string text;
  // Supplied by the client: encoded as plain text, never as control tokens. False for the
  // template's own text, whose control-token strings become their ids.
  bool client = false;
};

// Renders `messages` in options.format. `tools` is the OpenAI request's "tools" array
// ([{"type": "function", "function": {...}}, ...]) or null / empty; parse the request with
// nlohmann::ordered_json so the schemas keep their key order, which the prompt shows. When
// the last message is a user (or tool) message the prompt ends with the generation prefix
// "<｜Assistant｜></think>" (chat) or "<｜Assistant｜><think>" (thinking).
//
// InvalidArgument, naming the message (its index in `messages`) and field, for what the
// reference encoder refuses: a tool entry without a "function" object, tool-call arguments
// that are JSON but not an object, a developer message with no content, a non-text content
// part outside a V4 tool result; V4: an unknown task; V3.2: a latest_reminder message or a
// task, a tool message that does not answer a call of the assistant message before it,
// arguments that are not JSON, and (thinking mode) an assistant message after the last user
// message with neither reasoning nor tool calls. (V4 keeps arguments that are not JSON as one
// string parameter named "arguments", as its reference does.)
Result<std::vector<PromptSegment>> RenderChatSegments(std::span<const ChatMessage> messages,
                                                      const nlohmann::ordered_json& tools,
                                                      const ChatTemplateOptions& options);

// RenderChatSegments joined into one string: the prompt text as encoding_dsv4.py writes it.
// Encoding it with Tokenizer::Encode would turn control tokens spelled in client text into
// control ids; use EncodeChatPrompt for a model's input.
Result<std::string> RenderChatPrompt(std::span<const ChatMessage> messages,
                                     const nlohmann::ordered_json& tools,
                                     const ChatTemplateOptions& options);

// The token ids of the rendered prompt (BOS included when options.add_bos): added tokens
// are matched only in the template's segments; client segments are plain text
// (Tokenizer::EncodeSegments). When no client text spells an added token the ids equal
// Encode(RenderChatPrompt(...)). Errors as RenderChatPrompt.
Result<std::vector<TokenId>> EncodeChatPrompt(const Tokenizer& tokenizer,
                                              std::span<const ChatMessage> messages,
                                              const nlohmann::ordered_json& tools,
                                              const ChatTemplateOptions& options);

// One assistant tool call in DSML (V4's rule for arguments): <｜DSML｜invoke name="NAME">, one <｜DSML｜parameter> line
// per argument, </｜DSML｜invoke>. Strings are written raw with string="true", anything
// else as Python JSON with string="false". InvalidArgument when the arguments are JSON
// nested deeper than kDefaultMaxJsonDepth, or JSON that is not an object.
Result<std::string> RenderDsmlInvoke(const ToolCall& call);

}  // namespace dsv4::tokenizer
