"""Noise models: measured flip fractions and where the flips go."""

from __future__ import annotations

import numpy as np
import pytest

from lossevo.evaluation.noise import (
    asymmetric_noise,
    corrupt_inputs,
    corrupt_labels,
    corrupt_targets,
    instance_noise,
    pair_flip_target,
    symmetric_noise,
)
from lossevo.evaluation.tasks import LabelNoise, Noise, TargetNoise

N, C = 20000, 10


@pytest.fixture
def labels():
    return np.random.default_rng(0).integers(0, C, size=N)


@pytest.mark.parametrize("rate", [0.2, 0.4, 0.8])
def test_symmetric_flips_to_a_different_class_at_rate(labels, rate):
    noisy = symmetric_noise(labels, C, rate, np.random.default_rng(1))
    flipped = noisy != labels
    assert abs(flipped.mean() - rate) < 0.015
    # every destination class other than the true one is used about equally
    dest = np.bincount((noisy[flipped] - labels[flipped]) % C, minlength=C)
    assert dest[0] == 0
    assert dest[1:].min() > 0.8 * dest[1:].mean()


def test_asymmetric_maps_to_the_fixed_other_class(labels):
    noisy = asymmetric_noise(labels, C, 0.4, np.random.default_rng(2))
    flipped = noisy != labels
    assert abs(flipped.mean() - 0.4) < 0.015
    np.testing.assert_array_equal(noisy[flipped], pair_flip_target(labels[flipped], C))


@pytest.mark.parametrize("rate", [0.2, 0.4])
def test_instance_dependent_average_rate_and_feature_dependence(labels, rate):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N, 16))
    noisy = instance_noise(x, labels, C, rate, np.random.default_rng(4))
    flipped = noisy != labels
    assert abs(flipped.mean() - rate) < 0.02
    # the wrong class depends on x: inputs flipped to different classes differ in mean
    # (about 2.0 here; symmetric noise gives about 0.2 on the same data)
    means = np.stack([x[flipped][noisy[flipped] == c].mean(0) for c in range(C)])
    assert (means.max(0) - means.min(0)).max() > 1.0


def test_noise_is_deterministic_given_the_generator(labels):
    noise = Noise(labels=LabelNoise.SYMMETRIC, rate=0.4)
    x = np.zeros((N, 2))
    a = corrupt_labels(x, labels, C, noise, np.random.default_rng(5))
    b = corrupt_labels(x, labels, C, noise, np.random.default_rng(5))
    c = corrupt_labels(x, labels, C, noise, np.random.default_rng(6))
    assert (a == b).all() and (a != c).any()
    assert (corrupt_labels(x, labels, C, Noise(), np.random.default_rng(0)) == labels).all()


def test_gaussian_input_noise():
    x = np.zeros((N, 4), dtype=np.float32)
    noisy = corrupt_inputs(x, 0.3, np.random.default_rng(0))
    assert noisy.dtype == np.float32 and abs(noisy.std() - 0.3) < 0.01


def test_regression_target_noise_models():
    y = np.zeros(N, dtype=np.float32)
    g = corrupt_targets(y, Noise(target=TargetNoise.GAUSSIAN, target_mean=1.0,
                                 target_sigma=0.5), np.random.default_rng(0))
    assert abs(g.mean() - 1.0) < 0.02 and abs(g.std() - 0.5) < 0.02
    t = corrupt_targets(y, Noise(target=TargetNoise.STUDENT_T, target_sigma=1.0, target_df=3),
                        np.random.default_rng(0))
    kurtosis = ((t - t.mean()) ** 4).mean() / t.var() ** 2
    assert kurtosis > 4  # heavier tails than a gaussian (3)
    o = corrupt_targets(y, Noise(outlier_fraction=0.1, outlier_scale=20.0),
                        np.random.default_rng(0))
    hit = o != 0
    assert abs(hit.mean() - 0.1) < 0.01 and np.abs(o[hit]).min() >= 20.0
