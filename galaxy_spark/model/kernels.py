"""The dense-layer kernel of scoring: float32, one fixed order of arithmetic per row.

BLAS (OpenBLAS sgemm and dgemm alike) picks its kernels and summation order by the shape of the
whole matrix and a row's position in it, so the same object scored in two different Arrow batches
came out different in the last bits (`benchmarks/blas_reproducibility.py` shows it). Here every
output element is ``b[j] + x[k=0]·W[0, j] + x[1]·W[1, j] + …`` summed in ascending k, each product
and sum rounded to float32 (no fused multiply-add): an object's estimates are bit-identical however
Spark batches or partitions the catalogue, and on any x86 or ARM CPU.

Two implementations of that one arithmetic: a Numba kernel (compiled once per Python process; it
skips the zero inputs ReLU leaves behind — adding ±0.0 changes no sum) and a NumPy one used when
Numba is not installed (a model loaded in an environment that lacks it). They agree to the last
bit (tests/test_kernels.py).
"""
from __future__ import annotations

import numpy as np

try:  # optional: scoring is several times faster with it, the numbers are the same without it
    import numba as _numba
except ImportError:  # pragma: no cover - exercised by tests through `force_numpy`
    _numba = None


def _dense_numpy(x: np.ndarray, w: np.ndarray, b: np.ndarray, relu: bool) -> np.ndarray:
    acc = np.broadcast_to(b, (len(x), len(b))).copy()
    for k in range(w.shape[0]):
        acc += x[:, k:k + 1] * w[k]          # float32 product, then float32 sum: no FMA
    return np.maximum(acc, np.float32(0.0)) if relu else acc


def _jit(fn):
    """Numba-compile `fn`, cached on disk where Numba finds a writable cache directory (saves each
    new Spark Python worker a second of compiling), in memory otherwise."""
    try:
        return _numba.njit(cache=True, nogil=True, boundscheck=False)(fn)
    except RuntimeError:       # no writable cache location
        return _numba.njit(cache=False, nogil=True, boundscheck=False)(fn)


if _numba is not None:
    @_jit
    def _dense_numba(x, w, b, relu):  # pragma: no cover - compiled
        # Four rows at a time share each load of w[k, :]; a k where all four inputs are zero (ReLU
        # leaves about half) is skipped. Each row's sums still run in ascending k.
        n, kdim = x.shape
        m = w.shape[1]
        out = np.empty((n, m), np.float32)
        acc = np.empty((4, m), np.float32)
        zero = np.float32(0.0)
        n4 = n - n % 4
        for i in range(0, n, 4):
            rows = 4 if i < n4 else n - i
            for r in range(rows):
                for j in range(m):
                    acc[r, j] = b[j]
            if rows == 4:
                for k in range(kdim):
                    x0, x1, x2, x3 = x[i, k], x[i + 1, k], x[i + 2, k], x[i + 3, k]
                    if x0 == zero and x1 == zero and x2 == zero and x3 == zero:
                        continue
                    for j in range(m):
                        wk = w[k, j]
                        acc[0, j] += x0 * wk
                        acc[1, j] += x1 * wk
                        acc[2, j] += x2 * wk
                        acc[3, j] += x3 * wk
            else:
                for r in range(rows):
                    for k in range(kdim):
                        a = x[i + r, k]
                        if a != zero:
                            for j in range(m):
                                acc[r, j] += a * w[k, j]
            for r in range(rows):
                for j in range(m):
                    v = acc[r, j]
                    out[i + r, j] = (v if v > zero else zero) if relu else v
        return out
else:  # pragma: no cover
    _dense_numba = None

force_numpy = False   # tests flip it to compare the two implementations


def dense(x: np.ndarray, w: np.ndarray, b: np.ndarray, relu: bool = False) -> np.ndarray:
    """``x @ w + b`` (then ReLU when `relu`) in float32, rows independent of each other: `x`
    (n, k), `w` (k, m), `b` (m,), all float32 and C-contiguous."""
    x = np.ascontiguousarray(x, np.float32)
    if _dense_numba is not None and not force_numpy:
        return _dense_numba(x, w, b, relu)
    return _dense_numpy(x, w, b, relu)


def backend() -> str:
    """Which implementation `dense` uses: "numba" or "numpy"."""
    return "numba" if _dense_numba is not None and not force_numpy else "numpy"
