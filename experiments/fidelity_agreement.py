"""How well a campaign's low fidelity rungs ranked the candidates that reached the full budget.

Reads the run directory's checkpoint (no training): every cached function that reached the
last rung carries its first fitness component at each rung (``rung_fitness``). Prints the
Spearman correlation of each lower rung with the last one, and the mean score per rung.

    python experiments/fidelity_agreement.py runs/discovery
"""

from __future__ import annotations

import argparse
import statistics

from scipy.stats import spearmanr

from lossevo.search.store import CheckpointError, RunStore


def rung_scores(run_dir: str) -> list[list[float]]:
    """First fitness component per rung, for each valid function that reached the last rung."""
    try:
        state = RunStore(run_dir).load_checkpoint()
    except CheckpointError as exc:
        raise SystemExit(f"fidelity_agreement: {exc}") from None
    out = []
    for result in state["cache"].values():
        rungs = result.get("rung_fitness")
        if result.get("rejected") or not rungs or result.get("fidelity") != 1.0:
            continue
        out.append([float(r[0]) for r in rungs])
    depth = max((len(r) for r in out), default=0)
    return [r for r in out if len(r) == depth]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    args = ap.parse_args()
    rows = rung_scores(args.run_dir)
    if len(rows) < 3:
        raise SystemExit(f"{args.run_dir}: {len(rows)} functions reached the last rung with "
                         "rung scores; need at least 3 (was [fidelity] enabled?)")
    last = [r[-1] for r in rows]
    print(f"{len(rows)} functions reached the last of {len(rows[0])} rungs")
    for i in range(len(rows[0]) - 1):
        rho = spearmanr([r[i] for r in rows], last)[0]
        print(f"rung {i} vs last: Spearman {rho:+.3f}")
    means = " → ".join(f"{statistics.mean(r[i] for r in rows):.3f}" for i in range(len(rows[0])))
    print(f"mean score per rung: {means}")


if __name__ == "__main__":
    main()
