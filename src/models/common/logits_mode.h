// Which logits a forward call returns.
#pragma once

namespace dsv4::models {

enum class LogitsMode {
  kNone,  // only advance the sequence (prefill chunks whose logits nobody reads)
  kLast,  // logits of the last token: [1, vocab]
  kAll,   // logits of every token: [n, vocab]
};

}  // namespace dsv4::models
