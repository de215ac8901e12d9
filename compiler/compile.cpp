#include "compiler/compile.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <variant>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/overloaded.h"
#include "compiler/codegen/cuda/emit_cuda.h"
#include "compiler/codegen/llvm/emit_kernel.h"
#include "compiler/lower.h"
#include "compiler/passes/accumulate_matmul.h"
#include "compiler/passes/expand_pooling.h"
#include "compiler/passes/lift_constants.h"
#include "compiler/passes/simplify.h"
#include "compiler/pipeline.h"
#include "ir/hash.h"
#include "ir/window.h"
#include "runtime/cuda_api.h"

namespace smelt::compiler {
namespace {

// A std::mutex, not an absl::Mutex: Debian's Abseil has deadlock detection on, which makes each
// lock cost far more than the program-cache lookup it guards. g_mu guards the three below.
std::mutex g_mu;
CompileStats g_stats;
absl::flat_hash_map<uint64_t, std::shared_ptr<const CompiledProgram>> g_programs;
absl::flat_hash_map<uint64_t, runtime::KernelFn> g_kernels;
// CUDA kernels by kernel hash: the loaded function and its launch plan.
struct LoadedCudaKernel {
  runtime::cuda::Function fn = nullptr;
  CudaKernel plan;
};
absl::flat_hash_map<uint64_t, LoadedCudaKernel> g_cuda_kernels;

// The runtime call of a conv2d/max_pool2d step: its op, operands and geometry.
runtime::WindowCall window_call(const WindowStep& ws,
                                const absl::flat_hash_map<const ir::Node*, int32_t>& value_of) {
  using Op = runtime::WindowCall::Op;
  runtime::WindowCall call;
  std::vector<ir::Shape> shapes;
  for (const ir::Node* in : ws.inputs) shapes.push_back(in->shape());
  const ir::WindowGeometry g =
      ir::window_geometry(ws.out->op(), shapes, ws.out->shape(), ws.out->attrs());
  switch (ws.out->op()) {
    case ir::OpCode::Conv2dBackwardInput:
      call.op = Op::kConvBackwardInput;
      break;
    case ir::OpCode::Conv2dBackwardWeight:
      call.op = Op::kConvBackwardWeight;
      break;
    case ir::OpCode::MaxPool2d:
      call.op = Op::kPool;
      break;
    case ir::OpCode::MaxPool2dBackward:
      call.op = Op::kPoolBackward;
      break;
    default:
      call.op = Op::kConv;
      break;
  }
  call.dtype = ws.out->dtype();
  call.a = value_of.at(ws.inputs[0]);
  if (ws.inputs.size() > 1) call.b = value_of.at(ws.inputs[1]);
  call.batch = g.batch, call.channels = g.channels, call.in_h = g.in_h, call.in_w = g.in_w;
  call.out_channels = g.out_channels;
  call.kernel_h = g.kernel_h, call.kernel_w = g.kernel_w, call.out_h = g.out_h;
  call.out_w = g.out_w;
  call.stride_h = g.stride_h, call.stride_w = g.stride_w, call.pad_h = g.pad_h;
  call.pad_w = g.pad_w, call.dilation_h = g.dilation_h, call.dilation_w = g.dilation_w;
  return call;
}

runtime::MatrixOperand matrix_operand(const StridedView& v, int32_t value) {
  runtime::MatrixOperand op;
  op.value = value;
  op.offset = v.offset;
  const size_t r = v.shape.size();
  op.batch_strides.assign(v.strides.begin(), v.strides.end() - 2);
  op.row_stride = v.strides[r - 2];
  op.col_stride = v.strides[r - 1];
  return op;
}

// Machine code for the kernels of `lowered` that g_kernels (CPU) or g_cuda_kernels (CUDA) does
// not hold yet: all missing kernels compile together, in one LLVM module or one NVRTC program.
absl::Status compile_missing_kernels(const LoweredProgram& lowered, Device device) {
  std::vector<const Kernel*> missing;
  std::vector<uint64_t> missing_hashes;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    for (const Step& step : lowered.steps) {
      const auto* ks = std::get_if<KernelStep>(&step);
      if (ks == nullptr) continue;
      const uint64_t h = ks->kernel.hash();
      const bool have = device.is_cuda() ? g_cuda_kernels.contains(h) : g_kernels.contains(h);
      if (have ||
          std::find(missing_hashes.begin(), missing_hashes.end(), h) != missing_hashes.end()) {
        ++g_stats.kernel_hits;
        continue;
      }
      missing.push_back(&ks->kernel);
      missing_hashes.push_back(h);
    }
  }
  if (missing.empty()) return absl::OkStatus();
  if (!device.is_cuda()) {
    absl::StatusOr<std::vector<runtime::KernelFn>> fns = jit_kernels(missing);
    if (!fns.ok()) return fns.status();
    std::lock_guard<std::mutex> lock(g_mu);
    for (size_t i = 0; i < missing.size(); ++i) g_kernels[missing_hashes[i]] = (*fns)[i];
    g_stats.kernels_compiled += missing.size();
    return absl::OkStatus();
  }
  // CUDA: one translation unit (the prelude once, then each kernel), compiled by NVRTC.
  if (absl::Status s = runtime::cuda::availability(); !s.ok()) return s;
  CudaTarget target;
  if (absl::StatusOr<runtime::cuda::DeviceInfo> info = runtime::cuda::device_info(device.index());
      info.ok()) {
    target.multiprocessors = info->multiprocessors;
  }
  std::vector<CudaKernel> plans;
  std::string source = cuda_prelude();
  std::vector<std::string> symbols;
  for (const Kernel* k : missing) {
    absl::StatusOr<CudaKernel> ck = emit_cuda(*k, target);
    if (!ck.ok()) return ck.status();
    absl::StrAppend(&source, "\n// ", k->name, "\n", ck->code);
    symbols.push_back(ck->symbol);
    plans.push_back(*std::move(ck));
  }
  absl::StatusOr<runtime::cuda::CompiledImage> image =
      runtime::cuda::nvrtc_compile(source, missing.front()->name);
  if (!image.ok()) return image.status();
  absl::StatusOr<std::vector<runtime::cuda::Function>> fns =
      runtime::cuda::load_functions(*image, symbols);
  if (!fns.ok()) return fns.status();
  std::lock_guard<std::mutex> lock(g_mu);
  for (size_t i = 0; i < missing.size(); ++i) {
    g_cuda_kernels[missing_hashes[i]] = LoadedCudaKernel{(*fns)[i], std::move(plans[i])};
  }
  g_stats.kernels_compiled += missing.size();
  return absl::OkStatus();
}

// The device a graph runs on: its roots' (every node of a graph shares it; the frontend moves
// data between devices only through realized values).
Device graph_device(const ir::Graph& graph) {
  return graph.outputs.empty() ? Device::cpu() : graph.outputs.front()->device();
}

}  // namespace

namespace {

// The walk every key shares: each node's hash (node_hash), op and operand positions
// (position_of), then the roots' positions.
template <typename NodeHash, typename PositionOf>
uint64_t graph_key_with(const ir::Graph& graph, absl::Span<ir::Node* const> order,
                        NodeHash&& node_hash, PositionOf&& position_of) {
  uint64_t h = ir::hash_combine(0x70726f67 /* "prog" */, order.size());
  const Device device = graph_device(graph);
  h = ir::hash_combine(h, static_cast<uint64_t>(device.type()) * 1024 + device.index());
  for (size_t i = 0; i < order.size(); ++i) {
    const ir::Node* n = order[i];
    // Operands enter by position, which captures the topology exactly (a + a differs from a + b).
    h = ir::hash_combine(h, node_hash(n));
    // A leaf is data whatever op once computed it (an input, or a realized node).
    h = ir::hash_combine(h, n->is_leaf() ? 1 : static_cast<uint64_t>(n->op()) * 2);
    for (const ir::NodePtr& in : n->inputs()) h = ir::hash_combine(h, position_of(in.get()));
  }
  for (const ir::NodePtr& r : graph.outputs) h = ir::hash_combine(h, position_of(r.get()));
  return h;
}

template <typename NodeHash>
uint64_t graph_key(const ir::Graph& graph, absl::Span<ir::Node* const> order,
                   NodeHash&& node_hash) {
  // Position of each node, looked up by binary search in a sorted copy: one allocation, no
  // hashing.
  std::vector<std::pair<const ir::Node*, uint64_t>> position;
  position.reserve(order.size());
  for (size_t i = 0; i < order.size(); ++i) position.emplace_back(order[i], i);
  std::sort(position.begin(), position.end());
  auto position_of = [&](const ir::Node* n) -> uint64_t {
    auto it = std::lower_bound(position.begin(), position.end(), n,
                               [](const auto& p, const ir::Node* x) { return p.first < x; });
    if (it == position.end() || it->first != n) throw std::out_of_range("program_key: node");
    return it->second;
  };
  return graph_key_with(graph, order, node_hash, position_of);
}

// A leaf's hash is its type alone; another node's structural hash (computed once, at creation)
// already covers its op and attributes.
uint64_t program_node_hash(const ir::Node* n) { return n->input_hash(); }

}  // namespace

uint64_t program_key(const ir::Graph& graph, absl::Span<ir::Node* const> order) {
  return graph_key(graph, order, program_node_hash);
}

uint64_t program_key_marked(const ir::Graph& graph, absl::Span<ir::Node* const> order,
                            uint64_t epoch) {
  return graph_key_with(graph, order, program_node_hash, [epoch](const ir::Node* n) -> uint64_t {
    if (n->walk_epoch() != epoch) throw std::out_of_range("program_key: node");
    return n->walk_position();
  });
}

uint64_t structure_key(const ir::Graph& graph, absl::Span<ir::Node* const> order) {
  // Structural hashes fold in the operands' hashes, so a constant's value reaches every node
  // downstream of it; here each node hashes only its own op, type and attributes (operands
  // enter by position in the walk), and a constant only its type.
  return graph_key(graph, order, [](const ir::Node* n) -> uint64_t {
    uint64_t h = ir::hash_combine(static_cast<uint64_t>(n->dtype()), n->shape().size());
    for (int64_t d : n->shape()) h = ir::hash_combine(h, static_cast<uint64_t>(d));
    if (n->is_leaf() || n->op() == ir::OpCode::Constant) return h;
    return ir::hash_combine(h, n->attrs().hash());
  });
}

ir::Graph prepare_graph(const ir::Graph& graph, const CompileOptions& options) {
  ir::Graph g = options.expand_pooling ? expand_pooling(graph) : graph;
  if (options.simplify) g = simplify(g);
  if (options.accumulate_matmul) g = accumulate_matmul(g);
  std::vector<const ir::Node*> seen;
  for (ir::NodePtr& out : g.outputs) {
    const bool repeated = std::find(seen.begin(), seen.end(), out.get()) != seen.end();
    if (out->is_leaf() || out->inputs().empty() || repeated) {
      absl::StatusOr<ir::NodePtr> copy = ir::Node::make(ir::OpCode::Copy, {out}, {}, out->device());
      if (copy.ok()) out = *std::move(copy);
    }
    seen.push_back(out.get());
  }
  return g;
}

CompileOptions default_compile_options() {
  static const CompileOptions options = [] {
    CompileOptions o;
    if (const char* off = std::getenv("SMELT_DISABLE_PASSES")) {
      for (absl::string_view pass : absl::StrSplit(off, ',', absl::SkipWhitespace())) {
        pass = absl::StripAsciiWhitespace(pass);
        if (pass == "simplify") o.simplify = false;
        if (pass == "expand_pooling") o.expand_pooling = false;
        if (pass == "rows") o.fusion.max_stages = 0;
        if (pass == "multi_output") o.fusion.max_outputs = 1;
        if (pass == "coalesce") o.coalesce = false;
        if (pass == "accumulate") o.accumulate_matmul = false;
        if (pass == "in_place") o.in_place = false;
      }
    }
    return o;
  }();
  return options;
}

namespace {

// Which input slots expression `e` of `k` loads from.
std::vector<bool> slots_read(const Kernel& k, int32_t e) {
  std::vector<bool> reads(k.inputs.size(), false), seen(k.exprs.size(), false);
  std::vector<int32_t> todo = {e};
  while (!todo.empty()) {
    const int32_t x = todo.back();
    todo.pop_back();
    if (x < 0 || seen[x]) continue;
    seen[x] = true;
    const KExpr& ex = k.exprs[x];
    if (ex.kind == KOp::kLoad) reads[ex.slot] = true;
    todo.insert(todo.end(), {ex.a, ex.b, ex.c});
  }
  return reads;
}

// Pairs each donated leaf with an output of the step that reads it last, when that step is an
// elementwise kernel that can compute the output in the leaf's memory (can_compute_in_place).
void compute_in_place(LoweredProgram& lowered, absl::Span<const ir::Node* const> donated) {
  absl::flat_hash_map<const ir::Node*, size_t> last_step;
  for (size_t i = 0; i < lowered.steps.size(); ++i) {
    auto read = [&](const ir::Node* n) {
      if (n != nullptr) last_step[n] = i;
    };
    std::visit(base::Overloaded{[&](const KernelStep& ks) {
                                  for (const ir::Node* n : ks.inputs) read(n);
                                },
                                [&](const MatmulStep& ms) {
                                  read(ms.a.base);
                                  read(ms.b.base);
                                  read(ms.addend);
                                },
                                [&](const GatherStep& gs) {
                                  read(gs.src);
                                  read(gs.index);
                                },
                                [&](const WindowStep& ws) {
                                  for (const ir::Node* n : ws.inputs) read(n);
                                },
                                [&](const ScanStep& ss) { read(ss.src); }},
               lowered.steps[i]);
  }
  for (const ir::Node* leaf : donated) {
    const auto it = last_step.find(leaf);
    if (it == last_step.end()) continue;
    auto* ks = std::get_if<KernelStep>(&lowered.steps[it->second]);
    if (ks == nullptr) continue;
    const auto slot = static_cast<int32_t>(std::find(ks->inputs.begin(), ks->inputs.end(), leaf) -
                                           ks->inputs.begin());
    Kernel& k = ks->kernel;
    // Of the outputs that may take the leaf's memory, the one computed most directly from it
    // (Adam's p' from p, m' from m): an output that reads it, reading the fewest other inputs.
    int32_t best = -1;
    std::pair<bool, size_t> best_score;
    for (int32_t o = 0; o < static_cast<int32_t>(k.outputs.size()); ++o) {
      const bool taken = std::any_of(k.in_place.begin(), k.in_place.end(),
                                     [&](const auto& pair) { return pair.second == o; });
      if (taken || !can_compute_in_place(k, slot, o)) continue;
      const std::vector<bool> reads = slots_read(k, k.outputs[o].value);
      const std::pair<bool, size_t> score(!reads[slot],
                                          std::count(reads.begin(), reads.end(), true));
      if (best < 0 || score < best_score) {
        best = o;
        best_score = score;
      }
    }
    if (best >= 0) k.in_place.emplace_back(slot, best);
  }
}

}  // namespace

absl::StatusOr<std::shared_ptr<const CompiledProgram>> compile_program(
    const ir::Graph& original, absl::Span<ir::Node* const> order, const CompileOptions& options,
    absl::Span<const ir::Node* const> donated) {
  // `original` keys the program and gives the positions of leaves and roots; `graph` is what
  // compiles.
  const ir::Graph graph = prepare_graph(original, options);
  maybe_dump("simplify", graph);
  maybe_dump("fusion", graph);
  maybe_dump("kernels", graph);
  FusionPlan plan = fuse(graph, options.fusion);
  absl::StatusOr<LoweredProgram> lowered = lower(graph, plan, options.coalesce);
  if (!lowered.ok()) return lowered.status();
  const Device device = graph_device(graph);
  if (device.is_cpu() && options.in_place && !donated.empty()) {
    compute_in_place(*lowered, donated);
  }

  // Machine code: kernels already compiled are reused; the rest compile together.
  if (absl::Status s = compile_missing_kernels(*lowered, device); !s.ok()) return s;

  auto out = std::make_shared<CompiledProgram>();
  runtime::Program& prog = out->program;
  prog.device = device;
  absl::flat_hash_map<const ir::Node*, int32_t> value_of;
  auto new_value = [&](const ir::Node* n) {
    const int32_t id = static_cast<int32_t>(prog.value_bytes.size());
    prog.value_bytes.push_back(static_cast<size_t>(n->numel()) * dtype_size(n->dtype()));
    value_of[n] = id;
    return id;
  };
  absl::flat_hash_map<const ir::Node*, int32_t> position;
  for (size_t i = 0; i < order.size(); ++i) position[order[i]] = static_cast<int32_t>(i);
  for (const ir::Node* leaf : lowered->leaves) {
    prog.inputs.push_back(new_value(leaf));
    out->leaf_positions.push_back(position.at(leaf));
  }
  for (const Step& step : lowered->steps) {
    if (const auto* ks = std::get_if<KernelStep>(&step); ks != nullptr && device.is_cuda()) {
      runtime::CudaKernelCall call;
      {
        std::lock_guard<std::mutex> lock(g_mu);
        const LoadedCudaKernel& loaded = g_cuda_kernels.at(ks->kernel.hash());
        call.fn = loaded.fn;
        std::copy(loaded.plan.grid, loaded.plan.grid + 3, call.grid);
        std::copy(loaded.plan.block, loaded.plan.block + 3, call.block);
        call.empty = loaded.plan.empty;
        call.scratch_bytes = loaded.plan.scratch_bytes;
        call.ticket_bytes = loaded.plan.ticket_bytes;
      }
      for (const ir::Node* in : ks->inputs) call.args.push_back(value_of.at(in));
      for (const ir::Node* o : ks->outputs) call.args.push_back(new_value(o));
      call.name = ks->kernel.name;
      prog.calls.push_back(std::move(call));
      ++out->num_kernels;
    } else if (ks != nullptr) {
      runtime::KernelCall call;
      {
        std::lock_guard<std::mutex> lock(g_mu);
        call.fn = g_kernels.at(ks->kernel.hash());
      }
      for (const ir::Node* in : ks->inputs) call.args.push_back(value_of.at(in));
      for (const ir::Node* o : ks->outputs) call.args.push_back(new_value(o));
      const Kernel& k = ks->kernel;
      const size_t num_in = ks->inputs.size();
      for (const auto& [slot, o] : k.in_place) {
        call.in_place.emplace_back(call.args[slot], call.args[num_in + o]);
      }
      // The kernel ABI (emit_kernel.h) defines the range, its grain and the scratch.
      call.parallel_extent = parallel_extent(k);
      call.grain = parallel_grain(k);
      call.scratch_bytes = kernel_scratch_bytes(k);
      call.name = k.name;
      prog.calls.push_back(std::move(call));
      ++out->num_kernels;
    } else if (const auto* ms = std::get_if<MatmulStep>(&step)) {
      runtime::MatmulCall call;
      call.dtype = ms->out->dtype();
      call.a = matrix_operand(ms->a, value_of.at(ms->a.base));
      call.b = matrix_operand(ms->b, value_of.at(ms->b.base));
      const ir::Shape& s = ms->out->shape();
      call.batch_shape.assign(s.begin(), s.end() - 2);
      call.m = s[s.size() - 2];
      call.n = s[s.size() - 1];
      call.k = ms->a.shape.back();
      if (ms->addend != nullptr) {
        call.addend = value_of.at(ms->addend);
        call.alpha = ms->alpha;
        call.beta = ms->beta;
      }
      call.out = new_value(ms->out);
      prog.calls.push_back(std::move(call));
      ++out->num_library_calls;
    } else if (const auto* ws = std::get_if<WindowStep>(&step)) {
      runtime::WindowCall call = window_call(*ws, value_of);
      call.out = new_value(ws->out);
      prog.calls.push_back(std::move(call));
      ++out->num_library_calls;
    } else if (const auto* ss = std::get_if<ScanStep>(&step)) {
      runtime::ScanCall call;
      const ir::Shape& s = ss->src->shape();
      call.src = value_of.at(ss->src);
      call.dtype = ss->src->dtype();
      call.op = ss->out->op() == ir::OpCode::ArgSort ? runtime::ScanCall::Op::kArgSort
                                                     : runtime::ScanCall::Op::kCumsum;
      call.reverse = ss->reverse;
      call.k = ss->k;
      call.dim_size = s[ss->dim];
      for (int64_t d = 0; d < ss->dim; ++d) call.outer *= s[d];
      for (size_t d = ss->dim + 1; d < s.size(); ++d) call.inner *= s[d];
      call.out = new_value(ss->out);
      prog.calls.push_back(std::move(call));
      ++out->num_library_calls;
    } else {
      const auto& gs = std::get<GatherStep>(step);
      runtime::GatherCall call;
      const ir::Shape& s = gs.src_shape;
      call.src = value_of.at(gs.src);
      call.index = value_of.at(gs.index);
      call.element_size = dtype_size(gs.src->dtype());
      call.dtype = gs.src->dtype();
      call.add = gs.add;
      call.index_dtype = gs.index->dtype();
      call.dim = gs.dim;
      // The indexed dim: the source's for a gather, the output's for an add.
      call.dim_size = gs.add ? gs.out->shape()[gs.dim] : s[gs.dim];
      for (int64_t d = 0; d < gs.dim; ++d) call.outer *= s[d];
      for (size_t d = gs.dim + 1; d < s.size(); ++d) call.inner *= s[d];
      call.num_indices = gs.index->numel();
      call.out = new_value(gs.out);
      prog.calls.push_back(std::move(call));
      ++out->num_library_calls;
    }
  }
  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    prog.outputs.push_back(value_of.at(graph.outputs[i].get()));
    out->root_positions.push_back(position.at(original.outputs[i].get()));
  }
  prog.plan_lifetimes();
  return std::shared_ptr<const CompiledProgram>(std::move(out));
}

namespace {

// The constants of a graph: (position in the walk, value), in walk order.
using ConstantSites = std::vector<std::pair<int32_t, double>>;

ConstantSites constant_sites(absl::Span<ir::Node* const> order) {
  ConstantSites sites;
  for (size_t i = 0; i < order.size(); ++i) {
    const ir::Node* n = order[i];
    if (!n->is_leaf() && n->op() == ir::OpCode::Constant) {
      sites.emplace_back(static_cast<int32_t>(i), n->attrs().get_float("value"));
    }
  }
  return sites;
}

// Equal as stored (NaN equals NaN, -0 differs from 0): what the kernel would have compiled in.
bool same_value(double a, double b) { return ir::hash_double(a) == ir::hash_double(b); }

// A program compiled with some constants as inputs: which ones, and the values compiled into
// it for the others.
struct LiftedProgram {
  std::vector<int32_t> lifted;  // positions
  ConstantSites baked;
  std::shared_ptr<const CompiledProgram> program;

  bool serves(const ConstantSites& sites) const {
    for (const auto& [pos, value] : baked) {
      auto it = std::lower_bound(sites.begin(), sites.end(), std::make_pair(pos, -1e308),
                                 [](const auto& a, const auto& b) { return a.first < b.first; });
      if (it == sites.end() || it->first != pos || !same_value(it->second, value)) return false;
    }
    return true;
  }
};

// What the cache knows of one structure (structure_key): the constants of the first graph it
// compiled with everything baked in, and the programs compiled since with constants lifted.
struct Structure {
  ConstantSites first;
  std::vector<LiftedProgram> lifted;
};
// More variants than this of one structure lift every constant.
constexpr size_t kMaxLiftedVariants = 4;

// Guarded by g_mu.
absl::flat_hash_map<uint64_t, Structure> g_structures;

// Compiles `graph` with the constants at `positions` as inputs, and rewrites the program's
// leaf and root positions into positions of `order`, so the realization binds it like any
// other (a leaf position that names a constant binds that constant's value).
absl::StatusOr<std::shared_ptr<const CompiledProgram>> compile_lifted(
    const ir::Graph& graph, absl::Span<ir::Node* const> order,
    const std::vector<int32_t>& positions, absl::Span<const ir::Node* const> donated) {
  absl::flat_hash_set<const ir::Node*> lift;
  for (int32_t p : positions) lift.insert(order[p]);
  LiftedConstants lc = lift_constants(graph, lift);
  const std::vector<ir::Node*> lifted_order = ir::topo_order(lc.graph.outputs);
  absl::StatusOr<std::shared_ptr<const CompiledProgram>> compiled =
      compile_program(lc.graph, lifted_order, default_compile_options(), donated);
  if (!compiled.ok()) return compiled.status();
  absl::flat_hash_map<const ir::Node*, int32_t> original_position;
  for (size_t i = 0; i < order.size(); ++i) original_position[order[i]] = static_cast<int32_t>(i);
  for (const auto& [input, constant] : lc.inputs) {
    original_position[input] = original_position.at(constant);
  }
  auto program = std::make_shared<CompiledProgram>(**compiled);
  for (int32_t& p : program->leaf_positions) p = original_position.at(lifted_order[p]);
  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    program->root_positions[i] = original_position.at(graph.outputs[i].get());
  }
  return std::shared_ptr<const CompiledProgram>(std::move(program));
}

}  // namespace

absl::StatusOr<std::shared_ptr<const CompiledProgram>> get_or_compile(
    const ir::Graph& graph, absl::Span<ir::Node* const> order) {
  return get_or_compile(graph, order, program_key(graph, order));
}

uint64_t donation_key(uint64_t key, absl::Span<ir::Node* const> order,
                      absl::Span<const ir::Node* const> donated, uint64_t epoch) {
  if (donated.empty()) return key;
  absl::InlinedVector<uint32_t, 8> positions;
  for (const ir::Node* n : donated) {
    if (n->walk_epoch() == epoch && n->walk_position() < order.size() &&
        order[n->walk_position()] == n) {
      positions.push_back(n->walk_position());
    }
  }
  if (positions.empty()) return key;
  std::sort(positions.begin(), positions.end());
  uint64_t h = ir::hash_combine(key, 0x646f6e61 /* "dona" */);
  for (uint32_t p : positions) h = ir::hash_combine(h, p);
  return h;
}

absl::StatusOr<std::shared_ptr<const CompiledProgram>> get_or_compile(
    const ir::Graph& graph, absl::Span<ir::Node* const> order, uint64_t key,
    absl::Span<const ir::Node* const> donated) {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    if (auto it = g_programs.find(key); it != g_programs.end()) {
      ++g_stats.program_hits;
      return it->second;
    }
  }
  // A miss. If a graph of this structure was compiled before with other values in some
  // constants, those constants are per-realization numbers: compile (once) with them as inputs.
  const ConstantSites sites = constant_sites(order);
  const uint64_t skey = sites.empty() ? 0 : structure_key(graph, order);
  std::vector<int32_t> lift;
  if (!sites.empty()) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (auto it = g_structures.find(skey); it != g_structures.end()) {
      Structure& st = it->second;
      for (const LiftedProgram& lp : st.lifted) {
        if (lp.serves(sites)) {
          ++g_stats.program_hits;
          return lp.program;
        }
      }
      if (st.first.size() == sites.size()) {
        for (size_t i = 0; i < sites.size(); ++i) {
          const bool lifted_before =
              !st.lifted.empty() &&
              std::binary_search(st.lifted.back().lifted.begin(), st.lifted.back().lifted.end(),
                                 sites[i].first);
          if (lifted_before || !same_value(sites[i].second, st.first[i].second) ||
              st.lifted.size() >= kMaxLiftedVariants) {
            lift.push_back(sites[i].first);
          }
        }
      }
    }
  }
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::shared_ptr<const CompiledProgram>> program =
      lift.empty() ? compile_program(graph, order, default_compile_options(), donated)
                   : compile_lifted(graph, order, lift, donated);
  if (!program.ok()) return program.status();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::lock_guard<std::mutex> lock(g_mu);
  ++g_stats.program_misses;
  g_stats.compile_seconds += seconds;
  if (lift.empty()) {
    g_programs.emplace(key, *program);
    if (!sites.empty()) g_structures.try_emplace(skey, Structure{sites, {}});
  } else {
    ++g_stats.programs_lifted;
    LiftedProgram lp{lift, {}, *program};
    for (const auto& site : sites) {
      if (!std::binary_search(lift.begin(), lift.end(), site.first)) lp.baked.push_back(site);
    }
    g_structures[skey].lifted.push_back(std::move(lp));
  }
  return program;
}

CompileStats compile_stats() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_stats;
}

}  // namespace smelt::compiler
