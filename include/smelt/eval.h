// Evaluation: when the pending graph is computed, and a look at it.
#pragma once

#include <smelt/tensor.h>

#include <string>
#include <vector>

namespace smelt {

// Realizes every tensor in one compiled program (shared work is done once). On error nothing is
// changed, so the caller may fix the cause and call again. eval({a, b}) works too.
void eval(const std::vector<Tensor>& tensors);

// Eager mode: every operation computes its result at once (one program per op). Off by default;
// the environment variable SMELT_EAGER=1, read once at startup, turns it on. For debugging and
// as the baseline of the fused-vs-eager benchmarks.
void set_eager(bool enabled);
bool is_eager();

// The pending (not yet computed) graph behind `tensors` in the IR text format (.smir), the same
// text the compiler's dumps and tools/irdump use.
std::string graph_text(const std::vector<Tensor>& tensors);
// Writes graph_text(tensors) to `path`; throws smelt::Error if the file cannot be written.
void dump_graph(const std::vector<Tensor>& tensors, const std::string& path);

// What the compiler makes of the pending graph behind `tensors`, without running it: `stage`
// "fusion" (the nodes grouped into kernels, with the reason for every cut), "kernels" (each
// fused kernel in kernel IR), "llvm" (the CPU code) or "cuda" (the CUDA code) -- the same text
// as irdump --after=fusion / --emit=... and SMELT_DUMP. Throws smelt::Error for another stage.
std::string compiled_text(const std::vector<Tensor>& tensors, const std::string& stage = "fusion");

}  // namespace smelt
