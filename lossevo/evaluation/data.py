"""Datasets that need no download, split into train / validation / test and scaled once per
process.

The test split is cut first (as in the reference protocol), then the validation split from the
rest (stratified for classification), so changing the validation fraction never moves a test
sample. digits: pixels/16 (the reference protocol). breast_cancer, wine: standardized
with train statistics. mnist1d: generated locally with `make_dataset` (never the download path).
poly3: y = 2.1 + 3.2x + 1.6x² + 0.9x³, x ~ U(-2, 2); targets are stored clean here and
corrupted per instance in `noise.py`.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import numpy as np

from lossevo.evaluation.tasks import DatasetName, Task

__all__ = ["POLY3_COEFFS", "POLY3_RANGE", "Dataset", "load_dataset", "poly3"]

POLY3_COEFFS = (2.1, 3.2, 1.6, 0.9)
POLY3_RANGE = (-2.0, 2.0)


@dataclass(frozen=True)
class Dataset:
    """Clean arrays (float32 inputs; int64 labels or float32 targets) and their shape facts.
    Validation labels are clean here: their corruption is drawn per evaluation (fitness)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int  # 0 for regression
    image_shape: tuple[int, ...] | None  # (8, 8) for digits, else None
    clip: tuple[float, float] | None  # valid input range (adversarial attacks stay inside)

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])


def poly3(x: np.ndarray) -> np.ndarray:
    a, b, c, d = POLY3_COEFFS
    return a + b * x + c * x**2 + d * x**3


def _stratified_split(
    x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    return tuple(train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed))


def _standardize(x_train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Scale with train statistics only: validation and test stay unseen."""
    mu, sd = x_train.mean(0), x_train.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    return tuple((x - mu) / sd for x in (x_train, *others))


def _mnist1d(n_samples: int, test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = n_samples
    args.train_split = 1.0 - test_fraction
    args.seed = seed + 42
    # make_dataset seeds numpy's and Python's global RNGs; restore them so callers are unaffected.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return d["x"], d["x_test"], d["y"], d["y_test"]


@functools.lru_cache(maxsize=16)
def _load(name: DatasetName, test_fraction: float, val_fraction: float, seed: int,
          n_samples: int) -> Dataset:
    image_shape, clip = None, None
    if name is DatasetName.POLY3:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
        n = n_samples or 1000
        x = rng.uniform(*POLY3_RANGE, size=(n, 1))
        n_test = round(n * test_fraction)
        n_val = round((n - n_test) * val_fraction)
        x_te, x_va, x_tr = x[:n_test], x[n_test:n_test + n_val], x[n_test + n_val:]
        arrays = [(a.astype(np.float32), poly3(a[:, 0]).astype(np.float32))
                  for a in (x_tr, x_va, x_te)]
        return Dataset(*arrays[0], *arrays[1], *arrays[2], 0, None, None)
    if name is DatasetName.MNIST1D:
        x_rest, x_te, y_rest, y_te = _mnist1d(n_samples or 5000, test_fraction, seed)
    else:
        from sklearn import datasets

        loader = {
            DatasetName.DIGITS: datasets.load_digits,
            DatasetName.BREAST_CANCER: datasets.load_breast_cancer,
            DatasetName.WINE: datasets.load_wine,
        }[name]
        bunch = loader()
        x, y = bunch.data.astype(np.float64), bunch.target
        x_rest, x_te, y_rest, y_te = _stratified_split(x, y, test_fraction, seed)
    x_tr, x_va, y_tr, y_va = _stratified_split(x_rest, y_rest, val_fraction, seed + 1)
    if name is DatasetName.DIGITS:
        x_tr, x_va, x_te = x_tr / 16.0, x_va / 16.0, x_te / 16.0
        image_shape, clip = (8, 8), (0.0, 1.0)
    elif name is not DatasetName.MNIST1D:
        x_tr, x_va, x_te = _standardize(x_tr, x_va, x_te)
    n_classes = int(max(y_tr.max(), y_va.max(), y_te.max()) + 1)

    def pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.ascontiguousarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)

    return Dataset(*pair(x_tr, y_tr), *pair(x_va, y_va), *pair(x_te, y_te), n_classes,
                   image_shape, clip)


def load_dataset(task: Task) -> Dataset:
    """The task's clean train/validation/test split (cached per process; arrays are shared,
    do not mutate)."""
    return _load(task.dataset, task.test_fraction, task.validation.fraction, task.split_seed,
                 task.n_samples)
