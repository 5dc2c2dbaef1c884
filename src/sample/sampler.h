// Token sampling: greedy, temperature, top-k, top-p, and the verification of speculative
// drafts. The random draw for a token depends only on the request's seed and the token's
// position, so a sequence that is preempted and recomputed samples exactly the same tokens
// again, and a speculative step emits exactly the tokens a plain one would (VerifyDrafts).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "dsv4/sampling.h"

namespace dsv4::sample {

using SamplingParams = ::dsv4::SamplingParams;  // public: include/dsv4/sampling.h

// Reusable buffers of SampleToken (grow-only; contents never change the result).
struct SampleScratch {
  std::vector<int32_t> ids;   // [vocab]: candidates by descending logit
  std::vector<double> prob;   // [top_k]: their unnormalised probabilities
};

// The distribution a sampled (temperature > 0) token is drawn from: scratch->ids gets the
// candidates by descending logit (ties to the lower id) and scratch->prob their unnormalised
// probabilities exp((logit - max) / temperature), both cut to the top-k and then to the
// smallest prefix whose share of the top-k mass reaches top_p. Returns their sum.
double Candidates(std::span<const float> logits, const SamplingParams& p, SampleScratch* scratch);

// The token for position `position` from FP32 logits [vocab]. `scratch` (one per calling
// thread) is reused: with one kept across calls, a warm call allocates nothing.
int32_t SampleToken(std::span<const float> logits, const SamplingParams& p, int64_t position,
                    SampleScratch* scratch);
// The same with fresh buffers.
int32_t SampleToken(std::span<const float> logits, const SamplingParams& p, int64_t position);

// Verifies k = drafts.size() drafted tokens against the target's FP32 logits
// [k + 1, vocab] of one step that fed [last token, drafts...]: row i predicts position
// `position + i` (position: the index the next token of the sequence gets). Writes the
// tokens the request emits to *out (cleared first) and returns j, the drafts accepted:
// out = t_0 .. t_j with t_i = SampleToken(row i, p, position + i), where j is the first i
// with t_i != drafts[i] (j = k when all match). t_j is the bonus token (all accepted) or
// the correction (drafts[j] rejected).
//
// Greedy requests thus accept the longest prefix of drafts equal to the target's argmax,
// plus one token. For sampled requests this is the standard speculative rejection sampling
// with a deterministic drafter (q one-hot at the draft d): accept d with probability
// min(1, p(d) / q(d)) = p(d), else draw from norm(max(p - q, 0)), i.e. p without d. The
// position's own draw t = SampleToken(...) is that rule: P(t = d) = p(d), and given t != d
// it is distributed as p restricted to the other tokens. So the emitted tokens are, draw
// for draw, the ones non-speculative decoding samples: bit-identical output for every
// request, whatever the drafts were (only how many steps it takes changes).
int64_t VerifyDrafts(std::span<const float> logits, std::span<const int32_t> drafts,
                     const SamplingParams& p, int64_t position, SampleScratch* scratch,
                     std::vector<int32_t>* out);

}  // namespace dsv4::sample
