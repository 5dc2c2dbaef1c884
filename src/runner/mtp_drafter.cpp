#include "runner/mtp_drafter.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/check.h"
#include "kv/snapshot_file.h"

namespace dsv4::runner {
namespace {

constexpr char kStateMagic[8] = {'D', 'S', 'V', '4', 'M', 'T', 'P', 'S'};
constexpr uint32_t kStateVersion = 1;

#pragma pack(push, 1)
struct StateHeader {
  char magic[8];
  uint32_t version;
  uint32_t reserved;
  int64_t num_tokens;
  int64_t window;
  int64_t entry_bytes;
  int64_t first;
  int64_t rows;
};
#pragma pack(pop)

int32_t ArgMax(const std::vector<float>& logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

}  // namespace

MtpDrafter::MtpDrafter(const v4::Model& target, const v4::MtpWeights& w,
                       MtpDrafterOptions options)
    : mtp_(target, w),
      ring_config_(mtp_.RingConfig(options.history >= 0 ? options.history
                                                        : target.config().sliding_window)),
      max_draft_tokens_(std::max<int64_t>(1, options.max_draft_tokens)) {}

std::unique_ptr<DraftState> MtpDrafter::NewState() const {
  return std::make_unique<MtpDraftState>(ring_config_);
}

Status MtpDrafter::Run(ThreadPool& pool, MtpDraftState& st, const v4::Mtp::BatchItem& item) const {
  const int64_t pos0 = st.ring_.num_tokens();
  const int64_t n = static_cast<int64_t>(item.next_tokens.size());
  std::unique_lock<std::mutex> lock(ws_mu_, std::try_to_lock);
  DSV4_RETURN_IF_ERROR(
      mtp_.ForwardBatch(pool, {&item, 1}, lock.owns_lock() ? &ws_ : nullptr));
  // Writing position p overwrote the slot of position p - slots.
  if (n > 0) {
    st.intact_from_ = std::max(st.intact_from_, pos0 + n - ring_config_.sliding_window);
  }
  return Status::Ok();
}

Status MtpDrafter::Propose(ThreadPool& pool, DraftState& state, std::span<const int32_t> tokens,
                           std::span<const BF16> hidden, int64_t k,
                           std::vector<int32_t>* drafts) const {
  auto& st = static_cast<MtpDraftState&>(state);
  drafts->clear();
  if (tokens.empty()) {
    return Status::InvalidArgument("MTP drafter: no tokens (expected at least the sampled one)");
  }
  const int64_t done = st.num_tokens();
  const int64_t committed = static_cast<int64_t>(tokens.size()) - 1;
  if (committed < done) {
    return Status::FailedPrecondition(
        "MTP drafter: the state has consumed " + std::to_string(done) + " positions but the "
        "target has committed " + std::to_string(committed) + " (Truncate it first)");
  }
  const int64_t width = mtp_.hidden_width();
  if (static_cast<int64_t>(hidden.size()) != (committed - done) * width) {
    return Status::InvalidArgument(
        "MTP drafter: " + std::to_string(committed - done) + " newly committed positions need " +
        std::to_string(committed - done) + " hidden rows of " + std::to_string(width) +
        " values, got " + std::to_string(hidden.size()) + " values");
  }
  if (committed == done) return Status::Ok();
  k = std::min(k, max_draft_tokens_);
  // Positions done .. committed-1: X_t and token t+1; the last row drafts token committed+1.
  v4::Mtp::BatchItem item{&st.ring_, hidden, tokens.subspan(done + 1),
                          k > 0 ? models::LogitsMode::kLast : models::LogitsMode::kNone,
                          &st.logits_, k > 1 ? &st.x_ : nullptr};
  DSV4_RETURN_IF_ERROR(Run(pool, st, item));
  if (k <= 0) return Status::Ok();
  drafts->push_back(ArgMax(st.logits_));
  // Chained drafts: the block's own streams and the previous draft, at the next position.
  const checkpoint::ModelConfig& c = mtp_.config();
  for (int64_t i = 1; i < k && committed + i - 1 < c.max_position_embeddings; ++i) {
    const v4::Mtp::BatchItem next{&st.ring_, st.x_, {&drafts->back(), 1},
                                  models::LogitsMode::kLast, &st.logits_, &st.x_next_};
    // Valid by construction: an argmax id, a position below the limit, the ring's own
    // unbounded page pool.
    const Status s = Run(pool, st, next);
    DSV4_CHECK(s.ok());
    std::swap(st.x_, st.x_next_);
    drafts->push_back(ArgMax(st.logits_));
  }
  st.ring_.set_num_tokens(committed);
  return Status::Ok();
}

void MtpDrafter::Truncate(DraftState& state, int64_t n) const {
  auto& st = static_cast<MtpDraftState&>(state);
  if (n >= st.num_tokens()) return;
  // Exact when the ring still holds every row the window at n reads: positions [n - W, n).
  const int64_t window = mtp_.config().sliding_window;
  if (n > 0 && std::max<int64_t>(0, n - window) >= st.intact_from_) {
    st.ring_.set_num_tokens(n);
    return;
  }
  st.ring_.Release();
  st.intact_from_ = 0;
}

}  // namespace dsv4::runner

namespace dsv4::runner {

Status MtpDrafter::SaveState(const DraftState& state, std::vector<uint8_t>* out) const {
  const auto& st = static_cast<const MtpDraftState&>(state);
  const int64_t n = st.num_tokens();
  const int64_t window = mtp_.config().sliding_window;
  const int64_t first = std::max<int64_t>(0, n - window);
  if (first < st.intact_from_) {
    // Cannot happen after Propose (the window's rows are always intact at num_tokens()).
    return Status::FailedPrecondition("MTP drafter: the ring no longer holds the rows of "
                                      "positions [" + std::to_string(first) + ", " +
                                      std::to_string(n) + ")");
  }
  const int64_t entry = st.ring_.entry_bytes();
  StateHeader h{};
  std::memcpy(h.magic, kStateMagic, sizeof kStateMagic);
  h.version = kStateVersion;
  h.num_tokens = n;
  h.window = window;
  h.entry_bytes = entry;
  h.first = first;
  h.rows = n - first;
  const size_t at = out->size();
  out->resize(at + sizeof h + static_cast<size_t>(h.rows * entry) + 8);
  uint8_t* p = out->data() + at;
  std::memcpy(p, &h, sizeof h);
  p += sizeof h;
  for (int64_t pos = first; pos < n; ++pos, p += entry) {
    std::memcpy(p, st.ring_.WindowRow(0, pos), static_cast<size_t>(entry));
  }
  const uint64_t sum = kv::Checksum64({out->data() + at, static_cast<size_t>(p - (out->data() + at))});
  std::memcpy(p, &sum, 8);
  return Status::Ok();
}

Result<std::unique_ptr<DraftState>> MtpDrafter::RestoreState(std::span<const uint8_t> bytes) const {
  auto bad = [](const std::string& what) {
    return Status::DataLoss("MTP drafter state: " + what);
  };
  StateHeader h{};
  if (bytes.size() < sizeof h + 8) {
    return bad(std::to_string(bytes.size()) + " bytes, shorter than its " +
               std::to_string(sizeof h + 8) + "-byte header and checksum");
  }
  std::memcpy(&h, bytes.data(), sizeof h);
  if (std::memcmp(h.magic, kStateMagic, sizeof kStateMagic) != 0) {
    return bad("does not start with DSV4MTPS");
  }
  if (h.version != kStateVersion) {
    return Status::FailedPrecondition("MTP drafter state has layout version " +
                                      std::to_string(h.version) + ", this build reads " +
                                      std::to_string(kStateVersion));
  }
  auto state = std::make_unique<MtpDraftState>(ring_config_);
  const int64_t window = mtp_.config().sliding_window;
  const int64_t entry = state->ring_.entry_bytes();
  if (h.window != window || h.entry_bytes != entry) {
    return Status::FailedPrecondition(
        "MTP drafter state of a window of " + std::to_string(h.window) + " rows of " +
        std::to_string(h.entry_bytes) + " bytes, this drafter's is " + std::to_string(window) +
        " rows of " + std::to_string(entry) + " bytes");
  }
  const int64_t n = h.num_tokens;
  if (n < 0 || n > mtp_.config().max_position_embeddings ||
      h.first != std::max<int64_t>(0, n - window) || h.rows != n - h.first) {
    return bad("rows [" + std::to_string(h.first) + ", +" + std::to_string(h.rows) +
               ") for " + std::to_string(n) + " positions, expected [" +
               std::to_string(std::max<int64_t>(0, n - window)) + ", " + std::to_string(n) + ")");
  }
  const size_t want = sizeof h + static_cast<size_t>(h.rows * entry) + 8;
  if (bytes.size() != want) {
    return bad(std::to_string(bytes.size()) + " bytes, expected " + std::to_string(want));
  }
  uint64_t sum = 0;
  std::memcpy(&sum, bytes.data() + want - 8, 8);
  if (sum != kv::Checksum64(bytes.first(want - 8))) return bad("checksum mismatch");
  if (n > 0) {
    DSV4_RETURN_IF_ERROR(state->ring_.Reserve(n));
    const uint8_t* p = bytes.data() + sizeof h;
    for (int64_t pos = h.first; pos < n; ++pos, p += entry) {
      std::memcpy(state->ring_.WindowRow(0, pos), p, static_cast<size_t>(entry));
    }
    state->ring_.set_num_tokens(n);
  }
  state->intact_from_ = h.first;
  return std::unique_ptr<DraftState>(std::move(state));
}

}  // namespace dsv4::runner
