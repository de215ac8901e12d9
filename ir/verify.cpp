#include "ir/verify.h"

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "ir/text.h"

namespace smelt::ir {
namespace {

absl::Status check_node(const Node& n) {
  const OpDef& def = n.def();
  if (base::BufferPtr buf = n.buffer()) {
    if (buf->device() != n.device()) {
      return absl::InvalidArgumentError(absl::StrCat("its buffer is on ", buf->device().str(),
                                                     " but the node is on ", n.device().str()));
    }
    const size_t need = static_cast<size_t>(n.numel()) * dtype_size(n.dtype());
    if (buf->nbytes() < need) {
      return absl::InvalidArgumentError(absl::StrCat(
          "its buffer holds ", buf->nbytes(), " bytes, but ", type_str(n.type()), " needs ", need));
    }
    // Realized, inputs dropped: the buffer is the value, there is nothing to re-infer from.
    if (n.grad_inputs().empty() && n.op() != OpCode::Input) return absl::OkStatus();
  }
  // A realized node's kept inputs must still type-check: autodiff builds on them.
  const NodeList& inputs = n.grad_inputs();
  if (absl::Status s = check_signature(def, static_cast<int>(inputs.size()), n.attrs()); !s.ok()) {
    return s;
  }
  std::vector<TypeInfo> types;
  types.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const NodePtr& in = inputs[i];
    if (in == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(def.name, ": operand ", i, " is null"));
    }
    if (in->device() != n.device()) {
      return absl::InvalidArgumentError(absl::StrCat(def.name, ": operand ", i, " is on ",
                                                     in->device().str(), " but the node is on ",
                                                     n.device().str()));
    }
    types.push_back(in->type());
  }
  absl::StatusOr<TypeInfo> inferred = def.infer(types, n.attrs());
  if (!inferred.ok()) return inferred.status();
  if (*inferred != n.type()) {
    return absl::InvalidArgumentError(absl::StrCat(def.name, ": type ", type_str(n.type()),
                                                   " differs from its type rule's ",
                                                   type_str(*inferred)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status verify(const Graph& g) {
  for (size_t i = 0; i < g.outputs.size(); ++i) {
    if (g.outputs[i] == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("verify: output ", i, " is null"));
    }
  }
  absl::flat_hash_map<const Node*, size_t> number;
  const std::vector<const Node*> printed = print_order(g);
  for (size_t i = 0; i < printed.size(); ++i) number[printed[i]] = i;
  // The inputs a realized node kept for autograd are checked too, but have no printed number.
  for (const Node* n : grad_topo_order(g.outputs)) {
    if (absl::Status s = check_node(*n); !s.ok()) {
      auto it = number.find(n);
      std::string name = it != number.end()
                             ? absl::StrCat("%", it->second)
                             : absl::StrCat("kept input #", n->id(), " of a realized node");
      return absl::InvalidArgumentError(
          absl::StrCat("verify: ", name, " (", n->def().name, "): ", s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace smelt::ir
