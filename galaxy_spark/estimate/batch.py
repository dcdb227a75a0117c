"""Batch estimation, pure NumPy: the faces of the one scoring kernel
(`galaxy_spark.model.estimates.estimate_columns`, which the served model runs too) for the scores.

- `score_record_batch` (Arrow in, Arrow out, no pandas): what every Spark worker runs on each
  Arrow batch (`estimate.tasks`);
- `score_frame` (pandas in and out): tests and in-process use.
Both add the survey's ID, `PASSTHROUGH` and the detection-band magnitude before the estimate
columns (`heads.output_table`, in the head table's order and dtypes) and the job adds
`PROVENANCE`. Nothing here imports Spark, MLflow or TensorFlow: the Spark job is
`galaxy_spark.estimate.job`.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from galaxy_spark.features import numeric
from galaxy_spark.model.ensemble import Ensemble, estimates_frame
from galaxy_spark.model.estimates import (  # noqa: F401  (the scoring options and flags, re-exported for the jobs)
    DEFAULT_MIN_BANDS, ScoreOptions, estimate_columns, mc_normal, resample_photometry)
from galaxy_spark.model.heads import FLAG_NOT_SCORABLE, FLAG_STAR, QUALITY_FLAGS  # noqa: F401

PARTITION = "Field"       # catalogue and scores are partitioned by it (Parquet ``Field=N/``)
PASSTHROUGH = (PARTITION, "Pointing", "CCD", "RA", "Dec")   # + the survey's ID and detection band
PROVENANCE = ("model_name", "model_version", "model_run_id", "scored_at")


def estimate_names(ens: Ensemble) -> list[str]:
    """The estimate columns an ensemble scores, in order (`Ensemble.output_table`)."""
    return [c.name for c in ens.output_table()]


def output_columns(id_column: str, detection_band: str, estimates) -> list[str]:
    """The scores' columns in order: ID, `PASSTHROUGH`, the detection-band magnitude, the
    estimates (`estimate_names`), `PROVENANCE`."""
    return [id_column, *PASSTHROUGH, detection_band, *estimates, *PROVENANCE]


def columns_of(df) -> dict[str, np.ndarray]:
    """Canonical rows as a mapping of column name → array: a pandas DataFrame's columns, or a
    `pyarrow.RecordBatch`'s (float64/int arrays; null → NaN) without a pandas round-trip."""
    if isinstance(df, pd.DataFrame):
        return {c: df[c] for c in df.columns}
    return {name: col.to_numpy(zero_copy_only=False) for name, col in zip(df.schema.names, df.columns)}


def score_frame(ens: Ensemble, df: pd.DataFrame, opts: ScoreOptions = ScoreOptions()) -> pd.DataFrame:
    """Score canonical catalogue rows: ID, passthrough columns, the detection-band magnitude and
    the estimate columns (docs/outputs.md), one row per input row in input order; unscorable rows keep their ID
    and get null estimates and `FLAG_NOT_SCORABLE`. The pandas face of `estimate_columns` (the
    Spark job scores Arrow batches with `score_record_batch`: same numbers)."""
    spec = ens.feature_spec
    est = estimate_columns(ens, df, opts)
    head = pd.DataFrame({
        opts.id_column: df[opts.id_column].to_numpy(np.int64),
        **{c: df[c].to_numpy() for c in PASSTHROUGH},
        spec.detection_band: numeric(df[spec.detection_band]),
    })
    for c in ("Field", "Pointing", "CCD"):
        head[c] = pd.to_numeric(head[c], errors="coerce").astype("Int32")
    for c in ("RA", "Dec"):
        head[c] = pd.to_numeric(head[c], errors="coerce").astype(np.float64)
    return pd.concat([head, estimates_frame(est, ens.output_table())], axis=1)


def arrow_schema(id_column: str, detection_band: str, table):
    """What `score_record_batch` yields: `output_columns` without the provenance, as Arrow types
    (the estimates' from the head table `table`, `Ensemble.output_table`)."""
    import pyarrow as pa

    fields = [pa.field(id_column, pa.int64()), pa.field("Field", pa.int32()), pa.field("Pointing", pa.int32()),
              pa.field("CCD", pa.int32()), pa.field("RA", pa.float64()), pa.field("Dec", pa.float64()),
              pa.field(detection_band, pa.float64())]
    fields += [pa.field(c.name, pa.type_for_alias(c.dtype)) for c in table]
    return pa.schema(fields)


def score_record_batch(ens: Ensemble, batch, opts: ScoreOptions, timer: dict | None = None):
    """Score one `pyarrow.RecordBatch` of canonical rows into a RecordBatch of `arrow_schema`:
    Arrow → NumPy → estimates → Arrow, no pandas. Null estimates (and star_class) where a row is
    not scorable."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t0 = time.perf_counter()
    spec = ens.feature_spec
    cols = columns_of(batch)
    t1 = time.perf_counter()
    est = estimate_columns(ens, cols, opts, timer)
    t2 = time.perf_counter()
    table = ens.output_table()
    schema = arrow_schema(opts.id_column, spec.detection_band, table)
    nullable_ints = {c.name for c in table if c.dtype == "int32" and c.estimate}
    arrays = []
    for f in schema:
        if f.name in est:
            v = est[f.name]
            mask = ~est["scorable"] if f.name in nullable_ints else (np.isnan(v) if v.dtype.kind == "f" else None)
            arrays.append(pa.array(v, type=f.type, mask=mask))
        else:
            col = batch.column(batch.schema.get_field_index(f.name))
            arrays.append(col if col.type == f.type else pc.cast(col, f.type, safe=False))
    out = pa.RecordBatch.from_arrays(arrays, schema=schema)
    if timer is not None:
        t3 = time.perf_counter()
        timer["arrow_in"] = timer.get("arrow_in", 0.0) + (t1 - t0)
        timer["arrow_out"] = timer.get("arrow_out", 0.0) + (t3 - t2)
    return out
