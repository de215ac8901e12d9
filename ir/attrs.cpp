#include "ir/attrs.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <ostream>

#include "ir/hash.h"

namespace smelt::ir {

absl::string_view attr_kind_name(AttrKind k) {
  switch (k) {
    case AttrKind::Bool:
      return "bool";
    case AttrKind::Int:
      return "int";
    case AttrKind::Float:
      return "float";
    case AttrKind::IntList:
      return "int list";
    case AttrKind::DType:
      return "dtype";
  }
  return "?";
}

AttrName::Id AttrName::checked(absl::string_view name) {
  const uint8_t id = lookup(std::string_view(name.data(), name.size()));
  if (id == kNone) {
    std::fprintf(stderr, "smelt internal error: '%.*s' is not an attribute name (ir/attrs.h)\n",
                 static_cast<int>(name.size()), name.data());
    std::abort();
  }
  return Id{id};
}

std::ostream& operator<<(std::ostream& os, AttrName name) { return os << name.str(); }

Attrs::Attrs(std::initializer_list<Init> items) {
  for (const Init& item : items) set(item.name, item.value);
}

Attrs& Attrs::set(AttrName name, AttrValue value) {
  // Builders mostly set names in order: append without searching.
  if (items_.empty() || items_.back().first < name) {
    items_.emplace_back(name, std::move(value));
    return *this;
  }
  auto it = std::lower_bound(items_.begin(), items_.end(), name,
                             [](const Item& item, AttrName n) { return item.first < n; });
  if (it != items_.end() && it->first == name) {
    it->second = std::move(value);
  } else {
    items_.insert(it, {name, std::move(value)});
  }
  return *this;
}

namespace {
template <typename T>
const T& get_or_die(const Attrs& attrs, AttrName name) {
  const AttrValue* v = attrs.find(name);
  if (v == nullptr || !std::holds_alternative<T>(*v)) {
    std::fprintf(stderr, "smelt internal error: attribute '%.*s' missing or of the wrong kind\n",
                 static_cast<int>(name.str().size()), name.str().data());
    std::abort();
  }
  return std::get<T>(*v);
}
}  // namespace

int64_t Attrs::get_int(AttrName name) const { return get_or_die<int64_t>(*this, name); }
double Attrs::get_float(AttrName name) const { return get_or_die<double>(*this, name); }
bool Attrs::get_bool(AttrName name) const { return get_or_die<bool>(*this, name); }
const IntList& Attrs::get_ints(AttrName name) const { return get_or_die<IntList>(*this, name); }
DType Attrs::get_dtype(AttrName name) const { return get_or_die<DType>(*this, name); }

namespace {
// hash_string of each name, as attributes hashed when names were strings (keys stay the same).
constexpr auto kNameHashes = [] {
  std::array<uint64_t, std::size(kAttrNames)> h{};
  for (size_t i = 0; i < h.size(); ++i) {
    h[i] = hash_string(absl::string_view(kAttrNames[i].data(), kAttrNames[i].size()));
  }
  return h;
}();
}  // namespace

uint64_t Attrs::hash() const {
  uint64_t h = items_.size();
  for (const auto& [name, value] : items_) {
    h = hash_combine(h, kNameHashes[name.id()]);
    h = hash_combine(h, value.index());
    std::visit(
        [&h](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, IntList>) {
            h = hash_combine(h, v.size());
            for (int64_t x : v) h = hash_combine(h, static_cast<uint64_t>(x));
          } else if constexpr (std::is_same_v<T, double>) {
            h = hash_combine(h, hash_double(v));
          } else {
            h = hash_combine(h, static_cast<uint64_t>(v));
          }
        },
        value);
  }
  return h;
}

}  // namespace smelt::ir
