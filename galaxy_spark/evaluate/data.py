"""What evaluation reads: the scores joined with the catalogue on the held-out test split (Spark), the
spectroscopic sample, and the label sets the outputs are compared with.

Everything downstream (``blocks``, ``baseline``, ``job``, the report) sees only the pandas frame
``read_test_join`` returns and the arrays ``label_sets`` and ``detection_magnitude`` make from it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_spark.errors import InputError
from galaxy_spark.model.sed import is_sed_column
from galaxy_spark.features import DEFAULT_STAR_THRESHOLD, SPLIT_TEST
from galaxy_spark.model.heads import TRUTH_COLUMNS, build_targets
from galaxy_spark.spark import test_split_filter
from galaxy_spark.survey import DETECTED, Survey, state_column

# The scores' p(z) summary: five quantiles per object (jobs/score.py), lowest level first.
QUANTILE_COLUMNS = ("z_phot_lo95", "z_phot_lo68", "z_phot", "z_phot_hi68", "z_phot_hi95")
QUANTILE_LEVELS = (0.025, 0.16, 0.5, 0.84, 0.975)
SCORE_COLUMNS = ("ID", "z_phot", "z_phot_lo68", "z_phot_hi68", "z_phot_lo95", "z_phot_hi95",
                 "p_star", "spectral_type", "log_stellar_mass", "model_run_id")
OPTIONAL_SCORE_COLUMNS = ("z_phot_mode", "z_phot_odds", "z_phot_err", "p_star_err", "star_class",
                          "spectral_type_err", "log_stellar_mass_err", "quality_flags", "model_name",
                          "model_version", "scored_at")


def num(df: pd.DataFrame, col: str) -> np.ndarray:
    """Column ``col`` as float64 (non-numeric values → NaN); all-NaN when the frame lacks it, so
    optional columns need no special case."""
    if col not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)


def read_test_join(spark, scores: str, catalog: str, survey: Survey,
                   model_run_id: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Scores ⋈ catalogue on ID, restricted to the test split (``id_hash_unit(ID) < 0.2``, the split
    every preset holds out), as pandas sorted by ID; plus row accounting (``info``: model_run_id,
    n_scores, n_scores_run, n_scores_in_catalogue, n_test, test_split, model_name/version).

    Raises ``InputError`` naming the problem for missing or unreadable inputs, scores that are not
    jobs/score.py output, scores of several models (unless ``model_run_id`` picks one), duplicate IDs,
    scores of another catalogue, and no scored object in the test split."""
    from pyspark.sql import functions as F

    idc = survey.id_column
    if not Path(scores).exists():
        raise InputError(f"scores not found: {scores} (run jobs/score.py first)")
    if not Path(catalog).exists():
        raise InputError(f"catalogue not found: {catalog} (run jobs/ingest.py first)")
    try:
        sdf = spark.read.parquet(str(scores))
    except Exception as e:  # noqa: BLE001 - Spark raises AnalysisException for empty/non-Parquet dirs
        raise InputError(f"cannot read scores {scores} as Parquet: {str(e).splitlines()[0]}") from None
    try:
        cdf = spark.read.parquet(str(catalog))
    except Exception as e:  # noqa: BLE001
        raise InputError(f"cannot read catalogue {catalog} as Parquet: {str(e).splitlines()[0]}") from None
    score_cols = [c if c != "ID" else idc for c in SCORE_COLUMNS]
    missing = [c for c in score_cols if c not in sdf.columns]
    if missing:
        raise InputError(f"scores {scores} lack column(s) {', '.join(missing)}: not the output of "
                         f"jobs/score.py?")
    if idc not in cdf.columns:
        raise InputError(f"catalogue {catalog} has no {idc} column")

    run_counts = {r["model_run_id"]: r["count"] for r in sdf.groupBy("model_run_id").count().collect()}
    n_scores = int(sum(run_counts.values()))
    if n_scores == 0:
        raise InputError(f"scores {scores} have no rows")
    if model_run_id is not None:
        if model_run_id not in run_counts:
            raise InputError(f"scores {scores} were produced by model run(s) "
                             f"{', '.join(map(str, run_counts))}, not {model_run_id}")
        sdf = sdf.filter(F.col("model_run_id") == model_run_id)
    elif len(run_counts) > 1:
        listing = ", ".join(f"{k} ({v} rows)" for k, v in run_counts.items())
        raise InputError(f"scores {scores} mix {len(run_counts)} models: {listing}; pass "
                         f"--model-run-id to evaluate one")
    run_id = model_run_id or next(iter(run_counts))
    if run_id is None:
        raise InputError(f"scores {scores} have no model_run_id: cannot tell which model produced them")

    keep = [c for c in list(score_cols) + list(OPTIONAL_SCORE_COLUMNS) if c in sdf.columns]
    keep += [c for c in sdf.columns if is_sed_column(c) and c not in keep]
    sdf = sdf.select(*keep)
    dup = sdf.groupBy(idc).count().filter("count > 1").limit(3).collect()
    if dup:
        raise InputError(f"scores {scores} hold several rows for the same {idc} (e.g. "
                         f"{', '.join(str(r[idc]) for r in dup)}): one row per object is expected")

    # catalogue columns that clash with score columns (Field, F814W…) come from the catalogue
    cat_cols = [c for c in cdf.columns if c == idc or c not in keep]
    cdf = cdf.select(*cat_cols)
    n_overlap = sdf.select(idc).join(cdf.select(idc), idc).count()
    if n_overlap == 0:
        raise InputError(f"scores {scores} and catalogue {catalog} have no {idc} in common: "
                         f"scores of another catalogue?")
    joined = sdf.join(cdf.filter(test_split_filter(idc)), idc, "inner")
    pdf = joined.toPandas()
    if pdf.empty:
        raise InputError(f"none of the {n_overlap} scored catalogue objects is in the test split "
                         f"(id_hash_unit(ID) < {SPLIT_TEST[1]}); metrics are computed on held-out "
                         f"objects only")
    info = {"model_run_id": run_id, "n_scores": n_scores, "n_scores_run": int(run_counts[run_id]),
            "n_scores_in_catalogue": int(n_overlap), "n_test": int(len(pdf)),
            "test_split": f"id_hash_unit(ID) in [{SPLIT_TEST[0]}, {SPLIT_TEST[1]})"}
    for c in ("model_name", "model_version"):
        if c in pdf.columns and pdf[c].notna().any():
            info[c] = str(pdf[c].dropna().iloc[0])
    pdf = pdf.sort_values(idc, kind="mergesort").reset_index(drop=True)
    return pdf, info


def attach_spec(spark, df: pd.DataFrame, catalog: str, path: str, survey: Survey) -> tuple[pd.DataFrame, dict]:
    """Join a spectroscopic sample to the test rows by ID (adds its z_spec, class and quality
    columns). Rejected rows of the file and spectra of objects that are not in the catalogue at all
    are counted in the returned report, never dropped silently."""
    from galaxy_spark.catalog.spec import join_spec, read_spec

    table, report = read_spec(path, survey)
    all_ids = spark.read.parquet(str(catalog)).select(survey.id_column).toPandas()[survey.id_column]
    _, whole = join_spec(all_ids.to_numpy(np.int64), table)
    aligned, test = join_spec(df[survey.id_column].to_numpy(np.int64), table)
    df = df.copy()
    for k, v in aligned.items():
        df[k] = v
    report = {**report, "matched_catalogue": whole["matched"], "not_in_catalogue": whole["not_in_catalogue"],
              "not_in_catalogue_examples": whole["not_in_catalogue_examples"], "matched_test_split": test["matched"]}
    return df, report


def label_sets(df: pd.DataFrame, survey: Survey, spec_min_quality: int = 3) -> dict[str, dict[str, np.ndarray]]:
    """{'catalogue': {...}, 'spec': {...}, 'truth': {...}} per required head (redshift, stellarity
    (star 0/1), spectral_type, stellar_mass) — exactly the targets training uses (``heads.build_targets``), so the
    star/galaxy split matches. Three plainly separated comparisons: *emulation* (the catalogue's
    own template-fit values, the thesis' task), *spectroscopic* (secure z_spec and classes of the
    spectroscopic objects, when the frame has them: what a user can measure on real data) and
    *truth* (mock only). Spectroscopy measures no type or mass: those are NaN in 'spec'."""
    from galaxy_spark.catalog.spec import QUALITY, SPEC_CLASS, Z_SPEC

    out = {}
    if Z_SPEC in df.columns:
        q = num(df, QUALITY)
        good = np.isfinite(q) & (q >= spec_min_quality) & np.isfinite(num(df, Z_SPEC))
        star = df[SPEC_CLASS].to_numpy(object) == "star"
        nan = np.full(len(df), np.nan)
        out["spec"] = {"redshift": np.where(good & ~star, num(df, Z_SPEC), np.nan),
                       "stellarity": np.where(good, star.astype(float), np.nan),
                       "spectral_type": nan, "stellar_mass": nan.copy()}
    for src in ("catalogue", "truth"):
        zcol = TRUTH_COLUMNS["redshift"]
        if src == "truth" and not (zcol in df.columns and df[zcol].notna().any()):
            continue
        try:
            t = build_targets(df, survey, src)
        except InputError:
            continue
        out[src] = t
    return out


def star_rule(survey: Survey) -> str:
    """The catalogue's star definition in words, e.g. ``stell >= 0.9`` (for the report)."""
    thr = survey.labels.get("star_threshold", DEFAULT_STAR_THRESHOLD)
    return f"{survey.labels.get('stellarity')} >= {thr}"


def detection_magnitude(df: pd.DataFrame, survey: Survey) -> np.ndarray:
    """The detection band's magnitude (AB mag; F814W for ALHAMBRA) of each row, NaN where the object
    is not detected in it: what the per-magnitude bins use."""
    det = survey.detection_band
    mag = num(df, det)
    st = state_column(det)
    if st in df.columns:
        mag = np.where(num(df, st) == DETECTED, mag, np.nan)
    return mag
