// Sources: values that enter the graph. `input` is data from outside (a realized buffer, or a
// placeholder in parsed text); `constant` is a literal (0-d, or one value at a shape) that the
// simplifier may fold.
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
    // A literal, 0-d unless it has a `shape`: the frontend builds a scalar operand directly at
    // the shape it broadcasts to (one node instead of constant + reshape + expand). Every
    // element is `value`, so lowering renders it at any index like the 0-d form.
    OpDef& d = r.def(OpCode::Constant);
    d.attrs = {{"dtype", AttrKind::DType},
               {"value", AttrKind::Float},
               {"shape", AttrKind::IntList, /*optional=*/true}};
    d.infer = [](absl::Span<const TypeInfo>, const Attrs& a) -> absl::StatusOr<TypeInfo> {
      const AttrValue* shape = a.find("shape");
      if (shape == nullptr) return TypeInfo{a.get_dtype("dtype"), {}};
      const IntList& dims = std::get<IntList>(*shape);
      // One spelling per value: text leaves an implied shape out, so `shape=[]` could not
      // survive a round trip (and would hash apart from the plain 0-d constant).
      if (dims.empty()) {
        return absl::InvalidArgumentError(
            "constant: a 0-d constant has no shape attribute (leave it out)");
      }
      for (int64_t dim : dims) {
        if (dim < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("constant: negative dimension in shape ", shape_str(dims)));
        }
      }
      return TypeInfo{a.get_dtype("dtype"), dims};
    };
    d.ref_eval = [](absl::Span<const RefTensor* const>, const Attrs& a,
                    const TypeInfo& out) -> absl::StatusOr<RefTensor> {
      RefTensor t = RefTensor::zeros(out.dtype, out.shape);
      const double v = a.get_float("value");
      for (int64_t i = 0, n = numel(out.shape); i < n; ++i) t.set(i, v);
      return t;
    };
  }
}

}  // namespace smelt::ir
