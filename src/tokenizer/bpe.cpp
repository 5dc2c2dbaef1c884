#include "tokenizer/bpe.h"

#include <climits>
#include <queue>

#include "tokenizer/byte_level.h"

namespace dsv4::tokenizer {
namespace {

using nlohmann::json;

// Options of tokenizers' BPE that change results and that this engine does not implement;
// a tokenizer using them is refused rather than encoded differently.
Status CheckUnsupported(const json& model, const std::string& label) {
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix", "dropout"}) {
    if (model.contains(key) && !model.at(key).is_null()) {
      return Status::Unimplemented(label + "." + key + ": expected null, got " +
                                   model.at(key).dump());
    }
  }
  if (model.contains("byte_fallback") && model.at("byte_fallback").is_boolean() &&
      model.at("byte_fallback").get<bool>()) {
    return Status::Unimplemented(label + ".byte_fallback: expected false, got true");
  }
  return Status::Ok();
}

}  // namespace

Status BpeModel::AddMerge(std::string_view left, std::string_view right, size_t rank,
                          const std::string& label) {
  auto find = [&](std::string_view token) -> TokenId {
    auto it = vocab_.find(std::string(token));
    return it == vocab_.end() ? -1 : it->second;
  };
  const TokenId a = find(left), b = find(right);
  const std::string joined = std::string(left) + std::string(right);
  const TokenId merged = find(joined);
  if (a < 0 || b < 0 || merged < 0) {
    const std::string missing = a < 0 ? std::string(left) : b < 0 ? std::string(right) : joined;
    return Status::InvalidArgument(label + ": merge '" + std::string(left) + " " +
                                   std::string(right) + "' uses '" + missing +
                                   "', which is not in model.vocab");
  }
  // The first listing of a pair wins, as in tokenizers (later duplicates have no effect).
  if (merges_.Insert(PairKey(a, b), Merge{static_cast<int32_t>(rank), merged})) ++num_merges_;
  return Status::Ok();
}

void BpeModel::MergeTable::Reserve(size_t num_merges) {
  size_t slots = 2;
  int shift = 63;
  while (slots < 2 * num_merges) {
    slots *= 2;
    --shift;
  }
  if (slots <= slots_.size()) return;
  std::vector<Entry> old = std::move(slots_);
  slots_.assign(slots, Entry{});
  mask_ = slots - 1;
  shift_ = shift;
  size_ = 0;
  for (const Entry& e : old) {
    if (e.key != kEmptyKey) Insert(e.key, e.merge);
  }
}

bool BpeModel::MergeTable::Insert(uint64_t key, Merge merge) {
  if (2 * (size_ + 1) > slots_.size()) Reserve(size_ + 1);
  size_t i = Slot(key);
  for (; slots_[i].key != kEmptyKey; i = (i + 1) & mask_) {
    if (slots_[i].key == key) return false;
  }
  slots_[i] = Entry{key, merge};
  ++size_;
  return true;
}

Result<std::unique_ptr<BpeModel>> BpeModel::FromJson(const json& model, const std::string& label) {
  std::unique_ptr<BpeModel> m(new BpeModel());
  DSV4_RETURN_IF_ERROR(CheckUnsupported(model, label));
  if (!model.contains("vocab") || !model.at("vocab").is_object()) {
    return Status::InvalidArgument(label + ".vocab: expected an object {token: id}");
  }
  const json& vocab = model.at("vocab");
  m->vocab_.reserve(vocab.size());
  std::unordered_map<TokenId, std::string> seen;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > INT32_MAX) {
      return Status::InvalidArgument(label + ".vocab['" + it.key() +
                                     "']: expected a non-negative integer id, got " +
                                     it.value().dump());
    }
    const auto id = static_cast<TokenId>(it.value().get<int64_t>());
    auto [prev, fresh] = seen.emplace(id, it.key());
    if (!fresh) {
      return Status::InvalidArgument(label + ".vocab: id " + std::to_string(id) +
                                     " is given to both '" + prev->second + "' and '" + it.key() +
                                     "'");
    }
    m->vocab_.emplace(it.key(), id);
  }

  const json merges = model.value("merges", json::array());
  if (!merges.is_array()) {
    return Status::InvalidArgument(label + ".merges: expected a list, got " + merges.dump());
  }
  m->merges_.Reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& e = merges[i];
    const std::string where = label + ".merges[" + std::to_string(i) + "]";
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        return Status::InvalidArgument(where + ": expected \"left right\" (one space), got '" + s +
                                       "'");
      }
      DSV4_RETURN_IF_ERROR(m->AddMerge(std::string_view(s).substr(0, space),
                                       std::string_view(s).substr(space + 1), i, where));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      DSV4_RETURN_IF_ERROR(m->AddMerge(e[0].get<std::string>(), e[1].get<std::string>(), i, where));
    } else {
      return Status::InvalidArgument(where + ": expected \"left right\" or [left, right], got " +
                                     e.dump());
    }
  }

  const ByteLevelMap& bytes = ByteLevelMap::Get();
  for (int b = 0; b < 256; ++b) {
    auto it = m->vocab_.find(bytes.Char(static_cast<uint8_t>(b)));
    m->byte_token_[b] = it == m->vocab_.end() ? -1 : it->second;
  }
  if (model.contains("unk_token") && model.at("unk_token").is_string()) {
    auto it = m->vocab_.find(model.at("unk_token").get<std::string>());
    if (it == m->vocab_.end()) {
      return Status::InvalidArgument(label + ".unk_token: '" +
                                     model.at("unk_token").get<std::string>() +
                                     "' is not in model.vocab");
    }
    m->unk_ = it->second;
  }
  if (model.contains("ignore_merges") && model.at("ignore_merges").is_boolean()) {
    m->ignore_merges_ = model.at("ignore_merges").get<bool>();
  }
  return m;
}

void BpeModel::EncodePiece(std::string_view bytes, std::vector<TokenId>* out) const {
  if (bytes.empty()) return;
  if (ignore_merges_) {  // a piece that is itself a token skips the merges (Llama 3 style)
    auto it = vocab_.find(ByteLevelMap::Get().Encode(bytes));
    if (it != vocab_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  const size_t first = out->size();
  for (char c : bytes) {
    TokenId id = byte_token_[static_cast<uint8_t>(c)];
    if (id < 0) id = unk_;
    if (id >= 0) out->push_back(id);
  }
  const size_t n = out->size() - first;
  if (n <= 1) return;
  if (n <= static_cast<size_t>(kShortPiece)) {
    MergeShort(out, first);
  } else {
    MergeLong(out, first);
  }
}

void BpeModel::MergeShort(std::vector<TokenId>* ids, size_t first) const {
  constexpr int32_t kNone = INT32_MAX;  // rank of a pair that has no merge
  TokenId* sym = ids->data() + first;
  int m = static_cast<int>(ids->size() - first);
  // pair[k]: the merge of (sym[k], sym[k + 1]), rank kNone if there is none.
  Merge pair[kShortPiece];
  auto lookup = [&](int k) {
    const Merge* merge = merges_.Find(PairKey(sym[k], sym[k + 1]));
    pair[k] = merge != nullptr ? *merge : Merge{kNone, -1};
  };
  for (int k = 0; k + 1 < m; ++k) lookup(k);
  while (m > 1) {
    int best = 0;  // the lowest rank, leftmost among equals
    for (int k = 1; k + 1 < m; ++k) {
      if (pair[k].rank < pair[best].rank) best = k;
    }
    if (pair[best].rank == kNone) break;
    sym[best] = pair[best].merged;
    --m;  // sym[best + 1] is gone; the symbols and pairs after it move left by one
    for (int k = best + 1; k < m; ++k) sym[k] = sym[k + 1];
    for (int k = best + 1; k + 1 < m; ++k) pair[k] = pair[k + 1];
    if (best > 0) lookup(best - 1);
    if (best + 1 < m) lookup(best);
  }
  ids->resize(first + static_cast<size_t>(m));
}

void BpeModel::MergeLong(std::vector<TokenId>* ids, size_t first) const {
  // A doubly linked list of symbols; merged-away symbols are unlinked.
  struct Symbol {
    TokenId id;
    int prev, next;
  };
  const int n = static_cast<int>(ids->size() - first);
  std::vector<Symbol> syms(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) syms[i] = {(*ids)[first + i], i - 1, i + 1 < n ? i + 1 : -1};
  // Candidate merges ordered by (rank, position); stale entries are skipped when popped.
  struct Candidate {
    int32_t rank;
    int left;
    TokenId left_id, right_id, merged;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto push = [&](int left) {
    if (left < 0 || syms[left].next < 0) return;
    const Symbol& a = syms[left];
    const Symbol& b = syms[a.next];
    if (const Merge* merge = merges_.Find(PairKey(a.id, b.id)); merge != nullptr) {
      queue.push({merge->rank, left, a.id, b.id, merge->merged});
    }
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  std::vector<bool> dead(syms.size(), false);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& a = syms[c.left];
    if (dead[c.left] || a.id != c.left_id || a.next < 0 || syms[a.next].id != c.right_id) {
      continue;
    }
    const int right = a.next;
    a.id = c.merged;
    a.next = syms[right].next;
    if (a.next >= 0) syms[a.next].prev = c.left;
    dead[right] = true;
    push(a.prev);
    push(c.left);
  }
  ids->resize(first);
  for (int i = 0; i >= 0; i = syms[i].next) ids->push_back(syms[i].id);
}

}  // namespace dsv4::tokenizer
