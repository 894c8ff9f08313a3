"""Fault probes of issue 10 (docs/reliability.md): each failed before its fix and passes now."""

import json
import os
import pickle
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import lossevo.search.campaign as campaign
from lossevo.cli import main
from lossevo.evaluation.training import data_orders
from lossevo.search.report import status
from lossevo.search.store import RunStore

SEEDS = ('seed_expressions = ["mul(-1.0, mul(y_true, log(y_pred)))", '
         '"mul(y_true, sub(1.0, y_pred))"]')
TINY = """seed = 0
instances = 1

[task]
preset = "digits-sym-0.4"
model = { widths = [8] }
budget = { epochs = 1, batch_size = 256, lr = 0.01 }

[evolution]
population = 2
offspring = 2
generations = 1
seed_expressions = ["mul(-1.0, mul(y_true, log(y_pred)))", "mul(y_true, sub(1.0, y_pred))"]

[backend]
name = "serial"
"""


def _hof(run_dir):
    return [(r["expression"], r["fitness"]) for r in status(run_dir)["hall_of_fame"]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(config path, a finished run of it)."""
    root = tmp_path_factory.mktemp("tiny")
    cfg = root / "tiny.toml"
    cfg.write_text(TINY)
    campaign.run(cfg, root / "run", quiet=True)
    return cfg, root / "run"


# --- 1: a run directory never runs code -----------------------------------------------------

class _Payload:
    """Unpickling this creates a file: the proof that a pickle ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_crafted_run_directory_runs_no_code(tmp_path, tiny, capsys):
    _, good = tiny
    marker = tmp_path / "pwned"
    crafted = tmp_path / "crafted"
    crafted.mkdir()
    shutil.copy(good / "config.toml", crafted / "config.toml")
    shutil.copy(good / "candidates.sqlite", crafted / "candidates.sqlite")
    blob = pickle.dumps({"generation": 1, "x": _Payload(marker)})
    (crafted / "checkpoint.pkl").write_bytes(blob)  # the old format, as a 0.1 run had it
    compare_cfg = tmp_path / "compare.toml"
    compare_cfg.write_text(f'instances = 1\ncontenders = [{{ evolved = "{crafted}" }}]\n'
                           f'[[tasks]]\npreset = "digits-sym-0.4"\n')
    calls = [["status", str(crafted)], ["report", str(crafted)],
             ["export", str(crafted), "--output", str(tmp_path / "x.py")],
             ["resume", str(crafted), "--quiet"],
             ["compare", str(compare_cfg), "--out", str(tmp_path / "cmp"), "--quiet"]]
    for argv in calls:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "checkpoint.pkl" in err and "not opened" in err, (argv, err)
    # the same bytes under the new name are not a checkpoint either
    (crafted / "checkpoint.pkl").rename(crafted / "checkpoint.json")
    assert main(["status", str(crafted)]) == 2
    assert "checkpoint.json is not a lossevo checkpoint" in capsys.readouterr().err
    assert not marker.exists()
    assert len(RunStore(crafted).candidates()) == len(RunStore(good).candidates())  # untouched


def test_checkpoint_is_plain_json(tiny):
    _, run = tiny
    head, _, body = (run / "checkpoint.json").read_bytes().partition(b"\n")
    assert json.loads(head)["format"] == "lossevo-checkpoint"
    state = json.loads(body)
    assert state["generation"] == 1 and state["rng"]["version"] == 3


def test_json_that_is_not_a_state_is_named(tmp_path, tiny, capsys):
    _, good = tiny
    run = tmp_path / "run"
    shutil.copytree(good, run)
    store = RunStore(run)
    store.save_checkpoint({"generation": "one"})
    store.save_checkpoint({"generation": "one"})  # the previous one too
    assert main(["status", str(run)]) == 2
    assert "is not a campaign state" in capsys.readouterr().err


# --- 4: one process per run directory -------------------------------------------------------

def test_second_process_on_a_run_directory_is_refused(tmp_path, tiny, capsys):
    cfg, good = tiny
    run = tmp_path / "run"
    shutil.copytree(good, run)
    before = (run / "config.toml").read_text()
    with RunStore(run).lock("resume"):
        for argv in (["resume", str(run), "--quiet"],
                     ["run", str(cfg), "--out", str(run), "--quiet"]):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert "in use by another process" in err and f"pid {os.getpid()}" in err
    assert (run / "config.toml").read_text() == before
    # a finished directory refuses a new run (with another seed) instead of mixing configs
    assert main(["run", str(cfg), "--out", str(run), "--seed", "5", "--quiet"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "config.toml").read_text() == before


def test_lock_is_held_across_processes(tmp_path, tiny):
    """flock excludes another process, and the kernel drops it when that process dies."""
    _, good = tiny
    run = tmp_path / "run"
    shutil.copytree(good, run)
    code = ("import sys, time\nfrom lossevo.search.store import RunStore\n"
            "with RunStore(sys.argv[1]).lock('run'):\n    print('locked', flush=True)\n"
            "    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["resume", str(run), "--quiet"]) == 2
    finally:
        holder.kill()
        holder.wait()
    assert main(["resume", str(run), "--quiet"]) == 0  # kill -9 left no stale lock


# --- 5: sizes and values are checked at load time -------------------------------------------

@pytest.mark.parametrize(("change", "match"), [
    (("instances = 1", "instances = 1000000000"), r"'instances' = 1000000000.*\[1, 4096\]"),
    (("instances = 1", "instances = 2.9"), r"'instances' = 2.9.*an integer"),
    (("seed = 0", "seed = 1.7"), r"'seed' = 1.7.*an integer"),
    (("seed = 0", "seed = -1"), r"'seed' = -1.*>= 0"),
    (("population = 2", "population = 6.5"), r"'evolution.population' = 6.5.*an integer"),
    (("population = 2", "population = 1000000000"), r"evolution.population.*\[2, 100000\]"),
    ((SEEDS, "seed_expressions = [1, 2]"),
     r"'evolution.seed_expressions' = \[1, 2\].*a list of strings"),
    ((SEEDS, 'seed_expressions = "mul(y_true, y_pred)"'),
     r"'evolution.seed_expressions' = 'mul\(y_true, y_pred\)'.*a list of strings"),
    (("epochs = 1,", "epochs = 1e9,"), r"budget.epochs.*an integer"),
    (("lr = 0.01", "lr = inf"), r"budget.lr.*finite"),
    (("widths = [8]", "widths = [1e9]"), r"model.widths.*integers"),
    (("[backend]", "[constants]\nlow = -inf\n[backend]"), r"constants.low.*finite"),
    (("[backend]", '[evolution2]\n[backend]'), r"unknown config key 'evolution2'"),
])
def test_bad_values_get_one_line_and_no_run_directory(tmp_path, capsys, change, match):
    text = TINY.replace(*change)
    assert text != TINY
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lossevo: error:")
    assert re.search(match, err), err
    assert not out.exists()


def test_seed_expression_over_the_limits_is_refused(tmp_path, capsys):
    long = "y_pred"
    for _ in range(30):
        long = f"add({long}, y_true)"
    cfg = tmp_path / "bad.toml"
    cfg.write_text(TINY.replace('"mul(y_true, sub(1.0, y_pred))"', f'"{long}"'))
    assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "seed_expressions[1]" in capsys.readouterr().err


def test_combined_sizes_are_estimated_before_training(tmp_path, capsys):
    cfg = tmp_path / "big.toml"
    cfg.write_text(TINY.replace("instances = 1", "instances = 4096")
                   .replace("widths = [8]", "widths = [65536, 65536]"))
    assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "GiB" in err and "'instances' (4096)" in err
    cfg.write_text(TINY.replace("epochs = 1,", "epochs = 100000,")
                   .replace("population = 2", "population = 100000")
                   .replace("generations = 1", "generations = 100000")
                   .replace("offspring = 2", "offspring = 100000")
                   .replace("widths = [8]", "widths = [4096, 4096]"))
    assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "floating-point operations" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_data_orders_are_built_per_epoch():
    orders = data_orders([1, 2], 10, 10**12)  # a list would need petabytes
    first = next(orders)
    assert first.shape == (2, 10)


def test_campaign_where_every_candidate_fails_exits_non_zero(tmp_path, capsys):
    cfg = tmp_path / "diverge.toml"
    cfg.write_text(TINY.replace("lr = 0.01", "lr = 1e30").replace("generations = 1",
                                                                  "generations = 0"))
    assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "every candidate was rejected (2 evaluated)" in err and "2× non-finite" in err


# --- 6: messages instead of tracebacks, context kept ----------------------------------------

@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_damaged_database_is_named(tmp_path, tiny, capsys, damage):
    _, good = tiny
    run = tmp_path / "run"
    shutil.copytree(good, run)
    db = run / "candidates.sqlite"
    data = db.read_bytes()
    db.write_bytes(data[:100] if damage == "truncate" else b"\x00garbage" * 500)
    for argv in (["report", str(run)], ["resume", str(run), "--quiet"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "candidates.sqlite" in err and err.count("\n") == 1, err


def test_unwritable_output_is_one_line(tmp_path, tiny, capsys):
    cfg, _ = tiny
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["run", str(cfg), "--out", str(blocker / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lossevo: error:") and str(blocker) in err


def test_resume_without_any_checkpoint_starts_over(tmp_path, tiny):
    _, good = tiny
    run = tmp_path / "run"
    shutil.copytree(good, run)
    for name in ("checkpoint.json", "checkpoint.prev.json"):
        (run / name).unlink(missing_ok=True)
    assert main(["resume", str(run), "--quiet"]) == 0  # was: IntegrityError
    assert _hof(run) == _hof(good)
    with sqlite3.connect(run / "candidates.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM candidates").fetchone()[0] == 4


def test_task_file_is_copied_and_read_from_the_run_directory(tmp_path, tiny, monkeypatch):
    _, good = tiny
    work = tmp_path / "work"
    work.mkdir()
    (work / "mytask.toml").write_text(
        'base = "digits-sym-0.4"\nname = "mine"\nmodel = { widths = [8] }\n'
        'budget = { epochs = 1, batch_size = 256, lr = 0.01 }\n')
    text = TINY.replace('[task]\npreset = "digits-sym-0.4"\nmodel = { widths = [8] }\n'
                        'budget = { epochs = 1, batch_size = 256, lr = 0.01 }\n',
                        "").replace("instances = 1\n", 'instances = 1\ntask = "mytask.toml"\n')
    (work / "cfg.toml").write_text(text)
    monkeypatch.chdir(work)
    real = RunStore.save_checkpoint

    def stop_after_gen0(self, state):
        real(self, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(RunStore, "save_checkpoint", stop_after_gen0)
    with pytest.raises(KeyboardInterrupt):
        campaign.run("cfg.toml", tmp_path / "run", quiet=True)
    monkeypatch.setattr(RunStore, "save_checkpoint", real)
    assert (tmp_path / "run" / "task.toml").is_file()
    (work / "mytask.toml").write_text('base = "digits-sym-0.8"\n')  # edited after the start
    monkeypatch.chdir(tmp_path)  # and resumed from elsewhere
    assert main(["resume", str(tmp_path / "run"), "--quiet"]) == 0
    assert _hof(tmp_path / "run") == _hof(good)
