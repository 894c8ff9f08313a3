"""Compare a quick-start run's best loss with cross-entropy on fresh instances.

The campaign selected its losses on instances drawn from seed 0; this re-evaluates the top
candidates and cross-entropy on new instances (another seed) of the same task and budget, so
the comparison is not flattered by selection. Writes docs/results/quickstart.md.

Run: ``.venv/bin/python experiments/quickstart_check.py runs/quickstart``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from lossevo.campaign import load_run_config
from lossevo.fitness import evaluate_many
from lossevo.report import status
from lossevo.store import RunStore
from lossevo.symbolic import to_sympy

CE = "mul(-1.0, mul(y_true, log(y_pred)))"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--output", type=Path, default=Path("docs/results/quickstart.md"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    cfg, _ = load_run_config(RunStore(args.run_dir))
    info = status(args.run_dir)
    top = [r["expression"] for r in info["hall_of_fame"][: args.top]]
    contenders = [("cross-entropy", CE)] + [(f"evolved #{i}", e) for i, e in enumerate(top, 1)
                                            if e != CE]
    t0 = time.perf_counter()
    evals = evaluate_many([e for _, e in contenders], cfg.task, instances=args.instances,
                          seed=args.seed)
    seconds = time.perf_counter() - t0
    envs = [env.name for env in cfg.task.environments] + ["worst_env"]
    lines = [
        "# Quick start: evolved losses against cross-entropy", "",
        f"Run: `make demo` / `lossevo run experiments/quickstart.toml` (seed {cfg.seed}); "
        f"{info['generation']} generations, {info['evaluations']} candidates trained, "
        f"{info['cache_hits']} cache hits, {info['rejections']} rejected.", "",
        f"Re-evaluated on {args.instances} fresh instances (seed {args.seed}, not used during "
        f"selection) of task `{cfg.task.name}` with the campaign's budget "
        f"({cfg.task.budget.epochs} epochs, lr {cfg.task.budget.lr}, batch "
        f"{cfg.task.budget.batch_size}). Test accuracy, mean ± std over instances "
        f"({seconds:.0f} s). Command: "
        f"`.venv/bin/python experiments/quickstart_check.py {args.run_dir}`.", "",
        "| loss | " + " | ".join(envs) + " | expression |",
        "|---|" + "---|" * (len(envs) + 1),
    ]
    for (name, expr), ev in zip(contenders, evals, strict=True):
        if ev.rejected:
            lines.append(f"| {name} | rejected: {ev.rejected} |")
            continue
        cells = [f"{100 * ev.metrics[f'accuracy.{e}.mean']:.1f} ± "
                 f"{100 * ev.metrics[f'accuracy.{e}.std']:.1f}" for e in envs]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | `{to_sympy(expr)}` |")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
