// Typed op attributes: a small map from name to value, kept sorted by name so that printing,
// hashing and equality do not depend on the order they were set in.
#pragma once

#include <smelt/dtype.h>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "ir/shape.h"

namespace smelt::ir {

using IntList = Dims;
using AttrValue = std::variant<bool, int64_t, double, IntList, DType>;

// The kinds, in AttrValue's variant order; an OpDef's schema names the kind of each attribute.
enum class AttrKind : uint8_t { Bool, Int, Float, IntList, DType };

constexpr AttrKind attr_kind(const AttrValue& v) { return static_cast<AttrKind>(v.index()); }
absl::string_view attr_kind_name(AttrKind k);

// Every attribute name an op uses, in alphabetical order. A name is stored as its index here: a
// node's attributes are built, compared, hashed and checked against the op's schema once per node
// built, and comparing one byte is much cheaper than building, comparing and hashing a string.
// An op with a new attribute adds its name here (a string literal naming none does not compile).
inline constexpr std::string_view kAttrNames[] = {
    "after", "alpha",   "axes",  "axis",       "before", "beta",    "descending",  "dilation",
    "dim",   "dtype",   "end",   "input_size", "k",      "keepdim", "kernel_size", "padding",
    "perm",  "reverse", "shape", "size",       "start",  "step",    "stride",      "value"};

class AttrName {
 public:
  // A literal, looked up at compile time.
  template <size_t N>
  consteval AttrName(const char (&name)[N])  // NOLINT(google-explicit-constructor)
      : id_(lookup(std::string_view(name, N - 1))) {
    if (id_ == kNone) throw "not an attribute name: add it to kAttrNames";  // a compile error
  }
  // A name known only at run time (conv's shared attributes, the IR parser once it has checked the
  // name against the schema). An unknown name is a bug in the caller: it aborts with a message.
  template <typename S>
  requires(!std::is_array_v<S> && std::convertible_to<const S&, absl::string_view>)
      AttrName(const S& name)  // NOLINT(google-explicit-constructor)
      : AttrName(checked(name)) {}

  // Whether some op has an attribute called `name` (what the run-time constructor accepts).
  static constexpr bool exists(std::string_view name) { return lookup(name) != kNone; }

  absl::string_view str() const { return to_absl(kAttrNames[id_]); }
  operator absl::string_view() const { return str(); }  // NOLINT(google-explicit-constructor)
  uint8_t id() const { return id_; }

  friend bool operator==(AttrName a, AttrName b) { return a.id_ == b.id_; }
  // Index order is name order, so sorted attributes print alphabetically as they always did.
  friend bool operator<(AttrName a, AttrName b) { return a.id_ < b.id_; }

 private:
  static constexpr uint8_t kNone = 0xff;
  struct Id {
    uint8_t id;
  };
  explicit AttrName(Id id) : id_(id.id) {}

  static constexpr uint8_t lookup(std::string_view name) {
    for (size_t i = 0; i < std::size(kAttrNames); ++i) {
      if (kAttrNames[i] == name) return static_cast<uint8_t>(i);
    }
    return kNone;
  }
  static Id checked(absl::string_view name);
  static absl::string_view to_absl(std::string_view s) { return {s.data(), s.size()}; }

  uint8_t id_;
};
static_assert(std::is_sorted(std::begin(kAttrNames), std::end(kAttrNames)));

std::ostream& operator<<(std::ostream& os, AttrName name);

class Attrs {
 public:
  // One `{name, value}` of an initializer list (a struct, not a std::pair, so that a literal name
  // is converted where it is written, at compile time).
  struct Init {
    AttrName name;
    AttrValue value;
  };

  Attrs() = default;
  Attrs(std::initializer_list<Init> items);

  // Sets (or replaces) an attribute. Returns *this for chaining.
  Attrs& set(AttrName name, AttrValue value);

  bool has(AttrName name) const { return find(name) != nullptr; }
  const AttrValue* find(AttrName name) const {
    for (const auto& [n, v] : items_) {
      if (n == name) return &v;
    }
    return nullptr;
  }

  // Typed accessors. The verifier has checked the schema, so a missing or mistyped attribute
  // here is a bug in an op definition: it aborts with a message rather than throwing.
  int64_t get_int(AttrName name) const;
  double get_float(AttrName name) const;
  bool get_bool(AttrName name) const;
  const IntList& get_ints(AttrName name) const;
  DType get_dtype(AttrName name) const;

  using Item = std::pair<AttrName, AttrValue>;
  absl::Span<const Item> items() const { return items_; }
  bool empty() const { return items_.empty(); }
  uint64_t hash() const;

  friend bool operator==(const Attrs& a, const Attrs& b) = default;

 private:
  // No op has more than a few attributes: stored inline, a node's attributes cost no
  // allocation of their own.
  absl::InlinedVector<Item, 3> items_;
};

}  // namespace smelt::ir
