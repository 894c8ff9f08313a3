"""DRO solver benchmark: exact structured solvers vs cvxpy (Clarabel) vs the reference figures.

Data (issue 5): make_classification(n, d, n_informative=max(2, d//5), n_redundant=0,
flip_y=0.05, class_sep=1.0, random_state=0), standardized, labels ±1, radius 0.1.
Prints markdown tables: exact solvers (seconds = best of --repeat fits), and the first-order
torch path at N = 10^6 with its objective gap to the exact solutions.

    .venv/bin/python benchmarks/dro.py                # full run (includes N = 10^6)
    .venv/bin/python benchmarks/dro.py --big-n 0      # exact table only
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named dro.py: run as a script, its folder would shadow the `dro` package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from dro.convex.losses import loss_spec  # noqa: E402
from dro.convex.solve import fit_linear_dro  # noqa: E402

# Measured on a 2-core CPU machine of this project's kind: ../shared/REFERENCE.md
# ("DRO peers"), PyPI `dro` 0.4.3 with cvxpy+Clarabel. (seconds as printed there, objective)
REFERENCE = {
    ("wasserstein", 1000, 10): ("0.06", 0.4901),
    ("wasserstein", 1000, 50): ("0.14", 0.6431),
    ("wasserstein", 5000, 10): ("0.39", 0.4548),
    ("wasserstein", 5000, 50): ("1.2–2.4", 0.6437),
    ("chi2", 1000, 10): ("0.10", 0.4248),
    ("chi2", 1000, 50): ("0.19", 0.6548),
    ("chi2", 5000, 10): ("0.87", 0.3478),
    ("chi2", 5000, 50): ("3.9", 0.6557),
}


def dataset(n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(
        n, d, n_informative=max(2, d // 5), n_redundant=0, flip_y=0.05, class_sep=1.0,
        random_state=0,
    )
    return StandardScaler().fit_transform(X), 2.0 * y - 1.0


def timed_fit(X, y, formulation: str, solver: str, repeat: int):
    best, fit = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        fit = fit_linear_dro(
            X, y, formulation=formulation, spec=loss_spec("classification", "logistic"),
            radius=0.1, solver=solver,
        )
        best = min(best, time.perf_counter() - t)
    return best, fit


def _ref_seconds(s: str) -> float:
    return float(s.split("–")[0])  # the fastest reference time (most favourable to it)


def exact_table(sizes, repeat: int, cvxpy_max_n: int) -> dict:
    print("| method | N×d | solver | seconds | objective | rel. diff vs Clarabel "
          "| reference (`dro` 0.4.3) s / objective | speed-up vs reference |")
    print("|---|---|---|---|---|---|---|---|")
    exact = {}
    for form, label in (("wasserstein", "Wasserstein logistic κ=∞ ℓ2"), ("chi2", "χ² logistic")):
        for n, d in sizes:
            X, y = dataset(n, d)
            t_fast, fast = timed_fit(X, y, form, "lbfgs", repeat)
            exact[(form, n, d)] = fast.objective
            ref_t, ref_obj = REFERENCE[(form, n, d)]
            rows = [("lbfgs (structured)", t_fast, fast)]
            clar = None
            if n <= cvxpy_max_n:
                t_c, clar = timed_fit(X, y, form, "CLARABEL", 1)
                rows.append(("cvxpy Clarabel", t_c, clar))
            for name, t, fit in rows:
                rel = "" if clar is None else f"{fit.objective / clar.objective - 1:.1e}"
                print(f"| {label} | {n}×{d} | {name} | {t:.3f} | {fit.objective:.6f} | {rel} "
                      f"| {ref_t} / {ref_obj:.4f} | {_ref_seconds(ref_t) / t:.1f}× |")
    return exact


def first_order_table(big_n: int, d: int, sizes, exact: dict, repeat: int) -> None:
    print("\n| method | N×d | torch path seconds | objective | exact objective (solver) "
          "| gap (torch − exact) |")
    print("|---|---|---|---|---|---|")
    for form, label in (("wasserstein", "Wasserstein logistic κ=∞ ℓ2"), ("chi2", "χ² logistic")):
        for n, dd in [*sizes, (big_n, d)] if big_n else sizes:
            X, y = dataset(n, dd)
            t, fit = timed_fit(X, y, form, "torch", 1 if n > 10**5 else repeat)
            if (form, n, dd) in exact:
                ref, how = exact[(form, n, dd)], "lbfgs (scipy)"
            else:
                t_ex, ex = timed_fit(X, y, form, "lbfgs", 1)
                ref, how = ex.objective, f"lbfgs (scipy, {t_ex:.1f} s)"
            print(f"| {label} | {n}×{dd} | {t:.2f} | {fit.objective:.8f} | {ref:.8f} ({how}) "
                  f"| {fit.objective - ref:.1e} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="fits per timing (best is kept)")
    ap.add_argument("--cvxpy-max-n", type=int, default=5000, help="largest N run with Clarabel")
    ap.add_argument("--big-n", type=int, default=10**6, help="N for the torch path (0: skip)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, torch threads "
          f"{torch.get_num_threads()}, torch {torch.__version__}, numpy {np.__version__}\n")
    sizes = [(1000, 10), (1000, 50), (5000, 10), (5000, 50)]
    exact = exact_table(sizes, args.repeat, args.cvxpy_max_n)
    first_order_table(args.big_n, 50, [(5000, 50)], exact, args.repeat)


if __name__ == "__main__":
    main()
