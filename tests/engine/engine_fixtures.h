// What the engine tests share: the built-in tiny models (V4, V3.2) as factories and with their
// configs, collecting a stream's tokens, and waiting for every page to come back after
// clearing the prefix cache.
#pragma once

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "checkpoint/presets.h"
#include "checkpoint/tensor_store.h"
#include "dsv4/engine.h"
#include "kv/page_layout.h"
#include "runner/loaded_model.h"
#include "testing/weight_generator.h"

namespace dsv4::engine_test {

// The built-in tiny model (generated in memory), as the dsv4 tool hands it to the engine.
inline ModelFactory Tiny() {
  return []() -> Result<std::unique_ptr<runner::LoadedModel>> {
    DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, fixtures::BuiltinDefaultModel());
    return runner::LoadCheckpoint(std::move(ck), "the built-in model");
  };
}

// The tiny V3.2 model: its sequences live on the same paged KV manager (budget, preemption,
// prefix snapshots of page references, the disk tier).
inline ModelFactory TinyV32() {
  return []() -> Result<std::unique_ptr<runner::LoadedModel>> {
    DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, fixtures::BuiltinTinyV32Model());
    return runner::LoadCheckpoint(std::move(ck), "the built-in V3.2 model");
  };
}

// The built-in tiny model in the 0731 layout: its drafter is DSpark (spec §11.4).
inline ModelFactory TinyDspark() {
  return []() -> Result<std::unique_ptr<runner::LoadedModel>> {
    DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, fixtures::BuiltinDefaultModel());
    ck.config = checkpoint::WithDrafter(checkpoint::TinyV4Config(), checkpoint::DraftFamily::kDspark);
    DSV4_ASSIGN_OR_RETURN(std::vector<checkpoint::OwnedTensor> tensors,
                          fixtures::GenerateWeights(ck.config, fixtures::kDefaultSeed));
    DSV4_ASSIGN_OR_RETURN(ck.weights, checkpoint::TensorStore::Create("tiny 0731", std::move(tensors)));
    ck.unexpected.clear();
    DSV4_RETURN_IF_ERROR(
        checkpoint::VerifyTensors(ck.config, *ck.weights, &ck.drafter, &ck.unexpected));
    return runner::LoadCheckpoint(std::move(ck), "the tiny 0731-layout model");
  };
}

// A served model for the tests that run on both architectures, and its page layout.
struct Served {
  const char* name;
  ModelFactory factory;
  checkpoint::ModelConfig config;
  kv::PageLayout layout() const { return kv::PageLayout(config, kv::DefaultKvFormats(config.arch)); }
};
inline const Served& V4Tiny() {
  static const Served s{"v4", Tiny(), checkpoint::TinyV4Config()};
  return s;
}
inline const Served& V32Tiny() {
  static const Served s{"v3.2", TinyV32(), checkpoint::TinyV32Config()};
  return s;
}

// The generated tokens of a stream, until its end.
inline std::vector<int32_t> Collect(RequestStream& s) {
  std::vector<int32_t> out;
  TokenEvent ev;
  while (s.Next(&ev)) {
    if (!ev.finished) out.push_back(ev.token);
  }
  return out;
}

// Drops the cached prefixes and waits until every page is back (the engine thread does it).
inline int64_t KvBytesAfterClearingCache(Engine& e) {
  e.ClearPrefixCache();
  EngineStats s;
  for (int i = 0; i < 400; ++i) {
    s = e.Stats();
    if (s.kv.used_bytes == 0 && s.prefix_cache_entries == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return s.kv.used_bytes;
}

}  // namespace dsv4::engine_test
