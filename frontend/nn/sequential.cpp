// nn::Sequential: modules applied in order.
#include <smelt/error.h>
#include <smelt/nn.h>

#include "absl/strings/str_cat.h"

namespace smelt::nn {

Tensor SequentialImpl::forward(const Tensor& input) {
  // An empty Sequential is the identity (LibTorch throws here).
  Tensor x = input;
  for (const auto& step : steps_) x = step(x);
  return x;
}

std::shared_ptr<Module> SequentialImpl::ptr(size_t index) const {
  const auto children = named_children();
  if (index >= children.size()) {
    throw Error(absl::StrCat("Sequential: index ", index, " is out of range for a Sequential of ",
                             children.size(), " modules"));
  }
  return children[index].second;
}

void SequentialImpl::throw_wrong_type(size_t index, const std::string& wanted) const {
  throw Error(
      absl::StrCat("Sequential: module ", index, " is a ", ptr(index)->name(), ", not a ", wanted));
}

}  // namespace smelt::nn
