// The tokenizer travels with checkpoints: the built-in model carries the generated one in
// memory, WriteCheckpoint writes it beside config.json, OpenCheckpoint reads it back, and a
// folder without one still opens (token-id commands need no tokenizer).
#include <gtest/gtest.h>

#include <filesystem>

#include "checkpoint/checkpoint.h"
#include "checkpoint/presets.h"
#include "testing/tokenizer_generator.h"
#include "testing/weight_generator.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::tokenizer {
namespace {

namespace fs = std::filesystem;

TEST(CheckpointTokenizer, BuiltinModelCarriesTheTinyTokenizer) {
  Result<checkpoint::Checkpoint> m = fixtures::BuiltinDefaultModel();
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->tokenizer_json, fixtures::GenerateTinyTokenizerJson(m->config.vocab_size).value());
  Result<std::unique_ptr<Tokenizer>> t = Tokenizer::FromJson(m->tokenizer_json, "built-in");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->vocab_size(), m->config.vocab_size);
  EXPECT_EQ((*t)->bos_id(), m->config.bos_token_id);
  EXPECT_EQ((*t)->eos_id(), m->config.eos_token_id);
}

TEST(CheckpointTokenizer, WrittenAndReadBack) {
  checkpoint::ModelConfig c = checkpoint::TinyV4Config();
  std::vector<checkpoint::OwnedTensor> tensors = fixtures::GenerateWeights(c, 1).value();
  const std::string json = fixtures::GenerateTinyTokenizerJson(c.vocab_size).value();
  const fs::path with = fs::path(DSV4_TEST_TMPDIR) / "ck_with_tokenizer";
  const fs::path without = fs::path(DSV4_TEST_TMPDIR) / "ck_without_tokenizer";
  fs::remove_all(with);
  fs::remove_all(without);
  ASSERT_TRUE(fixtures::WriteCheckpoint(with, c, tensors, 1, json).ok());
  ASSERT_TRUE(fixtures::WriteCheckpoint(without, c, tensors, 1).ok());
  EXPECT_TRUE(fs::exists(with / "tokenizer.json"));
  EXPECT_FALSE(fs::exists(without / "tokenizer.json"));

  Result<checkpoint::Checkpoint> ck = checkpoint::OpenCheckpoint(with);
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  EXPECT_EQ(ck->tokenizer_json, json);
  EXPECT_TRUE(LoadTokenizer(with).ok());

  ck = checkpoint::OpenCheckpoint(without);
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  EXPECT_TRUE(ck->tokenizer_json.empty());
  EXPECT_EQ(LoadTokenizer(without).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace dsv4::tokenizer
