// smelt: a lazy-graph tensor compiler with a PyTorch-like API. The one header users include.
//
//   #include <smelt/smelt.h>
//   using namespace smelt;
//   Tensor a = tensor({{1.f, 2.f}, {3.f, 4.f}});
//   Tensor b = softmax(matmul(a, a.t()) + 1.f, -1);  // builds a graph; nothing runs yet
//   std::cout << b << "\n";                          // computes and prints
#pragma once

#include <smelt/autograd.h>
#include <smelt/creation.h>
#include <smelt/cuda.h>
#include <smelt/data.h>
#include <smelt/device.h>
#include <smelt/dtype.h>
#include <smelt/error.h>
#include <smelt/eval.h>
#include <smelt/nn.h>
#include <smelt/ops.h>
#include <smelt/optim.h>
#include <smelt/scalar.h>
#include <smelt/serialize.h>
#include <smelt/tensor.h>
