// Thread locals on the path of every node built (the node and tensor-handle free lists,
// Node::make's scratch, the grad-mode flag). libsmelt is a shared library, where a thread local is
// reached by a call to __tls_get_addr (~20 instructions; ~150 of them per 20-op step); the
// initial-exec model makes it one %fs-relative load. A library loaded with dlopen must fit such
// variables in the static TLS space glibc keeps for that, so only small ones get it.
#pragma once

#define SMELT_FAST_TLS __attribute__((tls_model("initial-exec")))
