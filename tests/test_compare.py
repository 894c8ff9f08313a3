"""lossevo compare: config validation, statistics on hand-made numbers, end-to-end outputs,
backend equality, failures and n/a contenders recorded without stopping the comparison."""

import csv
import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

import lossevo.baselines.schemes as real_schemes  # before any test fakes the module
import lossevo.comparison.protocol as cmp
from lossevo.cli import main
from lossevo.comparison import compare_config_from_mapping, load_compare_config
from lossevo.comparison.report import CSV_COLUMNS
from lossevo.comparison.stats import (
    average_ranks,
    min_wilcoxon_p,
    task_ranks,
    wilcoxon_p,
)
from lossevo.evaluation.statistics import summarize

ROOT = Path(__file__).resolve().parents[1]
TINY = {"preset": "digits-sym-0.4", "name": "tiny", "model": {"widths": [16]},
        "budget": {"epochs": 2, "batch_size": 128, "lr": 0.01}}
QS = "sub(sin(mul(y_true, log(y_pred))), exp(add(y_true, y_pred)))"


class _FakeScheme:
    def __init__(self, name: str, **params):
        self.name, self.params = name, params

    def applies_to(self, task):
        return f"{self.name} needs image inputs" if self.name == "cutmix" else None

    def __repr__(self):
        return f"{self.name}()"


def _fake_build_scheme(name, **params):
    if name not in ("sam", "cutmix"):
        raise ValueError(f"unknown scheme {name!r}")
    if set(params) - {"rho"}:
        raise ValueError(f"unknown scheme parameter {sorted(params)[0]!r}; allowed: rho")
    return _FakeScheme(name, **params)


@pytest.fixture(autouse=True)
def schemes(monkeypatch):
    """A stand-in schemes module (sam applies, cutmix never does): config and worker paths
    are tested without training any scheme."""
    fake = types.ModuleType("lossevo.baselines.schemes")
    fake.SCHEMES = ("sam", "cutmix")
    fake.build_scheme = _fake_build_scheme
    monkeypatch.setitem(sys.modules, "lossevo.baselines.schemes", fake)
    return fake


def _cfg(contenders, backend="serial", workers=2, **extra):
    return compare_config_from_mapping({"seed": 3, "instances": 2, "tasks": [TINY],
                                        "contenders": contenders,
                                        "backend": {"name": backend, "workers": workers},
                                        **extra})


# --- config validation ------------------------------------------------------------------


@pytest.mark.parametrize(("data", "message"), [
    ({"tasks": [TINY], "contenders": ["gcee"]}, "'gcee' is not allowed; allowed: all, ce, mae"),
    ({"tasks": [TINY], "contenders": [{"loss": "gce", "qq": 1.0}]}, "contenders[0]"),
    ({"tasks": [TINY], "contenders": [{"scheme": "samm"}]}, "a built-in scheme: sam, cutmix"),
    ({"tasks": [TINY], "contenders": ["ce"], "instances": 0}, "'instances' = 0"),
    ({"tasks": [TINY], "contenders": ["ce"], "seeds": 1}, "allowed: keys seed, instances"),
    ({"tasks": ["nope"], "contenders": ["ce"]}, "unknown task 'nope'"),
    ({"tasks": [TINY, TINY], "contenders": ["ce"]}, "distinct task names"),
    ({"tasks": [TINY], "contenders": []}, "a non-empty list"),
    ({"tasks": [TINY], "contenders": ["ce"], "baseline": "gce"}, "'baseline' = 'gce'"),
    ({"tasks": [TINY], "contenders": [{"evolved": "no/such/run"}]}, "relative paths resolve"),
    ({"tasks": [TINY], "contenders": [{"loss": "gce", "label": "x"}, {"loss": "ce",
                                                                      "label": "x"}]},
     "distinct labels"),
    ({"tasks": [TINY], "contenders": ["ce"], "backend": {"name": "mpi"}},
     "'backend.name' = 'mpi'"),
])
def test_config_errors_name_key_and_allowed(schemes, data, message):
    with pytest.raises(ValueError) as err:
        compare_config_from_mapping(data)
    assert message in str(err.value)


def test_config_expands_all_and_reads_tables(schemes, tmp_path):
    from lossevo.baselines.losses import LOSSES
    from lossevo.symbolic.export import export_loss

    path = export_loss(QS, tmp_path / "best_loss.py")
    cfg = compare_config_from_mapping({
        "tasks": ["digits-sym-0.4", TINY],
        "contenders": ["all", "gce", {"loss": "gce", "q": 0.5},
                       {"scheme": "sam", "rho": 0.1, "loss": "gce", "loss_params": {"q": 0.5}},
                       {"expression": QS}, {"evolved": str(path)}],
        "baseline": "ce"})
    labels = [c.label for c in cfg.contenders]
    assert labels == [*LOSSES, "ce_early_stop", "sam", "cutmix", "gce(q=0.5)",
                      "sam(rho=0.1)+gce(q=0.5)", "expression-1", "best_loss"]
    early = cfg.contenders[len(LOSSES)]
    assert (early.loss, early.early_stop, early.tune) == ("ce", True, False)
    assert cfg.contenders[-1].expression == QS and cfg.contenders[-1].evolved
    assert cfg.instances == 8 and cfg.backend.chunk == 1
    assert [t.name for t in cfg.tasks] == ["digits-sym-0.4", "tiny"]
    assert cfg.tasks[1].budget.epochs == 2


def test_evolved_run_directory_gives_its_top_n_distinct_functions(tmp_path, monkeypatch):
    import lossevo.search.report

    run = tmp_path / "quick"
    run.mkdir()
    copy_of_1 = "sub(sin(mul(log(y_pred), y_true)), exp(add(y_pred, y_true)))"  # same function
    hof = [{"expression": QS, "fitness": [0.7]}, {"expression": copy_of_1, "fitness": [0.7]},
           {"expression": "mul(y_true, y_pred)", "fitness": [0.6]}, {"expression": "y_pred"}]
    monkeypatch.setattr(lossevo.search.report, "status",
                        lambda d: {"hall_of_fame": hof} if Path(d).resolve() == run else {})
    monkeypatch.chdir(tmp_path)  # relative paths resolve against the working directory
    cfg = compare_config_from_mapping({"tasks": [TINY], "contenders": [
        {"evolved": "quick", "top": 2}]})
    assert [(c.label, c.expression, c.evolved) for c in cfg.contenders] == [
        ("quick#1", QS, True), ("quick#2", "mul(y_true, y_pred)", True)]
    with pytest.raises(ValueError, match=r"'contenders\[0\].top' = 0"):
        compare_config_from_mapping({"tasks": [TINY], "contenders": [
            {"evolved": "quick", "top": 0}]})


# --- statistics -------------------------------------------------------------------------


def test_wilcoxon_on_hand_made_numbers():
    a = [0.9, 0.8, 0.85, 0.95]
    assert wilcoxon_p(a, [x - 0.1 for x in a]) == pytest.approx(0.125)  # all 4 better
    assert wilcoxon_p(a, a) == 1.0  # all-zero differences: no evidence
    assert wilcoxon_p([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(1.0)
    assert wilcoxon_p([], []) is None
    assert min_wilcoxon_p(4) == 0.125 and min_wilcoxon_p(8) == pytest.approx(0.0078125)
    with pytest.raises(ValueError, match="equal lengths"):
        wilcoxon_p([1, 2], [1])


def test_ranks_and_spread():
    assert task_ranks({"a": 0.5, "b": 0.9, "c": 0.5}) == {"a": 2.5, "b": 1.0, "c": 2.5}
    avg = average_ranks({"t1": {"a": 1.0, "b": 2.0}, "t2": {"a": 2.0, "b": 1.0, "c": 3.0}})
    assert avg == {"a": (1.5, 2), "b": (1.5, 2), "c": (3.0, 1)}
    # the clean/worst-env statistics in compare.csv are lossevo.evaluation.statistics.summarize's
    stats = summarize({"accuracy": {"clean": np.arange(11.0)}})
    assert stats["accuracy.clean.q90_q10"] == pytest.approx(8.0)
    assert stats["accuracy.clean.min"] == 0.0 and stats["accuracy.clean.mean"] == 5.0


# --- end to end -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "out"
    fake = types.ModuleType("lossevo.baselines.schemes")
    fake.SCHEMES, fake.build_scheme = ("sam", "cutmix"), _fake_build_scheme
    saved = sys.modules.get("lossevo.baselines.schemes")
    sys.modules["lossevo.baselines.schemes"] = fake
    try:
        cfg = _cfg(["ce", {"loss": "gce", "q": 0.7, "label": "gce"}, "cutmix",
                    {"expression": QS, "label": "qs"},
                    {"expression": "y_true", "label": "constant"}])
        cmp.compare(cfg, out, quiet=True)
    finally:
        if saved is None:
            sys.modules.pop("lossevo.baselines.schemes")
        else:
            sys.modules["lossevo.baselines.schemes"] = saved
    return out


def test_tiny_compare_writes_every_output(tiny_run):
    with (tiny_run / "compare.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert set(CSV_COLUMNS) <= set(rows[0])
    assert {"env:clean", "env:pgd-0.05"} <= set(rows[0])
    by = {r["contender"]: r for r in rows}
    assert [r["status"] for r in rows] == ["chance", "ok", "ok", "n/a", "ok", "failed"]
    ok = [by[k] for k in ("ce", "gce", "qs")]
    assert all(0 <= float(r["worst_env"]) <= float(r["clean"]) <= 1 for r in ok)
    for score in ("clean", "worst_env"):  # each score has its own reference, tests and ranks
        ref = max(("ce", "gce"), key=lambda k: float(by[k][score]))  # best baseline
        assert all(r[f"{score}_vs"] == ref for r in ok)
        assert by[ref][f"{score}_wilcoxon_p"] == ""
        assert 0 < float(by["qs"][f"{score}_wilcoxon_p"]) <= 1
        assert sorted(float(r[f"{score}_rank"]) for r in ok) == [1.0, 2.0, 3.0]
    assert by["chance"]["clean_rank"] == "" and 0 < float(by["chance"]["clean"]) < 0.3
    assert "needs image inputs" in by["cutmix"]["reason"]
    assert "probe" in by["constant"]["reason"]
    doc = json.loads((tiny_run / "compare.json").read_text())
    qs = next(r for r in doc["results"] if r["contender"] == "qs")
    assert len(qs["per_instance"]["accuracy"]["worst_env"]) == 2
    assert doc["min_wilcoxon_p"] == 0.5
    assert doc["chance"]["tiny"]["predicts"] in range(10)
    md = (tiny_run / "compare.md").read_text()
    assert "| *chance* |" in md and "## Tuning" in md and "`tune = false`" in md
    assert "2/2^n = 0.5" in md and "cutmix on tiny: n/a" in md and "constant on tiny: failed" in md
    assert "No noise-rate plot for digits" in md
    for png in ("tiny-environments.png", "tiny-instances.png"):
        assert (tiny_run / "plots" / png).stat().st_size > 1000
        assert f"plots/{png}" in md
    assert not list(tiny_run.glob(".*tmp"))
    # finished units are kept, except the one with a failed contender (it may be passing)
    kept = [json.loads(f.read_text()) for f in (tiny_run / "units").glob("*.json")]
    assert sorted(d["contenders"][0] for d in kept) == ["ce", "cutmix", "gce", "qs"]


def test_serial_equals_process_backend(tmp_path):
    contenders = ["ce", {"expression": QS, "label": "qs"}]
    serial = cmp.run_comparison(_cfg(contenders, "serial"))
    process = cmp.run_comparison(_cfg(contenders, "process", workers=1))  # one spawn: cheap
    assert [r["metrics"] for r in serial] == [r["metrics"] for r in process]
    assert serial[0]["metrics"]["accuracy.clean.mean"] > 0


@pytest.mark.dask
def test_dask_backend_equals_serial(tmp_path):
    pytest.importorskip("dask.distributed")
    contenders = ["ce", {"expression": QS, "label": "qs"}]
    serial = cmp.run_comparison(_cfg(contenders, "serial"))
    dask = cmp.run_comparison(_cfg(contenders, "dask", workers=2))  # loopback LocalCluster
    assert [r["metrics"] for r in serial] == [r["metrics"] for r in dask]


def test_failing_contender_is_recorded_not_fatal(monkeypatch):
    real = cmp._build

    def broken(c, task):
        if c.label == "gce":
            raise RuntimeError("simulated crash while building")
        return real(c, task)

    monkeypatch.setattr(cmp, "_build", broken)
    res = cmp.run_comparison(_cfg(["gce", "ce"]))
    assert [(r["contender"], r["status"]) for r in res] == [("gce", "failed"), ("ce", "ok")]
    assert "simulated crash" in res[0]["reason"]


def test_training_exception_fails_its_unit_only(monkeypatch):
    import lossevo.evaluation.fitness as fitness

    real = fitness.evaluate_many

    def flaky(losses, task, **kw):
        if any(repr(x).startswith("mae") for x in losses):
            raise RuntimeError("out of memory")
        return real(losses, task, **kw)

    monkeypatch.setattr(fitness, "evaluate_many", flaky)
    res = cmp.run_comparison(_cfg(["mae", "ce"]))
    assert [r["status"] for r in res] == ["failed", "ok"]
    assert "out of memory" in res[0]["reason"]


def test_scheme_na_and_own_unit(schemes):
    cfg = _cfg(["ce", "gce", "sam", "cutmix"], backend="serial")
    units = cmp.make_units(cfg)
    assert [[c["label"] for c in u["contenders"]] for u in units] == [
        ["ce"], ["gce"], ["sam"], ["cutmix"]]
    res = cmp.run_unit(units[3])
    assert res[0]["status"] == "n/a" and "needs image inputs" in res[0]["reason"]


def test_regression_task_runs_only_regression_losses(schemes):
    cfg = compare_config_from_mapping({
        "instances": 1, "backend": {"name": "serial"},
        "tasks": [{"preset": "poly3-outliers", "model": {"widths": [8]},
                   "budget": {"epochs": 1}}],
        "contenders": ["gce", "huber"]})
    res = cmp.run_comparison(cfg)
    assert res[0]["status"] == "n/a" and "regression losses: mse, mae, huber" in res[0]["reason"]
    assert res[1]["status"] == "ok" and res[1]["metric"] == "r2"
    assert "r2.worst_env.mean" in res[1]["metrics"]


def test_cli_compare_and_errors(tmp_path, capsys, schemes):
    bad = tmp_path / "bad.toml"
    bad.write_text('tasks = ["digits-sym-0.4"]\ncontenders = ["gcee"]\n')
    assert main(["compare", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "'gcee' is not allowed" in capsys.readouterr().err
    good = tmp_path / "good.toml"
    good.write_text('contenders = ["ce"]\n[[tasks]]\npreset = "digits-sym-0.4"\n'
                    'model = {widths = [8]}\nbudget = {epochs = 1, batch_size = 256}\n')
    cfg = load_compare_config(good, instances=1, name="serial")
    assert cfg.instances == 1 and cfg.backend.name == "serial"
    assert main(["compare", str(good), "--out", str(tmp_path / "o"), "--instances", "1",
                 "--backend", "serial", "--quiet"]) == 0
    assert (tmp_path / "o" / "compare.csv").is_file()


def _counting_run_unit(monkeypatch, interrupt_at: int | None = None) -> list[str]:
    """Patch the worker entry point (serial backend: called in-process) to record calls."""
    calls: list[str] = []
    real = cmp.run_unit

    def counted(unit):
        calls.append(unit["contenders"][0]["label"])
        if len(calls) == interrupt_at:
            raise KeyboardInterrupt
        return real(unit)

    monkeypatch.setattr(cmp, "run_unit", counted)
    return calls


def test_ctrl_c_keeps_finished_units_and_a_rerun_reuses_them(tmp_path, monkeypatch):
    out = tmp_path / "out"
    cfg = _cfg(["ce", "gce", "mae"])
    calls = _counting_run_unit(monkeypatch, interrupt_at=2)
    with pytest.raises(cmp.CompareInterrupted) as err:
        cmp.compare(cfg, out, quiet=True)
    assert isinstance(err.value, KeyboardInterrupt)
    assert str(err.value).startswith(f"1 of 3 units are finished and kept in {out / 'units'}; "
                                      "rerun the same compare with the same --out")
    assert calls == ["ce", "gce"] and len(list((out / "units").glob("*.json"))) == 1

    calls = _counting_run_unit(monkeypatch)
    cmp.compare(cfg, out, quiet=True)
    assert calls == ["gce", "mae"]  # ce was kept
    first = json.loads((out / "compare.json").read_text())["results"]
    calls = _counting_run_unit(monkeypatch)
    cmp.compare(cfg, out, quiet=True)
    assert calls == []
    assert json.loads((out / "compare.json").read_text())["results"] == first
    # kept units read back exactly: the same numbers as a run without an output directory
    assert [r["metrics"] for r in first] == [r["metrics"] for r in cmp.run_comparison(cfg)]
    calls.clear()
    # a unit is reused only for the same task, contenders, instances, seed and device
    cmp.compare(_cfg(["ce", "gce", "mae"], seed=4), out, quiet=True)
    assert calls == ["ce", "gce", "mae"]
    calls.clear()
    cmp.compare(cfg, out, quiet=True, reuse=False)
    assert calls == ["ce", "gce", "mae"]


def test_out_must_be_a_writable_directory_before_any_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cmp, "run_comparison", lambda *a, **k: pytest.fail("trained"))
    a_file = tmp_path / "compare.md"
    a_file.write_text("not a directory")
    with pytest.raises(ValueError, match=r"is an existing file, not a directory"):
        cmp.compare(_cfg(["ce"]), a_file, quiet=True)
    good = tmp_path / "good.toml"
    good.write_text('contenders = ["ce"]\n[[tasks]]\npreset = "digits-sym-0.4"\n')
    for out, message in ((a_file, "is an existing file"),
                         (a_file / "sub", "cannot be created or written: Not a directory")):
        assert main(["compare", str(good), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"lossevo: error: compare output {str(out)!r} {message}")
        assert err.count("\n") == 1


def test_cli_ctrl_c_in_compare_says_what_was_kept(tmp_path, capsys, monkeypatch):
    good = tmp_path / "good.toml"
    good.write_text('contenders = ["ce", "mae"]\n[[tasks]]\npreset = "digits-sym-0.4"\n'
                    'model = {widths = [8]}\nbudget = {epochs = 1, batch_size = 256}\n')
    _counting_run_unit(monkeypatch, interrupt_at=2)
    out = tmp_path / "o"
    assert main(["compare", str(good), "--out", str(out), "--instances", "1",
                 "--backend", "serial", "--quiet"]) == 130
    err = capsys.readouterr().err
    assert err.startswith(f"lossevo: interrupted; 1 of 2 units are finished and kept in "
                          f"{out / 'units'}; rerun the same compare with the same --out")
    assert "lossevo resume" not in err


@pytest.mark.slow
def test_smoke_config_runs(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lossevo.baselines.schemes", real_schemes)
    started = time.perf_counter()
    out = cmp.compare(ROOT / "experiments" / "compare-smoke.toml", tmp_path / "smoke",
                      quiet=True)
    with (out / "compare.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["status"] for r in rows} <= {"chance", "ok", "n/a", "failed"}
    assert any(r["contender"] == "quickstart-best" and r["status"] == "ok" for r in rows)
    print(f"compare-smoke: {time.perf_counter() - started:.1f} s")
