// An in-memory TensorSource: the built-in default model lives here, with no files.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/tensor.h"

namespace dsv4::checkpoint {

class TensorStore final : public TensorSource {
 public:
  // Takes ownership of `tensors`; InvalidArgument on a duplicate name or a byte size that does
  // not match dtype x shape.
  static Result<std::unique_ptr<TensorStore>> Create(std::string label,
                                                     std::vector<OwnedTensor> tensors);

  std::string label() const override { return label_; }
  std::vector<std::string> names() const override;
  bool Has(std::string_view name) const override;
  Result<TensorView> Get(std::string_view name) const override;
  using TensorSource::Get;

  const std::vector<OwnedTensor>& tensors() const { return tensors_; }

 private:
  TensorStore() = default;
  std::string label_;
  std::vector<OwnedTensor> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
};

}  // namespace dsv4::checkpoint
