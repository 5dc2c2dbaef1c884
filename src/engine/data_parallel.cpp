#include "engine/data_parallel.h"

#include <cstring>
#include <type_traits>

#include "core/check.h"

namespace dsv4::engine {
namespace {

// Native-endian fields back to back (every rank runs the same build).
class Writer {
 public:
  explicit Writer(std::vector<std::byte>* out) : out_(out) { out_->clear(); }
  template <typename T>
  void Put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const size_t at = out_->size();
    out_->resize(at + sizeof(T));
    std::memcpy(out_->data() + at, &v, sizeof(T));
  }
  template <typename T>
  void PutVector(const std::vector<T>& v) {
    Put(static_cast<int64_t>(v.size()));
    const size_t at = out_->size();
    out_->resize(at + v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(out_->data() + at, v.data(), v.size() * sizeof(T));
  }
  void PutString(const std::string& s) {
    Put(static_cast<int64_t>(s.size()));
    const size_t at = out_->size();
    out_->resize(at + s.size());
    if (!s.empty()) std::memcpy(out_->data() + at, s.data(), s.size());
  }

 private:
  std::vector<std::byte>* out_;
};

class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : in_(in) {}
  template <typename T>
  bool Get(T* v) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (in_.size() - at_ < sizeof(T)) return false;
    std::memcpy(v, in_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return true;
  }
  template <typename T>
  bool GetVector(std::vector<T>* v) {
    int64_t n = 0;
    if (!Get(&n) || n < 0 || static_cast<size_t>(n) > (in_.size() - at_) / sizeof(T)) return false;
    v->resize(static_cast<size_t>(n));
    if (n > 0) std::memcpy(v->data(), in_.data() + at_, static_cast<size_t>(n) * sizeof(T));
    at_ += static_cast<size_t>(n) * sizeof(T);
    return true;
  }
  bool GetString(std::string* s) {
    std::vector<char> v;
    if (!GetVector(&v)) return false;
    s->assign(v.begin(), v.end());
    return true;
  }
  bool done() const { return at_ == in_.size(); }

 private:
  std::span<const std::byte> in_;
  size_t at_ = 0;
};

Status Malformed(const char* what) {
  return Status::Internal(std::string("data-parallel serving: a malformed ") + what +
                          " message (do all ranks run the same dsv4 build?)");
}

}  // namespace

void EncodeControl(const DpControl& c, std::vector<std::byte>* out) {
  Writer w(out);
  w.Put(static_cast<uint8_t>(c.stop));
  w.Put(static_cast<uint8_t>(c.step));
  w.Put(static_cast<int64_t>(c.placed.size()));
  for (const DpControl::Placed& p : c.placed) {
    w.Put(p.id);
    w.Put(p.rank);
    w.PutVector(p.request.prompt);
    w.Put(p.request.sampling);
    w.Put(p.request.stop.max_new_tokens);
    w.Put(static_cast<uint8_t>(p.request.stop.ignore_eos));
    w.PutVector(p.request.stop.stop_token_ids);
    w.Put(static_cast<uint8_t>(p.request.speculative));
  }
  w.PutVector(c.cancelled);
}

Status DecodeControl(std::span<const std::byte> in, DpControl* c) {
  Reader r(in);
  uint8_t stop = 0, step = 0;
  int64_t n = 0;
  if (!r.Get(&stop) || !r.Get(&step) || !r.Get(&n) || n < 0) return Malformed("control");
  c->stop = stop != 0;
  c->step = step != 0;
  c->placed.resize(static_cast<size_t>(n));
  for (DpControl::Placed& p : c->placed) {
    uint8_t ignore_eos = 0, speculative = 0;
    if (!r.Get(&p.id) || !r.Get(&p.rank) || !r.GetVector(&p.request.prompt) ||
        !r.Get(&p.request.sampling) || !r.Get(&p.request.stop.max_new_tokens) ||
        !r.Get(&ignore_eos) || !r.GetVector(&p.request.stop.stop_token_ids) ||
        !r.Get(&speculative)) {
      return Malformed("control");
    }
    p.request.stop.ignore_eos = ignore_eos != 0;
    p.request.speculative = speculative != 0;
  }
  if (!r.GetVector(&c->cancelled) || !r.done()) return Malformed("control");
  return Status::Ok();
}

void EncodeReport(const DpReport& rep, std::vector<std::byte>* out) {
  Writer w(out);
  w.Put(static_cast<uint8_t>(rep.has_work));
  w.Put(rep.stats);
  w.Put(static_cast<int64_t>(rep.events.size()));
  for (const DpReport::Event& e : rep.events) {
    w.Put(e.id);
    w.Put(e.event.token);
    w.Put(e.event.index);
    w.Put(static_cast<uint8_t>(e.event.finished));
    w.Put(e.event.reason);
    w.Put(e.event.seconds);
    w.PutString(e.event.error);
  }
}

Status DecodeReport(std::span<const std::byte> in, DpReport* rep) {
  Reader r(in);
  uint8_t has_work = 0;
  int64_t n = 0;
  if (!r.Get(&has_work) || !r.Get(&rep->stats) || !r.Get(&n) || n < 0) return Malformed("report");
  rep->has_work = has_work != 0;
  rep->events.resize(static_cast<size_t>(n));
  for (DpReport::Event& e : rep->events) {
    uint8_t finished = 0;
    if (!r.Get(&e.id) || !r.Get(&e.event.token) || !r.Get(&e.event.index) || !r.Get(&finished) ||
        !r.Get(&e.event.reason) || !r.Get(&e.event.seconds) || !r.GetString(&e.event.error)) {
      return Malformed("report");
    }
    e.event.finished = finished != 0;
  }
  if (!r.done()) return Malformed("report");
  return Status::Ok();
}

DpLeader::DpLeader(int num_ranks)
    : ranks_(static_cast<size_t>(num_ranks)),
      pending_kv_(static_cast<size_t>(num_ranks), 0),
      busy_(static_cast<size_t>(num_ranks), false) {
  for (int q = 0; q < num_ranks; ++q) ranks_[static_cast<size_t>(q)].rank = q;
}

int DpLeader::Place(int64_t local_kv_used, int64_t kv_needed) {
  int best = 0;
  int64_t best_load = 0;
  for (size_t q = 0; q < ranks_.size(); ++q) {
    const int64_t load = (q == 0 ? local_kv_used : ranks_[q].kv_sequence_bytes) + pending_kv_[q];
    if (q == 0 || load < best_load) best = static_cast<int>(q), best_load = load;
  }
  pending_kv_[static_cast<size_t>(best)] += kv_needed;
  ranks_[static_cast<size_t>(best)].placed += 1;
  return best;
}

void DpLeader::Forward(RequestId id, int rank, std::shared_ptr<RequestStream> stream) {
  DSV4_CHECK(rank > 0 && rank < static_cast<int>(ranks_.size()));
  remote_[id] = Remote{rank, std::move(stream)};
  busy_[static_cast<size_t>(rank)] = true;
}

int64_t DpLeader::Update(std::span<const DpReport> reports) {
  DSV4_CHECK(reports.size() == ranks_.size());
  int64_t ended = 0;
  for (size_t q = 0; q < reports.size(); ++q) {
    const DpReport& rep = reports[q];
    const int64_t placed = ranks_[q].placed;
    ranks_[q] = rep.stats;
    ranks_[q].rank = static_cast<int>(q);
    ranks_[q].placed = placed;
    pending_kv_[q] = 0;
    busy_[q] = rep.has_work;
    if (q == 0) continue;  // rank 0's own requests push their events themselves
    for (const DpReport::Event& e : rep.events) ended += e.event.finished && IsRemote(e.id);
  }
  return ended;
}

void DpLeader::Deliver(std::span<const DpReport> reports) {
  for (size_t q = 1; q < reports.size(); ++q) {
    for (const DpReport::Event& e : reports[q].events) {
      auto it = remote_.find(e.id);
      if (it == remote_.end()) continue;  // already ended here (a failure)
      it->second.stream->Push(e.event);
      if (e.event.finished) remote_.erase(it);
    }
  }
}

bool DpLeader::others_busy() const {
  for (size_t q = 1; q < busy_.size(); ++q) {
    if (busy_[q]) return true;
  }
  return false;
}

void DpLeader::EndAll(FinishReason reason, const std::string& error) {
  for (auto& [id, r] : remote_) {
    TokenEvent ev;
    ev.finished = true;
    ev.reason = reason;
    ev.error = error;
    r.stream->Push(std::move(ev));
  }
  remote_.clear();
}

}  // namespace dsv4::engine
