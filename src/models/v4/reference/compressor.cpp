#include "models/v4/reference/compressor.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "core/quant.h"
#include "models/v4/reference/numerics.h"

namespace dsv4::v4::reference {

Result<CompressorWeights> LoadCompressor(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                                         const std::string& prefix, int64_t ratio, int64_t width) {
  CompressorWeights cw;
  cw.ratio = ratio;
  cw.width = width;
  const int64_t features = cw.kappa() * width;
  DSV4_ASSIGN_OR_RETURN(
      cw.wkv, LoadF32Linear(w, prefix + "wkv.weight", DType::kBF16, features, c.hidden_size));
  DSV4_ASSIGN_OR_RETURN(
      cw.wgate, LoadF32Linear(w, prefix + "wgate.weight", DType::kBF16, features, c.hidden_size));
  DSV4_ASSIGN_OR_RETURN(cw.ape, LoadFloats(w, prefix + "ape", DType::kF32, {ratio, features}));
  DSV4_ASSIGN_OR_RETURN(cw.norm, LoadFloats(w, prefix + "norm.weight", DType::kBF16, {width}));
  return cw;
}

void ProjectTokens(const CompressorWeights& cw, std::span<const float> x, int64_t num_tokens,
                   std::vector<float>* v, std::vector<float>* z) {
  const int64_t dim = cw.wkv.in, features = cw.wkv.out;
  DSV4_CHECK(static_cast<int64_t>(x.size()) == num_tokens * dim);
  v->assign(static_cast<size_t>(num_tokens * features), 0.0f);
  z->assign(static_cast<size_t>(num_tokens * features), 0.0f);
  for (int64_t p = 0; p < num_tokens; ++p) {
    std::span<const float> xp = x.subspan(p * dim, dim);
    const std::vector<float> vp = Apply(cw.wkv, xp);
    const std::vector<float> zp = Apply(cw.wgate, xp);
    const float* ape = cw.ape.data() + (p % cw.ratio) * features;
    for (int64_t f = 0; f < features; ++f) {
      (*v)[p * features + f] = vp[f];
      (*z)[p * features + f] = zp[f] + ape[f];
    }
  }
}

std::vector<float> PoolEntries(std::span<const float> v, std::span<const float> z,
                               int64_t num_tokens, int64_t ratio, int64_t width, bool overlap) {
  const int64_t features = (overlap ? 2 : 1) * width;
  DSV4_CHECK(static_cast<int64_t>(v.size()) == num_tokens * features);
  DSV4_CHECK(v.size() == z.size());
  const int64_t num_entries = num_tokens / ratio;
  std::vector<float> out(static_cast<size_t>(num_entries * width));
  // One candidate: token p read at feature column `col`.
  struct Candidate {
    int64_t token;
    int64_t col_offset;  // 0 (previous window / non-overlap) or width (current window)
  };
  std::vector<Candidate> cands;
  std::vector<float> e;
  for (int64_t i = 0; i < num_entries; ++i) {
    cands.clear();
    if (overlap && i > 0) {
      for (int64_t p = ratio * (i - 1); p < ratio * i; ++p) cands.push_back({p, 0});
    }
    for (int64_t p = ratio * i; p < ratio * (i + 1); ++p) {
      cands.push_back({p, overlap ? width : 0});
    }
    e.resize(cands.size());
    for (int64_t f = 0; f < width; ++f) {
      float max = -INFINITY;
      for (const Candidate& cd : cands) {
        max = std::max(max, z[cd.token * features + cd.col_offset + f]);
      }
      float sum = 0.0f;
      for (size_t j = 0; j < cands.size(); ++j) {
        e[j] = std::exp(z[cands[j].token * features + cands[j].col_offset + f] - max);
        sum += e[j];
      }
      float acc = 0.0f;
      for (size_t j = 0; j < cands.size(); ++j) {
        acc += v[cands[j].token * features + cands[j].col_offset + f] * (e[j] / sum);
      }
      out[i * width + f] = acc;
    }
  }
  return out;
}

void FinishEntry(std::span<float> entry, int64_t index, const CompressorWeights& cw,
                 const EntryOptions& o) {
  const int64_t width = cw.width;
  const int64_t rope_dim = 2 * static_cast<int64_t>(o.inv_freq.size());
  DSV4_CHECK(static_cast<int64_t>(entry.size()) == width && rope_dim <= width);
  RoundToBf16(entry);
  const std::vector<float> normed = RmsNorm(entry, cw.norm, o.norm_eps);
  std::copy(normed.begin(), normed.end(), entry.begin());
  // Position of the entry: the first token of its current window, m·i (§7.5 step 2).
  ApplyRope(entry.subspan(width - rope_dim), o.inv_freq, cw.ratio * index, /*inverse=*/false);
  if (o.quant == EntryQuant::kFp8Nope) {
    Fp8SimulateBf16(entry.first(width - rope_dim), kFp8KvBlock);
  } else {
    HadamardBf16(entry);
    Fp4SimulateBf16(entry);
  }
}

std::vector<float> CompressEntries(const CompressorWeights& cw, std::span<const float> x,
                                   int64_t num_tokens, const EntryOptions& o) {
  std::vector<float> v, z;
  ProjectTokens(cw, x, num_tokens, &v, &z);
  std::vector<float> entries = PoolEntries(v, z, num_tokens, cw.ratio, cw.width, cw.overlap());
  const int64_t num_entries = num_tokens / cw.ratio;
  for (int64_t i = 0; i < num_entries; ++i) {
    FinishEntry(std::span<float>(entries).subspan(i * cw.width, cw.width), i, cw, o);
  }
  return entries;
}

}  // namespace dsv4::v4::reference
