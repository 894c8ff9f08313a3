"""The configuration a run directory keeps: written when a run starts, read back on resume.

A run directory holds its config as written, the CLI overrides it ran with, and a copy of
every task *file* the config names (``task = "x.toml"``, ``[task] preset``/``base``, entries
of ``tasks``), so that resuming from elsewhere works and an edited file cannot change a
resumed run. Where those files lie is lossevo.search.store's business; this module decides
what goes into them and rebuilds the configuration from them.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path
from typing import Any

from lossevo.evaluation.tasks import TASK_PRESETS
from lossevo.search import multitask
from lossevo.search.config import CampaignConfig, apply_overrides, config_from_mapping
from lossevo.search.records import Json
from lossevo.search.store import RunStore

__all__ = ["keep_config", "load_run_config"]


def _task_reference(data: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """Where a config document names a task *file* (not a preset): ``task = "x.toml"``,
    ``[task] preset = "x.toml"`` or ``[task] base = "x.toml"``, as (container, key)."""
    task = data.get("task")
    if isinstance(task, str):
        return None if task in TASK_PRESETS else (data, "task")
    if isinstance(task, dict):
        for key in ("preset", "base"):
            ref = task.get(key)
            if isinstance(ref, str) and ref not in TASK_PRESETS:
                return task, key
    return None


def keep_config(store: RunStore, config_path: str | Path, overrides: Json) -> None:
    """Make the run directory (call under ``store.lock``) with the config file, copies of the
    task files it names and `overrides` (plain data, e.g. the backend and the device)."""
    text = Path(config_path).read_text()
    data = tomllib.loads(text)
    ref = _task_reference(data)
    store.create(text)
    if ref is not None:
        shutil.copyfile(ref[0][ref[1]], store.task_path)
    for container, key, index in multitask.task_files(data):  # files listed in `tasks`
        shutil.copyfile(container[key], store.task_copy_path(index))
    store.write_overrides(overrides)


def load_run_config(store: RunStore) -> tuple[CampaignConfig, dict[str, Any]]:
    """The configuration a run directory was started with (file plus CLI overrides), and
    ``{"device": ...}``, the device it was started on (None: the default)."""
    text = store.config_text()
    overrides = store.overrides()
    device = overrides.pop("device", None)
    data = tomllib.loads(text)
    ref = _task_reference(data)
    if ref is not None and store.task_path.is_file():
        ref[0][ref[1]] = str(store.task_path)
    for container, key, index in multitask.task_files(data):
        copy = store.task_copy_path(index)
        if copy.is_file():
            container[key] = str(copy)
    cfg = config_from_mapping(apply_overrides(data, overrides))
    return cfg, {"device": device}
