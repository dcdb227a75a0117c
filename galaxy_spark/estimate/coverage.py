"""Calibration of the redshift intervals: how often the 68% / 95% intervals of the scores contain
a reference redshift, on the held-out test split (galaxies only). `coverage_report` works on
pandas frames; `coverage_report_spark` filters the test split in Spark first (jobs/score.py
--coverage).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from galaxy_spark.estimate.batch import PARTITION
from galaxy_spark.features import in_test_split
from galaxy_spark.spark import test_split_filter


def references(survey) -> tuple[str, ...]:
    """The reference redshifts coverage is measured against: the survey's template-fit redshift
    (its `labels.redshift` column) and the mock's truth."""
    return tuple(c for c in (survey.label("redshift"), "z_true") if c)


def coverage_report(scores: pd.DataFrame, catalogue: pd.DataFrame, survey, star_column: str = "stell",
                    test_only: bool = True) -> dict:
    """Coverage of the 68%/95% z intervals on the test split (galaxies only), against each
    reference redshift present in the catalogue (`references`), keyed by its column name.

    Galaxies: catalogue `stell` below the survey's star threshold (as in training) when present,
    else the mock's is_star == 0, else all."""
    from galaxy_spark.features import DEFAULT_STAR_THRESHOLD
    from galaxy_spark.metrics import interval_coverage

    id_column = survey.id_column
    star_threshold = float(survey.labels.get("star_threshold", DEFAULT_STAR_THRESHOLD))
    refs = references(survey)
    cols = [id_column] + [c for c in (*refs, star_column, "is_star") if c in catalogue.columns]
    m = scores.merge(catalogue[cols], on=id_column, how="inner", suffixes=("", "_cat"))
    if test_only:
        m = m[in_test_split(m[id_column].to_numpy(np.int64))]
    if star_column in m:
        m = m[pd.to_numeric(m[star_column], errors="coerce") < star_threshold]
    elif "is_star" in m:
        m = m[pd.to_numeric(m["is_star"], errors="coerce") == 0]
    out = {"n_objects": int(len(m)), "nominal": {"coverage68": 0.68, "coverage95": 0.95}}
    for ref in refs:
        if ref not in m:
            continue
        c = interval_coverage(m[ref].to_numpy(np.float64), m["z_phot_lo68"].to_numpy(np.float64),
                              m["z_phot_hi68"].to_numpy(np.float64), m["z_phot_lo95"].to_numpy(np.float64),
                              m["z_phot_hi95"].to_numpy(np.float64))
        out[ref] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in c.items()}
    return out


def coverage_report_spark(spark, catalog, out, fields, survey) -> dict:
    """`coverage_report` of the scores in `out` for `fields` against the catalogue `catalog`, the
    test split filtered in Spark (only its ~20% of the rows reach the driver)."""
    from pyspark.sql import functions as F

    id_column = survey.id_column
    sc = (spark.read.parquet(str(out)).where(F.col(PARTITION).isin(fields))
          .where(test_split_filter(id_column))
          .select(id_column, "z_phot_lo68", "z_phot_hi68", "z_phot_lo95", "z_phot_hi95").toPandas())
    cat = spark.read.option("basePath", str(catalog)).parquet(str(catalog))
    cols = [id_column] + [c for c in (*references(survey), "stell") if c in cat.columns]
    catp = cat.where(F.col(PARTITION).isin(fields)).where(test_split_filter(id_column)).select(*cols).toPandas()
    return coverage_report(sc, catp, survey)
