// A TensorSource that records the name of every tensor asked of it (metadata or data), over
// another source: the expert-parallel loader tests check that a rank reads its own experts'
// tensors and the replicated ones, never another rank's.
#pragma once

#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint/tensor.h"

namespace dsv4::fixtures {

class RecordingSource final : public checkpoint::TensorSource {
 public:
  // `inner` must outlive this source.
  explicit RecordingSource(const checkpoint::TensorSource& inner) : inner_(inner) {}
  std::string label() const override { return inner_.label(); }
  std::vector<std::string> names() const override { return inner_.names(); }
  bool Has(std::string_view name) const override { return inner_.Has(name); }
  Result<checkpoint::TensorView> Get(std::string_view name) const override {
    std::lock_guard<std::mutex> lock(mu_);
    got_.insert(std::string(name));
    return inner_.Get(name);
  }
  // Every name Get was called with.
  std::set<std::string> got() const {
    std::lock_guard<std::mutex> lock(mu_);
    return got_;
  }

 private:
  const checkpoint::TensorSource& inner_;
  mutable std::mutex mu_;
  mutable std::set<std::string> got_;
};

}  // namespace dsv4::fixtures
