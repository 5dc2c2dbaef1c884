// Parses what DeepSeek-V4 or V3.2 generated for one assistant turn back into OpenAI-style
// fields: reasoning_content, content and tool_calls (name + JSON arguments text). The grammar
// is the one of parse_message_from_completion_text / parse_tool_calls, the same in
// encoding_dsv4.py and encoding_dsv32.py except for the name of the call block, BLOCK =
// "tool_calls" (V4) or "function_calls" (V3.2):
//
//   [reasoning "</think>"]  (thinking mode only: the prompt ended with "<think>")
//   content
//   ["\n\n<｜DSML｜BLOCK>\n" invoke ("\n" invoke)* "\n</｜DSML｜BLOCK>"]
//   ["<｜end▁of▁sentence｜>"]
//   invoke = <｜DSML｜invoke name="NAME">\n PARAM ("\n" PARAM)* \n</｜DSML｜invoke>
//   PARAM  = <｜DSML｜parameter name="KEY" string="true|false">VALUE</｜DSML｜parameter>
//
// The text must be decoded with special tokens kept (they are the markers). Differences from
// the reference, all for text the engine produces and the reference never sees: the end of
// the text counts as the end of the turn when the EOS string is absent (the engine stopped
// on EOS without emitting its text, or hit max_tokens), and thinking-mode text without
// "</think>" is all reasoning (cut off while thinking). A tool-call block must be closed.
// docs/chat-format.md lists the rules and the malformed cases.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/chat_format.h"

namespace dsv4::tokenizer {

struct ParsedCompletion {
  std::string reasoning_content;
  std::string content;
  std::vector<ToolCall> tool_calls;  // ids empty: the server assigns them
  bool saw_eos = false;              // the text ended with the EOS string
};

// "\n\n<｜DSML｜tool_calls" (V4) or "\n\n<｜DSML｜function_calls" (V3.2): where content
// ends and the call block begins.
std::string DsmlCallsStart(ChatFormat format);

// InvalidArgument "model output: ..." naming what is malformed (a DSML tag out of place, a
// bad parameter, a duplicate parameter, text after the end, a control string inside the
// content or reasoning).
Result<ParsedCompletion> ParseCompletion(std::string_view text, ThinkingMode thinking,
                                         ChatFormat format = ChatFormat::kV4);

// Never fails. A malformed completion comes back with no tool calls: in thinking mode the
// text before the first "</think>" as reasoning, the rest (without a final EOS) as content.
// `error` is the ParseCompletion error, or OK.
struct LenientParse {
  ParsedCompletion message;
  Status error;
};
LenientParse ParseCompletionLenient(std::string_view text, ThinkingMode thinking,
                                    ChatFormat format = ChatFormat::kV4);

}  // namespace dsv4::tokenizer
