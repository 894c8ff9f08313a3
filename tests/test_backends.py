"""Map backends: same results in the same order everywhere, failures kept per item.

The functions mapped here live at module level so that spawned and dask workers import them by
reference (pytest puts this folder on sys.path, which spawned children inherit).
"""

import functools
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from lossevo.search.backends import BACKENDS, RemoteError, make_backend
from lossevo.symbolic.compile import compile_expression


def _score(item: dict) -> float:
    """A realistic job: compile an expression text and evaluate it on fixed inputs."""
    x = torch.linspace(0.05, 0.95, 17, dtype=torch.float64)
    fn = compile_expression(item["expr"])
    return float(fn(x, 1 - x).sum()) * item["scale"]


def _scaled(x: int, factor: int) -> int:
    return x * factor


def _torch_threads(_: object) -> int:
    return torch.get_num_threads()


def _pid(_: object) -> int:
    return os.getpid()


def _sigint_ignored(_: object) -> bool:
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, []) if hasattr(
        signal, "pthread_sigmask") else set()
    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN and signal.SIGINT not in blocked


def _sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


class _Unpicklable(Exception):
    """Needs two constructor arguments, so pickle cannot rebuild it from ``args``."""

    def __init__(self, message: str, extra: object) -> None:
        super().__init__(message)
        self.extra = extra


def _sometimes_fails(x: int) -> int:
    if x == 1:
        raise ValueError(f"bad item {x}")
    if x == 2:
        raise _Unpicklable("cannot travel", object())
    return x * 10


EXPRESSIONS = [
    "mul(-1.0, mul(y_true, log(y_pred)))",
    "div(y_true, sub(y_pred, 0.5))",
    "sqrt(sub(y_pred, y_true))",
    "exp(mul(100.0, y_pred))",
]
# Repeated identical items must each get their own result (no wrong deduplication).
ITEMS = [{"expr": e, "scale": s} for s in (1, -2) for e in EXPRESSIONS] + [
    {"expr": EXPRESSIONS[0], "scale": 1}
] * 3


@pytest.fixture(scope="module")
def process_backend():
    with make_backend("process", workers=2) as backend:
        yield backend


@pytest.fixture(scope="module")
def dask_backend():
    with make_backend("dask", workers=2) as backend:
        yield backend


@pytest.fixture(params=["serial", "process", pytest.param("dask", marks=pytest.mark.dask)])
def backend(request):
    if request.param == "serial":
        return make_backend("serial")
    return request.getfixturevalue(f"{request.param}_backend")


def test_same_results_in_order(backend):
    want = [_score(item) for item in ITEMS]
    assert backend.map(_score, ITEMS) == want
    assert backend.map(_score, ITEMS[::-1]) == want[::-1]
    for chunk_size in (1, 3):
        backend.chunk_size = chunk_size
        try:
            assert backend.map(_score, ITEMS) == want
        finally:
            backend.chunk_size = None


def test_partial_and_empty(backend):
    assert backend.map(functools.partial(_scaled, factor=3), range(7)) == [3 * i for i in range(7)]
    assert backend.map(_scaled, []) == []


def test_return_exceptions(backend):
    results = backend.map(_sometimes_fails, [0, 1, 2, 3], return_exceptions=True)
    assert results[0] == 0 and results[3] == 30
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad item 1"
    if backend.name == "serial":
        assert isinstance(results[2], _Unpicklable)
    else:
        assert isinstance(results[2], RemoteError)
        assert results[2].type_name == "_Unpicklable"
        assert "cannot travel" in str(results[2])
        assert "_sometimes_fails" in results[2].remote_traceback
    with pytest.raises(ValueError, match="bad item 1"):
        backend.map(_sometimes_fails, [0, 1, 3])
    assert backend.map(_sometimes_fails, [3, 0]) == [30, 0]  # still usable afterwards


def test_process_workers_use_one_torch_thread_and_are_reused(process_backend):
    assert process_backend.workers == 2
    assert process_backend.map(_torch_threads, range(6), ) == [1] * 6
    pids = set(process_backend.map(_pid, range(20))) | set(process_backend.map(_pid, range(20)))
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= 2  # the same long-lived pool across calls


def test_as_completed_yields_every_index_once(backend):
    want = [_score(item) for item in ITEMS]
    got = dict(backend.as_completed(_score, ITEMS))
    assert sorted(got) == list(range(len(ITEMS))) and [got[i] for i in sorted(got)] == want
    assert list(backend.as_completed(_scaled, [])) == []
    got = dict(backend.as_completed(_sometimes_fails, [0, 1, 2, 3], return_exceptions=True))
    assert got[0] == 0 and got[3] == 30 and str(got[1]) == "bad item 1"
    assert "cannot travel" in str(got[2])
    if backend.name != "process":  # there, raising stops the pool (tested below): slow
        with pytest.raises(ValueError, match="bad item 1"):
            list(backend.as_completed(_sometimes_fails, [1]))
        assert backend.map(_sometimes_fails, [3, 0]) == [30, 0]  # still usable afterwards


def test_process_workers_ignore_sigint_and_finish_their_item(process_backend):
    """Ctrl-C reaches the whole process group; a worker must not die mid-item for it."""
    assert process_backend.map(_sigint_ignored, range(4)) == [True] * 4
    pids = [p.pid for p in process_backend._pool._pool]

    def ctrl_c():
        for pid in pids:
            os.kill(pid, signal.SIGINT)

    timer = threading.Timer(0.5, ctrl_c)
    timer.start()
    try:
        assert len(process_backend.map(_sleep_then_pid, [2.0, 2.0])) == 2
    finally:
        timer.cancel()
    assert sorted(p.pid for p in process_backend._pool._pool) == sorted(pids)  # none replaced


def test_interrupted_process_map_stops_its_workers_at_once():
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    with make_backend("process", workers=1) as backend:
        try:
            pid = backend.map(_sleep_then_pid, [0.0])[0]
            started = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, 0.5)
            with pytest.raises(KeyboardInterrupt):
                backend.map(_sleep_then_pid, [60.0])
            assert time.monotonic() - started < 30  # a hang detector: terminate, no join-wait
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # terminated and reaped
        # a generator left early (Ctrl-C in the caller's loop) stops the rest too; the pool
        # starts again on next use
        pending = backend.as_completed(_sleep_then_pid, [0.0, 60.0])
        _, pid = next(pending)
        started = time.monotonic()
        pending.close()
        assert time.monotonic() - started < 30
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.dask
def test_dask_workers_use_one_torch_thread(dask_backend):
    assert dask_backend.workers == 2
    assert dask_backend.map(_torch_threads, range(6)) == [1] * 6


@pytest.mark.dask
def test_dask_leaves_global_random_state_alone(dask_backend):
    random.seed(1234)
    state = random.getstate()
    dask_backend.map(_score, ITEMS)
    assert random.getstate() == state


def test_dask_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    backend = make_backend("dask", workers=1)
    with pytest.raises(ImportError, match=r"pip install 'lossevo\[dask\]'"):
        backend.map(_scaled, [1])


def test_no_optional_imports_at_import_time():
    code = ("import sys, lossevo.search.backends\n"
            "print(sorted(m for m in ('dask', 'distributed', 'multiprocess') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "threads"}, "unknown backend 'threads'; allowed: serial, process, dask"),
        ({"workers": 0}, "workers must be a positive int or None, got 0"),
        ({"chunk_size": 0}, "chunk_size must be a positive int or None, got 0"),
        ({"scheduler": "tcp://127.0.0.1:8786"}, "applies only to the 'dask' backend"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_backend(**kwargs)


def test_names():
    assert BACKENDS == ("serial", "process", "dask")
    for name in BACKENDS:
        assert make_backend(name, workers=1).name == name
