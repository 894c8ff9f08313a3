"""Map backends: the one seam for parallel evaluation (DEAP's ``toolbox.register("map", ...)``).

Every backend offers ``map(fn, items)`` with results in input order, and ``as_completed(fn,
items)`` yielding ``(index, result)`` as each item finishes (so a caller can keep finished work
before the rest is done). ``fn`` must be a picklable module-level function (or a
``functools.partial`` of one) and the items plain data; trees travel as text. An exception
raised for one item never loses the others: it is caught in the worker and either returned in
its slot (``return_exceptions=True``) or re-raised after all finished.

Ctrl-C: a terminal sends SIGINT to every process of its group, workers included. Process
workers ignore it, so none dies mid-item and strands its result; the parent alone gets
``KeyboardInterrupt``, and a backend left by an exception (``with`` block, interrupted ``map``)
terminates its workers instead of waiting for them.

- ``serial``: in-process, for debugging and tiny runs.
- ``process``: a long-lived ``multiprocess`` pool (spawned: forking a parent that already ran
  multi-threaded torch can deadlock); each worker runs torch with one thread, since parallelism
  comes from the workers.
- ``dask``: ``dask.distributed``, imported only when used; a scheduler address joins an existing
  cluster (``dask scheduler``, dask-jobqueue on SLURM/PBS, Kubernetes; its workers need lossevo
  installed), no address starts a loopback-only ``LocalCluster``. Items travel in chunks to keep
  the scheduler's per-task overhead small.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import pickle
import random
import signal
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["BACKENDS", "Backend", "RemoteError", "default_workers", "make_backend"]

BACKENDS = ("serial", "process", "dask")
_CHUNKS_PER_WORKER = 4


class RemoteError(Exception):
    """Stands in for an exception raised in a worker that could not be pickled back."""

    def __init__(self, type_name: str, message: str, remote_traceback: str) -> None:
        super().__init__(type_name, message, remote_traceback)
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"


def default_workers() -> int:
    """The CPU cores this process may use (its affinity mask where the OS reports one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


# --- what runs in the workers (module level, so it pickles by reference) -------------------


def _single_torch_thread() -> None:
    """Parallelism comes from the workers; torch's own threads would oversubscribe the cores."""
    import torch  # only workers pay for it, once

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def _worker_init() -> None:
    """Pool initializer: Ctrl-C is the parent's to handle (it terminates the pool).

    Workers start with SIGINT ignored (inherited, see :func:`_sigint_held`); this keeps it so
    for workers the pool starts later, and unblocks it on platforms that inherit the mask.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _single_torch_thread()


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """While a pool starts, SIGINT is ignored and blocked in the parent. Spawned workers
    inherit the *ignore* (an exec keeps SIG_IGN; the signal mask is reset by the spawn, as
    measured here), so a Ctrl-C while a worker still imports cannot kill it with a traceback
    before :func:`_worker_init` runs. The block holds a Ctrl-C that arrives meanwhile for
    the parent: it is delivered, to the restored handler, when the pool is up."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no process-group SIGINT
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: the block alone is what can be done
        handler = None
    try:
        yield
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _portable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a RemoteError summary."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        exc.remote_traceback = tb  # type: ignore[attr-defined]
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RemoteError(type(exc).__qualname__, str(exc), tb)


def _guarded(fn: Callable[[Any], Any], item: Any) -> tuple[bool, Any]:
    try:
        return True, fn(item)
    except Exception as exc:
        return False, _portable(exc)


def _guarded_indexed(fn: Callable[[Any], Any], pair: tuple[int, Any]) -> tuple[int, bool, Any]:
    return (pair[0], *_guarded(fn, pair[1]))


def _guarded_chunk(fn: Callable[[Any], Any], chunk: list[Any]) -> list[tuple[bool, Any]]:
    _single_torch_thread()
    return [_guarded(fn, item) for item in chunk]


def _unpack(outcomes: Iterable[tuple[bool, Any]], return_exceptions: bool) -> list[Any]:
    results = []
    for ok, value in outcomes:
        if not ok and not return_exceptions:
            raise value
        results.append(value)
    return results


def _aborted(exc: BaseException) -> bool:
    """Ctrl-C, SystemExit, a closed generator: the caller gave up on the unfinished items."""
    return not isinstance(exc, Exception)


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# --- backends ------------------------------------------------------------------------------


class Backend:
    """A map over items, in order; use as a context manager or call ``close()``."""

    name = "serial"

    def __init__(self, workers: int = 1, chunk_size: int | None = None) -> None:
        self._workers = workers
        self.chunk_size = chunk_size

    @property
    def workers(self) -> int:
        return self._workers

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *,
            return_exceptions: bool = False) -> list[Any]:
        """``[fn(item) for item in items]``; a failing item raises, or returns its exception."""
        if not return_exceptions:
            return [fn(item) for item in items]
        results = []
        for item in items:
            try:
                results.append(fn(item))
            except Exception as exc:
                results.append(exc)
        return results

    def as_completed(self, fn: Callable[[Any], Any], items: Iterable[Any], *,
                     return_exceptions: bool = False) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(item))`` as each item finishes (any order). A failing item
        raises when it comes up (unfinished items are then abandoned), or yields its
        exception with ``return_exceptions=True``."""
        for i, item in enumerate(items):
            try:
                yield i, fn(item)
            except Exception as exc:
                if not return_exceptions:
                    raise
                yield i, exc

    def close(self) -> None:
        """Release workers, letting them finish; a later ``map`` starts them again."""

    def terminate(self) -> None:
        """Stop workers now, abandoning unfinished items (Ctrl-C); a later ``map`` restarts."""
        self.close()

    def _chunk_size(self, n_items: int) -> int:
        if self.chunk_size is not None:
            return self.chunk_size
        return max(1, math.ceil(n_items / (self.workers * _CHUNKS_PER_WORKER)))

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        # leaving on an exception (Ctrl-C above all): unfinished work is of no use to anyone
        if exc_type is None:
            self.close()
        else:
            self.terminate()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(workers={self._workers})"


class _ProcessBackend(Backend):
    """A spawned ``multiprocess`` pool, created on first use and kept for later calls."""

    name = "process"

    def __init__(self, workers: int, chunk_size: int | None = None) -> None:
        super().__init__(workers, chunk_size)
        self._pool = None

    def _ensure_pool(self):
        if self._pool is None:
            import multiprocess  # dill-based: pickles partials

            context = multiprocess.get_context("spawn")
            if hasattr(signal, "pthread_sigmask"):
                # Started here, before the window below: starting it inside would *unblock*
                # SIGINT (its own code does) while the ignore is in place, and a Ctrl-C in
                # that moment would be lost (seen once in a loaded test run).
                from multiprocess import resource_tracker

                resource_tracker.ensure_running()
            with _sigint_held():
                self._pool = context.Pool(self._workers, initializer=_worker_init)
        return self._pool

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *,
            return_exceptions: bool = False) -> list[Any]:
        items = list(items)
        if not items:
            return []
        try:
            pool = self._ensure_pool()
            outcomes = pool.map(functools.partial(_guarded, fn), items,
                                chunksize=self._chunk_size(len(items)))
        except BaseException as exc:
            if _aborted(exc):
                self.terminate()
            raise
        return _unpack(outcomes, return_exceptions)

    def as_completed(self, fn: Callable[[Any], Any], items: Iterable[Any], *,
                     return_exceptions: bool = False) -> Iterator[tuple[int, Any]]:
        items = list(items)
        if not items:
            return
        try:
            pool = self._ensure_pool()
            for i, ok, value in pool.imap_unordered(
                    functools.partial(_guarded_indexed, fn), enumerate(items),
                    chunksize=self._chunk_size(len(items))):
                if not ok and not return_exceptions:
                    raise value
                yield i, value
        except BaseException:
            # an early exit leaves items running in the pool: stop them
            self.terminate()
            raise

    def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.close()
            pool.join()

    def terminate(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.terminate()
            pool.join()


@contextlib.contextmanager
def _random_state_kept() -> Iterator[None]:
    """dask.distributed draws from the global ``random`` state; nobody here may notice."""
    state = random.getstate()
    try:
        yield
    finally:
        random.setstate(state)


class _DaskBackend(Backend):
    """``dask.distributed``: an existing cluster by address, or a loopback LocalCluster."""

    name = "dask"

    def __init__(self, workers: int | None, scheduler: str | None,
                 chunk_size: int | None = None) -> None:
        super().__init__(workers or 0, chunk_size)
        self.scheduler = scheduler
        self._client = None
        self._cluster = None

    def _ensure_client(self):
        if self._client is not None:
            return self._client
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as err:
            raise ImportError(
                "the 'dask' backend needs dask.distributed: pip install 'lossevo[dask]'"
            ) from err
        with _random_state_kept():
            if self.scheduler is not None:
                self._client = Client(self.scheduler, set_as_default=False)
            else:
                self._cluster = LocalCluster(
                    n_workers=self._workers or default_workers(), threads_per_worker=1,
                    processes=True, host="127.0.0.1", dashboard_address=None,
                )
                self._client = Client(self._cluster, set_as_default=False)
        return self._client

    @property
    def workers(self) -> int:
        """Requested workers; for a remote cluster without a request, those now connected."""
        if self._workers:
            return self._workers
        if self.scheduler is None:
            return default_workers()
        with _random_state_kept():
            return len(self._ensure_client().scheduler_info()["workers"])

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *,
            return_exceptions: bool = False) -> list[Any]:
        items = list(items)
        if not items:
            return []
        client = self._ensure_client()
        chunks = _chunks(items, self._chunk_size(len(items)))
        # Fresh explicit keys: identical items in two calls are never merged into one task.
        token = uuid.uuid4().hex
        keys = [f"lossevo-map-{token}-{i}" for i in range(len(chunks))]
        with _random_state_kept():
            futures = client.map(functools.partial(_guarded_chunk, fn), chunks, key=keys,
                                 pure=False)
            try:
                outcomes = client.gather(futures)
            except BaseException as exc:
                if _aborted(exc):
                    self._cancel(futures)
                raise
        return _unpack((o for chunk in outcomes for o in chunk), return_exceptions)

    def as_completed(self, fn: Callable[[Any], Any], items: Iterable[Any], *,
                     return_exceptions: bool = False) -> Iterator[tuple[int, Any]]:
        items = list(items)
        if not items:
            return
        from dask.distributed import as_completed

        client = self._ensure_client()
        size = self._chunk_size(len(items))
        chunks = _chunks(items, size)
        token = uuid.uuid4().hex
        keys = [f"lossevo-map-{token}-{i}" for i in range(len(chunks))]
        with _random_state_kept():
            futures = client.map(functools.partial(_guarded_chunk, fn), chunks, key=keys,
                                 pure=False)
            pending = as_completed(futures, loop=client.loop)
        first = {key: i * size for i, key in enumerate(keys)}
        try:
            while True:
                with _random_state_kept():
                    future = next(pending, None)
                    if future is None:
                        return
                    outcomes = future.result()
                for j, (ok, value) in enumerate(outcomes):
                    if not ok and not return_exceptions:
                        raise value
                    yield first[future.key] + j, value
        except BaseException:
            self._cancel(futures)
            raise

    def _cancel(self, futures: list[Any]) -> None:
        """Drop unfinished chunks from the cluster (a remote one would run them on)."""
        with _random_state_kept(), contextlib.suppress(Exception):
            self._client.cancel(futures)

    def close(self) -> None:
        with _random_state_kept():
            if self._client is not None:
                client, self._client = self._client, None
                client.close()
            if self._cluster is not None:
                cluster, self._cluster = self._cluster, None
                cluster.close()


def make_backend(name: str = "process", *, workers: int | None = None,
                 scheduler: str | None = None, chunk_size: int | None = None) -> Backend:
    """A map backend by name: "serial", "process" (the campaign default) or "dask".

    ``workers`` defaults to the usable CPU cores; ``scheduler`` is a dask scheduler address
    (only for "dask"); ``chunk_size`` is how many items travel per task (default: a few chunks
    per worker). Nothing starts until the first ``map``.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; allowed: {', '.join(BACKENDS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"workers must be a positive int or None, got {workers!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool)
                                   or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    if scheduler is not None and name != "dask":
        raise ValueError(f"scheduler={scheduler!r} applies only to the 'dask' backend, "
                         f"not {name!r}")
    if name == "serial":
        return Backend(1, chunk_size)
    if name == "process":
        return _ProcessBackend(workers or default_workers(), chunk_size)
    return _DaskBackend(workers, scheduler, chunk_size)
