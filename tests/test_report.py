"""Status and report of a run directory: a score from a fraction of the epochs is marked."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from lossevo.search.report import format_status, status, write_report
from lossevo.search.store import RunStore

FULL = "mul(-1.0, mul(y_true, log(y_pred)))"
PARTIAL = "mul(y_true, sub(1.0, y_pred))"
REJECTED = "div(y_pred, y_true)"


def _record(i: int, expression: str, fitness: float, **extra: Any) -> dict[str, Any]:
    return {"id": i, "generation": 0, "expression": expression, "canonical_key": expression,
            "size": 5, "parents": [], "operator": "init", "fitness": [fitness],
            "metrics": {}, "status": "ok", "reason": None, "seconds": 0.1, "worker": "w0",
            **extra}


def _run_dir(root: Path, *, partial: bool, rungs: bool = False) -> Path:
    """A run directory written the way a campaign writes one, without training anything: the
    full-budget record carries no ``fidelity`` (as in runs from before multi-fidelity)."""
    store = RunStore(root)
    store.create("task = \"digits-sym-0.4\"\n")
    full = _record(0, FULL, 0.6)
    other = _record(1, PARTIAL, 0.5, **({"fidelity": 0.111} if partial else {}))
    rejected = _record(2, REJECTED, float("-inf"), status="rejected", reason="scale: huge",
                       fidelity=0.111)
    store.record([full, other, rejected])
    history = {"generation": 0, "evaluated": 3, "hits": 0, "rejected": 1, "best": 0.6,
               "median": 0.55, "seconds": 1.0, **({"rungs": [[2, 1], [1, 1]]} if rungs else {})}
    store.save_checkpoint({
        "generation": 0, "population": [full, other], "hall_of_fame": [full, other],
        "pareto": [full], "cache": {}, "next_id": 3, "history": [history],
        "counters": {"evaluated": 3, "hits": 0, "rejected": 1}, "rng": {}})
    return root


def test_status_gives_each_entry_its_fidelity_missing_as_full(tmp_path):
    info = status(_run_dir(tmp_path / "run", partial=True))
    assert [r["fidelity"] for r in info["hall_of_fame"]] == [1.0, 0.111]
    text = format_status(info)
    full_line, partial_line = (line for line in text.splitlines() if "size" in line)
    assert "fidelity  full" in full_line and FULL in full_line
    assert "fidelity 0.111" in partial_line and PARTIAL in partial_line
    assert "not comparable with a full-budget one" in text


def test_status_without_partial_scores_has_no_fidelity_column(tmp_path):
    info = status(_run_dir(tmp_path / "run", partial=False))
    assert [r["fidelity"] for r in info["hall_of_fame"]] == [1.0, 1.0]
    assert "fidelity" not in format_status(info)


def test_report_marks_partial_candidates_and_counts_them(tmp_path):
    text = write_report(_run_dir(tmp_path / "run", partial=True, rungs=True)).read_text()
    assert "| rank | fitness | fidelity |" in text
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if "`" in line}
    assert "| 0.6000 | full |" in rows["| 1"]
    assert "| 0.5000 | **0.111** (partial) |" in rows["| 2"]
    # the rejected candidate stopped at 1/9 too, but it is no trained candidate
    assert "1 of 2 trained candidates stopped below the full epoch budget" in text
    assert "| trained per rung |" in text and "| 2→1 |" in text


def test_report_of_an_older_run_reads_every_score_as_full(tmp_path):
    run = _run_dir(tmp_path / "run", partial=False)
    db = sqlite3.connect(run / "candidates.sqlite")  # as written before the column existed
    db.execute("ALTER TABLE candidates DROP COLUMN fidelity")
    db.commit()
    db.close()
    text = write_report(run).read_text()
    assert "stopped below" not in text and "(partial)" not in text
    assert "trained per rung" not in text
    assert text.count("| full |") == 2
