"""Noisy cubic: a nonzero-mean target noise shifts every prediction unless it is modelled.

y = 2.1 + 3.2x + 1.6x² + 0.9x³ on x ~ U(−2, 2) (the `poly3` data and split of lossevo), with
gaussian target noise N(μ, σ²) per seed. Per (μ, σ) and seed, an MLP 64-64 (the poly3-outliers
budget: Adam lr 3e-3, batch 32, 200 epochs) trains with MSE twice: on the raw noisy targets,
and on the targets minus the estimated noise mean μ̂. Train and clean-test MSE are recorded per
epoch. The noise pattern comes from a first fit, a cubic least-squares fit of the noisy data:
σ̂ from its 5-fold out-of-fold residuals; μ̂ as its offset from a few trusted clean points,
because a constant noise mean is otherwise indistinguishable from the intercept (the residual
mean, also reported, is ~0 whatever μ is). All models train together as one stacked batch.

Run: ``.venv/bin/python experiments/noisy_cubic.py --out docs/results``
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lossevo.evaluation.data import POLY3_RANGE, load_dataset, poly3
from lossevo.evaluation.models import build_module, init_params, stacked_forward
from lossevo.evaluation.noise import corrupt_targets
from lossevo.evaluation.tasks import Task, load_task
from lossevo.evaluation.training import data_orders

SETTINGS = ((0.0, 0.1), (0.0, 0.5), (0.0, 1.0), (3.0, 1.0))
VARIANTS = ("raw", "pattern-subtracted")


@dataclass(frozen=True)
class Pattern:
    """Noise estimates of one noisy training set."""

    mu_hat: float  # offset of the first fit from the trusted clean points
    mu_resid: float  # mean of out-of-fold residuals: blind to a constant shift
    sigma_hat: float  # std of out-of-fold residuals


def task_for(mu: float, sigma: float) -> Task:
    return load_task("poly3-outliers").with_overrides(
        name=f"poly3-gauss-{mu:g}-{sigma:g}",
        noise={"target": "gaussian", "target_mean": mu, "target_sigma": sigma,
               "outlier_fraction": 0.0})


def estimate_pattern(x: np.ndarray, y: np.ndarray, x_trusted: np.ndarray,
                     y_trusted: np.ndarray, degree: int, folds: int,
                     rng: np.random.Generator) -> Pattern:
    """First fit: degree-`degree` least squares. Out-of-fold residuals estimate σ (and show
    that the residual mean cannot see μ: the intercept absorbs it); the fit's mean offset from
    the trusted clean targets estimates μ."""
    fold = rng.permutation(len(x)) % folds
    resid = np.empty_like(y)
    for f in range(folds):
        coef = np.polyfit(x[fold != f], y[fold != f], degree)
        resid[fold == f] = y[fold == f] - np.polyval(coef, x[fold == f])
    coef = np.polyfit(x, y, degree)
    mu_hat = float(np.mean(np.polyval(coef, x_trusted) - y_trusted))
    return Pattern(mu_hat, float(resid.mean()), float(resid.std(ddof=1)))


def run(seeds: int, trusted: int, degree: int, epochs: int | None) -> dict:
    """Train every (setting, seed, variant) model in one stacked batch; per-epoch curves."""
    rows, y_rows, patterns, init_seeds, order_seeds = [], [], {}, [], []
    base = task_for(*SETTINGS[0])
    budget = base.budget if epochs is None else base.with_overrides(
        budget={"epochs": epochs}).budget
    data = load_dataset(base)  # same clean split for every setting
    x_tr = data.x_train[:, 0].astype(np.float64)
    for si, (mu, sigma) in enumerate(SETTINGS):
        task = task_for(mu, sigma)
        for s in range(seeds):
            noise_seed, trust_seed, init_seed, order_seed = np.random.SeedSequence(
                0, spawn_key=(si, s)).generate_state(4)
            y = corrupt_targets(data.y_train, task.noise, np.random.default_rng(noise_seed))
            y = y.astype(np.float64)
            trng = np.random.default_rng(trust_seed)
            x_t = trng.uniform(*POLY3_RANGE, size=trusted)
            pat = estimate_pattern(x_tr, y, x_t, poly3(x_t), degree, 5, trng)
            patterns[(si, s)] = pat
            for variant in VARIANTS:  # both variants share noise, init and data order
                rows.append((si, s, variant))
                y_rows.append(y - (pat.mu_hat if variant != "raw" else 0.0))
                init_seeds.append(init_seed)
                order_seeds.append(order_seed)
    # One affine map per (setting, seed), from its raw noisy targets, for both variants.
    y_all = np.stack(y_rows)
    loc = np.repeat(y_all[0::2].mean(1), 2)[:, None]
    scale = np.repeat(y_all[0::2].std(1), 2)[:, None]
    curves = _train(base, data, (y_all - loc) / scale, loc, scale, init_seeds, order_seeds,
                    budget)
    return {"rows": rows, "patterns": patterns, "curves": curves, "budget": budget,
            "x_train": x_tr, "targets": y_all, "n_test": len(data.x_test),
            "n_validation": len(data.x_val)}


def _train(task: Task, data, y_std: np.ndarray, loc: np.ndarray, scale: np.ndarray,
           init_seeds: list[int], order_seeds: list[int], budget) -> dict[str, np.ndarray]:
    """MSE training of all models; per epoch (0 = init): train MSE against each model's own
    targets, clean-test MSE and clean-test bias (mean prediction error), in original units."""
    dev = torch.device("cpu")
    module = build_module(task.model, 1, 1)
    leaves = {k: v.requires_grad_(True) for k, v in init_params(module, init_seeds,
                                                                  dev).items()}
    opt = torch.optim.Adam(list(leaves.values()), lr=budget.lr)
    x = torch.as_tensor(data.x_train)
    y = torch.as_tensor(y_std, dtype=torch.float32)
    x_te = torch.as_tensor(data.x_test)
    y_te = torch.as_tensor(data.y_test, dtype=torch.float64)
    loc_t, scale_t = torch.as_tensor(loc), torch.as_tensor(scale)
    rows = torch.arange(len(init_seeds)).unsqueeze(1)

    def measure() -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            fit = stacked_forward(module, leaves, x, shared=True).squeeze(-1).double()
            pred = stacked_forward(module, leaves, x_te, shared=True).squeeze(-1).double()
        train = ((fit - y.double()) ** 2).mean(1) * scale_t[:, 0] ** 2
        err = pred * scale_t + loc_t - y_te
        return train.numpy(), (err**2).mean(1).numpy(), err.mean(1).numpy()

    train_curve, test_curve, bias_curve = [], [], []
    for order in [None, *data_orders(order_seeds, len(x), budget.epochs)]:
        if order is not None:
            for start in range(0, len(x), budget.batch_size):
                idx = order[:, start:start + budget.batch_size]
                out = stacked_forward(module, leaves, x[idx], shared=False).squeeze(-1)
                loss = ((out - y[rows, idx]) ** 2).mean(1).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        tr, te, bias = measure()
        train_curve.append(tr)
        test_curve.append(te)
        bias_curve.append(bias)
    grid = torch.linspace(*POLY3_RANGE, 201).unsqueeze(1)
    with torch.no_grad():
        on_grid = stacked_forward(module, leaves, grid, shared=True).squeeze(-1).double()
    return {"train": np.stack(train_curve, 1), "test": np.stack(test_curve, 1),
            "bias": np.stack(bias_curve, 1),
            "grid": grid[:, 0].double().numpy(), "fit": (on_grid * scale_t + loc_t).numpy()}


def _pm(values: np.ndarray, digits: int = 3) -> str:
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def summarize(result: dict) -> list[dict]:
    """Per setting: estimates and final MSEs, mean and std over seeds."""
    rows, pats, curves = result["rows"], result["patterns"], result["curves"]
    table = []
    for si, (mu, sigma) in enumerate(SETTINGS):
        ps = [p for (i, _), p in pats.items() if i == si]
        entry = {"mu": mu, "sigma": sigma,
                 "mu_hat": [p.mu_hat for p in ps], "mu_resid": [p.mu_resid for p in ps],
                 "sigma_hat": [p.sigma_hat for p in ps]}
        for variant in VARIANTS:
            idx = [m for m, (i, _, v) in enumerate(rows) if i == si and v == variant]
            entry[f"test.{variant}"] = curves["test"][idx, -1].tolist()
            entry[f"train.{variant}"] = curves["train"][idx, -1].tolist()
            entry[f"bias.{variant}"] = curves["bias"][idx, -1].tolist()
        table.append(entry)
    return table


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, curves = result["rows"], result["curves"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5), sharex=True)
    epochs = np.arange(curves["test"].shape[1])
    for ax, (si, (mu, sigma)) in zip(axes.flat, enumerate(SETTINGS), strict=True):
        lowest = np.inf
        for variant, color in zip(VARIANTS, ("tab:red", "tab:blue"), strict=True):
            idx = [m for m, (i, _, v) in enumerate(rows) if i == si and v == variant]
            for split, style in (("test", "-"), ("train", ":")):
                c = curves[split][idx]
                m, sd = c.mean(0), c.std(0)
                lowest = min(lowest, float(m.min()))
                ax.plot(epochs, m, style, color=color, label=f"{variant}, {split}")
                ax.fill_between(epochs, np.maximum(m - sd, 1e-9), m + sd, color=color,
                                alpha=0.15, lw=0)
        ax.axhline(sigma**2, color="grey", lw=0.8, ls="--", label="σ² (noise floor)")
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.3 * lowest)  # a band reaching below 0 is cut at the axis
        ax.set_title(f"μ = {mu:g}, σ = {sigma:g}")
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel("MSE (original units)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("MLP 64-64 on the noisy cubic: clean-test (solid) and train (dotted) MSE, "
                 "mean ± std over seeds (bands cut at the axis)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_fits(result: dict, path: Path) -> None:
    """Seed 0 of each setting: noisy training targets, the clean cubic, both final fits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, curves = result["rows"], result["curves"]
    grid = curves["grid"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5), sharex=True)
    for ax, (si, (mu, sigma)) in zip(axes.flat, enumerate(SETTINGS), strict=True):
        raw = rows.index((si, 0, "raw"))
        ax.scatter(result["x_train"], result["targets"][raw], s=3, color="grey", alpha=0.4,
                   label="noisy training targets")
        ax.plot(grid, poly3(grid), "k-", lw=1.2, label="clean cubic")
        for variant, color in zip(VARIANTS, ("tab:red", "tab:blue"), strict=True):
            m = rows.index((si, 0, variant))
            ax.plot(grid, curves["fit"][m], "--", color=color, lw=1.2, label=f"MLP, {variant}")
        ax.set_title(f"μ = {mu:g}, σ = {sigma:g} (seed 0)")
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("x")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(table: list[dict], result: dict, args: argparse.Namespace, seconds: float) -> str:
    b = result["budget"]
    lines = [
        "| μ | σ | μ̂ (trusted points) | residual mean | σ̂ | clean-test MSE, raw "
        "| clean-test MSE, pattern-subtracted | clean-test bias, raw "
        "| clean-test bias, pattern-subtracted | train MSE, raw |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in table:
        lines.append(
            f"| {e['mu']:g} | {e['sigma']:g} | {_pm(e['mu_hat'])} | {_pm(e['mu_resid'])} "
            f"| {_pm(e['sigma_hat'])} | {_pm(e['test.raw'], 4)} "
            f"| {_pm(e['test.pattern-subtracted'], 4)} | {_pm(e['bias.raw'])} "
            f"| {_pm(e['bias.pattern-subtracted'])} | {_pm(e['train.raw'], 4)} |")
    return "\n".join([
        f"Setup: {args.seeds} seeds per setting, MLP 64-64 (ReLU), Adam lr {b.lr:g}, batch "
        f"{b.batch_size}, {b.epochs} epochs, MSE on targets standardized by the raw noisy "
        f"targets' mean and std; {len(result['x_train'])} train / {result['n_test']} clean test "
        f"points (poly3 split, seed 0; the {result['n_validation']} validation points are not "
        "used: nothing is chosen here); "
        f"{args.trusted} trusted clean points per seed; first fit: degree-{args.degree} least "
        f"squares, 5-fold. Wall time {seconds:.0f} s on this machine (1 thread).",
        "", *lines, ""])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trusted", type=int, default=10,
                        help="clean reference points used to estimate the noise mean")
    parser.add_argument("--degree", type=int, default=3, help="degree of the first fit")
    parser.add_argument("--epochs", type=int, default=None, help="default: the task's 200")
    args = parser.parse_args(argv)
    for key in ("seeds", "trusted", "degree"):
        if getattr(args, key) < 1:
            raise ValueError(f"--{key} = {getattr(args, key)}; allowed: an integer >= 1")
    torch.set_num_threads(1)
    started = time.perf_counter()
    result = run(args.seeds, args.trusted, args.degree, args.epochs)
    seconds = time.perf_counter() - started
    table = summarize(result)
    fig_dir = args.out / "noisy_cubic"
    fig_dir.mkdir(parents=True, exist_ok=True)
    plot(result, fig_dir / "loss_per_epoch.png")
    plot_fits(result, fig_dir / "fits.png")
    (fig_dir / "summary.json").write_text(json.dumps(table, indent=1) + "\n")
    (fig_dir / "table.md").write_text(markdown(table, result, args, seconds))
    print(markdown(table, result, args, seconds))


if __name__ == "__main__":
    main()
