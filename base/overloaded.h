// Overloaded{lambdas...}: one visitor for std::visit from a lambda per alternative.
#pragma once

namespace smelt::base {

template <typename... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <typename... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace smelt::base
