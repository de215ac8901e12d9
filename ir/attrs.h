// Typed op attributes: a small map from name to value, kept sorted by name so that printing,
// hashing and equality do not depend on the order they were set in.
#pragma once

#include <smelt/dtype.h>

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace smelt::ir {

using IntList = std::vector<int64_t>;
using AttrValue = std::variant<bool, int64_t, double, IntList, DType>;

// The kinds, in AttrValue's variant order; an OpDef's schema names the kind of each attribute.
enum class AttrKind : uint8_t { Bool, Int, Float, IntList, DType };

constexpr AttrKind attr_kind(const AttrValue& v) { return static_cast<AttrKind>(v.index()); }
absl::string_view attr_kind_name(AttrKind k);

class Attrs {
 public:
  Attrs() = default;
  Attrs(std::initializer_list<std::pair<std::string, AttrValue>> items);

  // Sets (or replaces) an attribute. Returns *this for chaining.
  Attrs& set(std::string name, AttrValue value);

  bool has(absl::string_view name) const { return find(name) != nullptr; }
  const AttrValue* find(absl::string_view name) const;

  // Typed accessors. The verifier has checked the schema, so a missing or mistyped attribute
  // here is a bug in an op definition: it aborts with a message rather than throwing.
  int64_t get_int(absl::string_view name) const;
  double get_float(absl::string_view name) const;
  bool get_bool(absl::string_view name) const;
  const IntList& get_ints(absl::string_view name) const;
  DType get_dtype(absl::string_view name) const;

  using Item = std::pair<std::string, AttrValue>;
  absl::Span<const Item> items() const { return items_; }
  bool empty() const { return items_.empty(); }
  uint64_t hash() const;

  friend bool operator==(const Attrs& a, const Attrs& b) = default;

 private:
  // No op has more than a few attributes: stored inline, a node's attributes cost no
  // allocation of their own (names fit std::string's inline buffer too).
  absl::InlinedVector<Item, 3> items_;
};

}  // namespace smelt::ir
