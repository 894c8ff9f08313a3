"""Multi-fidelity evaluation against full evaluation; figures go to docs/benchmarks.md
(## Multi-fidelity evaluation).

    python benchmarks/multi_fidelity.py [--population 48] [--instances 4] [--seed 0]
        [--rungs 0.111 0.333 1.0] [--keep 0.333] [--threads 1]

The population is the quick-start campaign's generation 0 (experiments/quickstart.toml, its
seed, with `evolution.population` raised), distinct functions only, evaluated on
`digits-sym-0.4-quick` (40 epochs) three ways: full (every candidate, instance and epoch),
successive halving over the epochs (lossevo.evaluation.fidelity), and successive halving with racing
over instances inside each rung (1 instance first, doubling, the upper half goes on). Printed:
model-epochs and wall seconds (probes included), the Spearman rank correlation between each
low rung's scores and the full scores (over the candidates that trained at that rung), and
where the full evaluation's top 3 ended.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import random
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

from lossevo.evaluation.data import load_dataset
from lossevo.evaluation.fidelity import Fidelity, ranking
from lossevo.evaluation.fitness import Evaluation, evaluate_many
from lossevo.evaluation.racing import Racing
from lossevo.evaluation.tasks import Task, load_task
from lossevo.search.config import config_from_mapping, read_toml
from lossevo.search.evolution import initial_expressions
from lossevo.symbolic.expression import canonical_key

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.toml"
TASK = "digits-sym-0.4-quick"


def _load() -> str:
    return Path("/proc/loadavg").read_text()[:14]


def population(n: int, seed: int) -> list[str]:
    """The first n distinct functions (canonical keys) of the quick start's generation 0."""
    data = read_toml(QUICKSTART)
    data["seed"] = seed
    size = n
    while True:
        data["evolution"]["population"] = size
        cfg = config_from_mapping(data)
        distinct: dict[str, str] = {}
        for expr in initial_expressions(cfg, random.Random(cfg.seed)):
            distinct.setdefault(canonical_key(expr, cfg.task.kind,
                                              cfg.task.budget.weight_decay), expr)
        if len(distinct) >= n:
            return list(distinct.values())[:n]
        size += n - len(distinct)


def _timed(losses: list[str], task: Task, **kwargs) -> tuple[list[Evaluation], float]:
    t0 = time.perf_counter()
    evals = evaluate_many(losses, task, device="cpu", **kwargs)
    return evals, time.perf_counter() - t0


def _report(name: str, full: list[Evaluation], evals: list[Evaluation], seconds: float,
            full_seconds: float, fid: Fidelity, epochs: list[int]) -> None:
    spent = sum(e.model_epochs for e in evals)
    total = sum(e.model_epochs for e in full)
    print(f"\n{name}: {spent} model-epochs ({1 - spent / total:.0%} saved), {seconds:.1f} s "
          f"({1 - seconds / full_seconds:.0%} saved)")
    valid = [i for i, e in enumerate(full) if e.rejected is None]
    survivors = {i for i, e in enumerate(evals)
                 if e.fidelity == 1.0 and e.rejected is None and not e.raced_out}
    for r, frac in enumerate(fid.rungs):
        at = [i for i in valid if len(evals[i].extra.get("rung_fitness", [])) > r]
        went_on = sum(1 for i in at if evals[i].fidelity > frac)
        line = (f"  rung {r} ({epochs[r]} epochs): {len(at)} trained, "
                + (f"{went_on} went on" if frac < 1.0 else
                   f"{sum(1 for i in at if i in survivors)} finished every instance"))
        if frac < 1.0 and len(at) > 2:
            rho = spearmanr([evals[i].extra["rung_fitness"][r][0] for i in at],
                            [full[i].fitness[0] for i in at]).statistic
            line += f"; Spearman with full scores {rho:.3f}"
        print(line)
    order = ranking(full)
    top_full, top = order[:3], ranking(evals)[:3]
    print(f"  full top-3 {top_full}: {len(set(top_full) & survivors)}/3 survived to the "
          f"full budget, {len(set(top_full) & set(top))}/3 in the multi-fidelity top-3 {top}")
    print("  full top-3 stopped at rungs "
          + ", ".join(f"{i}: {len(evals[i].extra['rung_fitness']) - 1}" for i in top_full)
          + "; full ranks of the multi-fidelity top-3: "
          + ", ".join(f"{i}: {order.index(i) + 1}" for i in top))
    print(f"  full scores: best {full[order[0]].fitness[0]:.4f}, multi-fidelity best "
          f"{full[top[0]].fitness[0]:.4f}, full ranks 1-5 "
          + ", ".join(f"{full[i].fitness[0]:.4f}" for i in order[:5]))
    gap = max((abs(evals[i].fitness[0] - full[i].fitness[0]) for i in survivors),
              default=0.0)
    print(f"  survivors' last-rung score vs their full evaluation: max |difference| "
          f"{gap:.4f} (batch-shape rounding only: same instances, epochs and seeds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=48)
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rungs", type=float, nargs="+", default=[1 / 9, 1 / 3, 1.0])
    parser.add_argument("--keep", type=float, default=1 / 3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: what a campaign worker uses; on a shared "
                             "CPU more threads than free cores is much slower)")
    args = parser.parse_args()
    if args.population < 3:
        parser.error(f"--population {args.population}; allowed: an integer >= 3")
    torch.set_num_threads(args.threads)
    fid = Fidelity(tuple(args.rungs), args.keep)
    task = load_task(TASK)
    epochs = fid.epochs(task.budget.epochs)
    load_dataset(task)  # not timed: every mode reads the same cached arrays
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, load avg {_load()}")
    t0 = time.perf_counter()
    losses = population(args.population, args.seed)
    print(f"population: {len(losses)} distinct functions of the quick start's generation 0 "
          f"(seed {args.seed}), {time.perf_counter() - t0:.1f} s to draw; task {TASK}, "
          f"{args.instances} instances, rungs {epochs} epochs, keep {args.keep:.3f}")
    opts = {"instances": args.instances, "seed": args.seed}
    full, full_s = _timed(losses, task, **opts)
    rejected = sum(1 for e in full if e.rejected)
    print(f"\nfull: {sum(e.model_epochs for e in full)} model-epochs, {full_s:.1f} s; "
          f"{rejected} rejected by the probes or in training")
    sh, sh_s = _timed(losses, task, fidelity=fid, **opts)
    _report("successive halving", full, sh, sh_s, full_s, fid, epochs)
    racing = Racing(initial=1, growth=2.0, keep_quantile=0.5)
    both, both_s = _timed(losses, task, fidelity=fid, racing=racing, **opts)
    _report(f"successive halving + racing ({dataclasses.asdict(racing)})", full, both, both_s,
            full_s, fid, epochs)
    print(f"\nload avg at the end {_load()}")


if __name__ == "__main__":
    main()
