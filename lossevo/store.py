"""The run directory: SQLite record of every candidate, atomic checkpoints, config and versions.

Layout::

    DIR/config.toml        the config as run          DIR/versions.json   dependency versions
    DIR/candidates.sqlite  every candidate evaluated  DIR/checkpoint.pkl  the last generation
    DIR/checkpoint.prev.pkl  the one before it        DIR/report.md, DIR/plots/  (report)

A checkpoint is written to a temporary file, flushed to disk and renamed over the old one, so a
crash (even ``kill -9``) leaves either the old or the new checkpoint, never half of one. The
database rows of a generation are committed just before its checkpoint; rows of a generation
that has no checkpoint are dropped on resume, so the record matches the state resumed from.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sqlite3
from importlib import metadata
from pathlib import Path
from typing import Any

from lossevo.atomic import write_atomic

__all__ = ["CheckpointError", "RunStore"]

_MAGIC = b"LOSSEVO-CKPT-1\n"
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
    worker TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS candidates_generation ON candidates (generation);
CREATE INDEX IF NOT EXISTS candidates_key ON candidates (canonical_key);
"""
_COLUMNS = ("id", "generation", "expression", "canonical_key", "size", "parents", "operator",
            "fitness", "metrics", "status", "reason", "seconds", "worker")


class CheckpointError(RuntimeError):
    """A checkpoint is missing or corrupt; the message says which good one remains."""


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
        self.checkpoint_path = self.root / "checkpoint.pkl"
        self.previous_path = self.root / "checkpoint.prev.pkl"
        self.db_path = self.root / "candidates.sqlite"

    # --- creation ---------------------------------------------------------------------------
    def create(self, config_text: str) -> None:
        if self.checkpoint_path.exists():
            raise ValueError(f"run directory {str(self.root)!r} already holds a run; use "
                             f"'lossevo resume {self.root}' or another --out")
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.root / "config.toml", config_text.encode())
        write_atomic(self.root / "versions.json",
                      json.dumps(_versions(), indent=2).encode())
        with self._db() as db:
            db.executescript(_SCHEMA)

    def config_text(self) -> str:
        path = self.root / "config.toml"
        if not path.is_file():
            raise ValueError(f"{str(self.root)!r} is not a run directory (no config.toml)")
        return path.read_text()

    # --- database ---------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db_path)

    def record(self, rows: list[dict[str, Any]]) -> None:
        """Insert a generation's candidates in one transaction."""
        encoded = [
            tuple(json.dumps(r[c]) if c in ("parents", "fitness", "metrics") else r[c]
                  for c in _COLUMNS)
            for r in rows
        ]
        with self._db() as db:
            db.executemany(f"INSERT INTO candidates VALUES ({', '.join('?' * len(_COLUMNS))})",
                           encoded)

    def truncate_after(self, generation: int) -> None:
        """Drop rows of generations after ``generation`` (written before a crash)."""
        with self._db() as db:
            db.execute("DELETE FROM candidates WHERE generation > ?", (generation,))

    def candidates(self) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM candidates ORDER BY id")
            out = []
            for row in rows:
                item = dict(zip(_COLUMNS, row, strict=True))
                for c in ("parents", "fitness", "metrics"):
                    item[c] = json.loads(item[c])
                out.append(item)
        return out

    # --- checkpoints ------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        blob = _MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
        staged = self.root / ".checkpoint.staged"
        write_atomic(staged, blob)
        if self.checkpoint_path.exists():
            os.replace(self.checkpoint_path, self.previous_path)
        os.replace(staged, self.checkpoint_path)

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        blob = path.read_bytes()
        if not blob.startswith(_MAGIC):
            raise CheckpointError(f"{path} is not a lossevo checkpoint")
        digest, _, payload = blob[len(_MAGIC):].partition(b"\n")
        if hashlib.sha256(payload).hexdigest().encode() != digest:
            raise CheckpointError(f"{path} is corrupt (checksum mismatch)")
        return pickle.loads(payload)

    def load_checkpoint(self, *, previous: bool = False) -> dict[str, Any]:
        """The last complete checkpoint (or the one before it with ``previous``).

        A crash between the two renames of :meth:`save_checkpoint` leaves only the previous
        file: it is then the last complete one and is used. A corrupt file is never replaced
        or deleted here; the error names the good one that remains.
        """
        path = self.previous_path if previous else self.checkpoint_path
        if not previous and not path.exists() and self.previous_path.exists():
            path = self.previous_path
        if not path.exists():
            raise CheckpointError(f"no checkpoint at {path}: the run never finished its first "
                                  f"generation; start it again with 'lossevo run'")
        try:
            return self._read(path)
        except Exception as exc:
            reason = exc if isinstance(exc, CheckpointError) else f"{path} cannot be read: {exc}"
            good = ""
            if path == self.checkpoint_path and self.previous_path.exists():
                good = (f"; the previous checkpoint {self.previous_path} is kept untouched: "
                        f"resume from it with 'lossevo resume {self.root} --use-previous'")
            raise CheckpointError(f"{reason}{good}") from None
