// The optimizer base: parameter groups, per-parameter state, the flat-vector step, and the state
// as named tensors.
//
// step() gathers the parameters that have a gradient into buckets (same group, dtype, device and
// step count), lays each bucket of small parameters out as one flat vector (every parameter's
// segment starts on a 64-byte boundary; a large parameter is a bucket of its own, at its shape)
// and asks the subclass for the update of that vector. All buckets' new parameter and state
// vectors are realized in one call, so a step is a few kernels however many small parameters
// there are (the compiler makes one kernel per materialized value; without the flat layout,
// Adam would be three kernels per parameter). Each parameter and state tensor then becomes a
// realized leaf that aliases its segment of the flat result, with no copy. The next step finds
// them still in place and feeds the flat vectors straight back in; if anything replaced one of
// them (a load, a user's assignment), that bucket gathers its pieces with cat instead, which is
// correct, only a little slower for that step.
#include <smelt/autograd.h>
#include <smelt/creation.h>
#include <smelt/error.h>
#include <smelt/ops.h>
#include <smelt/optim.h>

#include <cmath>
#include <map>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "frontend/graph_builder.h"
#include "frontend/tensor_impl.h"

namespace smelt::optim {
namespace {

// Segments start on this boundary: kernels take their buffer arguments as 64-byte aligned.
constexpr size_t kSegmentAlignBytes = 64;
// At most this many parameters share one flat vector: the update kernels read every gradient of
// a bucket, and the compiler's kernels read at most 16 buffers before it splits them.
constexpr size_t kMaxBucketParams = 8;
// A parameter this large (in elements) is updated alone, at its own shape. Reading a parameter
// of rank > 1 as a segment of a flat vector costs index arithmetic per element (a div/mod pair
// that the compiler cannot fold under concat's guard) and a select per segment. Measured on CPU
// (8 parameters [r, 64], one step): flat is 3-4x faster at r = 1..16 (kernel launches
// dominate), about even at r = 64, and 2-4x slower from r = 256 on. Tuned for CPU; a CUDA launch
// costs more, so a larger bound may pay there (not measured yet).
constexpr int64_t kSoloNumel = 4096;
// A flat parameter vector this long (in elements) is offered for in-place update
// (compiler::plan_donations). Smaller ones gain little (the saved write is a few KiB), and the
// plan walks the step's graph (~300 instructions per node), which a tiny model's step cannot
// spare.
constexpr int64_t kDonateNumel = kSoloNumel;

Tensor handle(ir::NodePtr node) { return Tensor(std::make_shared<detail::TensorImpl>(node)); }

std::string describe(const Tensor& t) {
  return absl::StrCat(dtype_name(t.dtype()), " ", ir::shape_str(t.shape()), " on ",
                      t.device().str());
}

void check_lr(const char* op, double lr) {
  if (!(lr >= 0) || !std::isfinite(lr)) {
    throw Error(absl::StrCat(op, ": invalid learning rate ", lr, "; it must be finite and >= 0"));
  }
}

// A realized leaf of `shape` on `flat`'s buffer from element `offset` on, sharing the memory (no
// copy). It keeps the whole flat buffer alive. A later step overwrites that memory only when
// the flat vector, these aliases and their nodes have no holders but the optimizer's (see
// memory_only_ours, and compiler::plan_donations for the parameters).
ir::NodePtr alias_segment(const ir::NodePtr& flat, int64_t offset, const ir::Shape& shape) {
  base::BufferPtr whole = flat->buffer();
  const size_t esize = dtype_size(flat->dtype());
  auto* data = static_cast<char*>(whole->data()) + static_cast<size_t>(offset) * esize;
  const size_t nbytes = static_cast<size_t>(ir::numel(shape)) * esize;
  auto part =
      std::make_shared<base::Buffer>(data, nbytes, whole->device(), [whole](void*, size_t) {});
  return ir::Node::make_input(flat->dtype(), shape, std::move(part));
}

// A realized value as a plain `input` leaf on the same buffer. The program cache keys a leaf by
// its type and op, so the flat vectors fed back into the next step must not carry the op that
// computed them (the first step's `m = (1 - b1) g` is a mul, later ones an add): as inputs, the
// second step's program is the one every later step reuses.
ir::NodePtr as_input(const Tensor& realized) {
  const ir::NodePtr n = detail::node_of(realized, "step");
  return ir::Node::make_input(n->dtype(), n->shape(), n->buffer());
}

// Whether a flat vector's memory is held by its node and its views' aliases only, and each
// alias by its view alone (a detached tensor shares a view's alias, not its node).
bool memory_only_ours(const ir::NodePtr& flat, const std::vector<ir::NodePtr>& views) {
  for (const ir::NodePtr& v : views) {
    const base::BufferPtr alias = v->buffer();  // one more holder while this copy lives
    if (alias == nullptr || alias.use_count() != 2) return false;
  }
  const base::BufferPtr buf = flat->buffer();
  return buf != nullptr && buf.use_count() == 2 + static_cast<long>(views.size());
}

// Whether a state vector of the last step is the optimizer's alone, so its memory may go to this
// step's realization (compiler::realize's `donated`: SGD's momentum buffer is then updated in
// place, by an addmm where the gradient is a product). Its views are held by the parameter
// state and the layout only (no handle from param_state() or state_dict()), and its buffer by
// the flat node and the views' aliases only.
bool only_ours(const ir::NodePtr& flat, const std::vector<ir::NodePtr>& views) {
  for (const ir::NodePtr& v : views) {
    if (v.use_count() != 2) return false;  // ParamState::state and FlatLayout::state_views
  }
  return memory_only_ours(flat, views);
}

// "12" -> 12; nullopt for anything but plain decimal digits.
std::optional<size_t> parse_index(absl::string_view s) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  size_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<size_t>(c - '0');
  }
  return v;
}

}  // namespace

struct Optimizer::Impl {
  struct Group {
    std::vector<Tensor> params;
    double lr;
  };
  struct ParamState {
    int64_t step = 0;
    // state_names order; null before the first update. Nodes, not Tensors: step() reads them
    // for every parameter, and a Tensor's node is behind a lock.
    std::vector<ir::NodePtr> state;
  };
  // One bucket's flat vectors after the last step, and the aliases handed out for them.
  struct FlatLayout {
    std::vector<size_t> members;  // parameter indices
    ir::NodePtr param;
    std::vector<ir::NodePtr> state;
    std::vector<ir::NodePtr> param_views;               // [member]
    std::vector<std::vector<ir::NodePtr>> state_views;  // [state][member]
  };

  const char* name;
  std::vector<std::string> state_names;
  double default_lr;
  std::vector<Group> groups;
  std::vector<ParamState> params;  // by parameter index (groups in order)
  // By the first member's parameter index (a parameter is in one bucket at a time).
  absl::flat_hash_map<size_t, FlatLayout> layouts;

  size_t num_params() const { return params.size(); }
  // (group, position) of every parameter index.
  std::vector<std::pair<size_t, size_t>> index_map() const {
    std::vector<std::pair<size_t, size_t>> out;
    for (size_t g = 0; g < groups.size(); ++g) {
      for (size_t k = 0; k < groups[g].params.size(); ++k) out.emplace_back(g, k);
    }
    return out;
  }
  // The zeros that fill the gaps between segments, by (dtype, device, length). Constant nodes are
  // immutable values, so one per length serves every step (building them anew each step was a
  // tenth of a small model's step time).
  const Tensor& gap(DType dtype, Device device, int64_t length) {
    Tensor& t = gaps[std::make_tuple(static_cast<int>(dtype), device.str(), length)];
    if (!t.defined()) t = handle(detail::constant_node(0.0, dtype, {length}, device));
    return t;
  }
  std::map<std::tuple<int, std::string, int64_t>, Tensor> gaps;

  const Tensor& param(size_t index) const {
    for (const Group& g : groups) {
      if (index < g.params.size()) return g.params[index];
      index -= g.params.size();
    }
    throw Error(absl::StrCat(name, ": no parameter ", index));
  }
};

// ---- construction and groups ------------------------------------------------------------------

Optimizer::Optimizer(std::vector<ParamGroup> groups, double default_lr,
                     std::vector<std::string> state_names, const char* name)
    : impl_(std::make_unique<Impl>()) {
  impl_->name = name;
  impl_->state_names = std::move(state_names);
  check_lr(name, default_lr);
  impl_->default_lr = default_lr;
  for (ParamGroup& g : groups) add_param_group(std::move(g));
  if (impl_->params.empty()) throw Error(absl::StrCat(name, ": got an empty parameter list"));
}

Optimizer::~Optimizer() = default;

void Optimizer::add_param_group(ParamGroup group) {
  const char* name = impl_->name;
  const double lr = group.lr.value_or(impl_->default_lr);
  check_lr(name, lr);
  absl::flat_hash_set<const detail::TensorImpl*> seen;
  for (const Impl::Group& g : impl_->groups) {
    for (const Tensor& p : g.params) seen.insert(p.impl().get());
  }
  for (size_t k = 0; k < group.params.size(); ++k) {
    const Tensor& p = group.params[k];
    if (!p.defined()) {
      throw Error(absl::StrCat(name, ": parameter ", k, " of the group is an undefined tensor"));
    }
    if (!p.is_floating_point()) {
      throw Error(absl::StrCat(name, ": can only optimize floating point tensors, but parameter ",
                               k, " of the group is ", describe(p)));
    }
    if (!p.is_leaf()) {
      throw Error(absl::StrCat(name, ": can't optimize a non-leaf tensor (parameter ", k,
                               " of the group, ", describe(p),
                               "); pass the tensors marked requires_grad_()"));
    }
    if (!seen.insert(p.impl().get()).second) {
      throw Error(absl::StrCat(name, ": parameter ", k, " of the group (", describe(p),
                               ") appears more than once; some parameters would be updated twice"));
    }
  }
  for (size_t k = 0; k < group.params.size(); ++k) {
    impl_->params.push_back(
        Impl::ParamState{0, std::vector<ir::NodePtr>(impl_->state_names.size())});
  }
  impl_->groups.push_back(Impl::Group{std::move(group.params), lr});
}

size_t Optimizer::num_param_groups() const { return impl_->groups.size(); }

const std::vector<Tensor>& Optimizer::group_params(size_t group) const {
  if (group >= impl_->groups.size()) {
    throw Error(absl::StrCat(impl_->name, ": no parameter group ", group, " (there are ",
                             impl_->groups.size(), ")"));
  }
  return impl_->groups[group].params;
}

std::vector<Tensor> Optimizer::parameters() const {
  std::vector<Tensor> out;
  for (const Impl::Group& g : impl_->groups)
    out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

// ---- learning rate ------------------------------------------------------------------------------

double Optimizer::lr() const { return impl_->groups.front().lr; }

void Optimizer::set_lr(double lr) {
  check_lr(impl_->name, lr);
  for (Impl::Group& g : impl_->groups) g.lr = lr;
}

double Optimizer::group_lr(size_t group) const {
  group_params(group);  // range check
  return impl_->groups[group].lr;
}

void Optimizer::set_group_lr(size_t group, double lr) {
  group_params(group);
  check_lr(impl_->name, lr);
  impl_->groups[group].lr = lr;
}

// ---- zero_grad and step -------------------------------------------------------------------------

void Optimizer::zero_grad() {
  for (const Impl::Group& g : impl_->groups) {
    for (const Tensor& p : g.params) p.mutable_grad() = Tensor();
  }
}

void Optimizer::step() {
  Impl& im = *impl_;
  const char* name = im.name;
  const std::vector<std::pair<size_t, size_t>> where = im.index_map();

  // 1. The parameters to update, checked before anything is built.
  struct Active {
    size_t index;
    Tensor param;
    Tensor grad;
    ir::NodePtr node;  // the parameter's current value (read once: a Tensor's node is locked)
  };
  std::vector<Active> active;
  for (size_t i = 0; i < where.size(); ++i) {
    const Tensor& p = im.groups[where[i].first].params[where[i].second];
    Tensor g = p.grad();
    if (!g.defined()) continue;
    ir::NodePtr pn = detail::node_of(p, "step");
    const ir::NodePtr gn = detail::node_of(g, "step");
    if (pn->numel() == 0) continue;
    if (gn->shape() != pn->shape() || gn->dtype() != pn->dtype() || gn->device() != pn->device()) {
      throw Error(absl::StrCat(name, ".step: the gradient of parameter ", i, " is ", describe(g),
                               " but the parameter is ", describe(p),
                               "; a gradient must match its parameter"));
    }
    active.push_back(Active{i, p, std::move(g), std::move(pn)});
  }
  if (active.empty()) return;

  // 2. Buckets: same group, dtype, device and step count, at most kMaxBucketParams each.
  struct Bucket {
    size_t group;
    DType dtype;
    Device device;
    int64_t step;                 // the step these parameters take now (1 on their first)
    bool solo;                    // one parameter, updated at its own shape
    std::vector<size_t> members;  // indices into `active`
  };
  std::vector<Bucket> buckets;
  std::map<std::tuple<size_t, int, std::string, int64_t>, size_t> open;
  for (size_t a = 0; a < active.size(); ++a) {
    const Active& x = active[a];
    const size_t group = where[x.index].first;
    const int64_t step = im.params[x.index].step + 1;
    const auto key =
        std::make_tuple(group, static_cast<int>(x.node->dtype()), x.node->device().str(), step);
    if (x.node->numel() >= kSoloNumel) {
      buckets.push_back(Bucket{group, x.node->dtype(), x.node->device(), step, true, {a}});
      continue;
    }
    auto it = open.find(key);
    if (it == open.end() || buckets[it->second].members.size() == kMaxBucketParams) {
      buckets.push_back(Bucket{group, x.node->dtype(), x.node->device(), step, false, {}});
      it = open.insert_or_assign(key, buckets.size() - 1).first;
    }
    buckets[it->second].members.push_back(a);
  }

  // 3. Each bucket's update, as lazy graph.
  const size_t num_state = im.state_names.size();
  struct Built {
    std::vector<size_t> indices;    // parameter indices of the members
    std::vector<int64_t> offsets;   // start of each member's segment
    std::vector<ir::Shape> shapes;  // each member's shape
    Tensor param;                   // the new flat parameters
    std::vector<Tensor> state;      // the new flat state
  };
  std::vector<Built> built;
  std::vector<ir::NodePtr> roots;
  std::vector<const ir::Node*> donated;  // last step's state vectors this step may overwrite
  // Last step's flat parameters, which this step may overwrite if nothing the user holds can
  // read them afterwards (compiler::plan_donations): the forward pass read them.
  std::vector<compiler::DonationCandidate> candidates;
  {
    NoGradGuard no_grad;
    for (const Bucket& b : buckets) {
      Built out;
      const int64_t align = static_cast<int64_t>(kSegmentAlignBytes / dtype_size(b.dtype));
      int64_t length = 0;
      for (size_t a : b.members) {
        out.indices.push_back(active[a].index);
        out.offsets.push_back(length);
        out.shapes.push_back(active[a].node->shape());
        length += (active[a].node->numel() + align - 1) / align * align;
      }
      if (b.solo) length = active[b.members[0]].node->numel();
      const std::vector<int64_t> shape =
          b.solo ? std::vector<int64_t>(active[b.members[0]].node->shape())
                 : std::vector<int64_t>{length};
      // The members' tensors flattened into one vector of `length`, zeros between segments (a
      // solo parameter's tensor as it is).
      auto gather = [&](auto&& piece) -> Tensor {
        if (b.solo) return piece(0);
        std::vector<Tensor> parts;
        for (size_t k = 0; k < b.members.size(); ++k) {
          Tensor t = piece(k).reshape({-1});
          parts.push_back(t);
          const int64_t end = k + 1 < b.members.size() ? out.offsets[k + 1] : length;
          const int64_t pad = end - out.offsets[k] - t.numel();
          if (pad > 0) parts.push_back(im.gap(b.dtype, b.device, pad));
        }
        return parts.size() == 1 ? parts[0] : cat(parts);
      };
      // The flat vectors of the last step, if every member still holds its alias into them.
      const Impl::FlatLayout* reuse = nullptr;
      if (auto found = im.layouts.find(out.indices[0]);
          found != im.layouts.end() && found->second.members == out.indices) {
        const Impl::FlatLayout& l = found->second;
        bool intact = true;
        for (size_t k = 0; k < b.members.size() && intact; ++k) {
          intact = active[b.members[k]].node == l.param_views[k];
          const Impl::ParamState& ps = im.params[out.indices[k]];
          for (size_t s = 0; s < num_state && intact; ++s) {
            intact = ps.state[s] != nullptr && ps.state[s] == l.state_views[s][k];
          }
        }
        if (intact) reuse = &l;
      }
      Tensor param = reuse ? handle(reuse->param)
                           : gather([&](size_t k) { return active[b.members[k]].param; });
      if (reuse != nullptr && length >= kDonateNumel &&
          memory_only_ours(reuse->param, reuse->param_views)) {
        compiler::DonationCandidate c{reuse->param.get(), {}};
        // Held by its layout (and by `param`, gone before the realization).
        c.leaves.emplace_back(reuse->param, 1);
        // Each held by its layout, its parameter's tensor and `active`.
        for (const ir::NodePtr& v : reuse->param_views) c.leaves.emplace_back(v, 3);
        candidates.push_back(std::move(c));
      }
      Tensor grad = gather([&](size_t k) { return active[b.members[k]].grad; });
      std::vector<Tensor> state(num_state);
      if (b.step > 1) {
        for (size_t s = 0; s < num_state; ++s) {
          state[s] =
              reuse ? handle(reuse->state[s])
                    : gather([&](size_t k) { return handle(im.params[out.indices[k]].state[s]); });
          if (reuse != nullptr && only_ours(reuse->state[s], reuse->state_views[s])) {
            donated.push_back(reuse->state[s].get());
          }
        }
      }
      // The per-step numbers as 0-d inputs: on the CPU one each; elsewhere one small vector (one
      // device copy), sliced into 0-d tensors inside the program.
      const std::vector<double> values = step_scalars(im.groups[b.group].lr, b.step);
      std::vector<Tensor> scalars;
      if (b.device.is_cpu()) {
        for (double v : values) {
          scalars.push_back(b.dtype == DType::Float64
                                ? from_vector(std::vector<double>{v}, {})
                                : from_vector(std::vector<float>{static_cast<float>(v)}, {}));
        }
      } else if (!values.empty()) {
        const auto n = static_cast<int64_t>(values.size());
        Tensor packed = b.dtype == DType::Float64
                            ? from_vector(values, {n})
                            : from_vector(std::vector<float>(values.begin(), values.end()), {n});
        packed = packed.to(b.device);
        for (int64_t k = 0; k < n; ++k) scalars.push_back(packed.slice(0, k, k + 1).reshape({}));
      }
      out.param = update(param, grad, scalars, state);
      out.state = std::move(state);
      auto check = [&](const Tensor& t, const std::string& what) {
        if (!t.defined() || t.shape() != shape || t.dtype() != b.dtype || t.device() != b.device) {
          throw Error(absl::StrCat(name, ".step: internal error: update() gave ",
                                   t.defined() ? describe(t) : "an undefined tensor", " for ", what,
                                   ", expected ", dtype_name(b.dtype), " ", ir::shape_str(shape)));
        }
        roots.push_back(detail::node_of(t, "step"));
      };
      check(out.param, "the parameters");
      for (size_t s = 0; s < num_state; ++s) check(out.state[s], im.state_names[s]);
      built.push_back(std::move(out));
    }
  }

  // 4. One realization for everything; on error nothing has changed yet.
  detail::realize_nodes(roots, compiler::EvalReason::kStep, donated, candidates);

  // 5. Parameters and state become aliases into the flat results.
  absl::flat_hash_map<size_t, Impl::FlatLayout> layouts;
  for (Built& out : built) {
    Impl::FlatLayout l;
    l.members = out.indices;
    l.param = as_input(out.param);
    l.state_views.resize(num_state);
    for (size_t s = 0; s < num_state; ++s) l.state.push_back(as_input(out.state[s]));
    for (size_t k = 0; k < out.indices.size(); ++k) {
      const size_t i = out.indices[k];
      const Tensor& p = im.groups[where[i].first].params[where[i].second];
      const ir::Shape& shape = out.shapes[k];
      l.param_views.push_back(alias_segment(l.param, out.offsets[k], shape));
      p.impl()->set_node(l.param_views.back());
      Impl::ParamState& ps = im.params[i];
      ++ps.step;
      for (size_t s = 0; s < num_state; ++s) {
        l.state_views[s].push_back(alias_segment(l.state[s], out.offsets[k], shape));
        ps.state[s] = l.state_views[s].back();
      }
    }
    layouts.emplace(out.indices[0], std::move(l));
  }
  im.layouts = std::move(layouts);
}

// ---- state ----------------------------------------------------------------------------------

int64_t Optimizer::step_count(size_t index) const {
  impl_->param(index);  // range check
  return impl_->params[index].step;
}

NamedTensors Optimizer::param_state(size_t index) const {
  impl_->param(index);
  NamedTensors out;
  const Impl::ParamState& ps = impl_->params[index];
  for (size_t s = 0; s < impl_->state_names.size(); ++s) {
    out.emplace_back(impl_->state_names[s], ps.state[s] ? handle(ps.state[s]) : Tensor());
  }
  return out;
}

NamedTensors Optimizer::state_dict() const {
  const Impl& im = *impl_;
  NamedTensors out;
  for (size_t g = 0; g < im.groups.size(); ++g) {
    out.emplace_back(absl::StrCat("param_groups.", g, ".lr"),
                     from_vector(std::vector<double>{im.groups[g].lr}, {}));
  }
  for (size_t i = 0; i < im.params.size(); ++i) {
    const Impl::ParamState& ps = im.params[i];
    if (ps.step == 0) continue;
    out.emplace_back(absl::StrCat("state.", i, ".step"),
                     from_vector(std::vector<int64_t>{ps.step}, {}));
    for (size_t s = 0; s < im.state_names.size(); ++s) {
      out.emplace_back(absl::StrCat("state.", i, ".", im.state_names[s]), handle(ps.state[s]));
    }
  }
  return out;
}

void Optimizer::load_state_dict(const NamedTensors& state) {
  const Impl& im = *impl_;
  const std::string op = absl::StrCat(im.name, ".load_state_dict");
  auto fail = [&](const std::string& why) { throw Error(absl::StrCat(op, ": ", why)); };

  std::vector<std::optional<double>> lrs(im.groups.size());
  struct Loaded {
    std::optional<int64_t> step;
    std::vector<Tensor> state;
  };
  std::vector<Loaded> loaded(im.params.size(), Loaded{std::nullopt, {}});
  for (Loaded& l : loaded) l.state.resize(im.state_names.size());
  absl::flat_hash_set<std::string> seen;

  for (const auto& [key, value] : state) {
    if (!seen.insert(key).second) fail(absl::StrCat("the name '", key, "' appears twice"));
    if (!value.defined()) fail(absl::StrCat("'", key, "' is an undefined tensor"));
    const std::vector<std::string> parts = absl::StrSplit(key, '.');
    if (parts.size() == 3 && parts[0] == "param_groups" && parts[2] == "lr") {
      const std::optional<size_t> g = parse_index(parts[1]);
      if (!g || *g >= im.groups.size()) {
        fail(absl::StrCat("'", key,
                          "' names a parameter group this optimizer does not have (it has ",
                          im.groups.size(), ")"));
      }
      if (value.dtype() != DType::Float64 || value.dim() != 0) {
        fail(absl::StrCat("'", key, "' must be a Float64 0-d tensor, got ", describe(value)));
      }
      const double lr = value.item<double>();
      if (!(lr >= 0) || !std::isfinite(lr)) {
        fail(absl::StrCat("'", key, "' holds an invalid learning rate ", lr));
      }
      lrs[*g] = lr;
      continue;
    }
    if (parts.size() != 3 || parts[0] != "state") {
      fail(absl::StrCat("unexpected name '", key,
                        "'; expected param_groups.<g>.lr or state.<i>.<name>"));
    }
    const std::optional<size_t> i = parse_index(parts[1]);
    if (!i || *i >= im.params.size()) {
      fail(absl::StrCat("'", key, "' names a parameter this optimizer does not have (it has ",
                        im.params.size(), ")"));
    }
    if (parts[2] == "step") {
      if (value.dtype() != DType::Int64 || value.dim() != 0) {
        fail(absl::StrCat("'", key, "' must be an Int64 0-d tensor, got ", describe(value)));
      }
      const int64_t step = value.item<int64_t>();
      if (step < 0) fail(absl::StrCat("'", key, "' holds a negative step count ", step));
      loaded[*i].step = step;
      continue;
    }
    size_t s = 0;
    while (s < im.state_names.size() && im.state_names[s] != parts[2]) ++s;
    if (s == im.state_names.size()) {
      std::string names = "step";
      for (const std::string& n : im.state_names) absl::StrAppend(&names, ", ", n);
      fail(absl::StrCat("'", key, "': ", im.name, " has no state '", parts[2], "' (it has ", names,
                        ")"));
    }
    const Tensor& p = im.param(*i);
    if (value.shape() != p.shape() || value.dtype() != p.dtype()) {
      fail(absl::StrCat("'", key, "' is ", dtype_name(value.dtype()), " ",
                        ir::shape_str(value.shape()), " but parameter ", *i, " is ",
                        dtype_name(p.dtype()), " ", ir::shape_str(p.shape())));
    }
    loaded[*i].state[s] = value.detach();
  }
  for (size_t g = 0; g < lrs.size(); ++g) {
    if (!lrs[g]) fail(absl::StrCat("'param_groups.", g, ".lr' is missing"));
  }
  for (size_t i = 0; i < loaded.size(); ++i) {
    Loaded& l = loaded[i];
    const int64_t step = l.step.value_or(0);
    for (size_t s = 0; s < l.state.size(); ++s) {
      if (l.state[s].defined() != (step > 0)) {
        fail(absl::StrCat("parameter ", i,
                          " has only part of its state: ", l.state[s].defined() ? "" : "no ",
                          "'state.", i, ".", im.state_names[s], "' with step count ", step));
      }
      // Moving may compute (a pending value, or a device copy): done before anything changes.
      if (l.state[s].defined()) l.state[s] = l.state[s].to(im.param(i).device());
    }
  }

  // Everything checked: commit.
  for (size_t g = 0; g < lrs.size(); ++g) impl_->groups[g].lr = *lrs[g];
  for (size_t i = 0; i < loaded.size(); ++i) {
    impl_->params[i].step = loaded[i].step.value_or(0);
    std::vector<ir::NodePtr>& state = impl_->params[i].state;
    for (size_t s = 0; s < state.size(); ++s) {
      const Tensor& t = loaded[i].state[s];
      state[s] = t.defined() ? detail::node_of(t, "load_state_dict") : nullptr;
    }
  }
  impl_->layouts.clear();
}

}  // namespace smelt::optim
