#!/usr/bin/env python3
"""PyTorch eager on the GPU: the anchor column for bench/cuda_bench.cpp.

The same workloads, sizes and timing rule as cuda_bench.cpp (each iteration runs the work and
waits for the device; the time is the wall clock of both), so the ratios in bench/RESULTS.md
compare like with like. PyTorch is never a dependency of smelt; this script runs where a CUDA
PyTorch is installed (the GPU machines have one).

usage: python3 bench/torch_gpu_anchor.py [--iters N]
"""
import argparse
import statistics
import time

import torch

N = 1 << 26


def timed(fn, iters):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=50)
    args = parser.parse_args()
    dev = torch.device("cuda")
    torch.manual_seed(0)
    print(f"# torch {torch.__version__} on {torch.cuda.get_device_name(0)}")
    rows = []

    x = torch.randn(N, device=dev)
    y = torch.randn(N, device=dev)
    out = torch.empty_like(x)
    t = timed(lambda: out.copy_(x), args.iters)
    rows.append(("copy", t, 2 * N * 4 / t / 1e9, "GB/s"))
    t = timed(lambda: torch.tanh(x * 0.5 + y) * torch.sigmoid(x) + torch.exp(-x * x), args.iters)
    rows.append(("chain", t, 3 * N * 4 / t / 1e9, "GB/s"))
    t = timed(lambda: x.sum(), args.iters)
    rows.append(("sum", t, N * 4 / t / 1e9, "GB/s"))
    s = torch.randn(4096, 4096, device=dev)
    t = timed(lambda: torch.softmax(s, 1), args.iters)
    rows.append(("softmax 4096x4096", t, 2 * 4096 * 4096 * 4 / t / 1e9, "GB/s"))
    for n in (1024, 4096):
        a = torch.randn(n, n, device=dev)
        b = torch.randn(n, n, device=dev)
        t = timed(lambda: a @ b, args.iters)
        rows.append((f"matmul {n}", t, 2 * n**3 / t / 1e12, "TFLOP/s"))

    xb = torch.randn(128, 784, device=dev)
    labels = torch.randint(0, 10, (128,), device=dev)
    w1 = (torch.randn(256, 784, device=dev) * 0.05).requires_grad_()
    b1 = torch.zeros(256, device=dev, requires_grad=True)
    w2 = (torch.randn(10, 256, device=dev) * 0.05).requires_grad_()
    b2 = torch.zeros(10, device=dev, requires_grad=True)

    def forward():
        h = torch.relu(xb @ w1.t() + b1)
        return torch.log_softmax(h @ w2.t() + b2, 1)

    with torch.no_grad():
        t = timed(forward, args.iters)
    rows.append(("mlp forward", t, 0, ""))

    def step():
        loss = torch.nn.functional.nll_loss(forward(), labels)
        loss.backward()
        with torch.no_grad():
            for p in (w1, b1, w2, b2):
                p -= 0.1 * p.grad
                p.grad = None

    t = timed(step, args.iters)
    rows.append(("mlp train step (SGD)", t, 0, ""))

    for name, sec, rate, unit in rows:
        extra = f"  {rate:8.1f} {unit}" if unit else ""
        print(f"{name:24s} {sec * 1e6:10.1f} us{extra}")


if __name__ == "__main__":
    main()
