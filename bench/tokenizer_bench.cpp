// Tokenizer encode throughput, one thread, on DeepSeek's real vocabulary (DeepSeek-V3's
// tokenizer.json from scripts/setup, testing/real_tokenizer.h) and a large mixed multilingual
// corpus (testing/tokenizer_corpus.h). bench/tokenizer_vs_node.sh runs it next to the
// reference implementation under node on the same text.
//
//   dsv4_tokenizer_bench [--tokenizer FILE] [--corpus-mb 8] [--write-corpus FILE]
//                        [benchmark flags]
// --write-corpus writes the corpus (for the node side) and exits. Counters: bytes_per_second
// (of UTF-8 input) and tokens.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "testing/real_tokenizer.h"
#include "testing/tokenizer_corpus.h"
#include "tokenizer/tokenizer.h"

namespace {

std::unique_ptr<dsv4::tokenizer::Tokenizer> g_tokenizer;
std::string g_corpus;

void BM_EncodeMixedCorpus(benchmark::State& state) {
  size_t tokens = 0;
  for (auto _ : state) {
    auto ids = g_tokenizer->Encode(g_corpus);
    if (!ids.ok()) {
      state.SkipWithError(ids.status().message().c_str());
      return;
    }
    tokens = ids->size();
    benchmark::DoNotOptimize(ids->data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * g_corpus.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
  state.counters["corpus_bytes"] = static_cast<double>(g_corpus.size());
}
BENCHMARK(BM_EncodeMixedCorpus)->Unit(benchmark::kMillisecond)->MinTime(2.0);

int Fail(const std::string& message) {
  std::fprintf(stderr, "dsv4_tokenizer_bench: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string tokenizer_path = dsv4::fixtures::FindRealTokenizerFiles().tokenizer_json.string();
  std::string write_corpus;
  size_t corpus_mb = 8;
  // Our flags first; the rest go to Google Benchmark.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (std::strcmp(argv[i], "--tokenizer") == 0 && has_value) {
      tokenizer_path = argv[++i];
    } else if (std::strcmp(argv[i], "--corpus-mb") == 0 && has_value) {
      char* end = nullptr;
      const long mb = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || mb < 1 || mb > 1024) {
        return Fail(std::string("--corpus-mb: expected an integer 1..1024, got '") + argv[i] + "'");
      }
      corpus_mb = static_cast<size_t>(mb);
    } else if (std::strcmp(argv[i], "--write-corpus") == 0 && has_value) {
      write_corpus = argv[++i];
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  g_corpus = dsv4::fixtures::TokenizerCorpusText(corpus_mb << 20, 1);
  if (!write_corpus.empty()) {
    std::ofstream out(write_corpus, std::ios::binary);
    out << g_corpus;
    if (!out.flush()) return Fail("cannot write the corpus to " + write_corpus);
    return 0;
  }
  auto tokenizer = dsv4::tokenizer::Tokenizer::FromFile(tokenizer_path);
  if (!tokenizer.ok()) {
    return Fail(tokenizer.status().message() + " (scripts/setup fetches the real tokenizer)");
  }
  g_tokenizer = std::move(*tokenizer);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
