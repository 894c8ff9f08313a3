"""Speed of compiled expressions against hand-written torch computing the same function.

Forward + backward on a 4096×10 float32 batch; median of many alternating runs in one process,
so both sides see the same machine load. Run: ``.venv/bin/python benchmarks/compile.py``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from lossevo.symbolic.compile import compile_expression
from lossevo.symbolic.parse import parse

CE = "mul(-1.0, mul(y_true, log(y_pred)))"
# 31 nodes: a GCE-like term, a clipped reverse term and a smooth penalty.
BIG = (
    "add(div(mul(y_true, sub(1.0, exp(mul(0.7, log(y_pred))))), 0.7), "
    "mul(0.1, add(mul(sub(1.0, y_true), sqrt(div(y_pred, add(1.0, y_true)))), "
    "cos(mul(y_pred, sub(y_true, 2.5))))))"
)


def hand_ce(y_pred, y_true):
    return -(y_true * torch.log(y_pred.abs() + 1e-7))


def hand_big(y_pred, y_true):
    gce = y_true * (1.0 - torch.exp(torch.clamp(0.7 * torch.log(y_pred.abs() + 1e-7), max=30.0)))
    denom = 1.0 + y_true
    denom = torch.where(denom.abs() > 1e-7, denom, torch.where(denom >= 0, 1e-7, -1e-7))
    rev = (1.0 - y_true) * torch.sqrt((y_pred / denom).abs())
    return gce / 0.7 + 0.1 * (rev + torch.cos(y_pred * (y_true - 2.5)))


def _step(fn, y_pred, y_true):
    y_pred.grad = None
    fn(y_pred, y_true).sum().backward()


def median_ratio(fn_a, fn_b, repeats: int) -> tuple[float, float, float]:
    """Median seconds of a and b (alternating, same inputs) and the ratio a/b."""
    gen = torch.Generator().manual_seed(0)
    y_pred = (torch.rand(4096, 10, generator=gen) * 0.98 + 0.01).requires_grad_(True)
    y_true = torch.nn.functional.one_hot(torch.randint(0, 10, (4096,), generator=gen), 10).float()
    torch.testing.assert_close(fn_a(y_pred, y_true), fn_b(y_pred, y_true), rtol=1e-5, atol=1e-5)
    for _ in range(20):
        _step(fn_a, y_pred, y_true)
        _step(fn_b, y_pred, y_true)
    times_a, times_b = [], []
    for _ in range(repeats):
        for fn, times in ((fn_a, times_a), (fn_b, times_b)):
            t0 = time.perf_counter()
            _step(fn, y_pred, y_true)
            times.append(time.perf_counter() - t0)
    a, b = statistics.median(times_a), statistics.median(times_b)
    return a, b, a / b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-torch-compile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{args.threads} threads, {args.repeats} alternating repeats, batch 4096x10 float32")
    print("| expression | nodes | compiled (µs) | hand-written (µs) | ratio |")
    print("|---|---|---|---|---|")
    rows = [("cross-entropy", CE, hand_ce), ("31-node", BIG, hand_big)]
    for label, expr, hand in rows:
        a, b, r = median_ratio(compile_expression(expr), hand, args.repeats)
        print(f"| {label} | {len(parse(expr))} | {a * 1e6:.0f} | {b * 1e6:.0f} | {r:.2f} |")
    if args.no_torch_compile:
        return
    for label, expr, hand in rows:
        try:
            compiled = torch.compile(compile_expression(expr))
            a, b, r = median_ratio(compiled, hand, args.repeats)
        except Exception as exc:  # torch.compile needs a working C++ toolchain
            print(f"| {label} + torch.compile | failed: {type(exc).__name__} | | | |")
            continue
        print(f"| {label} + torch.compile | {len(parse(expr))} | {a * 1e6:.0f} | {b * 1e6:.0f} "
              f"| {r:.2f} |")


if __name__ == "__main__":
    main()
