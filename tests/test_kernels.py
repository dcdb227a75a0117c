"""The dense-layer kernel of scoring (galaxy_spark/model/kernels.py): one arithmetic, two
implementations, rows independent of their batch."""
from __future__ import annotations

import numpy as np
import pytest

from galaxy_spark.model import kernels


@pytest.fixture
def layer():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(203, 37)).astype(np.float32)
    x[rng.random(x.shape) < 0.5] = 0.0           # as ReLU leaves them: whole zero runs get skipped
    x[:8] = 0.0
    w = rng.normal(size=(37, 29)).astype(np.float32)
    b = rng.normal(size=29).astype(np.float32)
    return x, w, b


def test_numba_and_numpy_agree_to_the_last_bit(layer, monkeypatch):
    x, w, b = layer
    if kernels._dense_numba is None:
        pytest.skip("numba is not installed")
    for relu in (False, True):
        fast = kernels.dense(x, w, b, relu)
        monkeypatch.setattr(kernels, "force_numpy", True)
        assert kernels.backend() == "numpy"
        slow = kernels.dense(x, w, b, relu)
        monkeypatch.setattr(kernels, "force_numpy", False)
        assert fast.dtype == slow.dtype == np.float32
        np.testing.assert_array_equal(fast, slow)


def test_a_row_does_not_depend_on_its_batch(layer):
    """The property BLAS lacks (benchmarks/blas_reproducibility.py): the same row at any position,
    in batches of any size, gives the same bits."""
    x, w, b = layer
    whole = kernels.dense(x, w, b, True)
    for shift in (1, 2, 3, 5):
        moved = kernels.dense(np.concatenate([x[-shift:], x]), w, b, True)[shift:]
        np.testing.assert_array_equal(moved, whole)
    for size in (1, 3, 4, 7, 64):
        parts = np.concatenate([kernels.dense(x[i:i + size], w, b, True) for i in range(0, len(x), size)])
        np.testing.assert_array_equal(parts, whole)


def test_matches_float64_reference(layer):
    x, w, b = layer
    ref = np.maximum(x.astype(np.float64) @ w.astype(np.float64) + b, 0)
    np.testing.assert_allclose(kernels.dense(x, w, b, True), ref, rtol=1e-5, atol=1e-5)
