// nn::Module: registration, traversal, train/eval, moving, and printing of module trees.
#include <cxxabi.h>
#include <smelt/autograd.h>
#include <smelt/error.h>
#include <smelt/eval.h>
#include <smelt/nn.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <typeinfo>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "frontend/graph_builder.h"
#include "frontend/tensor_impl.h"

namespace smelt::nn {
namespace detail {

void throw_empty_holder(const std::string& type) {
  throw Error(absl::StrCat("nn: the ", type,
                           " holder is empty (constructed from nullptr); assign a module to it "
                           "before use"));
}

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && out != nullptr ? std::string(out.get()) : std::string(mangled);
}

}  // namespace detail

namespace {

// Swaps `t`'s value for `value` in place. The handle (and every copy of it, e.g. in an optimizer)
// sees the new value; a parameter stays a leaf that requires grad.
void assign(const Tensor& t, const Tensor& value) {
  t.impl()->set_node(smelt::detail::node_of(value, "nn"));
}

}  // namespace

// ---- registration ------------------------------------------------------------------------------

void Module::check_new_name(const char* op, const std::string& name) const {
  if (name.empty())
    throw Error(absl::StrCat(op, ": the name must not be empty (in ", this->name(), ")"));
  if (name.find('.') != std::string::npos) {
    throw Error(absl::StrCat(op, ": the name '", name, "' contains '.', which separates the parts ",
                             "of nested names; register a submodule instead"));
  }
  auto taken = [&](const auto& list) {
    for (const auto& [n, v] : list) {
      if (n == name) return true;
    }
    return false;
  };
  if (taken(parameters_) || taken(buffers_) || taken(children_)) {
    throw Error(absl::StrCat(op, ": '", name, "' is already registered in ", this->name(),
                             " (parameters, buffers and submodules share one namespace)"));
  }
}

Tensor& Module::register_parameter(const std::string& name, Tensor tensor, bool requires_grad) {
  check_new_name("register_parameter", name);
  if (!tensor.defined()) {
    throw Error(absl::StrCat("register_parameter: the tensor for '", name, "' is undefined"));
  }
  if (requires_grad && !tensor.is_floating_point()) {
    throw Error(absl::StrCat("register_parameter: '", name, "' is ", dtype_name(tensor.dtype()),
                             " ", ir::shape_str(tensor.shape()),
                             "; only floating tensors can be trained (pass requires_grad=false "
                             "or register it as a buffer)"));
  }
  // A parameter must be a leaf: its gradient accumulates into it and optimizers swap its value.
  if (!tensor.is_leaf()) tensor = tensor.detach();
  if (tensor.requires_grad() != requires_grad) tensor.requires_grad_(requires_grad);
  parameters_.emplace_back(name, std::move(tensor));
  return parameters_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor tensor) {
  check_new_name("register_buffer", name);
  if (!tensor.defined()) {
    throw Error(absl::StrCat("register_buffer: the tensor for '", name, "' is undefined"));
  }
  buffers_.emplace_back(name, std::move(tensor));
  return buffers_.back().second;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name("register_module", name);
  if (module == nullptr) {
    throw Error(absl::StrCat("register_module: the module for '", name, "' is null"));
  }
  if (module.get() == this) {
    throw Error(absl::StrCat("register_module: cannot register ", this->name(),
                             " as its own submodule '", name, "'"));
  }
  children_.emplace_back(name, std::move(module));
}

// ---- traversal ---------------------------------------------------------------------------------

void Module::collect(bool parameters, bool recurse, const std::string& prefix,
                     NamedTensors& out) const {
  // Depth first with an explicit stack (no recursion over user-built trees); children are pushed
  // in reverse so they come out in registration order.
  struct Item {
    const Module* module;
    std::string prefix;
  };
  std::vector<Item> stack = {{this, prefix}};
  std::unordered_set<const void*> seen;
  std::unordered_set<const Module*> visited;
  while (!stack.empty()) {
    Item item = std::move(stack.back());
    stack.pop_back();
    if (!visited.insert(item.module).second) continue;
    for (const auto& [name, t] : parameters ? item.module->parameters_ : item.module->buffers_) {
      if (seen.insert(t.impl().get()).second) out.emplace_back(item.prefix + name, t);
    }
    if (!recurse) break;
    for (auto it = item.module->children_.rbegin(); it != item.module->children_.rend(); ++it) {
      stack.push_back({it->second.get(), item.prefix + it->first + "."});
    }
  }
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters(recurse)) out.push_back(std::move(t));
  return out;
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  collect(/*parameters=*/true, recurse, "", out);
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_buffers(recurse)) out.push_back(std::move(t));
  return out;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  collect(/*parameters=*/false, recurse, "", out);
  return out;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [name, m] : children_) out.push_back(m);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const {
  return children_;
}

std::vector<std::shared_ptr<Module>> Module::modules(bool include_self) const {
  std::vector<std::shared_ptr<Module>> out;
  for (auto& [name, m] : named_modules(include_self)) out.push_back(std::move(m));
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules(
    bool include_self) const {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  if (include_self) {
    std::shared_ptr<const Module> self = weak_from_this().lock();
    if (self == nullptr) {
      throw Error(absl::StrCat("modules: include_self needs this ", name(),
                               " to be owned by a std::shared_ptr (a holder owns its module); "
                               "call modules(/*include_self=*/false)"));
    }
    out.emplace_back("", std::const_pointer_cast<Module>(self));
  }
  struct Item {
    std::string name;
    std::shared_ptr<Module> module;
  };
  std::vector<Item> stack;
  for (auto it = children_.rbegin(); it != children_.rend(); ++it) {
    stack.push_back({it->first, it->second});
  }
  std::unordered_set<const Module*> visited = {this};
  while (!stack.empty()) {
    Item item = std::move(stack.back());
    stack.pop_back();
    if (!visited.insert(item.module.get()).second) continue;
    for (auto it = item.module->children_.rbegin(); it != item.module->children_.rend(); ++it) {
      stack.push_back({item.name + "." + it->first, it->second});
    }
    out.emplace_back(std::move(item.name), std::move(item.module));
  }
  return out;
}

// ---- state -------------------------------------------------------------------------------------

void Module::train(bool on) {
  training_ = on;
  // Through each child's own train(), so a module that overrides it (to cascade state of its
  // own) is told too.
  for (const auto& [name, m] : children_) m->train(on);
}

void Module::to(Device device) {
  std::vector<Tensor> tensors = parameters();
  for (Tensor& b : buffers()) tensors.push_back(std::move(b));
  // All copies first, then the swaps: a failed copy (no such device) leaves the module as it was.
  std::vector<std::pair<Tensor, Tensor>> moves;
  for (const Tensor& t : tensors) {
    if (t.device() != device) moves.emplace_back(t, t.detach().to(device));
    const Tensor g = t.grad();
    if (g.defined() && g.device() != device) moves.emplace_back(g, g.detach().to(device));
  }
  for (const auto& [t, value] : moves) assign(t, value);
}

void Module::to(DType dtype) {
  if (!is_floating(dtype)) {
    throw Error(absl::StrCat("Module::to: parameters can only be converted to a floating dtype ",
                             "(f32 or f64), got ", dtype_name(dtype)));
  }
  std::vector<Tensor> tensors = parameters();
  for (Tensor& b : buffers()) tensors.push_back(std::move(b));
  std::vector<std::pair<Tensor, Tensor>> casts;
  for (const Tensor& t : tensors) {
    if (t.is_floating_point() && t.dtype() != dtype) casts.emplace_back(t, t.detach().to(dtype));
    const Tensor g = t.grad();
    if (g.defined() && g.dtype() != dtype) casts.emplace_back(g, g.detach().to(dtype));
  }
  std::vector<Tensor> values;
  for (const auto& [t, value] : casts) values.push_back(value);
  // Realized now, so the parameters are data (leaves) again rather than pending casts.
  smelt::eval(values);
  for (const auto& [t, value] : casts) assign(t, value);
}

void Module::zero_grad() {
  for (const Tensor& p : parameters()) p.mutable_grad() = Tensor();
}

// ---- printing ----------------------------------------------------------------------------------

std::string Module::name() const {
  std::string n = detail::demangle(typeid(*this).name());
  // "ns::NetImpl" -> "Net"; template arguments are left alone.
  const size_t angle = n.find('<');
  const size_t colon = n.rfind("::", angle);
  if (colon != std::string::npos) n = n.substr(colon + 2);
  if (n.size() > 4 && n.ends_with("Impl")) n.resize(n.size() - 4);
  return n;
}

void Module::pretty_print(std::ostream& os) const { os << name() << "()"; }

std::ostream& operator<<(std::ostream& os, const Module& module) {
  // Iterative over the tree: each frame is a module and its next child to print.
  struct Frame {
    const Module* module;
    std::vector<std::pair<std::string, std::shared_ptr<Module>>> children;
    size_t next = 0;
  };
  auto open = [&](const Module& m, std::vector<Frame>& stack) {
    auto children = m.named_children();
    if (children.empty()) {
      m.pretty_print(os);
      return;
    }
    os << m.name() << "(\n";
    stack.push_back({&m, std::move(children)});
  };
  std::vector<Frame> stack;
  open(module, stack);
  while (!stack.empty()) {
    Frame& f = stack.back();
    const std::string indent(2 * stack.size(), ' ');
    if (f.next == f.children.size()) {
      stack.pop_back();
      os << std::string(2 * stack.size(), ' ') << ")";
      if (!stack.empty()) os << "\n";
      continue;
    }
    // Copies: `open` may grow the stack, which moves the frames.
    const std::string name = f.children[f.next].first;
    const std::shared_ptr<Module> child = f.children[f.next].second;
    ++f.next;
    os << indent << "(" << name << "): ";
    const size_t depth = stack.size();
    open(*child, stack);
    if (stack.size() == depth) os << "\n";
  }
  return os;
}

}  // namespace smelt::nn
