"""Why scoring does not use BLAS: the same row, multiplied by the same weights, gives different
bits depending on where it sits in the matrix and how many rows the matrix has.

    python benchmarks/blas_reproducibility.py

For float32 and float64 (numpy `@`, i.e. OpenBLAS) and for galaxy_spark's kernel
(galaxy_spark/model/kernels.py), with the default preset's first-layer shapes: the rows of a
1,024-row block are multiplied once in place, then again after shifting the block by a few rows
and in blocks of other sizes. Prints, per implementation, how many of those rearrangements changed
any bit of any row, and the time per 1,024 rows.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from galaxy_spark.model.kernels import dense  # noqa: E402


def changed(mult, x, block=1024) -> int:
    ref = mult(x[:block])
    bad = 0
    for shift in (1, 3, 7, 16, 100, 512):
        moved = mult(np.concatenate([x[block:block + shift], x[:block - shift]]))[shift:]
        bad += int(not np.array_equal(moved, ref[:block - shift]))
    for size in (1, 7, 33, 512):
        parts = np.concatenate([mult(x[i:i + size]) for i in range(0, block, size)])[:block]
        bad += int(not np.array_equal(parts, ref))
    return bad


def main() -> int:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4096, 100)).astype(np.float32)
    x[rng.random(x.shape) < 0.4] = 0.0
    w = rng.normal(size=(100, 256)).astype(np.float32)
    b = np.zeros(256, np.float32)
    impls = {"blas_float32": lambda a: a @ w,
             "blas_float64": lambda a: a.astype(np.float64) @ w.astype(np.float64),
             "galaxy_spark_kernel_float32": lambda a: dense(a, w, b)}
    out = {}
    for name, f in impls.items():
        f(x[:8])
        t0 = time.perf_counter()
        for _ in range(20):
            f(x[:1024])
        out[name] = {"rearrangements_that_changed_bits": changed(f, x), "of": 10,
                     "ms_per_1024_rows": round((time.perf_counter() - t0) / 20 * 1000, 3)}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
