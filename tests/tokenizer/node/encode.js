// Reference ids from an independent tokenizer implementation, @lenml/tokenizers (a port of
// transformers.js' tokenizers), for tests/tokenizer/real_tokenizer_test.cpp and
// bench/tokenizer_vs_node.sh. One node process serves a whole corpus.
//
//   node encode.js NODE_PREFIX TOKENIZER_JSON < in.jsonl > out.jsonl
//     each input line is a JSON string; each output line the JSON array of its ids
//     (added tokens spelled in the text are matched; no BOS is added).
//   node encode.js NODE_PREFIX TOKENIZER_JSON --bench FILE [REPEATS]
//     encodes the UTF-8 text of FILE (in chunks of about 64 KiB cut after a line end that a
//     letter or digit follows, so that no piece spans two chunks) REPEATS times (default 3) and prints one JSON line:
//     {"bytes": N, "seconds": best, "mb_per_s": N / best / 1e6, "tokens": count}.
//
// NODE_PREFIX is the `npm --prefix` folder holding node_modules/@lenml/tokenizers
// (scripts/setup installs it in the cache folder).
"use strict";
const fs = require("fs");
const path = require("path");
const readline = require("readline");

function fail(message) {
  process.stderr.write(`encode.js: ${message}\n`);
  process.exit(2);
}

const [prefix, tokenizerPath, mode, benchFile, repeatsArg] = process.argv.slice(2);
if (!prefix || !tokenizerPath) fail("usage: encode.js NODE_PREFIX TOKENIZER_JSON [--bench FILE [REPEATS]]");
const modulePath = path.join(prefix, "node_modules", "@lenml", "tokenizers");
if (!fs.existsSync(modulePath)) fail(`${modulePath} not found (run scripts/setup)`);
const { TokenizerLoader } = require(modulePath);

const tokenizer = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(tokenizerPath, "utf8")),
  // No chat template and no BOS: the ids of the text alone.
  tokenizerConfig: { tokenizer_class: "LlamaTokenizerFast", add_bos_token: false, legacy: true },
});
const encode = (text) => tokenizer.encode(text, { add_special_tokens: false });

if (mode === "--bench") {
  const text = fs.readFileSync(benchFile, "utf8");
  const bytes = Buffer.byteLength(text, "utf8");
  const chunks = [];
  // Cut after a line end that a letter or digit follows, where no pre-tokenizer piece spans.
  const cut = /\n(?=[\p{L}\p{N}])/gu;
  for (let begin = 0; begin < text.length;) {
    cut.lastIndex = begin + 65536;
    const m = cut.exec(text);
    const end = m ? m.index + 1 : text.length;
    chunks.push(text.slice(begin, end));
    begin = end;
  }
  const repeats = Math.max(1, parseInt(repeatsArg || "3", 10));
  let best = Infinity, tokens = 0;
  for (let r = 0; r < repeats; ++r) {
    const start = process.hrtime.bigint();
    tokens = 0;
    for (const chunk of chunks) tokens += encode(chunk).length;
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
  }
  process.stdout.write(JSON.stringify({ bytes, seconds: best, mb_per_s: bytes / best / 1e6, tokens }) + "\n");
} else if (mode !== undefined) {
  fail(`unknown option '${mode}'`);
} else {
  const out = [];
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on("line", (line) => out.push(JSON.stringify(encode(JSON.parse(line)))));
  lines.on("close", () => process.stdout.write(out.length ? out.join("\n") + "\n" : ""));
}
