"""The served model on the whole catalogue: does it equal the batch scores, column for column and
bit for bit, and what does a big request cost in memory and time?

    python benchmarks/bench_served.py --catalog data/catalog --scores data/scores \
        --model models:/galaxy-ensemble@champion [--scale 4] --out reports/bench/served.json

1. `mlflow.pyfunc.load_model(model).predict(catalogue)` (what `mlflow models serve` runs) against
   the Spark scores of the same model (`jobs/score.py`), matched by ID: every estimate column must
   be identical (NaN = NaN), names and dtypes included.
2. Peak memory (each case in a fresh process: ru_maxrss) and rows/s of the served predict on the
   catalogue tiled `--scale` times (1.79 M rows for the full mock at 4×, the request that was
   killed at 24 GB before predict chunked), chunked (the default) against the same predict in one
   chunk on the catalogue itself (the alternative: what predict did before).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CASE = r"""
import json, resource, sys, time
import numpy as np, pandas as pd, pyarrow.dataset as ds
import mlflow.pyfunc
from galaxy_spark.model.registry import resolve_model
catalog, model_uri, scale, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ens = resolve_model(model_uri).ensemble
cols = ens.feature_spec.required_columns()
df = ds.dataset(catalog, format="parquet", partitioning="hive").to_table(columns=cols).to_pandas()
if scale > 1:
    df = pd.concat([df] * scale, ignore_index=True)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
out = ens.predict(df, chunk_rows=chunk if chunk > 0 else max(len(df), 1))
dt = time.perf_counter() - t0
print("CASE " + json.dumps({"rows": len(df), "chunk_rows": chunk, "seconds": round(dt, 2),
                            "rows_per_s": round(len(df) / dt, 1),
                            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
                            "peak_rss_before_predict_gb": round(base / 2**20, 2)}))
"""


def served_equals_batch(catalog: str, scores: str, model: str) -> dict:
    import numpy as np
    import pyarrow.dataset as ds

    import mlflow.pyfunc
    from galaxy_spark.estimate.batch import estimate_names
    from galaxy_spark.model.registry import resolve_model
    from galaxy_spark.survey import load_survey

    ens = resolve_model(model).ensemble
    names = estimate_names(ens)
    cat = ds.dataset(catalog, format="parquet", partitioning="hive").to_table().to_pandas()
    id_col = load_survey(ens.feature_spec.survey).id_column
    cat = cat.sort_values(id_col, kind="mergesort").reset_index(drop=True)
    sc_table = ds.dataset(scores, format="parquet", partitioning="hive").to_table()
    sc = sc_table.to_pandas().sort_values(id_col, kind="mergesort").reset_index(drop=True)
    assert np.array_equal(sc[id_col].to_numpy(), cat[id_col].to_numpy()), "scores and catalogue hold other IDs"
    t0 = time.perf_counter()
    served = mlflow.pyfunc.load_model(model).predict(cat[ens.feature_spec.required_columns()])
    seconds = time.perf_counter() - t0
    differ = {}
    assert list(served.columns) == names, (list(served.columns), names)
    for c in names:
        a = served[c].to_numpy(float, na_value=np.nan)
        b = sc[c].to_numpy(float)
        bad = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        if bad.any():
            differ[c] = int(bad.sum())
    dtypes = {c: str(sc_table.schema.field(c).type) for c in names}
    return {"rows": len(cat), "columns": len(names), "columns_differing": differ, "bit_identical": not differ,
            "scores_dtypes": dtypes, "served_dtypes": {c: str(served[c].dtype) for c in names},
            "served_seconds": round(seconds, 1)}


def case(catalog: str, model: str, scale: int, chunk: int) -> dict:
    p = subprocess.run([sys.executable, "-c", CASE, catalog, model, str(scale), str(chunk)], capture_output=True,
                       text=True)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("CASE ")), None)
    if line is None:
        return {"rows_scale": scale, "chunk_rows": chunk, "failed": f"exit {p.returncode}: {p.stderr[-500:]}"}
    return json.loads(line[5:])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--catalog", default="data/catalog")
    p.add_argument("--scores", default="data/scores")
    p.add_argument("--model", default="models:/galaxy-ensemble@champion")
    p.add_argument("--scale", type=int, default=4, help="the big request: the catalogue tiled this many times")
    p.add_argument("--out", default="reports/bench/served.json")
    a = p.parse_args()
    res = {"served_vs_batch": served_equals_batch(a.catalog, a.scores, a.model)}
    print(json.dumps(res["served_vs_batch"], indent=1), flush=True)
    from galaxy_spark.model.ensemble import PREDICT_CHUNK_ROWS

    res["memory"] = [case(a.catalog, a.model, 1, 0), case(a.catalog, a.model, 1, PREDICT_CHUNK_ROWS),
                     case(a.catalog, a.model, a.scale, PREDICT_CHUNK_ROWS)]
    for r in res["memory"]:
        print(json.dumps(r), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    print(f"wrote {a.out}")
    return 0 if res["served_vs_batch"]["bit_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
