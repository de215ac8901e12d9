// Donation planning: which leaves a realization may overwrite although graphs the user holds
// were built on them. An optimizer's step reads each parameter p and computes p' = f(p, ...);
// computing p' in p's memory saves a block and a cold write stream, but the forward pass read p
// too, and the user may hold values of it (the logits `out`, a gradient) that are still lazy
// after the step and would read p again. This pass finds when that cannot happen, or makes it
// so by also realizing products the step computes anyway, and says which leaves are then safe.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"
#include "ir/node.h"

namespace smelt::compiler {

struct DonationCandidate {
  const ir::Node* donated;  // the leaf whose memory the realization would write over
  // Every leaf on that memory (`donated` among them, and its views) with the number of
  // references to it that the caller accounts for besides this one: holders that drop it, or
  // move to the realized result, right after the realization.
  absl::InlinedVector<std::pair<ir::NodePtr, long>, 4> leaves;
};

struct DonationPlan {
  std::vector<const ir::Node*> donated;  // the candidates found safe, for compiler::realize
  std::vector<ir::NodePtr> extra_roots;  // to realize with the roots (see plan_donations)
  // The graph's topological order as the realization walks it (inputs first, roots in order),
  // each node marked with the plan's epoch and its position: the extra roots are in it already,
  // so the realization of roots + extra_roots reuses it instead of walking again.
  std::vector<ir::Node*> order;
};

// For realizing `roots` (with `extra_roots`): a candidate is safe when, afterwards, nothing that
// is held from outside the realized graph can reach its leaves. Realized nodes let go of their
// operands (unless autograd keeps them: a graph backward() has not released), so a path that
// passes through a root is cut. References are counted: a node's holders beyond its operand
// edges in the graph (and, for the leaves, beyond what the caller accounts for) are outside
// holders, so anything unknown counts against donation.
//
// Library calls (matmul, conv, gather) read and write whole buffers, so the product of a
// parameter (x W^T) and a library call's computed operands (the activation h of h W2^T) are
// materialized by the program anyway: they become extra roots where that cuts a candidate off,
// which costs their blocks' lifetime, not work. A candidate that stays reachable otherwise (a
// held logits tensor computed from a bias) is not donated, and roots added only for it are
// dropped again.
//
// Thread-safe: it walks the graph under the realization lock (defined in compiler/realize.cpp).
// compiler::realize plans its `candidates` itself, in the same critical section as the run.
DonationPlan plan_donations(absl::Span<const ir::NodePtr> roots,
                            absl::Span<const DonationCandidate> candidates);

// plan_donations for a caller holding the realization lock, marking the nodes it walks with
// `epoch` (Node::walk_epoch), a value no earlier walk used.
DonationPlan plan_donations_marked(absl::Span<const ir::NodePtr> roots,
                                   absl::Span<const DonationCandidate> candidates, uint64_t epoch);

}  // namespace smelt::compiler
