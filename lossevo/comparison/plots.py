"""PNG plots of a comparison (matplotlib Agg): per-environment bars, box plots over
instances, and scores against the noise rate for tasks that differ only in that rate."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lossevo.comparison.config import CompareConfig
from lossevo.symbolic.kinds import TaskKind

__all__ = ["write_plots"]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _save(fig: Any, path: Path) -> str:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(path)  # never a half-written PNG under the final name
    return path.name


def _env_bars(plt: Any, rows: list[dict[str, Any]], task: str, out: Path) -> str:
    ok = sorted((r for r in rows if r["task"] == task and r["status"] == "ok"),
                key=lambda r: -r["worst_env"])
    envs = list(ok[0]["envs"])
    width = 0.8 / len(envs)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(ok) + 2), 3.8))
    for j, env in enumerate(envs):
        ax.bar([i + j * width for i in range(len(ok))], [r["envs"][env] for r in ok],
               width, label=env)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(ok))],
                  [r["contender"] for r in ok], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(f"mean {ok[0]['metric']}")
    top = max(max(r["envs"].values()) for r in ok)
    ax.set_ylim(top=top + 0.2 * abs(top))  # room for the legend above the bars
    ax.set_title(f"{task}: per environment", fontsize=9)
    ax.legend(fontsize=7, ncol=len(envs))
    fig.tight_layout()
    name = _save(fig, out / f"{_safe(task)}-environments.png")
    plt.close(fig)
    return name


def _boxes(plt: Any, rows: list[dict[str, Any]], task: str, out: Path) -> str:
    ok = sorted((r for r in rows if r["task"] == task and r["status"] == "ok"),
                key=lambda r: -r["worst_env"])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(ok) + 2), 3.6))
    ax.boxplot([r["instances"]["worst_env"] for r in ok])
    ax.set_xticks(range(1, len(ok) + 1), [r["contender"] for r in ok], rotation=60,
                  ha="right", fontsize=7)
    ax.set_ylabel(f"worst-env {ok[0]['metric']} per instance")
    ax.set_title(f"{task}: over instances", fontsize=9)
    fig.tight_layout()
    name = _save(fig, out / f"{_safe(task)}-instances.png")
    plt.close(fig)
    return name


def _noise_groups(cfg: CompareConfig) -> dict[tuple[str, str], list[Any]]:
    """Tasks of the same dataset and label-noise type, one group per pair."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for t in cfg.tasks:
        if t.kind is TaskKind.CLASSIFICATION:
            groups.setdefault((t.dataset.value, t.noise.labels.value), []).append(t)
    return groups


def _noise_plot(plt: Any, rows: list[dict[str, Any]], key: tuple[str, str], tasks: list[Any],
                out: Path) -> str:
    tasks = sorted(tasks, key=lambda t: t.noise.rate)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    labels = list(dict.fromkeys(r["contender"] for r in rows))
    for i, label in enumerate(labels):
        pts = [(t.noise.rate, r) for t in tasks for r in rows
               if r["task"] == t.name and r["contender"] == label and r["status"] == "ok"]
        if not pts:
            continue
        style = "-" if not pts[0][1]["evolved"] else "--"
        for ax, field in zip(axes, ("clean", "worst_env"), strict=True):
            ax.plot([p for p, _ in pts], [r[field] for _, r in pts], style, marker="o",
                    color=plt.cm.tab20(i % 20), label=label)
    for ax, title in zip(axes, ("clean", "worst environment"), strict=True):
        ax.set_xlabel(f"{key[1]} label-noise rate")
        ax.set_title(f"{key[0]}: {title}", fontsize=9)
    axes[0].set_ylabel("mean accuracy")
    axes[1].legend(fontsize=6, ncol=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    name = _save(fig, out / f"noise-{_safe(key[0])}-{_safe(key[1])}.png")
    plt.close(fig)
    return name


def write_plots(cfg: CompareConfig, rows: list[dict[str, Any]],
                out: Path) -> dict[str, list[str]]:
    """{task: its plot files, "": cross-task plots, "notes": why a plot was skipped}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    plots: dict[str, list[str]] = {"": [], "notes": []}
    for task in cfg.tasks:
        if any(r["task"] == task.name and r["status"] == "ok" for r in rows):
            plots[task.name] = [_env_bars(plt, rows, task.name, out),
                                _boxes(plt, rows, task.name, out)]
    for key, tasks in _noise_groups(cfg).items():
        rates = {t.noise.rate for t in tasks}
        if len(rates) < 2:
            plots["notes"].append(f"No noise-rate plot for {key[0]} with {key[1]} noise: only "
                                  f"one rate ({', '.join(f'{r:g}' for r in sorted(rates))}).")
            continue
        plots[""].append(_noise_plot(plt, rows, key, tasks, out))
    return plots
