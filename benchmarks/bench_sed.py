"""Benchmark: what the SED outputs cost when scoring, measured in one run on the same rows.

    python benchmarks/bench_sed.py --catalog data/catalog --model models:/galaxy-ensemble@champion \\
        --rows 200000 --out reports/bench/sed.json

What every Spark executor runs (`estimate.batch.estimate_columns` on Arrow-sized batches of
`--batch` rows, one core: OMP/OpenBLAS/Numba threads = 1), best of `--repeats`, for:
- `four_networks`: the registered ensemble without its SED network (what scoring cost before it);
- `with_sed`: the ensemble as registered (SED coefficients, rest-frame colours, absolute
  magnitudes and its synthetic filters);
- `with_sed_plus_filters`: and synthetic magnitudes in `--filters` more (`--synthetic-filters`).
Rows/s and the ratios to `four_networks` are printed as JSON and written to --out.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[k] = "1"                                   # one core, like a Spark Python worker

from common import emit  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--catalog", default="data/catalog")
    p.add_argument("--model", default="models:/galaxy-ensemble@champion")
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--filters", default="sdss2010-u,sdss2010-g,sdss2010-i,sdss2010-z,Euclid-VIS")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)

    import pyarrow.dataset as ds

    from galaxy_spark.estimate.batch import ScoreOptions, columns_of, estimate_columns
    from galaxy_spark.model.ensemble import Ensemble
    from galaxy_spark.model.registry import resolve_model
    from galaxy_spark.model.tracking import configure_tracking

    configure_tracking()
    ens = resolve_model(a.model).ensemble
    if ens.sed is None:
        raise SystemExit(f"error: {a.model} has no SED network")
    cols = list(dict.fromkeys([ens.feature_spec.detection_band, *ens.feature_spec.required_columns(), "ID"]))
    table = ds.dataset(a.catalog, format="parquet", partitioning="hive").to_table(columns=cols)
    table = table.slice(0, min(a.rows, table.num_rows))
    batches = table.to_batches(max_chunksize=a.batch)
    variants = {
        "four_networks": Ensemble(ens.feature_spec, {k: v for k, v in ens.networks.items() if k != "sed"}, ens.info),
        "with_sed": ens,
        "with_sed_plus_filters": ens.with_synthetic_filters([f for f in a.filters.split(",") if f]),
    }
    opts = ScoreOptions()
    out = {"rows": table.num_rows, "batch_rows": a.batch, "repeats": a.repeats, "threads": 1,
           "extra_filters": a.filters.split(","), "model": a.model, "variants": {}}
    for name, e in variants.items():
        estimate_columns(e, columns_of(batches[0]), opts)          # warm-up: Numba, caches
        best = None
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            for b in batches:
                estimate_columns(e, columns_of(b), opts)
            best = min(best or 1e99, time.perf_counter() - t0)
        out["variants"][name] = {"seconds": round(best, 3), "rows_per_s": round(table.num_rows / best, 1),
                                 "columns": len(estimate_columns(e, columns_of(batches[0]), opts))}
        print(f"{name}: {table.num_rows / best:,.0f} rows/s ({best:.2f} s)", flush=True)
    base = out["variants"]["four_networks"]["rows_per_s"]
    out["ratio_to_four_networks"] = {k: round(v["rows_per_s"] / base, 3) for k, v in out["variants"].items()}
    emit(out, a.out)


if __name__ == "__main__":
    main()
