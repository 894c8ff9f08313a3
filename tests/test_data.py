"""Datasets: local only, reference split for digits, no global RNG side effects."""

from __future__ import annotations

import random

import numpy as np

from lossevo.evaluation.data import load_dataset, poly3
from lossevo.evaluation.tasks import load_task


def test_digits_reference_split():
    """The reference protocol's test split (540), then 20% of the rest for validation."""
    d = load_dataset(load_task("digits-sym-0.4"))
    assert d.x_test.shape == (540, 64) and d.x_val.shape == (252, 64)
    assert d.x_train.shape == (1005, 64)
    assert d.x_train.min() >= 0 and d.x_train.max() <= 1 and d.n_classes == 10
    assert d.image_shape == (8, 8) and d.clip == (0.0, 1.0)
    # stratified: class shares equal in train, validation and test within a sample or two
    shares = [np.bincount(y) / len(y) for y in (d.y_train, d.y_val, d.y_test)]
    assert max(np.abs(s - shares[0]).max() for s in shares) < 0.01
    # disjoint: no test image appears in train or validation
    seen = {row.tobytes() for row in np.concatenate([d.x_train, d.x_val])}
    assert sum(row.tobytes() in seen for row in d.x_test) <= 5  # digits has a few duplicates


def test_validation_fraction_moves_no_test_sample():
    a = load_dataset(load_task("digits-sym-0.4"))
    b = load_dataset(load_task("digits-sym-0.4").with_overrides(validation={"fraction": 0.5}))
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert len(b.x_val) > len(a.x_val)


def test_tabular_standardized_with_train_stats():
    d = load_dataset(load_task("breast_cancer-sym-0.3"))
    assert d.n_classes == 2
    np.testing.assert_allclose(d.x_train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(d.x_train.std(0), 1, atol=1e-4)


def test_mnist1d_generated_locally_without_touching_global_rng():
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    d = load_dataset(load_task("mnist1d-sym-0.4").with_overrides(n_samples=500))
    assert np.random.random() == expected_np and random.random() == expected_py
    assert d.x_train.shape == (320, 40) and d.x_val.shape == (80, 40)
    assert d.x_test.shape == (100, 40) and d.n_classes == 10


def test_poly3_targets_are_the_polynomial():
    d = load_dataset(load_task("poly3-outliers"))
    assert d.n_classes == 0 and d.x_train.shape[1] == 1
    np.testing.assert_allclose(d.y_train, poly3(d.x_train[:, 0]), rtol=1e-5, atol=1e-5)
    assert poly3(np.array([1.0]))[0] == 2.1 + 3.2 + 1.6 + 0.9
