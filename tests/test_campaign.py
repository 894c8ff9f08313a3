"""Campaigns end to end on experiments/smoke.toml: run, resume after crashes, backends."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from campaign_helpers import crash_before_checkpoint, kill_after_checkpoint

import lossevo.search.campaign as campaign
from lossevo.cli import main
from lossevo.search.config import load_config
from lossevo.search.report import status
from lossevo.search.store import RunStore

SMOKE = Path(__file__).resolve().parents[1] / "experiments" / "smoke.toml"


def _hof(run_dir):
    return [(r["expression"], r["fitness"]) for r in status(run_dir)["hall_of_fame"]]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The smoke campaign left alone (serial backend)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    campaign.run(SMOKE, out, quiet=True)
    return out


def test_run_records_every_candidate_and_checkpoints(reference):
    cfg = load_config(SMOKE)
    rows = RunStore(reference).candidates()
    gens = cfg.evolution.generations
    assert {r["generation"] for r in rows} == set(range(gens + 1))
    assert len(rows) == cfg.evolution.population + gens * cfg.evolution.offspring
    assert {r["status"] for r in rows} <= {"ok", "cached", "rejected"}
    assert all(r["reason"] for r in rows if r["status"] == "rejected")
    info = status(reference)
    assert info["generation"] == gens and info["hall_of_fame"]
    fits = [tuple(h["fitness"]) for h in info["hall_of_fame"]]
    assert fits == sorted(fits, reverse=True)
    assert (reference / "versions.json").is_file() and (reference / "config.toml").is_file()


def test_resume_after_crash_between_record_and_checkpoint(tmp_path, monkeypatch, reference):
    out = tmp_path / "run"
    crash_before_checkpoint(SMOKE, out, monkeypatch)
    assert status(out)["generation"] == 1
    campaign.resume(out, quiet=True)
    assert _hof(out) == _hof(reference)
    ids = [r["id"] for r in RunStore(out).candidates()]
    assert ids == sorted(set(ids))  # the crashed generation's rows were replaced, not doubled
    def strip(rows):  # timings and worker ids legitimately differ between runs
        return [{k: v for k, v in r.items() if k not in ("seconds", "worker")} for r in rows]

    assert strip(RunStore(out).candidates()) == strip(RunStore(reference).candidates())


def test_resume_after_kill_9_mid_generation(tmp_path, reference):
    out = tmp_path / "run"
    returncode = kill_after_checkpoint(SMOKE, out, 1)  # generation 2 is running
    store = RunStore(out)
    killed_at = store.load_checkpoint()["generation"]
    assert main(["resume", str(out), "--quiet"]) == 0
    assert _hof(out) == _hof(reference)
    assert killed_at < load_config(SMOKE).evolution.generations or returncode == 0


def test_corrupt_checkpoint_gives_clear_error_and_keeps_previous(tmp_path, reference, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    ckpt = out / "checkpoint.json"
    data = bytearray(ckpt.read_bytes())
    data[-10] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    assert main(["status", str(out)]) == 2
    err = capsys.readouterr().err
    assert "corrupt" in err and "--use-previous" in err
    assert (out / "checkpoint.prev.json").is_file()
    assert main(["resume", str(out), "--use-previous", "--quiet"]) == 0
    assert _hof(out) == _hof(reference)


def test_process_backend_gives_the_same_run(tmp_path, reference):
    out = tmp_path / "run"
    campaign.run(SMOKE, out, quiet=True, name="process", workers=2)
    assert _hof(out) == _hof(reference)


@pytest.mark.dask
def test_dask_backend_gives_the_same_run(tmp_path, reference):
    pytest.importorskip("dask.distributed")
    out = tmp_path / "run"
    campaign.run(SMOKE, out, quiet=True, name="dask", workers=2)
    assert _hof(out) == _hof(reference)


def test_a_failing_chunk_never_stops_the_campaign(tmp_path, monkeypatch):
    real = campaign.evaluate_chunk

    calls = []

    def flaky(payload):  # every second chunk dies
        calls.append(1)
        if len(calls) % 2 == 0:
            raise RuntimeError("worker exploded")
        return real(payload)

    monkeypatch.setattr(campaign, "evaluate_chunk", flaky)
    out = tmp_path / "run"
    campaign.run(SMOKE, out, quiet=True)
    rows = RunStore(out).candidates()
    assert status(out)["generation"] == load_config(SMOKE).evolution.generations
    assert any("worker error: worker exploded" in (r["reason"] or "") for r in rows)
    assert any(r["status"] == "ok" for r in rows)


def test_cli_status_json_report_and_export(tmp_path, reference, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    assert main(["status", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["generation"] == 3 and {"expression", "fitness"} <= set(info["hall_of_fame"][0])
    assert main(["report", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert info["hall_of_fame"][0]["expression"] in report
    for png in ("fitness.png", "pareto.png", "rejections.png"):
        assert (out / "plots" / png).stat().st_size > 1000
    assert main(["export", str(out), "--output", str(tmp_path / "best.py")]) == 0
    spec = importlib.util.spec_from_file_location("best", tmp_path / "best.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert info["hall_of_fame"][0]["expression"] == module.EXPRESSION
    assert main(["export", str(out), "--rank", "99", "--output", str(tmp_path / "x.py")]) == 2
    assert "ranks 1.." in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('task = "digits-sym-0.4"\n[evolution]\npopulation = 1\n', "'evolution.population'"),
        ('task = "digits-sym-0.4"\n[evolution]\npopsize = 4\n', "key 'evolution.popsize'"),
        ('task = "digits-sym-0.4"\n[backend]\nname = "ray"\n', "'backend.name' = 'ray'"),
        ('task = "digits-sym-0.4"\ncolour = 1\n', "unknown config key 'colour'"),
        ('[evolution]\npopulation = 4\n', "'task' is missing"),
        ('task = "digits-sym-0.4"\n[evolution]\nprimitive_set = "trig"\n', "primitive_set"),
        ('task = "digits-sym-0.4"\n[evolution]\nmutation_weights = {flip = 1.0}\n', "flip"),
        ('task = "digits-sym-0.4" = 3', "not valid TOML"),
    ],
)
def test_config_errors_name_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_config(path)


def test_existing_run_directory_is_not_overwritten(tmp_path, reference, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    assert main(["run", str(SMOKE), "--out", str(out), "--quiet"]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_resuming_a_finished_run_changes_nothing_and_starts_no_workers(tmp_path, monkeypatch,
                                                                       reference):
    run = tmp_path / "done"
    shutil.copytree(reference, run)
    before = (run / "checkpoint.json").read_bytes(), len(RunStore(run).candidates())

    def no_backend(*args, **kwargs):
        raise AssertionError("a finished run must not start workers")

    monkeypatch.setattr(campaign, "make_backend", no_backend)
    campaign.resume(run, quiet=True)
    assert ((run / "checkpoint.json").read_bytes(), len(RunStore(run).candidates())) == before
    assert _hof(run) == _hof(reference)
