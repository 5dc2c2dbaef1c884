#include "checkpoint/tensor_store.h"

namespace dsv4::checkpoint {

Result<std::unique_ptr<TensorStore>> TensorStore::Create(std::string label,
                                                         std::vector<OwnedTensor> tensors) {
  std::unique_ptr<TensorStore> s(new TensorStore());
  s->label_ = std::move(label);
  s->tensors_ = std::move(tensors);
  for (size_t i = 0; i < s->tensors_.size(); ++i) {
    const OwnedTensor& t = s->tensors_[i];
    const uint64_t want = static_cast<uint64_t>(NumElements(t.shape)) * DTypeSize(t.dtype);
    if (t.data.size() != want) {
      return Status::InvalidArgument(s->label_ + ": tensor '" + t.name + "' has " +
                                     std::to_string(t.data.size()) + " bytes, expected " +
                                     std::to_string(want) + " for " +
                                     std::string(DTypeName(t.dtype)) + " " +
                                     ShapeToString(t.shape));
    }
    if (!s->index_.emplace(t.name, i).second) {
      return Status::InvalidArgument(s->label_ + ": duplicate tensor '" + t.name + "'");
    }
  }
  return s;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  for (const auto& [name, i] : index_) out.push_back(name);
  return out;
}

bool TensorStore::Has(std::string_view name) const { return index_.find(name) != index_.end(); }

Result<TensorView> TensorStore::Get(std::string_view name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    return Status::NotFound("tensor '" + std::string(name) + "' not found in " + label_);
  }
  return tensors_[it->second].view();
}

}  // namespace dsv4::checkpoint
