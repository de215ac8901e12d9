// Helpers the optimizers share (not public API).
#pragma once

#include <smelt/optim.h>

#include <utility>
#include <vector>

namespace smelt::optim::detail {

// The one group of an optimizer constructed from a plain parameter list (group options unset:
// the optimizer's own apply).
inline std::vector<ParamGroup> one_group(std::vector<Tensor> params) {
  std::vector<ParamGroup> groups(1);
  groups[0].params = std::move(params);
  return groups;
}

}  // namespace smelt::optim::detail
