#include "kv/v32_cache.h"

#include "core/check.h"

namespace dsv4::kv {

V32SequenceCache::V32SequenceCache(const checkpoint::ModelConfig& c) {
  DSV4_CHECK(c.arch == checkpoint::Arch::kV32);
  const KvFormats f = DefaultKvFormats(c.arch);
  record_bytes_ = MlaRecordBytes(c, f.mla);
  key_bytes_ = IndexerKeyBytes(c.index_head_dim, f.indexer);
  layers_.resize(static_cast<size_t>(c.num_hidden_layers));
}

void V32SequenceCache::Reset() {
  num_tokens_ = 0;
  for (Layer& l : layers_) {
    std::vector<uint8_t>().swap(l.records);
    std::vector<uint8_t>().swap(l.keys);
  }
}

int64_t V32SequenceCache::NumRecords(int64_t layer) const {
  return static_cast<int64_t>(layers_[layer].records.size()) / record_bytes_;
}
const uint8_t* V32SequenceCache::MlaRecord(int64_t layer, int64_t pos) const {
  DSV4_DCHECK(pos >= 0 && pos < NumRecords(layer));
  return layers_[layer].records.data() + pos * record_bytes_;
}
uint8_t* V32SequenceCache::AppendMlaRecord(int64_t layer) {
  auto& r = layers_[layer].records;
  r.resize(r.size() + static_cast<size_t>(record_bytes_));
  return r.data() + r.size() - record_bytes_;
}

int64_t V32SequenceCache::NumIndexerKeys(int64_t layer) const {
  return static_cast<int64_t>(layers_[layer].keys.size()) / key_bytes_;
}
const uint8_t* V32SequenceCache::IndexerKey(int64_t layer, int64_t pos) const {
  DSV4_DCHECK(pos >= 0 && pos < NumIndexerKeys(layer));
  return layers_[layer].keys.data() + pos * key_bytes_;
}
const uint8_t* V32SequenceCache::IndexerKeys(int64_t layer) const {
  return layers_[layer].keys.data();
}
uint8_t* V32SequenceCache::AppendIndexerKey(int64_t layer) {
  auto& k = layers_[layer].keys;
  k.resize(k.size() + static_cast<size_t>(key_bytes_));
  return k.data() + k.size() - key_bytes_;
}

KvFootprint V32SequenceCache::Usage() const {
  KvFootprint fp;
  fp.num_tokens = num_tokens_;
  int64_t records = 0, keys = 0;
  for (const Layer& l : layers_) {
    records += static_cast<int64_t>(l.records.size());
    keys += static_cast<int64_t>(l.keys.size());
  }
  // Expressed as one "layer" of summed bytes per component, as V4SequenceCache does.
  auto add = [&](const char* name, int64_t bytes) {
    if (bytes > 0) fp.components.push_back({name, 1, bytes, 1, false});
  };
  add("mla_latent", records);
  add("indexer_keys", keys);
  return fp;
}

}  // namespace dsv4::kv
