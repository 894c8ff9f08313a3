"""Comparison statistics on hand-computed numbers: the pinned Wilcoxon method, Holm's
correction, the bootstrap interval of the mean paired difference, and the report's columns."""

import csv
import io
import math
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.stats

from lossevo.comparison.report import CSV_COLUMNS, _csv, _stats_table, _task_table, build_rows
from lossevo.comparison.stats import bootstrap_mean_ci, holm, wilcoxon_p
from lossevo.evaluation.statistics import summarize, with_worst_env


def _spy(monkeypatch) -> list[dict]:
    calls: list[dict] = []
    real = scipy.stats.wilcoxon

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(scipy.stats, "wilcoxon", spy)
    return calls


def test_exact_wilcoxon_is_pinned(monkeypatch):
    calls = _spy(monkeypatch)
    # n = 6, all differences positive: only 1 of the 2^6 sign patterns is as extreme on each
    # side, so p = 2/64
    assert wilcoxon_p([1, 2, 3, 4, 5, 6], [0] * 6) == pytest.approx(2 / 64)
    assert calls[-1]["method"] == "exact" and calls[-1]["zero_method"] == "wilcox"
    # zero differences are dropped: the same six non-zero differences, the same p
    assert wilcoxon_p([0, 1, 2, 3, 4, 5, 6], [0] * 7) == pytest.approx(2 / 64)
    # float noise is neither a difference nor a broken tie: 0.1 + 0.2 != 0.3 in floats
    assert wilcoxon_p([0.1 + 0.2, 1.0], [0.3, 1.0]) == 1.0


def test_ties_use_the_exact_distribution_over_mid_ranks(monkeypatch):
    calls = _spy(monkeypatch)
    # |d| = 1, 1, 2, 3 → mid-ranks 1.5, 1.5, 3, 4 (total 10); observed T+ = 1.5 + 3 + 4 = 8.5.
    # Sign patterns with T+ ≥ 8.5: all positive (10) and either 1.5 negative (8.5): 3 of 16.
    assert wilcoxon_p([1, -1, 2, 3], [0, 0, 0, 0]) == pytest.approx(2 * 3 / 16)
    # all |d| tied and positive: the sign test's 2/2^4, not a normal approximation
    assert wilcoxon_p([0.5] * 4, [0.0] * 4) == pytest.approx(0.125)
    assert wilcoxon_p([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(1.0)
    assert calls == []  # ties never reach scipy's version-dependent handling


def test_exact_distribution_matches_scipy_without_ties():
    rng = np.random.default_rng(3)
    from lossevo.comparison.stats import _exact_tied_p

    for n in (1, 2, 5, 9, 14):
        d = rng.normal(0.3, 1.0, size=n)
        ours = _exact_tied_p(scipy.stats.rankdata(np.abs(d)), d > 0)
        assert ours == pytest.approx(scipy.stats.wilcoxon(d, method="exact").pvalue)


def test_large_n_uses_the_corrected_normal_approximation(monkeypatch):
    calls = _spy(monkeypatch)
    n = 60  # all positive, distinct: T+ = n(n+1)/2
    mean, var = n * (n + 1) / 4, n * (n + 1) * (2 * n + 1) / 24
    z = (n * (n + 1) / 2 - mean - 0.5) / math.sqrt(var)
    p = wilcoxon_p(np.arange(1.0, n + 1), np.zeros(n))
    assert p == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-9)
    assert calls[-1]["method"] == "approx" and calls[-1]["correction"] is True


def test_holm_on_hand_made_numbers():
    # sorted: a 0.01·3 = 0.03, c 0.03·2 = 0.06, b max(0.06, 0.04·1) = 0.06; d untested
    adj = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": None})
    assert adj == {"a": pytest.approx(0.03), "b": pytest.approx(0.06),
                   "c": pytest.approx(0.06), "d": None}
    assert holm({"a": 0.5, "b": 0.5}) == {"a": 1.0, "b": 1.0}  # capped at 1
    assert holm({"a": 0.2}) == {"a": 0.2} and holm({}) == {}


def test_bootstrap_interval():
    # two differences 0 and 1: resampled means are 0, 0.5, 1 with probabilities ¼, ½, ¼
    lo, hi = bootstrap_mean_ci([0.0, 1.0], np.random.default_rng(0))
    assert (lo, hi) == (0.0, 1.0)
    d = np.random.default_rng(1).normal(0.02, 0.01, size=8)
    ci = bootstrap_mean_ci(d, np.random.default_rng(0))
    assert ci == bootstrap_mean_ci(d, np.random.default_rng(0))  # seeded: reproducible
    assert ci[0] < d.mean() < ci[1] and d.min() <= ci[0] and ci[1] <= d.max()
    assert bootstrap_mean_ci([0.3] * 5, np.random.default_rng(0)) == (0.3, 0.3)
    assert bootstrap_mean_ci([0.3], np.random.default_rng(0)) == (None, None)


def _result(label: str, clean: list[float], noisy: list[float]) -> dict:
    per = with_worst_env({"accuracy": {"clean": np.array(clean), "gauss-0.1": np.array(noisy)}})
    return {"contender": label, "task": "t", "metric": "accuracy", "status": "ok",
            "reason": None, "seconds": 1.0, "metrics": summarize(per),
            "per_instance": {"accuracy": {e: v.tolist() for e, v in per["accuracy"].items()}}}


def _cfg(labels: list[str], evolved: str = "") -> SimpleNamespace:
    return SimpleNamespace(seed=7, baseline=None, tasks=[SimpleNamespace(name="t")],
                           contenders=[SimpleNamespace(label=k, evolved=k == evolved)
                                       for k in labels])


def test_report_rows_carry_holm_and_paired_difference():
    ce = [0.80, 0.70, 0.75, 0.72, 0.78, 0.74]
    better = [x + d for x, d in zip(ce, [0.01, 0.02, 0.03, 0.04, 0.05, 0.06], strict=True)]
    worse = [x - 0.01 * (k + 1) for k, x in enumerate(ce)]
    results = [_result("ce", [0.9] * 6, ce), _result("mae", [0.9] * 6, worse),
               _result("evo", [0.9] * 6, better)]
    rows = {r["contender"]: r for r in build_rows(_cfg(["ce", "mae", "evo"], "evo"), results)}
    assert rows["evo"]["worst_env_vs"] == "ce" and rows["ce"].get("worst_env_wilcoxon_p") is None
    assert rows["evo"]["worst_env_wilcoxon_p"] == pytest.approx(2 / 64)
    assert rows["evo"]["worst_env_holm_p"] == pytest.approx(2 * 2 / 64)  # two tests, p = 2/64
    assert rows["mae"]["worst_env_holm_p"] == pytest.approx(2 * 2 / 64)
    assert rows["evo"]["worst_env_mean_diff"] == pytest.approx(0.035)
    assert rows["mae"]["worst_env_mean_diff"] == pytest.approx(-0.035)
    assert (0.01 <= rows["evo"]["worst_env_diff_ci_low"] < 0.035
            < rows["evo"]["worst_env_diff_ci_high"] <= 0.06)
    assert rows["evo"]["worst_env_std"] == pytest.approx(np.std(better, ddof=1))
    # the clean score has its own statistics: equal clean scores, no evidence either way
    assert rows["evo"]["clean"] == 0.9 and rows["evo"]["clean_wilcoxon_p"] == 1.0
    assert rows["evo"]["clean_mean_diff"] == 0.0 and rows["evo"]["clean_rank"] == 2.0
    table = csv.DictReader(io.StringIO(_csv(list(rows.values()))))
    by = {r["contender"]: r for r in table}
    assert set(CSV_COLUMNS) <= set(by["ce"])
    assert by["ce"]["worst_env_holm_p"] == by["ce"]["worst_env_mean_diff"] == ""
    assert float(by["evo"]["worst_env_mean_diff"]) == pytest.approx(0.035)
    md = "\n".join(_stats_table(list(rows.values()), "t"))
    assert ("| contender | Δ clean vs ce [95% CI] | Wilcoxon p | Holm p | "
            "Δ worst-env vs ce [95% CI] | Wilcoxon p | Holm p |") in md
    assert "| ce | reference | reference | reference | reference | reference | reference |" in md
    assert f"+0.035 [{rows['evo']['worst_env_diff_ci_low']:+.3f}, " in md and "| 0.0625 |" in md


def test_report_blanks_std_with_one_instance():
    results = [_result("ce", [0.9], [0.7]), _result("mae", [0.8], [0.6])]
    rows = {r["contender"]: r for r in build_rows(_cfg(["ce", "mae"]), results)}
    assert rows["ce"]["clean_std"] is None and rows["ce"]["worst_env_std"] is None
    assert rows["mae"]["worst_env_mean_diff"] == pytest.approx(-0.1)
    assert rows["mae"]["worst_env_diff_ci_low"] is None
    assert rows["mae"]["worst_env_wilcoxon_p"] == 1.0
    body = _task_table(list(rows.values()), "t")[2:]
    assert body[0].startswith("| ce | 0.900 | 0.700 | 1.0 | 1.0 |")
    assert not any("±" in line for line in body)
