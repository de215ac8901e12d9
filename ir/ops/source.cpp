// Sources: values that enter the graph. `input` is data from outside (a realized buffer, or a
// placeholder in parsed text); `constant` is a 0-d literal that the simplifier may fold.
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ir/op_registry.h"
#include "ir/reference.h"

namespace smelt::ir {

void register_source_ops(OpRegistrar& r) {
  {
    OpDef& d = r.def(OpCode::Input);
    d.attrs = {{"dtype", AttrKind::DType}, {"shape", AttrKind::IntList}};
    d.infer = [](absl::Span<const TypeInfo>, const Attrs& a) -> absl::StatusOr<TypeInfo> {
      for (int64_t dim : a.get_ints("shape")) {
        if (dim < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("input: negative dimension in shape ", shape_str(a.get_ints("shape"))));
        }
      }
      return TypeInfo{a.get_dtype("dtype"), a.get_ints("shape")};
    };
    // An input's value comes from its buffer or the caller's LeafValues; the evaluator never
    // calls this.
    d.ref_eval = [](absl::Span<const RefTensor* const>, const Attrs&,
                    const TypeInfo&) -> absl::StatusOr<RefTensor> {
      return absl::FailedPreconditionError("input: no value bound");
    };
  }
  {
    OpDef& d = r.def(OpCode::Constant);
    d.attrs = {{"dtype", AttrKind::DType}, {"value", AttrKind::Float}};
    d.infer = [](absl::Span<const TypeInfo>, const Attrs& a) -> absl::StatusOr<TypeInfo> {
      return TypeInfo{a.get_dtype("dtype"), {}};
    };
    d.ref_eval = [](absl::Span<const RefTensor* const>, const Attrs& a,
                    const TypeInfo& out) -> absl::StatusOr<RefTensor> {
      RefTensor t = RefTensor::zeros(out.dtype, {});
      t.set(0, a.get_float("value"));
      return t;
    };
  }
}

}  // namespace smelt::ir
