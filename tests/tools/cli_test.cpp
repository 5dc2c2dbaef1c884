// End to end through the dsv4 binary: make-tiny, inspect, and clear errors on bad input.
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

using dsv4::cli_test::CmdResult;
using dsv4::cli_test::Dsv4;
using dsv4::cli_test::Fresh;

TEST(Cli, MakeTinyThenInspectBothArchitectures) {
  for (const char* arch : {"v4", "v3.2"}) {
    for (const char* w : {"fp8", "bf16"}) {
      const fs::path dir = Fresh(std::string("tiny_") + arch + "_" + w);
      CmdResult r = Dsv4("make-tiny --arch " + std::string(arch) + " --weights " + w + " --out " +
                   dir.string());
      ASSERT_EQ(r.exit_code, 0) << r.output;
      CmdResult i = Dsv4("inspect " + dir.string());
      ASSERT_EQ(i.exit_code, 0) << i.output;
      EXPECT_THAT(i.output, HasSubstr(std::string("weights ") + w));
      EXPECT_THAT(i.output, HasSubstr(std::string(arch) == "v4" ? "deepseek_v4" : "deepseek_v32"));
      EXPECT_THAT(i.output, HasSubstr("model-00002-of-00002.safetensors"));
    }
  }
}

TEST(Cli, InspectJsonOfBuiltinModel) {
  CmdResult r = Dsv4("inspect --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["model"], "dsv4-tiny");
  EXPECT_EQ(j["architecture"], "deepseek_v4");
  EXPECT_GT(j["parameters_total"].get<int64_t>(), 1000000);
  // Tiny entry = 64 FP8 + 1 scale + 64 BF16 RoPE dims = 193 -> 200 bytes.
  EXPECT_EQ(j["kv"]["components"]["csa_entries"]["bytes_per_entry"], 200);
  EXPECT_EQ(j["kv"]["components"]["csa_indexer_keys"]["bytes_per_entry"], 68);
}

TEST(Cli, InspectPresetShowsRealKvPerToken) {
  CmdResult r = Dsv4("inspect --preset v4-flash");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("growing KV bytes per token: 3514.25"));
  EXPECT_THAT(r.output, HasSubstr("290,942,289,362"));
  CmdResult bad = Dsv4("inspect --preset v5");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.output, HasSubstr("unknown model preset 'v5'"));
}

TEST(Cli, MakeTinyRefusesNonEmptyTargetAndLeavesNothing) {
  const fs::path dir = Fresh("occupied");
  fs::create_directories(dir);
  std::ofstream(dir / "keep.txt") << "mine";
  CmdResult r = Dsv4("make-tiny --out " + dir.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("already exists"));
  EXPECT_TRUE(fs::exists(dir / "keep.txt"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  for (const auto& e : fs::directory_iterator(dir.parent_path())) {
    EXPECT_EQ(e.path().string().find("partial"), std::string::npos) << e.path();
  }
}

TEST(Cli, CorruptCheckpointGetsAClearError) {
  const fs::path dir = Fresh("corrupt");
  ASSERT_EQ(Dsv4("make-tiny --out " + dir.string()).exit_code, 0);
  const fs::path shard = dir / "model-00002-of-00002.safetensors";
  fs::resize_file(shard, fs::file_size(shard) / 2);
  CmdResult r = Dsv4("inspect " + dir.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("model-00002-of-00002.safetensors"));
  EXPECT_THAT(r.output, HasSubstr("error:"));

  fs::remove(shard);
  r = Dsv4("inspect " + dir.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("model-00002-of-00002.safetensors"));

  CmdResult missing = Dsv4("inspect " + (dir / "nowhere").string());
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.output, HasSubstr("nowhere"));
}

TEST(Cli, BadFlagsAreRejected) {
  EXPECT_NE(Dsv4("make-tiny --out /tmp/x --weights fp16").exit_code, 0);
  EXPECT_NE(Dsv4("make-tiny --arch v5 --out /tmp/x").exit_code, 0);
  EXPECT_NE(Dsv4("make-tiny").exit_code, 0);  // --out is required
  EXPECT_NE(Dsv4("frobnicate").exit_code, 0);
}

}  // namespace

namespace {

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(Cli, LogitsAreIdenticalForPrefillChunkedAndDecode) {
  const fs::path dir = Fresh("logits");
  fs::create_directories(dir);
  std::string ids;
  for (int i = 0; i < 70; ++i) ids += std::to_string((i * 37 + 11) % 512) + (i % 7 ? "," : "\n");
  std::ofstream(dir / "tokens.txt") << ids;
  const std::string base = "logits --tokens " + (dir / "tokens.txt").string() + " --out ";
  CmdResult a = Dsv4(base + (dir / "a.npy").string());
  ASSERT_EQ(a.exit_code, 0) << a.output;
  EXPECT_THAT(a.output, HasSubstr("float32 [70, 512]"));
  CmdResult b = Dsv4(base + (dir / "b.npy").string() + " --decode-from 33 --chunk 5");
  ASSERT_EQ(b.exit_code, 0) << b.output;
  CmdResult c = Dsv4(base + (dir / "c.npy").string() + " --decode-from 0 --threads 1");
  ASSERT_EQ(c.exit_code, 0) << c.output;
  CmdResult d = Dsv4(base + (dir / "d.npy").string() + " --chunk 0");  // one step
  ASSERT_EQ(d.exit_code, 0) << d.output;
  EXPECT_THAT(d.output, HasSubstr("in chunks of 70"));
  EXPECT_THAT(a.output, HasSubstr("peak memory"));
  const std::string na = ReadFile(dir / "a.npy");
  ASSERT_EQ(na.size(), 128 + 70 * 512 * 4u);  // 128-byte header + data
  EXPECT_EQ(na.substr(1, 5), "NUMPY");
  EXPECT_THAT(na.substr(0, 128), HasSubstr("'shape': (70, 512)"));
  EXPECT_EQ(na, ReadFile(dir / "b.npy"));
  EXPECT_EQ(na, ReadFile(dir / "c.npy"));
  EXPECT_EQ(na, ReadFile(dir / "d.npy"));
}

// The release layouts of one seed (spec §11.3, §11.4): each names its drafter in inspect and
// gives the same main-model logits, byte for byte.
TEST(Cli, MakeTinyLayoutsShareTheMainModel) {
  const fs::path dir = Fresh("layouts");
  fs::create_directories(dir);
  std::string ids;
  for (int i = 0; i < 150; ++i) ids += std::to_string((i * 53 + 7) % 512) + ",";
  ids.pop_back();
  std::ofstream(dir / "tokens.txt") << ids;
  const std::vector<std::pair<std::string, std::string>> layouts = {
      {"april", "drafter: April MTP, 1 layer"},
      {"0731", "drafter: DSpark, 3 blocks (block size 5, target layers [2, 3, 4], Markov rank "
               "256, noise token 511)"},
      {"none", "drafter: none"}};
  std::vector<std::string> npy;
  for (const auto& [layout, drafter] : layouts) {
    const fs::path ck = dir / layout;
    CmdResult m = Dsv4("make-tiny --seed 77 --layout " + layout + " --out " + ck.string());
    ASSERT_EQ(m.exit_code, 0) << m.output;
    CmdResult i = Dsv4("inspect " + ck.string());
    ASSERT_EQ(i.exit_code, 0) << i.output;
    EXPECT_THAT(i.output, HasSubstr(drafter));
    EXPECT_EQ(i.output.find("draft 2 ") != std::string::npos, layout == "0731") << i.output;
    EXPECT_EQ(i.output.find("mtp/") != std::string::npos, layout != "none") << i.output;
    nlohmann::json j = nlohmann::json::parse(Dsv4("inspect --json " + ck.string()).output);
    EXPECT_EQ(j["drafter"]["family"],
              layout == "april" ? "mtp" : (layout == "0731" ? "dspark" : "none"));
    EXPECT_TRUE(j["unexpected_tensors"].empty());
    const fs::path out = dir / (layout + ".npy");
    CmdResult l = Dsv4("logits --model " + ck.string() + " --tokens " +
                       (dir / "tokens.txt").string() + " --out " + out.string() +
                       " --decode-from 130");
    ASSERT_EQ(l.exit_code, 0) << l.output;
    npy.push_back(ReadFile(out));
  }
  ASSERT_EQ(npy[0].size(), 128 + 150 * 512 * 4u);
  EXPECT_EQ(npy[0], npy[1]);
  EXPECT_EQ(npy[0], npy[2]);
  CmdResult preset = Dsv4("inspect --preset v4-flash-0731");
  ASSERT_EQ(preset.exit_code, 0) << preset.output;
  EXPECT_THAT(preset.output, HasSubstr("drafter: DSpark, 3 blocks (block size 5, target layers "
                                       "[40, 41, 42], Markov rank 256, noise token 128799)"));
  EXPECT_THAT(preset.output, HasSubstr("layers 43 (+3 DSpark blocks)"));
  EXPECT_NE(Dsv4("make-tiny --layout 0815 --out " + (dir / "x").string()).exit_code, 0);
  CmdResult v32 = Dsv4("make-tiny --arch v3.2 --layout 0731 --out " + (dir / "y").string());
  EXPECT_EQ(v32.exit_code, 1);
  EXPECT_THAT(v32.output, HasSubstr("--layout 0731 is a DeepSeek-V4 release layout"));
}

TEST(Cli, LogitsAndRunRejectBadInput) {
  const fs::path dir = Fresh("badtokens");
  fs::create_directories(dir);
  std::ofstream(dir / "t.txt") << "1, 2, x3";
  CmdResult r = Dsv4("logits --tokens " + (dir / "t.txt").string() + " --out " + (dir / "o.npy").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("'x3'"));
  EXPECT_FALSE(fs::exists(dir / "o.npy"));
  std::ofstream(dir / "t.txt") << "1 2 9999";
  r = Dsv4("logits --tokens " + (dir / "t.txt").string() + " --out " + (dir / "o.npy").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("token 9999 at position 2"));
  EXPECT_FALSE(fs::exists(dir / "o.npy"));
  r = Dsv4("run --prompt-tokens 1,2 -n 0");
  EXPECT_NE(r.exit_code, 0);
  const fs::path v32 = Fresh("v32model");
  ASSERT_EQ(Dsv4("make-tiny --arch v3.2 --out " + v32.string()).exit_code, 0);
  r = Dsv4("run --model " + v32.string() + " --prompt-tokens 1,2,600");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("token 600 at position 2"));
}

// dsv4 run goes through the engine's request checks: a prompt past the built-in model's
// context (65,536) is refused before any token is computed, chunked or not (a generation loop
// of its own prefilled 65K tokens chunk by chunk before the model refused position 65,536).
// User files are read with a size limit: an oversized --tokens file (a sparse 1 TiB file, or
// /dev/zero, which never ends) gives a clear error and exit 1 at once; it used to be read into
// memory whole (std::bad_alloc, exit 134). A list longer than the model's context is refused
// before any compute.
TEST(Cli, OversizedTokenFilesAreRefused) {
  const fs::path dir = Fresh("bigtokens");
  fs::create_directories(dir);
  const fs::path big = dir / "big.txt";
  std::ofstream(big) << "1 2 3";
  fs::resize_file(big, uint64_t{1} << 40);
  const std::string out = " --out " + (dir / "o.npy").string();
  CmdResult r = Dsv4("logits --tokens " + big.string() + out);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("error: " + big.string() + ": token file is 1099511627776 "
                                  "bytes, more than the limit of 67108864 bytes"));
  fs::remove(big);
  r = Dsv4("logits --tokens /dev/zero" + out);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("error: /dev/zero: token file is more than the limit of "
                                  "67108864 bytes"));
  std::string ids;
  for (int i = 0; i < 65537; ++i) ids += "7 ";
  std::ofstream(dir / "long.txt") << ids;
  r = Dsv4("logits --tokens " + (dir / "long.txt").string() + out);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("long.txt: 65537 tokens, more than the model's context of 65536"));
  EXPECT_FALSE(fs::exists(dir / "o.npy"));
}

TEST(Cli, RunRefusesAPromptPastTheContextAtOnce) {
  const auto t0 = std::chrono::steady_clock::now();
  CmdResult r = Dsv4("run --prompt-random 1048576 --chunk 4096 -n 4");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("error: the prompt is 1048576 tokens; the model's context is "
                                  "65536 tokens"));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("prefill:")));
  EXPECT_LT(seconds, 10.0);  // 65K tokens of prefill take ~50 s on 2 cores
  r = Dsv4("run --prompt-random 1048576 -n 4");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("the model's context is 65536 tokens"));
  r = Dsv4("run --prompt-tokens 1,2 -n 65535");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("prompt of 2 tokens + 65535 new tokens exceeds the context of "
                                  "65536"));
  r = Dsv4("run -n 2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("give a prompt"));
}

// --speculative / --draft-tokens on run and bench serve (serve shares them): the report line,
// the JSON fields, and clear refusals.
TEST(Cli, SpeculativeFlags) {
  CmdResult r = Dsv4("run --prompt-tokens 5,6,7,8 -n 3 --ignore-eos --speculative off");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("\nspeculative: off\n"));
  r = Dsv4("run --prompt-tokens 5,6,7,8 -n 3 --speculative dspark");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("dsv4-tiny has no DSpark drafter (its checkpoint's drafter: "
                                  "April MTP)"));
  EXPECT_NE(Dsv4("run --prompt-tokens 5 --speculative sometimes").exit_code, 0);
  EXPECT_NE(Dsv4("run --prompt-tokens 5 --draft-tokens -1").exit_code, 0);
  r = Dsv4("bench serve --requests 2 --prompt-len 10 --output-len 3 --speculative off --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j[0]["speculative"]["drafter"], "off");
  EXPECT_EQ(j[0]["speculative"]["verifications"], 0);
  EXPECT_EQ(j[0]["speculative"]["acceptance_rate"], 0.0);
  r = Dsv4("bench serve --requests 2 --prompt-len 10 --output-len 3 --speculative off");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("speculative: off\n"));
}

// A make-tiny 0731 checkpoint speculates with its DSpark drafter (auto picks it): the same
// tokens as without speculation, at the block size and at --draft-tokens 2; bench serve
// reports it; the April MTP drafter is refused with the reason.
TEST(Cli, DsparkCheckpointSpeculatesWithIdenticalOutput) {
  const fs::path ck = Fresh("dspark") / "ck";
  CmdResult m = Dsv4("make-tiny --seed 77 --layout 0731 --out " + ck.string());
  ASSERT_EQ(m.exit_code, 0) << m.output;
  const std::string run = "run --model " + ck.string() + " --prompt-tokens 5,6,7,8,9,10 -n 24 "
                          "--ignore-eos";
  auto generated = [](const std::string& s) {
    const size_t p = s.find("generated:");
    return p == std::string::npos ? std::string() : s.substr(p, s.find('\n', p) - p);
  };
  CmdResult off = Dsv4(run + " --speculative off");
  ASSERT_EQ(off.exit_code, 0) << off.output;
  EXPECT_THAT(off.output, HasSubstr("\nspeculative: off\n"));
  for (const std::string flags : {"", " --speculative dspark", " --speculative dspark --draft-tokens 2"}) {
    CmdResult r = Dsv4(run + flags);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(generated(r.output), generated(off.output)) << flags;
    // The default (auto) pauses drafting where it does not pay; an explicit drafter does not.
    EXPECT_THAT(r.output, HasSubstr(flags.empty() ? "speculative: dspark, 5 draft tokens, paused "
                                                    "while it does not pay; "
                                    : flags.find("--draft-tokens 2") != std::string::npos
                                        ? "speculative: dspark, 2 draft tokens; "
                                        : "speculative: dspark, 5 draft tokens; "))
        << r.output;
  }
  CmdResult mtp = Dsv4(run + " --speculative mtp");
  EXPECT_EQ(mtp.exit_code, 1);
  EXPECT_THAT(mtp.output, HasSubstr("has no April MTP drafter (its checkpoint's drafter: DSpark)"));
  CmdResult b = Dsv4("bench serve --model " + ck.string() +
                     " --requests 2 --prompt-len 10 --output-len 4 --json");
  ASSERT_EQ(b.exit_code, 0) << b.output;
  const nlohmann::json j = nlohmann::json::parse(b.output);
  EXPECT_EQ(j[0]["speculative"]["drafter"], "dspark, 5 draft tokens, paused while it does not pay");
  EXPECT_GT(j[0]["speculative"]["verifications"], 0);
  CmdResult cost = Dsv4("bench draft --model " + ck.string() + " --context 8 --iters 2 --json");
  ASSERT_EQ(cost.exit_code, 0) << cost.output;
  const nlohmann::json c = nlohmann::json::parse(cost.output);
  EXPECT_EQ(c["drafter"], "dspark");
  EXPECT_EQ(c["draft_tokens"], 5);
  EXPECT_GT(c["draft_step_ms"], 0.0);
  CmdResult text = Dsv4("bench draft --context 8 --iters 2");  // the built-in model's MTP
  ASSERT_EQ(text.exit_code, 0) << text.output;
  EXPECT_THAT(text.output, HasSubstr("drafter mtp (4 draft tokens per step)"));
}

TEST(Cli, RunGeneratesGreedyTokensDeterministically) {
  CmdResult a = Dsv4("run --prompt-tokens 5,6,7,8 -n 6 --ignore-eos");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  EXPECT_THAT(a.output, HasSubstr("prompt: 4 tokens"));
  EXPECT_THAT(a.output, HasSubstr("tokens/s"));
  CmdResult b = Dsv4("run --prompt-tokens 5,6,7,8 -n 6 --ignore-eos --chunk 1 --threads 1");
  ASSERT_EQ(b.exit_code, 0) << b.output;
  auto generated = [](const std::string& s) {
    const size_t p = s.find("generated:");
    return s.substr(p, s.find('\n', p) - p);
  };
  EXPECT_EQ(generated(a.output), generated(b.output));
  EXPECT_GT(generated(a.output).size(), std::string("generated:").size() + 6 * 2);
}

}  // namespace

namespace {

// DeepSeek-V3.2 through the same commands: make-tiny (FP8 and BF16 weights), logits identical
// for prefill, chunked prefill and decode, and deterministic greedy generation.
TEST(Cli, V32LogitsAndRunWork) {
  const fs::path dir = Fresh("v32_logits");
  fs::create_directories(dir);
  const fs::path fp8 = dir / "fp8", bf16 = dir / "bf16";
  ASSERT_EQ(Dsv4("make-tiny --arch v3.2 --out " + fp8.string()).exit_code, 0);
  ASSERT_EQ(Dsv4("make-tiny --arch v3.2 --weights bf16 --out " + bf16.string()).exit_code, 0);
  std::string ids;  // 40 tokens: more than index_topk (16), so the indexer drops tokens
  for (int i = 0; i < 40; ++i) ids += std::to_string((i * 53 + 7) % 512) + " ";
  std::ofstream(dir / "tokens.txt") << ids;
  const std::string base = "logits --model " + fp8.string() + " --tokens " +
                           (dir / "tokens.txt").string() + " --out ";
  CmdResult a = Dsv4(base + (dir / "a.npy").string());
  ASSERT_EQ(a.exit_code, 0) << a.output;
  EXPECT_THAT(a.output, HasSubstr("float32 [40, 512]"));
  CmdResult b = Dsv4(base + (dir / "b.npy").string() + " --decode-from 21 --chunk 6");
  ASSERT_EQ(b.exit_code, 0) << b.output;
  CmdResult c = Dsv4(base + (dir / "c.npy").string() + " --decode-from 0 --threads 1");
  ASSERT_EQ(c.exit_code, 0) << c.output;
  const std::string na = ReadFile(dir / "a.npy");
  ASSERT_EQ(na.size(), 128 + 40 * 512 * 4u);
  EXPECT_EQ(na, ReadFile(dir / "b.npy"));
  EXPECT_EQ(na, ReadFile(dir / "c.npy"));
  CmdResult d = Dsv4("logits --model " + bf16.string() + " --tokens " +
                     (dir / "tokens.txt").string() + " --out " + (dir / "d.npy").string());
  ASSERT_EQ(d.exit_code, 0) << d.output;
  EXPECT_NE(na, ReadFile(dir / "d.npy"));  // FP8 act-quant only in the FP8 variant

  CmdResult r1 = Dsv4("run --model " + fp8.string() + " --prompt-tokens 5,6,7,8 -n 6 --ignore-eos");
  ASSERT_EQ(r1.exit_code, 0) << r1.output;
  EXPECT_THAT(r1.output, HasSubstr("prompt: 4 tokens"));
  EXPECT_THAT(r1.output, HasSubstr("tokens/s"));
  CmdResult r2 = Dsv4("run --model " + fp8.string() +
                      " --prompt-tokens 5,6,7,8 -n 6 --ignore-eos --chunk 1 --threads 1");
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  auto generated = [](const std::string& s) {
    const size_t p = s.find("generated:");
    return s.substr(p, s.find('\n', p) - p);
  };
  EXPECT_EQ(generated(r1.output), generated(r2.output));
  EXPECT_GT(generated(r1.output).size(), std::string("generated:").size() + 6 * 2);
}

}  // namespace

namespace {

TEST(Cli, BenchServeComputeAndLayoutModes) {
  CmdResult r = Dsv4("bench serve --requests 3 --prompt-len 20 --output-len 3 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j[0]["requests"], 3);
  EXPECT_GE(j[0]["max_concurrent"].get<int64_t>(), 1);
  EXPECT_GT(j[0]["output_tokens_per_s"].get<double>(), 0);
  // Layout mode: admitted = floor(budget / KV per request) for each layout.
  r = Dsv4("bench serve --layout all --prompt-len 64K --output-len 2 --kv-budget 40GB "
           "--max-batched-tokens 1073741824 --max-seqs 100000 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  j = nlohmann::json::parse(r.output);
  ASSERT_EQ(j.size(), 3u);
  for (const auto& run : j) {
    EXPECT_EQ(run["max_concurrent"], run["capacity_floor"]) << run["mode"];
    EXPECT_EQ(run["preemptions"], 0);
  }
  EXPECT_GT(j[2]["max_concurrent"].get<int64_t>(), 9 * j[0]["max_concurrent"].get<int64_t>());
  // --compare-v32: the same workload and budget in compute mode on the tiny V3.2 model (on
  // the paged KV manager too), then the V4 model.
  r = Dsv4("bench serve --compare-v32 --requests 2 --prompt-len 20 --output-len 3 "
           "--kv-budget 4MiB --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  j = nlohmann::json::parse(r.output);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["model"], "v3.2-tiny");
  EXPECT_EQ(j[1]["model"], "dsv4-tiny");
  for (const auto& run : j) {
    EXPECT_EQ(run["kv_budget_bytes"], 4 << 20);
    EXPECT_EQ(run["requests"], 2);
    EXPECT_EQ(run["max_concurrent"], 2) << run["model"];
  }
  // 20 + 3 tokens: one 64-record page per component and layer, 3 x (260 + 132) B x 64.
  EXPECT_EQ(j[0]["kv_bytes_per_request"], 3 * (260 + 132) * 64);
  EXPECT_EQ(Dsv4("bench serve --compare-v32 --layout v3.2").exit_code, 1);
  // bench prefix --compare-v32: a 256-token prefix written to disk at shutdown and restored by
  // a restarted engine, on both tiny models, the same first token cold, from disk and from RAM.
  r = Dsv4("bench prefix --lens 256 --compare-v32 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  j = nlohmann::json::parse(r.output);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["model"], "v3.2-tiny");
  EXPECT_EQ(j[1]["model"], "dsv4-tiny");
  for (const auto& row : j) {
    EXPECT_EQ(row["prefix_tokens"], 256);
    EXPECT_TRUE(row["identical_tokens"].get<bool>()) << row["model"];
    EXPECT_GT(row["file_bytes"].get<int64_t>(), 0) << row["model"];
  }
  EXPECT_EQ(Dsv4("bench prefix --lens 100").exit_code, 1);
  CmdResult bad = Dsv4("bench serve --kv-budget 12parsecs");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.output, HasSubstr("unknown unit"));
}

}  // namespace

namespace {

// dsv4 bench kv: measured from the engine's caches; at 1M the spec's bytes and ratios.
TEST(Cli, BenchKvTableAndJson) {
  CmdResult r = Dsv4("bench kv --models v4-tiny,v3.2-tiny --lengths 100,1K");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("measured from the engine's caches"));
  EXPECT_THAT(r.output, HasSubstr("v4-tiny: allocated 3 layers (1 SWA, 1 CSA, 1 HCA) of 5"));
  EXPECT_THAT(r.output, HasSubstr("bytes scaled to the full stack by layer type"));
  EXPECT_THAT(r.output, HasSubstr("csa_indexer_keys"));
  EXPECT_THAT(r.output, HasSubstr("vs V3.2 with state"));

  r = Dsv4("bench kv --lengths 8K,1M --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  ASSERT_EQ(j["models"].size(), 3u);
  EXPECT_EQ(j["models"][0]["model"], "v3.2");
  EXPECT_EQ(j["models"][0]["measured"], "1 layer (1 MLA+DSA) of 61 (61 MLA+DSA)");
  const nlohmann::json& pro = j["models"][1]["points"][1];
  const nlohmann::json& flash = j["models"][2]["points"][1];
  EXPECT_EQ(pro["tokens"], 1048576);
  EXPECT_EQ(j["models"][0]["points"][1]["exact_bytes"].get<int64_t>(), int64_t{48068} << 20);
  EXPECT_EQ(pro["growing_bytes"].get<int64_t>(), 5275844608);
  EXPECT_EQ(flash["growing_bytes"].get<int64_t>(), 3684958208);
  EXPECT_EQ(flash["compressor_state_bytes"].get<int64_t>(), (21 * 80 + 20 * 512) * 1024);
  EXPECT_NEAR(pro["vs_v32"].get<double>(), 0.105, 0.001);
  EXPECT_NEAR(flash["vs_v32"].get<double>(), 0.073, 0.001);
  EXPECT_EQ(pro["subset_usage_bytes"], pro["subset_manager_bytes"]);
  EXPECT_TRUE(j["models"][1]["scaled_by_layer_type"].get<bool>());
}

TEST(Cli, BenchDecodeRunsOnTinyDepths) {
  CmdResult r = Dsv4("bench decode --models v3.2-tiny,v4-tiny --depths 64,300 --iters 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_GT(j["bandwidth"]["copy_gb_per_s"].get<double>(), 0);
  EXPECT_THAT(j["not_run"].get<std::string>(), HasSubstr("MoE/FFN, mHC"));
  ASSERT_EQ(j["models"].size(), 2u);
  for (const auto& m : j["models"]) {
    ASSERT_EQ(m["points"].size(), 2u);
    for (const auto& p : m["points"]) {
      EXPECT_GT(p["ms_per_token"].get<double>(), 0);
      EXPECT_GT(p["kv_bytes_per_token"].get<int64_t>(), 0);
      EXPECT_GT(p["weight_bytes_per_token"].get<int64_t>(), 0);
      EXPECT_GT(p["gb_per_s"].get<double>(), 0);
      EXPECT_TRUE(p.contains("vs_v32_time"));
      EXPECT_FALSE(p["layer_types"].empty());
    }
  }
  r = Dsv4("bench decode --models v4-tiny --depths 50 --iters 1 --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("not run: MoE/FFN, mHC"));
  EXPECT_THAT(r.output, HasSubstr("memory bandwidth"));
  EXPECT_THAT(r.output, HasSubstr("ms/token (full stack)"));
  EXPECT_THAT(r.output, HasSubstr("threads: 1"));
}

TEST(Cli, BenchKvAndDecodeRejectBadInput) {
  CmdResult r = Dsv4("bench kv --lengths 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("--lengths"));
  r = Dsv4("bench kv --models v5");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("unknown model preset 'v5'"));
  r = Dsv4("bench decode --models v4-flash --layers 2 --depths 8");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("cannot keep the 3 layer types"));
  r = Dsv4("bench kv --config /nonexistent/config.json");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("/nonexistent"));
}

TEST(Cli, BenchLayerPrintsEveryColumnOnTheTinyPreset) {
  CmdResult r = Dsv4(
      "bench layer --preset v4-tiny --batch 1,2 --verify 1,2 --prefill 8 --depth 40 --iters 1 "
      "--threads 1 --bandwidth 100 --cores 8");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* col :
       {"ms/step", "tokens/s", "experts touched", "weights read", "KV read", "GFLOP", "bound ms",
        "bound/measured", "decode B=2", "verify k=2", "prefill 8", "head rows", "whole model",
        "bound ms there", "bound tokens/s there", "per token vs 1", "SWA step vs 1",
        "k=2 tokens/s", "computed from the measured step costs", "threads: 1"}) {
    EXPECT_THAT(r.output, HasSubstr(col));
  }
  r = Dsv4("bench layer --preset v4-tiny --batch 2 --verify 1 --prefill 0 --depth 16 --iters 1 "
           "--json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  ASSERT_EQ(j["types"].size(), 3u);
  EXPECT_EQ(j["types"][0]["steps"].size(), 3u);  // decode B=2, verify k=0 and k=1
  EXPECT_GT(j["whole_model"][0]["ms"].get<double>(), 0);
  EXPECT_GT(j["speculative"][0]["tokens_per_s"].get<double>(), 0);
  r = Dsv4("bench layer --preset v4-tiny --layers hca --batch 1 --verify 1 --prefill 0 --iters 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("not extrapolated"));
  r = Dsv4("bench layer --preset v4-tiny --layers mla");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("'mla' is not a layer type"));
  r = Dsv4("bench layer --preset v3.2-tiny");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("V4 models only"));
}

}  // namespace

namespace {

TEST(Cli, RunTextPromptAndMissingTokenizer) {
  CmdResult r = Dsv4("run --prompt \"Hello\" -n 4 --ignore-eos");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("prompt text: \"Hello\""));
  EXPECT_THAT(r.output, HasSubstr("completion: \""));
  const fs::path dir = Fresh("no_tokenizer");
  ASSERT_EQ(Dsv4("make-tiny --out " + dir.string()).exit_code, 0);
  fs::remove(dir / "tokenizer.json");
  r = Dsv4("run --model " + dir.string() + " --prompt \"Hello\" -n 2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("tokenizer.json not found"));
  r = Dsv4("run --model " + dir.string() + " --prompt-tokens 1,2,3 -n 2");
  EXPECT_EQ(r.exit_code, 0) << r.output;  // token ids still work without a tokenizer
}

}  // namespace

namespace {

// Overwrites bytes of tensor `name` in a make-tiny checkpoint (at `byte` within its data);
// returns the shard that holds it.
fs::path PatchTensor(const fs::path& dir, const std::string& name, size_t byte,
                     const std::string& bytes) {
  const nlohmann::json index =
      nlohmann::json::parse(ReadFile(dir / "model.safetensors.index.json"));
  const fs::path shard = dir / index["weight_map"][name].get<std::string>();
  std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
  uint64_t header_len = 0;
  f.read(reinterpret_cast<char*>(&header_len), 8);  // little-endian, as is this machine
  std::string header(header_len, '\0');
  f.read(header.data(), static_cast<std::streamsize>(header_len));
  const uint64_t begin = nlohmann::json::parse(header)[name]["data_offsets"][0].get<uint64_t>();
  f.seekp(static_cast<std::streamoff>(8 + header_len + begin + byte));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return shard;
}

// A checkpoint with one NaN or Inf in a floating-point tensor does not load: `dsv4 logits`
// exits 1 naming the shard, the tensor and the element (it used to write NaN logits and exit
// 0); --no-weight-check loads it anyway.
TEST(Cli, NonFiniteWeightsAreRefusedAtLoad) {
  const fs::path dir = Fresh("nonfinite");
  fs::create_directories(dir);
  std::ofstream(dir / "t.txt") << "1 2 3";
  const std::string logits = "logits --tokens " + (dir / "t.txt").string() + " --out " +
                             (dir / "o.npy").string() + " --model ";
  struct Case {
    std::string tensor;
    size_t byte;
    std::string bytes;
    std::string what;
  };
  const std::vector<Case> cases = {
      {"layers.2.ffn_norm.weight", 2 * 9, std::string("\xC0\x7F", 2),
       "(BF16 [256]) element 9 is NaN (bits 0x7fc0)"},
      {"layers.1.attn.attn_sink", 4 * 3, std::string("\0\0\x80\xFF", 4),
       "(F32 [8]) element 3 is -Inf (bits 0xff800000)"},
      {"layers.0.attn.wkv.weight", 100, "\xFF", "element 100 is NaN (bits 0xff)"},
      {"layers.0.ffn.experts.0.w1.scale", 0, "\xFF", "element 0 is NaN (bits 0xff)"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& k = cases[i];
    const fs::path model = dir / fs::path("m").concat(std::to_string(i));
    ASSERT_EQ(Dsv4("make-tiny --out " + model.string()).exit_code, 0);
    const fs::path shard = PatchTensor(model, k.tensor, k.byte, k.bytes);
    CmdResult r = Dsv4(logits + model.string());
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_THAT(r.output, HasSubstr("error: " + shard.string() + ": tensor '" + k.tensor + "' "));
    EXPECT_THAT(r.output, HasSubstr(k.what));
    EXPECT_FALSE(fs::exists(dir / "o.npy"));
  }
  // The opt-out (the NaN norm then reaches every logit).
  CmdResult r = Dsv4(logits + (dir / "m0").string() + " --no-weight-check");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = Dsv4("run --model " + (dir / "m0").string() + " --prompt-tokens 1,2 -n 1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("'layers.2.ffn_norm.weight'"));
  r = Dsv4("run --model " + (dir / "m0").string() + " --prompt-tokens 1,2 -n 1 --no-weight-check");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace

namespace {

TEST(Cli, TokenizeAndDetokenizeRoundTrip) {
  const std::string bin = DSV4_BIN;
  CmdResult r = Dsv4("tokenize --text 'Hello world' | " + bin + " detokenize");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "Hello world\n");
  r = Dsv4("tokenize --text 'Hello' --add-bos");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, ::testing::StartsWith("[0,"));
  r = Dsv4("tokenize --jsonl < /dev/null");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = Dsv4("detokenize --ids '[1, 999999]'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("outside the vocabulary"));
  r = Dsv4("tokenize --tokenizer /nonexistent/tokenizer.json --text x");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("/nonexistent/tokenizer.json"));
}

TEST(Cli, TokenizeJsonlIsOneLinePerInput) {
  const std::string bin = DSV4_BIN;
  const fs::path in = Fresh("tokenize_jsonl.txt");
  std::ofstream(in) << "\"a b\"\n\"\\u00e9t\\u00e9 \\ud83d\\ude00\"\n";
  CmdResult r = Dsv4("tokenize --jsonl < " + in.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 2) << r.output;
  r = Dsv4("tokenize --jsonl < " + in.string() + " | " + bin + " detokenize --jsonl");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "\"a b\"\n\"\u00e9t\u00e9 \U0001F600\"\n");
  std::ofstream(in) << "not json\n";
  r = Dsv4("tokenize --jsonl < " + in.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("standard input line 1"));
}

}  // namespace
