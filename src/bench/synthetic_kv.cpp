#include "bench/synthetic_kv.h"

#include <algorithm>
#include <cstring>

#include "core/bf16.h"
#include "core/check.h"
#include "core/kv_entry.h"
#include "core/rng.h"
#include "kv/layout.h"
#include "models/v4/compressor.h"

namespace dsv4::bench {
namespace {

using checkpoint::LayerKind;

// BF16 [n] drawn uniformly from [-2, 2): the spread of normed activations.
std::vector<BF16> RandomBf16(Rng& rng, int64_t n) {
  std::vector<BF16> v(static_cast<size_t>(n));
  for (BF16& x : v) x = F32ToBf16(static_cast<float>(rng.Uniform(-2.0, 2.0)));
  return v;
}

// Steps compressor `s` (ratio m) through positions [start, n) with random projections, where
// start is the first position whose rows a real run still holds at n: the open window, and
// for overlapping (CSA) compressors the last closed one too. Positions before `from` were
// already stepped. Pooled outputs are dropped: the entries were appended in bulk.
void StepOpenWindows(kv::CompressorState& s, int64_t from, int64_t n, Rng& rng) {
  const int64_t m = s.ratio, row = s.row_width();
  const int64_t start = std::max({from, int64_t{0}, n / m * m - (s.kappa - 1) * m});
  std::vector<float> v(static_cast<size_t>(row)), z(static_cast<size_t>(row));
  std::vector<float> pooled(static_cast<size_t>(s.width));
  for (int64_t pos = start; pos < n; ++pos) {
    for (int64_t f = 0; f < row; ++f) {
      v[f] = static_cast<float>(rng.Uniform(-1.0, 1.0));
      z[f] = static_cast<float>(rng.Uniform(-1.0, 1.0));
    }
    v4::CompressorStep(s, v.data(), z.data(), pos, pooled.data());
  }
}

}  // namespace

EntryPool::EntryPool(const checkpoint::ModelConfig& c, uint64_t seed, int64_t size) : size_(size) {
  DSV4_CHECK(size > 0);
  Rng rng(seed);
  const kv::KvFormats f = kv::DefaultKvFormats(c.arch);
  const int64_t r = c.qk_rope_head_dim, dI = c.index_head_dim;
  if (c.arch == checkpoint::Arch::kV4) {
    entry_bytes_ = kv::EntryBytes(c, f.entry);
    fp4_key_bytes_ = kv::IndexerKeyBytes(dI, kv::IndexerFormat::kFp4);
    kv_entries_.resize(static_cast<size_t>(size * entry_bytes_));
    fp4_keys_.resize(static_cast<size_t>(size * fp4_key_bytes_));
    for (int64_t i = 0; i < size; ++i) {
      const std::vector<BF16> x = RandomBf16(rng, c.head_dim);
      EncodeKvEntry(x.data(), c.d_nope(), r, kv_entries_.data() + i * entry_bytes_);
      const std::vector<BF16> k = RandomBf16(rng, dI);
      EncodeIndexerKeyFp4(k.data(), dI, fp4_keys_.data() + i * fp4_key_bytes_);
    }
    return;
  }
  record_bytes_ = kv::MlaRecordBytes(c, f.mla);
  fp8_key_bytes_ = kv::IndexerKeyBytes(dI, kv::IndexerFormat::kFp8);
  mla_records_.resize(static_cast<size_t>(size * record_bytes_));
  fp8_keys_.resize(static_cast<size_t>(size * fp8_key_bytes_));
  for (int64_t i = 0; i < size; ++i) {
    const std::vector<BF16> x = RandomBf16(rng, c.kv_lora_rank + r);
    EncodeMlaRecord(x.data(), c.kv_lora_rank, x.data() + c.kv_lora_rank, r,
                    mla_records_.data() + i * record_bytes_);
    const std::vector<BF16> k = RandomBf16(rng, dI);
    EncodeIndexerKeyFp8(k.data(), dI, fp8_keys_.data() + i * fp8_key_bytes_);
  }
}

Status FillV4Cache(const checkpoint::ModelConfig& c, const EntryPool& pool, int64_t n, uint64_t seed,
                   kv::V4SequenceCache& cache) {
  const int64_t from = cache.num_tokens();
  DSV4_CHECK(n >= from);
  DSV4_RETURN_IF_ERROR(cache.Reserve(n));
  const size_t eb = static_cast<size_t>(cache.entry_bytes());
  const size_t kb = static_cast<size_t>(cache.indexer_key_bytes());
  Rng rng(seed ^ static_cast<uint64_t>(n));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    // Different layers draw different pool entries (a stride coprime to the pool size).
    const int64_t salt = l * 977;
    for (int64_t pos = std::max(from, n - c.sliding_window); pos < n; ++pos) {
      std::memcpy(cache.WindowRow(l, pos), pool.KvEntry(pos + salt), eb);
    }
    const LayerKind kind = c.layer_kind(l);
    if (kind == LayerKind::kSwa) continue;
    const int64_t m = c.ratio(l);
    for (int64_t i = cache.NumEntries(l); i < n / m; ++i) {
      std::memcpy(cache.AppendEntry(l), pool.KvEntry(i + salt), eb);
    }
    StepOpenWindows(cache.State(l, 0), from, n, rng);
    if (kind != LayerKind::kCsa) continue;
    for (int64_t i = cache.NumIndexerKeys(l); i < n / 4; ++i) {
      std::memcpy(cache.AppendIndexerKey(l), pool.Fp4Key(i + salt), kb);
    }
    StepOpenWindows(cache.State(l, 1), from, n, rng);
  }
  cache.set_num_tokens(n);
  return Status::Ok();
}

Status FillV32Cache(const checkpoint::ModelConfig& c, const EntryPool& pool, int64_t n,
                    kv::V32SequenceCache& cache) {
  DSV4_CHECK(n >= cache.num_tokens());
  DSV4_RETURN_IF_ERROR(cache.Reserve(n));
  const size_t rb = static_cast<size_t>(cache.record_bytes());
  const size_t kb = static_cast<size_t>(cache.indexer_key_bytes());
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const int64_t salt = l * 977;
    for (int64_t i = cache.NumRecords(l); i < n; ++i) {
      std::memcpy(cache.AppendMlaRecord(l), pool.MlaRecord(i + salt), rb);
    }
    for (int64_t i = cache.NumIndexerKeys(l); i < n; ++i) {
      std::memcpy(cache.AppendIndexerKey(l), pool.Fp8Key(i + salt), kb);
    }
  }
  cache.set_num_tokens(n);
  return Status::Ok();
}

}  // namespace dsv4::bench
