"""Reports on a run directory: status summary, report.md with PNG plots, top-N table.

Everything here reads the run directory only (checkpoint and SQLite, through
lossevo.search.store as typed records), so it works on a finished run, a running one (last
complete generation) and a crashed one alike. ``status`` gives plain data: it is what
``lossevo status --json`` prints.

With multi-fidelity evaluation (lossevo.evaluation.fidelity) a candidate's scores may come from a
fraction of the epochs; a 1/9-budget score is not comparable with a full one, so every table shows
the ``fidelity`` reached and marks the partial ones. Records without it trained on the full budget.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from lossevo.search.records import CandidateRecord, Json
from lossevo.search.state import CampaignState
from lossevo.search.store import RunStore, reason_class
from lossevo.symbolic.expression import to_latex, to_sympy

__all__ = ["status", "write_report"]

_PARTIAL_NOTE = ("fidelity is the share of the epoch budget a score comes from; below 1 the "
                 "candidate was stopped at a low rung of multi-fidelity evaluation, and its "
                 "score is not comparable with a full-budget one")


def _budget(fidelity: float) -> str:
    return "full" if fidelity >= 1.0 else f"{fidelity:.3g}"


def status(run_dir: str | Path) -> Json:
    """Generation, counters and hall of fame of the last complete generation, as plain data
    (each hall-of-fame entry: expression, fitness, size, metrics, sympy, fidelity)."""
    store = RunStore(run_dir)
    state = store.load_state()
    return {
        "run": str(store.root),
        "generation": state.generation,
        "evaluations": state.counters["evaluated"],
        "cache_hits": state.counters["hits"],
        "rejections": state.counters["rejected"],
        "hall_of_fame": [
            {"expression": r.expression, "fitness": list(r.fitness), "size": r.size,
             "metrics": r.metrics, "sympy": str(to_sympy(r.expression)),
             "fidelity": float(r.fidelity)}
            for r in state.hall_of_fame
        ],
    }


def format_status(info: Json) -> str:
    """The text of ``lossevo status``, from :func:`status`'s plain data."""
    lines = [f"run {info['run']}: generation {info['generation']}, "
             f"{info['evaluations']} evaluations, {info['cache_hits']} cache hits, "
             f"{info['rejections']} rejections", "hall of fame:"]
    hof = info["hall_of_fame"]
    partial = any(r["fidelity"] < 1.0 for r in hof)  # only then the column: most runs have none
    for i, r in enumerate(hof, 1):
        fit = ", ".join(f"{v:.4f}" for v in r["fitness"])
        budget = f" fidelity {_budget(r['fidelity']):>5}" if partial else ""
        lines.append(f"  {i:2d}. ({fit}) size {r['size']:2d}{budget}  {r['expression']}")
    if partial:
        lines.append(f"  ({_PARTIAL_NOTE})")
    return "\n".join(lines)


def _plots(store: RunStore, state: CampaignState, records: list[CandidateRecord]
           ) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = store.plots_path
    out.mkdir(exist_ok=True)
    names = []
    hist = state.history
    gens = [h["generation"] for h in hist]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(gens, [h["best"] for h in hist], marker="o", label="best (hall of fame)")
    ax.plot(gens, [h["median"] for h in hist], marker=".", label="median (population)")
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness[0]")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "fitness.png", dpi=110)
    names.append("fitness.png")
    plt.close(fig)

    valid = [r for r in records if not r.rejected]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    full = [r for r in valid if r.fidelity >= 1.0]
    ax.scatter([r.size for r in full], [r.fitness[0] for r in full], s=10, alpha=0.4,
               label="candidates")
    partial = [r for r in valid if r.fidelity < 1.0]
    if partial:  # kept apart: their scores come from fewer epochs
        ax.scatter([r.size for r in partial], [r.fitness[0] for r in partial], s=10,
                   alpha=0.4, marker="x", color="C7", label="partial budget (fidelity < 1)")
    front = state.pareto
    ax.step([r.size for r in front], [r.fitness[0] for r in front], where="post",
            color="C3", marker="o", label="Pareto front")
    ax.set_xlabel("expression size (nodes)")
    ax.set_ylabel("fitness[0]")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "pareto.png", dpi=110)
    names.append("pareto.png")
    plt.close(fig)

    reasons = Counter(reason_class(r.rejected) for r in records if r.rejected)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if reasons:
        labels, counts = zip(*reasons.most_common(), strict=True)
        ax.barh(labels, counts)
    ax.set_xlabel("rejected candidates")
    fig.tight_layout()
    fig.savefig(out / "rejections.png", dpi=110)
    names.append("rejections.png")
    plt.close(fig)
    return names


def write_report(run_dir: str | Path, top: int = 10) -> Path:
    """Write report.md and plots/*.png into the run directory; returns the report path."""
    store = RunStore(run_dir)
    state = store.load_state()
    records = store.records()
    plots = _plots(store, state, records)
    info = status(run_dir)
    trained = [r for r in records if r.status == "ok"]
    stopped = sum(1 for r in trained if r.fidelity < 1.0)
    lines = [
        f"# lossevo run report: {store.root.name}", "",
        f"Generations completed: {info['generation']}. Candidates evaluated: "
        f"{info['evaluations']} (plus {info['cache_hits']} cache hits); rejected: "
        f"{info['rejections']}.", "",
    ]
    if stopped:
        lines += [f"Multi-fidelity evaluation: {stopped} of {len(trained)} trained candidates "
                  f"stopped below the full epoch budget.", ""]
    lines += [
        "## Top candidates", "",
        "| rank | fitness | fidelity | size | expression | sympy | LaTeX |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(state.hall_of_fame[:top], 1):
        fit = ", ".join(f"{v:.4f}" for v in r.fitness)
        fid = r.fidelity
        budget = _budget(fid) if fid >= 1.0 else f"**{_budget(fid)}** (partial)"
        lines.append(f"| {i} | {fit} | {budget} | {r.size} | `{r.expression}` | "
                     f"`{to_sympy(r.expression)}` | ${to_latex(r.expression)}$ |")
    lines += ["", f"The {_PARTIAL_NOTE}."]
    lines += ["", "## Plots", ""]
    lines += [f"![{name}]({store.plots_path.name}/{name})" for name in plots]
    rungs = any(h.get("rungs") for h in state.history)
    lines += ["", "## Generations", "", "| generation | evaluated | cache hits | rejected | "
              "best | median | seconds |" + (" trained per rung |" if rungs else ""),
              "|---|---|---|---|---|---|---|" + ("---|" if rungs else "")]
    for h in state.history:
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        per_rung = "→".join(str(n) for n, _ in h.get("rungs") or []) or "-"
        lines.append(f"| {h['generation']} | {h['evaluated']} | {h['hits']} | {h['rejected']} | "
                     f"{fmt(h['best'])} | {fmt(h['median'])} | {h['seconds']:.1f} |"
                     + (f" {per_rung} |" if rungs else ""))
    store.report_path.write_text("\n".join(lines) + "\n")
    return store.report_path
