"""The output directory of a comparison: checked before any training, and the finished units
kept in it, so that Ctrl-C (or a crash) loses only the units still running.

Each finished unit is one JSON file, ``<out>/units/<key>.json``, written atomically the moment
the unit's results arrive. The key hashes everything that decides the unit's numbers: the task
with all its overrides, the unit's contenders (labels, names, parameters, expressions, their
``early_stop`` and ``tune`` flags), the tuning grids and race of a tuned unit, ``instances``,
``seed``, the resolved torch device and lossevo's version. A rerun into the same
``--out`` reuses every unit whose key matches and trains only the others; backend and worker
count do not enter the key, since every backend gives the same numbers. A unit with a failed
contender is not kept: a failure can be passing (memory, a killed worker), so a rerun retries it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from lossevo.atomic import write_atomic

__all__ = ["UnitStore", "check_out_dir"]

Result = dict[str, Any]


def check_out_dir(out: str | Path) -> Path:
    """Create ``out`` (with its parents) and prove it writable, before any work: a bad
    ``--out`` must fail at once with one line, not after all the training."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"compare output {str(out)!r} is an existing file, not a directory; "
                         "give --out a directory (new or from an earlier compare)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"compare output {str(out)!r} cannot be created or written: "
                         f"{exc.strerror or exc}") from None
    return out


def _json_default(value: Any) -> Any:
    return str(value)  # enums (already str), paths and anything else without a JSON form


def unit_key(unit: dict[str, Any]) -> str:
    """A hash of what decides a unit's numbers (see the module docstring)."""
    from lossevo import __version__
    from lossevo.evaluation.fitness import resolve_device

    ident = {"task": dataclasses.asdict(unit["task"]), "contenders": unit["contenders"],
             "instances": unit["instances"], "seed": unit["seed"], "threads": unit["threads"],
             "tuning": unit.get("tuning"), "device": str(resolve_device(unit["device"])),
             "lossevo": __version__}
    text = json.dumps(ident, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class UnitStore:
    """Finished units of one output directory (``<out>/units``), one JSON file each;
    ``reuse=False`` keeps new units but finds none (every unit trains again)."""

    def __init__(self, out: str | Path, *, reuse: bool = True) -> None:
        self.root = Path(out) / "units"
        self.reuse = reuse

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def load(self, unit: dict[str, Any]) -> list[Result] | None:
        """The unit's kept results, or None when it has none (or an unreadable file)."""
        if not self.reuse:
            return None
        key = unit_key(unit)
        try:
            doc = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("key") != key:
            return None
        return doc.get("results")

    def save(self, unit: dict[str, Any], results: list[Result]) -> bool:
        """Keep a finished unit, unless a contender failed; True when kept."""
        if any(r["status"] == "failed" for r in results):
            return False
        key = unit_key(unit)
        self.root.mkdir(parents=True, exist_ok=True)
        doc = {"key": key, "task": unit["task"].name,
               "contenders": [c["label"] for c in unit["contenders"]],
               "instances": unit["instances"], "seed": unit["seed"], "results": results}
        write_atomic(self._path(key), json.dumps(doc, indent=1, default=_json_default) + "\n")
        return True
