"""Ctrl-C on the process backend: one SIGINT to the whole process group (what a terminal
sends) ends `lossevo run` and `lossevo compare` with status 130, no worker left behind and a
message that fits the command; compare keeps its finished units and a rerun reuses them.

Timeouts here only detect a hang (the old behaviour: the worker died mid-item with
KeyboardInterrupt and the parent waited for its result forever); they are not speed claims.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")  # installed with dask[distributed] (the dev extra)

posix = pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs POSIX process groups")

HANG = 120.0  # seconds: far beyond any real exit, only a hang detector

RUN_TOML = """
seed = 0
instances = 2
[task]
preset = "digits-sym-0.4"
model = { widths = [32] }
budget = { epochs = 10, batch_size = 128, lr = 0.01 }
[evolution]
population = 4
offspring = 4
generations = 50
seed_expressions = ["mul(-1.0, mul(y_true, log(y_pred)))", "mul(y_true, sub(1.0, y_pred))"]
[limits]
max_height = 5
max_size = 25
[backend]
name = "process"
workers = 1
chunk = 1
"""

COMPARE_TOML = """
seed = 0
instances = 2
contenders = ["ce", "gce", "mae", "sce"]
[[tasks]]
preset = "digits-sym-0.4"
name = "tiny"
model = { widths = [16] }
budget = { epochs = 15, batch_size = 128, lr = 0.01 }
[backend]
name = "process"
workers = 1
"""


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _Command:
    """A lossevo command in its own process group, its stderr in a file we can poll."""

    def __init__(self, args: list[str], tmp: Path) -> None:
        self.err_path = tmp / "stderr.txt"
        self._err = self.err_path.open("w")
        # SIGINT as a terminal gives it: a shell starts background jobs with SIGINT ignored
        # (and Python keeps an inherited ignore), which would make this test pass or fail by
        # how pytest itself was launched
        self.proc = subprocess.Popen([sys.executable, "-m", "lossevo.cli", *args],
                                     stdout=subprocess.DEVNULL, stderr=self._err,
                                     start_new_session=True, preexec_fn=_default_sigint)

    def stderr(self) -> str:
        return self.err_path.read_text()

    def wait_for(self, ready, what: str) -> None:
        deadline = time.monotonic() + HANG
        while not ready():
            if self.proc.poll() is not None:
                pytest.fail(f"exited ({self.proc.returncode}) before {what}:\n{self.stderr()}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"no {what} within {HANG} s:\n{self.stderr()}")
            time.sleep(0.1)

    def workers(self) -> list:
        try:
            return [p for p in psutil.Process(self.proc.pid).children(recursive=True)
                    if "multiprocess.spawn" in " ".join(p.cmdline())]
        except psutil.Error:
            return []

    def worker_busy(self) -> bool:
        """A pool worker burning CPU: it is training, not starting up or idle."""
        workers = self.workers()
        try:
            before = [w.cpu_times().user for w in workers]
            time.sleep(0.3)
            return any(w.cpu_times().user - t > 0.15 for w, t in zip(workers, before, strict=True))
        except psutil.Error:
            return False

    def interrupt(self) -> tuple[int, list]:
        """One SIGINT to the group, as Ctrl-C in a terminal; the exit code and descendants."""
        family = psutil.Process(self.proc.pid).children(recursive=True)
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            code = self.proc.wait(HANG)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"still running {HANG} s after one SIGINT (hang):\n{self.stderr()}")
        return code, family

    def kill(self) -> None:
        with_group = [self.proc, *psutil.Process(self.proc.pid).children(recursive=True)]
        for p in with_group:
            p.kill()
        self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._err.close()


def _left(family: list) -> list:
    """Descendants still alive a few seconds after the parent exited (zombies count as gone)."""
    deadline = time.monotonic() + 10
    while True:
        alive = []
        for p in family:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _interrupted(cmd: _Command, ready, what: str) -> str:
    """Wait until `ready()`, send one Ctrl-C; the command must exit 130 leaving no process
    behind. Returns its stderr."""
    try:
        cmd.wait_for(ready, what)
        code, family = cmd.interrupt()
    finally:
        cmd.close()
    err = cmd.stderr()
    assert code == 130, err
    assert family and not _left(family)
    return err


@posix
def test_ctrl_c_stops_run_with_process_backend(tmp_path):
    from lossevo.search.store import RunStore

    cfg = tmp_path / "run.toml"
    cfg.write_text(RUN_TOML)
    out = tmp_path / "run"
    cmd = _Command(["run", str(cfg), "--out", str(out), "--backend", "process",
                    "--workers", "1"], tmp_path)
    # no wait for a whole generation (slow on a shared CPU): the worker may still be
    # importing or already training; either way one Ctrl-C must end the run at once
    err = _interrupted(cmd, cmd.worker_busy, "a busy worker")
    kept = ("the last complete generation is kept" if RunStore(out).checkpoint_path.exists()
            else "no generation was complete yet")
    assert f"lossevo: interrupted; {kept}: continue with 'lossevo resume {out}'" in err, err
    assert "Traceback" not in err, err  # workers ignore SIGINT: no KeyboardInterrupt in them


def test_cli_interrupt_message_fits_the_command(tmp_path, capsys, monkeypatch):
    import lossevo.search.campaign
    import lossevo.search.report
    from lossevo.cli import main
    from lossevo.search.store import RunStore

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    for name in ("run", "resume", "status"):
        module = lossevo.search.report if name == "status" else lossevo.search.campaign
        monkeypatch.setattr(module, name, interrupted)
    cfg, out = tmp_path / "run.toml", tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out)]) == 130
    assert capsys.readouterr().err == (f"lossevo: interrupted; no generation was complete yet: "
                                       f"continue with 'lossevo resume {out}'\n")
    out.mkdir()
    RunStore(out).checkpoint_path.write_text("")  # only its existence matters here
    assert main(["resume", str(out)]) == 130
    assert capsys.readouterr().err == ("lossevo: interrupted; the last complete generation is "
                                       f"kept: continue with 'lossevo resume {out}'\n")
    assert main(["status", str(out)]) == 130
    assert capsys.readouterr().err == "lossevo: interrupted\n"


@posix
@pytest.mark.slow
def test_ctrl_c_stops_compare_and_a_rerun_reuses_finished_units(tmp_path):
    cfg = tmp_path / "compare.toml"
    cfg.write_text(COMPARE_TOML)
    out = tmp_path / "cmp"
    cmd = _Command(["compare", str(cfg), "--out", str(out)], tmp_path)
    err = _interrupted(cmd, lambda: "[1/4]" in cmd.stderr(), "first finished unit")
    assert "Traceback" not in err and "lossevo resume" not in err
    kept = len(list((out / "units").glob("*.json")))
    assert 1 <= kept < 4
    assert (f"lossevo: interrupted; {kept} of 4 units are finished and kept in {out / 'units'}; "
            "rerun the same compare with the same --out") in err
    # the backend is not part of a unit's identity: finish in-process
    done = subprocess.run([sys.executable, "-m", "lossevo.cli", "compare", str(cfg), "--out",
                           str(out), "--backend", "serial"], capture_output=True, text=True,
                          timeout=HANG)
    assert done.returncode == 0, done.stderr
    assert f"reusing {kept} of 4 finished units" in done.stderr
    assert done.stderr.count(" on tiny: ") == 4 - kept  # only the rest trained
    # the header, 4 contenders and the chance row
    assert len((out / "compare.csv").read_text().splitlines()) == 6
