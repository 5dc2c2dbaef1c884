#include "tokenizer/bpe.h"

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
  merges_.try_emplace(PairKey(a, b), Merge{static_cast<int32_t>(rank), merged});
  return Status::Ok();
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
  m->merges_.reserve(merges.size());
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
  // A doubly linked list of symbols; merged-away symbols are unlinked.
  struct Symbol {
    TokenId id;
    int prev, next;
  };
  std::vector<Symbol> syms;
  syms.reserve(bytes.size());
  for (char c : bytes) {
    TokenId id = byte_token_[static_cast<uint8_t>(c)];
    if (id < 0) id = unk_;
    if (id < 0) continue;
    const int n = static_cast<int>(syms.size());
    syms.push_back({id, n - 1, -1});
    if (n > 0) syms[n - 1].next = n;
  }
  if (syms.size() > 1) {
    // Candidate merges ordered by (rank, position); stale entries are skipped when popped.
    struct Candidate {
      int32_t rank;
      int left;
      TokenId left_id, right_id;
      bool operator>(const Candidate& o) const {
        return rank != o.rank ? rank > o.rank : left > o.left;
      }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
    auto push = [&](int left) {
      if (left < 0 || syms[left].next < 0) return;
      const Symbol& a = syms[left];
      const Symbol& b = syms[a.next];
      auto it = merges_.find(PairKey(a.id, b.id));
      if (it != merges_.end()) queue.push({it->second.rank, left, a.id, b.id});
    };
    for (int i = 0; i + 1 < static_cast<int>(syms.size()); ++i) push(i);
    std::vector<bool> dead(syms.size(), false);
    while (!queue.empty()) {
      const Candidate c = queue.top();
      queue.pop();
      Symbol& a = syms[c.left];
      if (dead[c.left] || a.id != c.left_id || a.next < 0 || syms[a.next].id != c.right_id) {
        continue;
      }
      const int right = a.next;
      a.id = merges_.at(PairKey(c.left_id, c.right_id)).merged;
      a.next = syms[right].next;
      if (a.next >= 0) syms[a.next].prev = c.left;
      dead[right] = true;
      push(a.prev);
      push(c.left);
    }
  }
  for (int i = syms.empty() ? -1 : 0; i >= 0; i = syms[i].next) out->push_back(syms[i].id);
}

}  // namespace dsv4::tokenizer
