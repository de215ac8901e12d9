#include "ir/attrs.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

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

Attrs::Attrs(std::initializer_list<std::pair<std::string, AttrValue>> items) {
  for (const auto& [name, value] : items) set(name, value);
}

Attrs& Attrs::set(std::string name, AttrValue value) {
  // Builders mostly set names in order: append without searching.
  if (items_.empty() || items_.back().first < name) {
    items_.emplace_back(std::move(name), std::move(value));
    return *this;
  }
  auto it = std::lower_bound(items_.begin(), items_.end(), name,
                             [](const auto& item, const std::string& n) { return item.first < n; });
  if (it != items_.end() && it->first == name) {
    it->second = std::move(value);
  } else {
    items_.insert(it, {std::move(name), std::move(value)});
  }
  return *this;
}

const AttrValue* Attrs::find(absl::string_view name) const {
  for (const auto& [n, v] : items_) {
    if (n == name) return &v;
  }
  return nullptr;
}

namespace {
template <typename T>
const T& get_or_die(const Attrs& attrs, absl::string_view name) {
  const AttrValue* v = attrs.find(name);
  if (v == nullptr || !std::holds_alternative<T>(*v)) {
    std::fprintf(stderr, "smelt internal error: attribute '%.*s' missing or of the wrong kind\n",
                 static_cast<int>(name.size()), name.data());
    std::abort();
  }
  return std::get<T>(*v);
}
}  // namespace

int64_t Attrs::get_int(absl::string_view name) const { return get_or_die<int64_t>(*this, name); }
double Attrs::get_float(absl::string_view name) const { return get_or_die<double>(*this, name); }
bool Attrs::get_bool(absl::string_view name) const { return get_or_die<bool>(*this, name); }
const IntList& Attrs::get_ints(absl::string_view name) const {
  return get_or_die<IntList>(*this, name);
}
DType Attrs::get_dtype(absl::string_view name) const { return get_or_die<DType>(*this, name); }

uint64_t Attrs::hash() const {
  uint64_t h = items_.size();
  for (const auto& [name, value] : items_) {
    h = hash_combine(h, hash_string(name));
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
