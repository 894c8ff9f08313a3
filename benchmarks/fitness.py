"""Fitness engine benchmarks; figures go to docs/benchmarks.md (## Fitness) and docs/tasks.md.

    python benchmarks/fitness.py speed [--epochs 150] [--instances 8] [--fused-baseline]
        batched evaluation vs a plain-torch loop training the same models one after another
        (same init weights, data order, labels, epochs, batch size, Adam): time and accuracy
    python benchmarks/fitness.py population [--candidates 32] [--instances 4] [--task T]
        candidates per minute of evaluate_many on one device
    python benchmarks/fitness.py reference [--instances 3] [--task digits-sym-0.4]
        CE and GCE(q=0.7) as expressions against docs' reference table (last-epoch accuracy)
    python benchmarks/fitness.py racing [--candidates 16] [--instances 4]
        trainings saved by racing, and whether it keeps the full evaluation's top candidates
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from lossevo.evaluation.data import load_dataset
from lossevo.evaluation.fitness import _instance_data, _instance_seeds, evaluate, evaluate_many
from lossevo.evaluation.models import build_module, init_params, stacked_forward
from lossevo.evaluation.racing import Racing
from lossevo.evaluation.tasks import load_task
from lossevo.evaluation.training import Group, data_orders, train_models

CE = "mul(-1.0, mul(y_true, log(y_pred)))"
GCE = "div(mul(y_true, sub(1.0, exp(mul(0.7, log(y_pred))))), 0.7)"
MAE = "mul(y_true, sub(1.0, y_pred))"


def population(n: int) -> list[str]:
    """n distinct, valid candidates: GCE at several q, scaled CE and MAE, CE+MAE mixtures."""
    out = [CE, GCE, MAE]
    for q in np.linspace(0.1, 0.95, 12):
        out.append(f"div(mul(y_true, sub(1.0, exp(mul({q:.3f}, log(y_pred))))), {q:.3f})")
    for lam in np.linspace(0.1, 3.0, 12):
        out.append(f"add(mul(-1.0, mul(y_true, log(y_pred))), mul({lam:.3f}, {MAE}))")
    for c in np.linspace(0.5, 3.0, 12):
        out.append(f"mul({c:.3f}, {MAE})")
    return out[:n]


def _machine() -> str:
    return (f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
            f"threads {torch.get_num_threads()}, load avg {open('/proc/loadavg').read()[:14]}")


def speed(args: argparse.Namespace) -> None:
    task = load_task(args.task).with_overrides(budget={"epochs": args.epochs})
    data = load_dataset(task)
    k = args.instances
    seeds = [_instance_seeds(args.seed, i) for i in range(k)]
    labels = np.stack([_instance_data(task, args.seed, i)[1] for i in range(k)])
    module = build_module(task.model, data.n_features, data.n_classes)
    params = init_params(module, [s[1] for s in seeds], torch.device("cpu"))
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(labels)
    xt, yt = torch.as_tensor(data.x_test), torch.as_tensor(data.y_test)
    b = task.budget

    def ce(out: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(out, tgt, reduction="none")

    t0 = time.perf_counter()
    res = train_models(module, params, x, y, [Group(ce, 0, k)], b, [s[2] for s in seeds], True)
    batched = time.perf_counter() - t0
    with torch.no_grad():
        acc_b = (stacked_forward(module, res.params, xt, True).argmax(-1) == yt).double().mean(1)

    # The straightforward loop: one nn.Sequential and one torch.optim.Adam per model.
    t0 = time.perf_counter()
    acc_s = []
    for i in range(k):
        net = torch.nn.Sequential(*[
            type(m)(m.in_features, m.out_features) if isinstance(m, torch.nn.Linear)
            else torch.nn.ReLU() for m in module
        ])
        with torch.no_grad():
            for name, p in net.named_parameters():
                p.copy_(params[name][i])
        opt = torch.optim.Adam(net.parameters(), lr=b.lr, fused=args.fused_baseline or None)
        for order in data_orders([seeds[i][2]], len(y[i]), b.epochs):
            for start in range(0, len(order[0]), b.batch_size):
                idx = order[0, start:start + b.batch_size]
                loss = torch.nn.functional.cross_entropy(net(x[idx]), y[i, idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            acc_s.append(float((net(xt).argmax(-1) == yt).double().mean()))
    sequential = time.perf_counter() - t0

    t0 = time.perf_counter()
    ev = evaluate(CE, task, instances=k, seed=args.seed, device="cpu")
    full = time.perf_counter() - t0
    print(f"machine: {_machine()}")
    print(f"task {task.name}, {k} instances, {b.epochs} epochs, batch {b.batch_size}, lr {b.lr}")
    print(f"sequential plain-torch loop (Adam fused={args.fused_baseline}): {sequential:.1f} s, "
          f"clean acc {np.round(acc_s, 3)}")
    print(f"batched training (stacked): {batched:.1f} s, clean acc {np.round(acc_b.numpy(), 3)}")
    print(f"speed-up (training only):    {sequential / batched:.2f}x")
    print(f"full evaluate() incl. probes, {len(task.environments)} environments: {full:.1f} s, "
          f"accuracy.clean.mean {ev.metrics['accuracy.clean.mean']:.3f}")


def run_population(args: argparse.Namespace) -> None:
    task = load_task(args.task)
    if args.epochs:
        task = task.with_overrides(budget={"epochs": args.epochs})
    losses = population(args.candidates)
    t0 = time.perf_counter()
    evs = evaluate_many(losses, task, instances=args.instances, seed=args.seed, device=args.device)
    dt = time.perf_counter() - t0
    rejected = sum(e.rejected is not None for e in evs)
    print(f"machine: {_machine()}, device {args.device or 'auto'}")
    print(f"task {task.name} ({task.budget}), {args.candidates} candidates x {args.instances} "
          f"instances: {dt:.1f} s, {60 * args.candidates / dt:.1f} candidates/min, "
          f"{rejected} rejected")


def reference(args: argparse.Namespace) -> None:
    task = load_task(args.task)
    t0 = time.perf_counter()
    evs = evaluate_many([CE, GCE, MAE], task, instances=args.instances, seed=args.seed)
    dt = time.perf_counter() - t0
    print(f"machine: {_machine()}; {task.name}, {args.instances} instances, {dt:.0f} s")
    for name, ev in zip(("CE", "GCE q=0.7", "MAE"), evs, strict=True):
        clean = np.array(ev.per_instance["accuracy"]["clean"]) * 100
        print(f"{name:10s} clean acc {clean.mean():.1f} ± {clean.std():.1f} "
              f"(per instance {np.round(clean, 1)}), worst-env mean "
              f"{100 * ev.metrics['accuracy.worst_env.mean']:.1f}, fitness "
              f"{tuple(round(f, 4) for f in ev.fitness)}")


def racing(args: argparse.Namespace) -> None:
    task = load_task(args.task)
    losses = population(args.candidates)
    t0 = time.perf_counter()
    full = evaluate_many(losses, task, instances=args.instances, seed=args.seed)
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    raced = evaluate_many(losses, task, instances=args.instances, seed=args.seed,
                          racing=Racing(initial=1, growth=2.0, keep_quantile=0.5))
    t_race = time.perf_counter() - t0
    top = args.top
    rank_full = sorted(range(len(losses)), key=lambda i: full[i].fitness, reverse=True)[:top]
    finished = [i for i, e in enumerate(raced) if not e.raced_out and e.rejected is None]
    rank_race = sorted(finished, key=lambda i: raced[i].fitness, reverse=True)[:top]
    used, all_ = sum(e.trainings for e in raced), sum(e.trainings for e in full)
    print(f"machine: {_machine()}; {task.name}, {len(losses)} candidates x {args.instances}")
    print(f"full: {all_} trainings, {t_full:.0f} s; racing: {used} trainings, {t_race:.0f} s "
          f"({100 * (1 - used / all_):.0f}% saved), {len(finished)} finished")
    print(f"top-{top} full   {rank_full}")
    print(f"top-{top} racing {rank_race}; overlap {len(set(rank_full) & set(rank_race))}/{top}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("mode", choices=["speed", "population", "reference", "racing"])
    p.add_argument("--task", default="")
    p.add_argument("--epochs", type=int, default=0)
    p.add_argument("--instances", type=int, default=0)
    p.add_argument("--candidates", type=int, default=32)
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fused-baseline", action="store_true",
                   help="speed: give the sequential loop torch's fused Adam too")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    defaults = {"speed": ("digits-sym-0.4", 150, 8), "population": ("digits-sym-0.4-quick", 0, 4),
                "reference": ("digits-sym-0.4", 0, 3), "racing": ("digits-sym-0.4-quick", 0, 4)}
    task, epochs, inst = defaults[args.mode]
    args.task = args.task or task
    args.epochs = args.epochs or epochs
    args.instances = args.instances or inst
    {"speed": speed, "population": run_population, "reference": reference,
     "racing": racing}[args.mode](args)


if __name__ == "__main__":
    main()
