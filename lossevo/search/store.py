"""The run directory: SQLite record of every candidate, atomic checkpoints, config and versions.

Layout (this module is the only one that spells these names; others ask a RunStore)::

    DIR/config.toml        the config as run          DIR/versions.json   dependency versions
    DIR/overrides.json     CLI overrides of the run   DIR/task.toml       the task file, copied
    DIR/task-<i>.toml      the file of tasks[i], copied (multi-task configs)
    DIR/candidates.sqlite  every candidate evaluated  DIR/checkpoint.json the last generation
    DIR/checkpoint.prev.json  the one before it       DIR/.lock           held while running
    DIR/report.md, DIR/plots/  (report)

A candidate's row and checkpoint entry, and the checkpoint's state, are converted to and from
their typed forms in lossevo.search.records and lossevo.search.state; this module moves bytes.

A candidate's row carries the ``fidelity`` its scores come from (the share of the epochs; below
1.0 when multi-fidelity evaluation stopped it at a low rung, see lossevo.evaluation.fidelity);
databases written before that column existed read as 1.0. In a multi-task campaign
(lossevo.search.multitask) the ``tasks`` column holds each task's own fitness, metrics and
normalized score as JSON (``{task: {...}}``); single-task rows and older databases read as ``{}``.

Everything in a run directory is plain data (TOML, JSON, SQLite): run directories are shared
and downloaded, so opening one must never run code from it (no pickle). A checkpoint is one
JSON header line (format, version, sha256 of the rest) followed by the state as JSON.

A checkpoint is written to a temporary file, flushed to disk and renamed over the old one, so a
crash (even ``kill -9``) leaves either the old or the new checkpoint, never half of one. The
database rows of a generation are committed just before its checkpoint; rows of a generation
that has no checkpoint are dropped on resume, so the record matches the state resumed from.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from lossevo.atomic import write_atomic
from lossevo.search.records import CandidateRecord, Json
from lossevo.search.state import CampaignState

__all__ = ["CheckpointError", "RunDirBusy", "RunDirError", "RunStore", "reason_class"]

_FORMAT = "lossevo-checkpoint"
_VERSION = 2
# Keys a checkpoint's state must have, with their JSON types: a file that parses but is not
# a campaign state is reported as such, not as a KeyError deep in the campaign.
_STATE_KEYS = {"generation": int, "population": list, "hall_of_fame": list, "pareto": list,
               "cache": dict, "next_id": int, "history": list, "counters": dict, "rng": dict}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS candidates (
    id INTEGER PRIMARY KEY,
    generation INTEGER NOT NULL,
    expression TEXT NOT NULL,
    canonical_key TEXT NOT NULL,
    size INTEGER NOT NULL,
    parents TEXT NOT NULL,
    operator TEXT NOT NULL,
    fitness TEXT NOT NULL,
    metrics TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    seconds REAL NOT NULL,
    worker TEXT NOT NULL,
    fidelity REAL NOT NULL DEFAULT 1.0,
    tasks TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS candidates_generation ON candidates (generation);
CREATE INDEX IF NOT EXISTS candidates_key ON candidates (canonical_key);
"""
_COLUMNS = ("id", "generation", "expression", "canonical_key", "size", "parents", "operator",
            "fitness", "metrics", "status", "reason", "seconds", "worker", "fidelity", "tasks")
_JSON = ("parents", "fitness", "metrics", "tasks")  # columns stored as JSON text
# Columns added after the first release, with their stored value in rows written before them:
# an old database gains them when a resumed run writes to it, and reads without them as these.
_ADDED = {"fidelity": ("REAL NOT NULL DEFAULT 1.0", 1.0),
          "tasks": ("TEXT NOT NULL DEFAULT '{}'", "{}")}


class RunDirError(RuntimeError):
    """A run directory cannot be used as asked; the message names the file and what to do."""


class CheckpointError(RunDirError):
    """A checkpoint is missing or corrupt; the message says which good one remains."""


class RunDirBusy(RunDirError):
    """Another process holds the run directory's lock."""


def reason_class(reason: str | None) -> str:
    """A rejection reason without its numbers, for counting (e.g. the rejection test's
    errors differ in every candidate)."""
    text = (reason or "unknown").split("(")[0].strip()
    return text[:60]


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("lossevo", "torch", "deap", "sympy", "numpy", "cvxpy", "scikit-learn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.checkpoint_path = self.root / "checkpoint.json"
        self.previous_path = self.root / "checkpoint.prev.json"
        self.db_path = self.root / "candidates.sqlite"
        self.config_path = self.root / "config.toml"
        self.overrides_path = self.root / "overrides.json"
        self.task_path = self.root / "task.toml"
        self.versions_path = self.root / "versions.json"
        self.lock_path = self.root / ".lock"
        self.report_path = self.root / "report.md"
        self.plots_path = self.root / "plots"

    def task_copy_path(self, index: int) -> Path:
        """Where the task file of the config's ``tasks[index]`` is kept."""
        return self.root / f"task-{index}.toml"

    # --- creation ---------------------------------------------------------------------------
    def create(self, config_text: str) -> None:
        """Write config, versions and an empty database; call under :meth:`lock`."""
        if self.config_path.exists():
            raise RunDirError(f"run directory {str(self.root)!r} already holds a run; use "
                              f"'lossevo resume {self.root}' or another --out")
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.config_path, config_text.encode())
        write_atomic(self.versions_path, json.dumps(_versions(), indent=2).encode())
        with self._db() as db:
            db.executescript(_SCHEMA)

    def config_text(self) -> str:
        if not self.config_path.is_file():
            raise RunDirError(f"{str(self.root)!r} is not a run directory (no config.toml)")
        return self.config_path.read_text()

    def write_overrides(self, overrides: Json) -> None:
        """The CLI overrides of the run (plain JSON data), kept for ``resume``."""
        self.overrides_path.write_text(json.dumps(overrides))

    def overrides(self) -> Json:
        """The stored CLI overrides; none for a run directory without the file."""
        path = self.overrides_path
        return json.loads(path.read_text()) if path.is_file() else {}

    # --- lock -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, command: str) -> Iterator[None]:
        """Hold ``DIR/.lock`` (an exclusive ``flock``) while a command writes the directory.

        The kernel drops the lock when the process dies, even by ``kill -9``, so a stale
        ``.lock`` file never blocks a later resume. The file holds the holder's pid and
        command, for the message a second process gets."""
        import fcntl  # POSIX only; imported here so that reading a run works everywhere

        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                raise RunDirBusy(f"run directory {str(self.root)!r} is in use by another "
                                 f"process ({holder}); wait for it to finish or stop it "
                                 f"first") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, lossevo {command}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the lock

    # --- database ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection that commits on success; any sqlite failure (a truncated or garbled
        file, a read-only directory) becomes a RunDirError naming the database file."""
        try:
            db = sqlite3.connect(self.db_path)
            try:
                with db:
                    yield db
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise RunDirError(f"the candidate database {self.db_path} cannot be used: {exc}; "
                              f"the checkpoints are unaffected") from None

    @staticmethod
    def _missing(db: sqlite3.Connection) -> list[str]:
        """Columns of `_ADDED` that this database (an older run's) does not have yet."""
        have = {row[1] for row in db.execute("PRAGMA table_info(candidates)")}
        return [c for c in _ADDED if c not in have]

    def record(self, rows: list[Json]) -> None:
        """Insert a generation's candidates (rows, as CandidateRecord.to_row gives them) in one
        transaction (a row without a later column, e.g. ``fidelity``, gets its default)."""
        encoded = [
            tuple(_ADDED[c][1] if c in _ADDED and c not in r
                  else json.dumps(r[c]) if c in _JSON else r[c] for c in _COLUMNS)
            for r in rows
        ]
        with self._db() as db:
            for column in self._missing(db):
                db.execute(f"ALTER TABLE candidates ADD COLUMN {column} {_ADDED[column][0]}")
            db.executemany(f"INSERT INTO candidates ({', '.join(_COLUMNS)}) "
                           f"VALUES ({', '.join('?' * len(_COLUMNS))})", encoded)

    def truncate_after(self, generation: int) -> None:
        """Drop rows of generations after ``generation`` (written before a crash)."""
        with self._db() as db:
            db.execute("DELETE FROM candidates WHERE generation > ?", (generation,))

    def records(self) -> list[CandidateRecord]:
        """Every candidate recorded, by id."""
        return [CandidateRecord.from_row(r) for r in self.candidates()]

    def candidates(self) -> list[Json]:
        """Every candidate's row as stored (JSON columns decoded), by id."""
        if not self.db_path.is_file():
            raise RunDirError(f"{str(self.root)!r} has no candidate database "
                              f"({self.db_path.name})")
        with self._db() as db:
            missing = self._missing(db)  # read as their defaults; reading never migrates
            columns = [c for c in _COLUMNS if c not in missing]
            rows = db.execute(f"SELECT {', '.join(columns)} FROM candidates ORDER BY id")
            out = []
            for row in rows:
                item = dict(zip(columns, row, strict=True))
                item.update({c: _ADDED[c][1] for c in missing})
                for c in _JSON:
                    item[c] = json.loads(item[c])
                out.append(item)
        return out

    # --- checkpoints ------------------------------------------------------------------------
    def save_checkpoint(self, state: Json) -> None:
        """Write ``state`` (plain JSON data) as the new checkpoint, keeping the previous one."""
        payload = json.dumps(state, separators=(",", ":")).encode()
        header = json.dumps({"format": _FORMAT, "version": _VERSION,
                             "sha256": hashlib.sha256(payload).hexdigest()}).encode()
        staged = self.root / ".checkpoint.staged"
        write_atomic(staged, header + b"\n" + payload)
        if self.checkpoint_path.exists():
            os.replace(self.checkpoint_path, self.previous_path)
        os.replace(staged, self.checkpoint_path)

    @staticmethod
    def _read(path: Path) -> Json:
        blob = path.read_bytes()
        head, _, payload = blob.partition(b"\n")
        try:
            header = json.loads(head)
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            raise CheckpointError(f"{path} is not a lossevo checkpoint")
        if header.get("version") != _VERSION:
            raise CheckpointError(f"{path} has checkpoint version {header.get('version')!r}; "
                                  f"this lossevo reads version {_VERSION}")
        if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
            raise CheckpointError(f"{path} is corrupt (checksum mismatch)")
        try:
            state = json.loads(payload)
        except ValueError as exc:
            raise CheckpointError(f"{path} is corrupt (not JSON: {exc})") from None
        bad = [k for k, t in _STATE_KEYS.items()
               if not isinstance(state, dict) or not isinstance(state.get(k), t)]
        if bad:
            raise CheckpointError(f"{path} is not a campaign state (missing or wrong: "
                                  f"{', '.join(bad)})")
        return state

    def _legacy(self) -> Path | None:
        """A pickle checkpoint of lossevo 0.1, where no JSON one exists."""
        if self.checkpoint_path.exists() or self.previous_path.exists():
            return None
        found = [self.root / n for n in ("checkpoint.pkl", "checkpoint.prev.pkl")
                 if (self.root / n).exists()]
        return found[0] if found else None

    def has_checkpoint(self) -> bool:
        """Whether any checkpoint file is there (a legacy one too: it is refused on load)."""
        return (self.checkpoint_path.exists() or self.previous_path.exists()
                or self._legacy() is not None)

    def _refuse_legacy(self) -> None:
        legacy = self._legacy()
        if legacy is not None:
            raise CheckpointError(
                f"{legacy} is a pickle checkpoint of lossevo 0.1; it is not opened, since "
                f"unpickling a file runs code from it. Re-run the campaign from "
                f"{self.config_path.name}, or open it with lossevo 0.1 only if you trust "
                f"where it came from")

    def load_state(self, *, previous: bool = False) -> CampaignState:
        """The state of :meth:`load_checkpoint`, typed."""
        data = self.load_checkpoint(previous=previous)
        try:
            return CampaignState.from_json(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"the checkpoint of {str(self.root)!r} is not a campaign "
                                  f"state (a record cannot be read: {exc!r})") from None

    def load_checkpoint(self, *, previous: bool = False) -> Json:
        """The last complete checkpoint (or the one before it with ``previous``).

        A crash between the two renames of :meth:`save_checkpoint` leaves only the previous
        file: it is then the last complete one and is used. A corrupt file is never replaced
        or deleted here; the error names the good one that remains.
        """
        self._refuse_legacy()
        path = self.previous_path if previous else self.checkpoint_path
        if not previous and not path.exists() and self.previous_path.exists():
            path = self.previous_path
        if not path.exists():
            where = (f"{str(self.root)!r} is not a run directory (no config.toml)"
                     if not self.config_path.exists() else
                     f"no checkpoint at {path}: the run has no complete generation yet; "
                     f"'lossevo resume {self.root}' starts it from generation 0")
            raise CheckpointError(where)
        try:
            return self._read(path)
        except Exception as exc:
            reason = exc if isinstance(exc, CheckpointError) else f"{path} cannot be read: {exc}"
            good = ""
            if path == self.checkpoint_path and self.previous_path.exists():
                good = (f"; the previous checkpoint {self.previous_path} is kept untouched: "
                        f"resume from it with 'lossevo resume {self.root} --use-previous'")
            raise CheckpointError(f"{reason}{good}") from None
