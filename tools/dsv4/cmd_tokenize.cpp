// dsv4 tokenize / dsv4 detokenize: the model's tokenizer from the command line.
//
//   dsv4 tokenize [--model DIR | --tokenizer FILE] [--text T] [--add-bos] [--no-parse-special]
//                 [--jsonl]        stdin (or --text) -> a JSON array of ids
//   dsv4 detokenize [--model DIR | --tokenizer FILE] [--ids "1,2,3"] [--jsonl]
//                                  ids (commas, whitespace or a JSON array) -> text
// With --jsonl each stdin line is one input (tokenize: a JSON string; detokenize: a JSON array
// of ids) and each output line one JSON value, for batch use by other programs.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "checkpoint/presets.h"
#include "commands.h"
#include "core/file_read.h"
#include "model_arg.h"
#include "testing/tokenizer_generator.h"
#include "token_list.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::cli {
namespace {

using Json = nlohmann::json;

// One input (the whole of stdin, or one --jsonl line) at most this large.
constexpr uint64_t kMaxInputBytes = 64ull << 20;

struct TokenizeOptions {
  std::string model;
  std::string tokenizer;
  std::string text;
  bool text_given = false;
  bool add_bos = false;
  bool no_parse_special = false;
  bool jsonl = false;
};

// The tokenizer of --tokenizer FILE, of --model DIR (DIR/tokenizer.json), or of the built-in
// dsv4-tiny model.
Result<std::unique_ptr<tokenizer::Tokenizer>> OpenTokenizer(const TokenizeOptions& o) {
  if (!o.tokenizer.empty() && !o.model.empty()) {
    return Status::InvalidArgument("give --model or --tokenizer, not both");
  }
  if (!o.tokenizer.empty()) return tokenizer::Tokenizer::FromFile(o.tokenizer);
  if (!o.model.empty()) {
    return tokenizer::Tokenizer::FromFile(std::filesystem::path(o.model) / "tokenizer.json");
  }
  DSV4_ASSIGN_OR_RETURN(std::string json, fixtures::GenerateTinyTokenizerJson(
                                              checkpoint::TinyV4Config().vocab_size));
  return tokenizer::Tokenizer::FromJson(json, "dsv4-tiny/tokenizer.json");
}

Result<std::string> ReadStdin() {
  return ReadFileLimited("/dev/stdin", kMaxInputBytes, "standard input");
}

// Calls `each(line, number)` for every stdin line (without its newline), each at most
// kMaxInputBytes.
template <typename F>
Status ForEachLine(F each) {
  std::string line;
  int64_t number = 0;
  while (std::getline(std::cin, line)) {
    ++number;
    if (line.size() > kMaxInputBytes) {
      return Status::InvalidArgument("standard input line " + std::to_string(number) + " is " +
                                     std::to_string(line.size()) + " bytes, over the limit of " +
                                     std::to_string(kMaxInputBytes));
    }
    DSV4_RETURN_IF_ERROR(each(line, number));
  }
  return Status::Ok();
}

Status Tokenize(const TokenizeOptions& o) {
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok, OpenTokenizer(o));
  const tokenizer::EncodeOptions eo{.add_bos = o.add_bos, .parse_special = !o.no_parse_special};
  auto encode = [&](const std::string& text) -> Status {
    DSV4_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tok->Encode(text, eo));
    std::printf("%s\n", Json(ids).dump().c_str());
    return Status::Ok();
  };
  if (!o.jsonl) {
    if (o.text_given) return encode(o.text);
    DSV4_ASSIGN_OR_RETURN(std::string text, ReadStdin());
    return encode(text);
  }
  return ForEachLine([&](const std::string& line, int64_t number) -> Status {
    const Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_string()) {
      return Status::InvalidArgument("standard input line " + std::to_string(number) +
                                     ": expected a JSON string (--jsonl), got " +
                                     (j.is_discarded() ? "invalid JSON" : j.type_name()));
    }
    return encode(j.get<std::string>());
  });
}

// Ids given as "1, 2 3" or "[1, 2, 3]", each inside the vocabulary.
Result<std::vector<int32_t>> ParseIds(std::string text, const tokenizer::Tokenizer& tok,
                                      const std::string& what) {
  for (char& c : text) {
    if (c == '[' || c == ']') c = ' ';
  }
  DSV4_ASSIGN_OR_RETURN(std::vector<int32_t> ids, ParseTokenList(text, what));
  for (int32_t id : ids) {
    if (id >= tok.vocab_size()) {
      return Status::InvalidArgument(what + ": token id " + std::to_string(id) +
                                     " is outside the vocabulary [0, " +
                                     std::to_string(tok.vocab_size()) + ")");
    }
  }
  return ids;
}

Status Detokenize(const TokenizeOptions& o) {
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok, OpenTokenizer(o));
  if (!o.jsonl) {
    std::string text = o.text;
    if (!o.text_given) {
      DSV4_ASSIGN_OR_RETURN(text, ReadStdin());
    }
    DSV4_ASSIGN_OR_RETURN(std::vector<int32_t> ids,
                          ParseIds(text, *tok, o.text_given ? "--ids" : "standard input"));
    DSV4_ASSIGN_OR_RETURN(std::string out, tok->DecodeText(ids));
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::printf("\n");
    return Status::Ok();
  }
  return ForEachLine([&](const std::string& line, int64_t number) -> Status {
    const std::string what = "standard input line " + std::to_string(number);
    DSV4_ASSIGN_OR_RETURN(std::vector<int32_t> ids, ParseIds(line, *tok, what));
    DSV4_ASSIGN_OR_RETURN(std::string out, tok->DecodeText(ids));
    std::printf("%s\n", Json(out).dump().c_str());
    return Status::Ok();
  });
}

void AddSourceOptions(CLI::App* cmd, TokenizeOptions* o) {
  cmd->add_option("--model", o->model, "Checkpoint folder (its tokenizer.json)");
  cmd->add_option("--tokenizer", o->tokenizer, "A tokenizer.json file");
  cmd->add_flag("--jsonl", o->jsonl, "One JSON input per stdin line, one JSON output per line");
}

}  // namespace

void RegisterTokenize(CLI::App& app, int* exit_code) {
  auto t = std::make_shared<TokenizeOptions>();
  CLI::App* tok = app.add_subcommand("tokenize", "Text -> token ids (JSON array)");
  AddSourceOptions(tok, t.get());
  tok->add_option("--text", t->text, "The text (default: standard input)")
      ->each([t](const std::string&) { t->text_given = true; });
  tok->add_flag("--add-bos", t->add_bos, "Prepend the BOS token");
  tok->add_flag("--no-parse-special", t->no_parse_special,
                "Encode spelled special tokens as plain text");
  tok->callback([t, exit_code] {
    if (Status s = Tokenize(*t); !s.ok()) *exit_code = ReportError(s);
  });

  auto d = std::make_shared<TokenizeOptions>();
  CLI::App* detok = app.add_subcommand("detokenize", "Token ids -> text");
  AddSourceOptions(detok, d.get());
  detok->add_option("--ids", d->text, "The ids, e.g. \"1,2,3\" (default: standard input)")
      ->each([d](const std::string&) { d->text_given = true; });
  detok->callback([d, exit_code] {
    if (Status s = Detokenize(*d); !s.ok()) *exit_code = ReportError(s);
  });
}

}  // namespace dsv4::cli
