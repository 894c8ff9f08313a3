"""Shared campaign-test helpers: run a campaign keeping its progress lines, and crash one
between its database commit and its checkpoint (the window resume must survive)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lossevo.search import campaign
from lossevo.search.store import RunStore


def run_logged(config: Path, out: Path) -> list[str]:
    """Run the campaign of `config` into `out`; return the progress lines it printed."""
    logs: list[str] = []
    real = campaign._printer
    campaign._printer = lambda quiet: logs.append
    try:
        campaign.run(config, out, quiet=False)
    finally:
        campaign._printer = real
    return logs


def crash_before_checkpoint(config: Path, out: Path, monkeypatch: pytest.MonkeyPatch,
                            generation: int = 2) -> None:
    """Run `config` into `out` until `generation`'s rows are committed, then raise before its
    checkpoint is saved, as a kill would; the patch is undone before returning."""
    real = RunStore.save_checkpoint

    def crash(self, state):
        if state["generation"] == generation:
            raise KeyboardInterrupt("simulated crash after the DB commit")
        real(self, state)

    monkeypatch.setattr(RunStore, "save_checkpoint", crash)
    with pytest.raises(KeyboardInterrupt):
        campaign.run(config, out, quiet=True)
    monkeypatch.setattr(RunStore, "save_checkpoint", real)


def kill_after_checkpoint(config: Path, out: Path, generation: int) -> int:
    """Run the CLI on `config` into `out` and kill -9 it as soon as `generation` is
    checkpointed (the next one is then running); return its exit code (0 if it finished)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from lossevo.search.store import CheckpointError

    proc = subprocess.Popen(
        [sys.executable, "-m", "lossevo.cli", "run", str(config), "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = RunStore(out)
    try:
        while proc.poll() is None:
            try:
                if store.load_checkpoint()["generation"] >= generation:
                    break
            except (CheckpointError, OSError, ValueError):
                pass
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.returncode
