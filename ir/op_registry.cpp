#include "ir/op_registry.h"

#include <array>

namespace smelt::ir {
namespace {

struct OpInfo {
  absl::string_view name;
  OpKind kind;
};

constexpr OpInfo kOpInfo[] = {
#define SMELT_OP(e, name, kind) {name, OpKind::kind},
#include "ir/ops.def"
#undef SMELT_OP
};

const std::array<OpDef, kNumOps>& registry() {
  // Built once, on first use (thread-safe static init); never destroyed, so ops stay valid
  // during static destruction of tensors.
  static const auto* defs = [] {
    auto* d = new std::array<OpDef, kNumOps>();
    for (int i = 0; i < kNumOps; ++i) {
      (*d)[i].code = static_cast<OpCode>(i);
      (*d)[i].name = kOpInfo[i].name;
      (*d)[i].kind = kOpInfo[i].kind;
    }
    OpRegistrar r(absl::MakeSpan(*d));
    register_source_ops(r);
    register_elementwise_ops(r);
    register_reduce_ops(r);
    register_movement_ops(r);
    register_gather_ops(r);
    register_matmul_ops(r);
    register_conv_ops(r);
    register_scan_ops(r);
    return d;
  }();
  return *defs;
}

}  // namespace

const OpDef& op_def(OpCode op) { return registry()[static_cast<size_t>(op)]; }

absl::string_view op_name(OpCode op) { return kOpInfo[static_cast<size_t>(op)].name; }

const OpDef* find_op(absl::string_view name) {
  for (const OpDef& def : registry()) {
    if (def.name == name) return &def;
  }
  return nullptr;
}

}  // namespace smelt::ir
