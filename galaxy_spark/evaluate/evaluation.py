"""Evaluation: scores + catalogue → field-standard metrics, the BPZ baseline, the thesis table,
plots and a self-contained report, logged to the MLflow run of the model that produced the scores.

Flow (``run_evaluation``):

1. Spark reads the scores (``jobs/score.py`` output) and the catalogue, keeps the catalogue rows of
   the held-out **test split** (``id_hash_unit(ID) < 0.2``, the split every preset shares) and joins
   them with the scores on ``ID``. Everything below sees only those rows.
2. Metrics of the network's outputs against the catalogue labels (``zb_1``, ``stell`` ≥ the survey's star_threshold → star,
   ``Tb_1``, ``Stell_Mass_1``) and, when the catalogue has the mock's truth columns, against the
   truth (``z_true``, ``is_star``, ``type_true``, ``logmass_true``):
   * redshift (galaxies only: label star = 0): σ_NMAD, bias, outlier fraction (|ez| > 0.15 and the
     RAIL cut), binned by F814W and by redshift; PIT histogram and CRPS from the score quantiles;
     coverage of the 68% and 95% intervals;
   * star/galaxy (all objects, star = positive class, score ``p_star``): purity, completeness,
     ROC AUC, balanced accuracy, overall and by F814W;
   * stellar mass and spectral type (galaxies): bias, NMAD, std, r²;
   * the thesis' own metrics (all objects, like the thesis): r² per regression, accuracy (and the
     majority-class accuracy next to it).
3. The BPZ baseline (``galaxy_spark.fitting.bpz``) on the same test objects (at most
   ``bpz_max_objects``, a deterministic subsample: the lowest ID-hash values), the network on exactly
   those objects, both objects/s (BPZ: the timed fit; network: a timed in-process
   ``Ensemble.predict`` on the same rows) and the ratio.
4. The thesis' published table next to the latest ``paper`` and ``default`` training runs found in
   the MLflow experiment (their ``results/results_table.csv`` and ``test_catalogue_*`` metrics).

Probabilistic metrics from quantiles
------------------------------------
The scores carry five points of each p(z): 2.5, 16, 50, 84, 97.5% (``z_phot_lo95, z_phot_lo68,
z_phot, z_phot_hi68, z_phot_hi95``). PIT = ``metrics.pit_from_quantiles`` (linear between the
points; 0 below the 2.5% point, 1 above the 97.5% point). CRPS = 2∫₀¹ ρ_τ(z_true − Q(τ)) dτ (the
quantile-score form of the CRPS, ρ_τ the pinball loss) with Q linear between the five points and
linearly extrapolated to τ = 0 and 1 (clipped at z = 0), integrated by the trapezoid rule on 201
levels: an approximation that ignores the shape of p(z) between the points. BPZ's PIT and CRPS come
from its full p(z) grid (``pit_from_grid``, ``crps_from_grid``).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_spark.evaluate import metrics as M
from galaxy_spark.io.paths import check_job_paths
from galaxy_spark.errors import InputError
from galaxy_spark.features import SPLIT_TEST, TRUTH_COLUMNS, build_targets, id_hash_unit, test_split_filter
from galaxy_spark.model.registry import model_uri_for, resolve_model
from galaxy_spark.survey import DETECTED, Survey, load_survey, state_column

# ---- constants ---------------------------------------------------------------------------------
QUANTILE_COLUMNS = ("z_phot_lo95", "z_phot_lo68", "z_phot", "z_phot_hi68", "z_phot_hi95")
QUANTILE_LEVELS = (0.025, 0.16, 0.5, 0.84, 0.975)
SCORE_COLUMNS = ("ID", "z_phot", "z_phot_lo68", "z_phot_hi68", "z_phot_lo95", "z_phot_hi95",
                 "p_star", "spectral_type", "log_stellar_mass", "model_run_id")
OPTIONAL_SCORE_COLUMNS = ("z_phot_mode", "z_phot_odds", "z_phot_err", "p_star_err", "star_class",
                          "spectral_type_err", "log_stellar_mass_err", "quality_flags", "model_name",
                          "model_version", "scored_at")
MAG_BINS = (14.0, 18.0, 19.0, 20.0, 21.0, 22.0, 22.5, 23.0, 23.5, 24.0, 24.5, 27.0)
Z_BINS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 7.0)
BPZ_MAX_OBJECTS = 20000
BPZ_SALT = 0x5BD1E995  # second hash for the BPZ subsample (independent of the split hash)

# The thesis' published table (train / validation), "Distant galaxies analysis with Deep Neural
# Networks": r² for the regressions, accuracy for the stellarity classifier.
THESIS_PUBLISHED = {
    "redshift": {"metric": "r2", "train": 0.202, "validation": 0.376},
    "stellarity": {"metric": "accuracy", "train": 0.9833, "validation": 0.9832},
    "stellar_mass": {"metric": "r2", "train": 0.324, "validation": 0.355},
    "spectral_type": {"metric": "r2", "train": 0.640, "validation": 0.625},
}
PRESETS_COMPARED = ("paper", "default")


@dataclass
class EvalOptions:
    scores: str
    catalog: str
    out: str
    model: str | None = None            # model URI for the throughput timing (default: from the scores)
    model_run_id: str | None = None     # keep only scores of this run (when scores mix models)
    bpz_max_objects: int = BPZ_MAX_OBJECTS
    bpz: bool = True
    mlflow: bool = True                 # log to the model's run; read thesis runs and loss curves
    experiment: str | None = None       # for the thesis table (default: the model run's experiment)
    survey: str = "alhambra"
    name: str | None = None             # report name (default: the out dir's name)
    spec: str | None = None             # spectroscopic sample (ID, z_spec, …): the third comparison
    spec_min_quality: int = 3


@dataclass
class Evaluation:
    """Everything the report needs: metrics (JSON-able) and the arrays the plots draw."""
    metrics: dict
    frame: pd.DataFrame                 # joined test rows (scores + catalogue labels)
    bpz_frame: pd.DataFrame | None = None
    histories: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


# ---- helpers -----------------------------------------------------------------------------------
def jsonable(x):
    """numpy/pandas → plain Python; NaN/inf → None (strict JSON)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return [jsonable(v) for v in x.tolist()]
    if isinstance(x, pd.DataFrame):
        return [jsonable(r) for r in x.to_dict(orient="records")]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    return x


def _num(df: pd.DataFrame, col: str) -> np.ndarray:
    if col not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)


def crps_from_quantiles(quantile_values, quantile_levels, z_true, n_tau: int = 201,
                        chunk: int = 20000) -> np.ndarray:
    """Approximate per-object CRPS from a few quantiles of each p(z) (see the module docstring).

    CRPS(F, y) = 2 ∫₀¹ ρ_τ(y − F⁻¹(τ)) dτ, ρ_τ(u) = u(τ − 1[u < 0]); F⁻¹ linear between the given
    (level, value) points and linearly extrapolated to τ = 0 and 1 (clipped at 0). NaN where z_true
    or any quantile is NaN.
    """
    q = np.sort(np.atleast_2d(np.asarray(quantile_values, float)), axis=1)
    lv = np.asarray(quantile_levels, float)
    zt = np.asarray(z_true, float).ravel()
    if zt.size == 0:
        return np.empty(0)
    lo = q[:, 0] - (q[:, 1] - q[:, 0]) * lv[0] / (lv[1] - lv[0])
    hi = q[:, -1] + (q[:, -1] - q[:, -2]) * (1 - lv[-1]) / (lv[-1] - lv[-2])
    qe = np.column_stack([np.maximum(lo, 0.0), q, hi])
    le = np.concatenate([[0.0], lv, [1.0]])
    taus = np.linspace(0.0, 1.0, n_tau)
    j = np.clip(np.searchsorted(le, taus, side="right") - 1, 0, le.size - 2)
    w = (taus - le[j]) / (le[j + 1] - le[j])
    out = np.empty(zt.size)
    for s in range(0, zt.size, chunk):
        qq = qe[s:s + chunk]
        qt = qq[:, j] * (1 - w) + qq[:, j + 1] * w
        d = zt[s:s + chunk, None] - qt
        rho = np.where(d >= 0, taus * d, (taus - 1.0) * d)
        out[s:s + chunk] = 2.0 * np.trapezoid(rho, taus, axis=1)
    bad = ~np.isfinite(zt) | ~np.all(np.isfinite(q), axis=1)
    return np.where(bad, np.nan, out)


def roc_curve(y_true, score, positive=1) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold (NaN rows dropped)."""
    (y, s), _ = M.drop_nan(y_true, score)
    pos = y == positive
    if pos.sum() == 0 or (~pos).sum() == 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    order = np.argsort(-s, kind="mergesort")
    s, pos = s[order], pos[order]
    last = np.r_[np.diff(s) != 0, True]
    tp = np.cumsum(pos)[last]
    fp = np.cumsum(~pos)[last]
    return np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]


def bpz_subsample(ids: np.ndarray, cap: int) -> np.ndarray:
    """Boolean mask of at most ``cap`` objects: the lowest values of a salted ID hash (deterministic,
    independent of the split hash, the same for every model evaluated on the same catalogue)."""
    ids = np.asarray(ids, np.int64)
    if ids.size <= cap:
        return np.ones(ids.size, bool)
    u = id_hash_unit(ids ^ np.int64(BPZ_SALT))
    keep = np.zeros(ids.size, bool)
    keep[np.argsort(u, kind="mergesort")[:cap]] = True
    return keep


# ---- reading and joining (Spark) ---------------------------------------------------------------
def read_test_join(spark, scores: str, catalog: str, survey: Survey,
                   model_run_id: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Scores ⋈ catalogue on ID, restricted to the test split, as pandas; plus row accounting."""
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
    """Join a spectroscopic sample to the test rows by ID. Rejected rows of the file and spectra of
    objects that are not in the catalogue at all are counted in the report, never dropped silently."""
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


# ---- labels ----------------------------------------------------------------------------------
def label_sets(df: pd.DataFrame, survey: Survey, spec_min_quality: int = 3) -> dict[str, dict[str, np.ndarray]]:
    """{'catalogue': {...}, 'spec': {...}, 'truth': {...}} with redshift, star (0/1), spectral_type,
    stellar_mass — exactly the targets training uses (``features.build_targets``), so the
    star/galaxy split matches. Three plainly separated comparisons: *emulation* (the catalogue's
    own template-fit values, the thesis' task), *spectroscopic* (secure z_spec and classes of the
    spectroscopic objects, when the frame has them: what a user can measure on real data) and
    *truth* (mock only). Spectroscopy measures no type or mass: those are NaN in 'spec'."""
    from galaxy_spark.catalog.spec import QUALITY, SPEC_CLASS, Z_SPEC

    out = {}
    if Z_SPEC in df.columns:
        q = _num(df, QUALITY)
        good = np.isfinite(q) & (q >= spec_min_quality) & np.isfinite(_num(df, Z_SPEC))
        star = df[SPEC_CLASS].to_numpy(object) == "star"
        nan = np.full(len(df), np.nan)
        out["spec"] = {"redshift": np.where(good & ~star, _num(df, Z_SPEC), np.nan),
                       "star": np.where(good, star.astype(float), np.nan),
                       "spectral_type": nan, "stellar_mass": nan.copy()}
    for src in ("catalogue", "truth"):
        zcol = TRUTH_COLUMNS["redshift"]
        if src == "truth" and not (zcol in df.columns and df[zcol].notna().any()):
            continue
        try:
            t = build_targets(df, survey, src)
        except InputError:
            continue
        out[src] = {"redshift": t["redshift"], "star": t["stellarity"], "spectral_type": t["spectral_type"],
                    "stellar_mass": t["stellar_mass"]}
    return out


def star_rule(survey: Survey) -> str:
    from galaxy_spark import features as Fe

    thr = survey.labels.get("star_threshold", getattr(Fe, "DEFAULT_STAR_THRESHOLD", 0.5))
    return f"{survey.labels.get('stellarity')} >= {thr}"


def detection_magnitude(df: pd.DataFrame, survey: Survey) -> np.ndarray:
    det = survey.detection_band
    mag = _num(df, det)
    st = state_column(det)
    if st in df.columns:
        mag = np.where(_num(df, st) == DETECTED, mag, np.nan)
    return mag


# ---- metric blocks -----------------------------------------------------------------------------
def redshift_block(z_pred, z_true, mag, lo68=None, hi68=None, lo95=None, hi95=None,
                   pit=None, crps=None) -> dict:
    out = {"overall": M.photoz_metrics(z_pred, z_true)}
    out["by_mag"] = M.binned(M.photoz_metrics, mag, MAG_BINS, z_pred, z_true)
    out["by_z"] = M.binned(M.photoz_metrics, z_true, Z_BINS, z_pred, z_true)
    if lo68 is not None or lo95 is not None:
        out["overall"].update(M.interval_coverage(z_true, lo68, hi68, lo95, hi95))
    if pit is not None:
        h = M.pit_histogram(pit, n_bins=10)
        out["pit"] = {"edges": h["edges"], "counts": h["counts"], "density": h["density"],
                      "ks": h["ks"], "n": h["n"], "n_dropped": h["n_dropped"]}
        out["overall"]["pit_ks"] = h["ks"]
    if crps is not None:
        out["overall"]["crps"] = float(np.nanmean(crps)) if np.isfinite(crps).any() else float("nan")
    return out


def network_metrics(df: pd.DataFrame, labels: dict[str, np.ndarray], mag: np.ndarray) -> dict:
    """All metrics of the network's outputs against one label set (catalogue or truth)."""
    gal = labels["star"] == 0
    zp = _num(df, "z_phot")
    zt = labels["redshift"]
    qv = np.column_stack([_num(df, c) for c in QUANTILE_COLUMNS])
    pit = M.pit_from_quantiles(qv[gal], QUANTILE_LEVELS, zt[gal])
    crps = crps_from_quantiles(qv[gal], QUANTILE_LEVELS, zt[gal])
    out = {"redshift": redshift_block(zp[gal], zt[gal], mag[gal], _num(df, "z_phot_lo68")[gal],
                                      _num(df, "z_phot_hi68")[gal], _num(df, "z_phot_lo95")[gal],
                                      _num(df, "z_phot_hi95")[gal], pit=pit, crps=crps)}
    ps = _num(df, "p_star")
    cls = M.classification_metrics(labels["star"], ps)
    out["stellarity"] = {"overall": cls,
                         "by_mag": M.binned(M.classification_metrics, mag, MAG_BINS, labels["star"], ps)}
    for name, col in (("spectral_type", "spectral_type"), ("stellar_mass", "log_stellar_mass")):
        out[name] = {"overall": M.regression_metrics(_num(df, col)[gal], labels[name][gal]),
                     "by_mag": M.binned(M.regression_metrics, mag[gal], MAG_BINS, _num(df, col)[gal],
                                        labels[name][gal])}
    # the thesis' own metrics: all objects, r² and accuracy
    y = labels["star"][np.isfinite(labels["star"])]
    majority = float(max(np.mean(y == 0), np.mean(y == 1))) if y.size else float("nan")
    out["thesis_metrics"] = {
        "redshift_r2": M.regression_metrics(zp, zt)["r2"],
        "stellarity_accuracy": cls["accuracy"],
        "stellarity_majority_class_accuracy": majority,
        "spectral_type_r2": M.regression_metrics(_num(df, "spectral_type"), labels["spectral_type"])["r2"],
        "stellar_mass_r2": M.regression_metrics(_num(df, "log_stellar_mass"), labels["stellar_mass"])["r2"],
    }
    return out


# ---- BPZ baseline and throughput -----------------------------------------------------------------
def run_bpz(df: pd.DataFrame, survey: Survey) -> tuple[pd.DataFrame, dict]:
    """Fit BPZ to the rows; returns (outputs with a pz column, timing)."""
    from galaxy_spark.fitting.bpz import BPZModel

    t0 = time.perf_counter()
    model = BPZModel(survey)
    grid_s = time.perf_counter() - t0
    model.fit(df.iloc[:20], return_pz=False)  # warm-up (prior tables, caches)
    t0 = time.perf_counter()
    res = model.fit(df, return_pz=True)
    secs = time.perf_counter() - t0
    return res, {"seconds": secs, "objects_per_s": len(df) / secs if secs > 0 else float("nan"),
                 "grid_seconds": grid_s, "n": int(len(df)), "z_grid": model.z}


def time_network(ensemble, df: pd.DataFrame, repeats: int = 3) -> dict:
    """Objects/s of an in-process Ensemble.predict on the rows (features included; best of repeats)."""
    ensemble.predict(df.iloc[:50])
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        ensemble.predict(df)
        best = min(best, time.perf_counter() - t0)
    return {"seconds": best, "objects_per_s": len(df) / best if best > 0 else float("nan"), "n": int(len(df)),
            "repeats": repeats}


def baseline_comparison(df: pd.DataFrame, sets: dict, mag: np.ndarray, survey: Survey, cap: int,
                        ensemble=None) -> tuple[dict, pd.DataFrame]:
    """BPZ and the network on the same (subsampled) test objects: metrics, throughput, ratio."""
    from galaxy_spark.features import build_features

    idc = survey.id_column
    keep = bpz_subsample(df[idc].to_numpy(np.int64), cap)
    if "spec" in sets:     # every spectroscopic test object: the spectroscopic comparison is small
        keep |= np.isfinite(sets["spec"]["star"])
    # objects BPZ can fit like the network: a detection-band magnitude
    keep &= np.isfinite(mag)
    sub = df.loc[keep].reset_index(drop=True)
    res, timing = run_bpz(sub, survey)
    z_grid = timing.pop("z_grid")
    pz = np.stack(res["pz"].to_numpy()) if len(res) else np.empty((0, z_grid.size))
    out = {"n": int(len(sub)), "cap": int(cap), "subsample": "lowest id_hash_unit(ID ^ salt) of the test "
           "objects with a detection-band magnitude", "bpz": {"timing": timing}, "network": {}}
    if ensemble is not None:
        out["network"]["timing"] = time_network(ensemble, sub)
        _, ok = build_features(sub, ensemble.feature_spec)
        out["network"]["timing"]["n_scorable"] = int(ok.sum())
    else:
        out["network"]["timing"] = {"objects_per_s": float("nan"), "note": "model not loaded"}
    rn, rb = out["network"]["timing"]["objects_per_s"], timing["objects_per_s"]
    out["throughput_ratio"] = rn / rb if np.isfinite(rn) and rb > 0 else float("nan")
    smag = mag[keep]
    frame = pd.DataFrame({idc: sub[idc], "mag": smag, "zb": res["zb"].to_numpy(),
                          "zb_min": res["zb_min"].to_numpy(), "zb_max": res["zb_max"].to_numpy(),
                          "odds": res["odds"].to_numpy(), "z_phot": _num(sub, "z_phot")})
    for src, lab in sets.items():
        gal = lab["star"][keep] == 0
        zt = lab["redshift"][keep]
        frame[f"z_{src}"] = zt
        frame[f"galaxy_{src}"] = gal
        pit = M.pit_from_grid(pz[gal], z_grid, zt[gal]) if gal.any() else np.empty(0)
        crps = M.crps_from_grid(pz[gal], z_grid, zt[gal]) if gal.any() else np.empty(0)
        out["bpz"][src] = {"redshift": redshift_block(
            res["zb"].to_numpy()[gal], zt[gal], smag[gal], lo95=res["zb_min"].to_numpy()[gal],
            hi95=res["zb_max"].to_numpy()[gal], pit=pit, crps=crps)}
        qv = np.column_stack([_num(sub, c) for c in QUANTILE_COLUMNS])[gal]
        out["network"][src] = {"redshift": redshift_block(
            _num(sub, "z_phot")[gal], zt[gal], smag[gal], _num(sub, "z_phot_lo68")[gal],
            _num(sub, "z_phot_hi68")[gal], _num(sub, "z_phot_lo95")[gal], _num(sub, "z_phot_hi95")[gal],
            pit=M.pit_from_quantiles(qv, QUANTILE_LEVELS, zt[gal]),
            crps=crps_from_quantiles(qv, QUANTILE_LEVELS, zt[gal]))}
    return out, frame


# ---- MLflow ---------------------------------------------------------------------------------------
def latest_preset_runs(client, experiment_id: str, presets=PRESETS_COMPARED) -> dict:
    """{preset: parent Run} — the latest parent training run per preset in the experiment."""
    out = {}
    for p in presets:
        runs = client.search_runs([experiment_id], filter_string=f"tags.preset = '{p}'",
                                  order_by=["attributes.start_time DESC"], max_results=50)
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        if parents:
            out[p] = parents[0]
    return out


def thesis_table(client, experiment_id: str | None, this_run: str | None = None,
                 this_test: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """Rows: the four networks; columns: the thesis' published train/validation figures next to the
    latest paper/default runs' train/validation (results_table.csv) and test (the run's
    test_catalogue_* metrics: galaxies for the regressions, as training logs them). For the run being
    evaluated (``this_run``), the test column is this evaluation's ``this_test`` (same definitions)."""
    import mlflow

    rows = {net: {"metric": v["metric"], "thesis_train": v["train"], "thesis_validation": v["validation"]}
            for net, v in THESIS_PUBLISHED.items()}
    found = {}
    if client is not None and experiment_id is not None:
        for preset, run in latest_preset_runs(client, experiment_id).items():
            found[preset] = run.info.run_id
            table = None
            try:
                local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                            artifact_path="results/results_table.csv")
                table = pd.read_csv(local).set_index("network")
            except Exception:  # noqa: BLE001 - a run without the artifact still has metrics
                table = None
            for net in rows:
                m = THESIS_PUBLISHED[net]["metric"]
                if table is not None and net in table.index:
                    rows[net][f"{preset}_train"] = float(table.loc[net, "final_train_score"])
                    rows[net][f"{preset}_validation"] = float(table.loc[net, "final_val_score"])
                    if "final_val_loss" in table.columns:
                        rows[net][f"{preset}_val_loss"] = float(table.loc[net, "final_val_loss"])
                rows[net][f"{preset}_test"] = run.data.metrics.get(f"test_catalogue_{net}_{m}", float("nan"))
                if this_test is not None and run.info.run_id == this_run and net in this_test:
                    rows[net][f"{preset}_test"] = this_test[net]
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "network"
    return df, found


def loss_histories(client, parent_run_id: str) -> dict:
    """{network: {train_loss: [...], val_loss: [...]}} from the nested runs' metric history."""
    out = {}
    exp = client.get_run(parent_run_id).info.experiment_id
    children = client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")
    for r in children:
        name = r.data.tags.get("mlflow.runName", r.info.run_id)
        h = {}
        for key in ("train_loss", "val_loss"):
            hist = sorted(client.get_metric_history(r.info.run_id, key), key=lambda m: m.step)
            if hist:
                h[key] = [m.value for m in hist]
        if h:
            out[name] = h
    return out


def flat_metrics(metrics: dict) -> dict[str, float]:
    """The scalar headline metrics, flattened for MLflow (eval_<estimator>_<labels>_<quantity>)."""
    out = {}

    def add(prefix, d):
        for k, v in d.items():
            if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool):
                if np.isfinite(v):
                    out[f"{prefix}_{k}"] = float(v)

    for src, blocks in metrics.get("network", {}).items():
        for name, b in blocks.items():
            if name == "thesis_metrics":
                add(f"eval_network_{src}_thesis", b)
            else:
                add(f"eval_network_{src}_{name}", b["overall"])
    base = metrics.get("baseline") or {}
    for est in ("bpz", "network"):
        for src, b in (base.get(est) or {}).items():
            if src == "timing":
                add(f"eval_same_objects_{est}", {"objects_per_s": b.get("objects_per_s", float("nan"))})
            else:
                add(f"eval_same_objects_{est}_{src}_redshift", b["redshift"]["overall"])
    if base:
        add("eval", {"throughput_ratio": base.get("throughput_ratio", float("nan"))})
    add("eval", {"n_test": metrics["data"]["n_test"]})
    return out


def log_to_run(run_id: str, out_dir: Path, name: str, flat: dict) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient()
    now = int(time.time() * 1000)
    items = [Metric(k[:250], v, now, 0) for k, v in flat.items()]
    for s in range(0, len(items), 500):
        client.log_batch(run_id, metrics=items[s:s + 500])
    client.log_artifacts(run_id, str(out_dir), f"evaluation/{name}")
    client.set_tag(run_id, "evaluation_report", f"evaluation/{name}/report.html")


# ---- the job ----------------------------------------------------------------------------------------
COMPARISONS = {"catalogue": "emulation (vs the catalogue's template-fit values)",
               "spec": "spectroscopic (vs secure z_spec)", "truth": "truth (mock only)"}


def comparison_table(frame: pd.DataFrame, bright: float = 22.5) -> pd.DataFrame:
    """Network and BPZ on the same galaxies, per comparison and magnitude range: σ_NMAD, outlier
    fraction, n. `frame` is `baseline_comparison`'s per-object table."""
    rows = []
    for src, what in COMPARISONS.items():
        if f"z_{src}" not in frame:
            continue
        for lo, hi in ((0.0, bright), (bright, 24.5), (0.0, 99.0)):
            sel = frame[f"galaxy_{src}"].to_numpy(bool) & np.isfinite(frame[f"z_{src}"].to_numpy(float)) \
                & (frame["mag"] >= lo) & (frame["mag"] < hi)
            zt = frame[f"z_{src}"].to_numpy(float)[sel]
            row = {"comparison": what, "labels": src, "mag": f"{lo:g}-{hi:g}" if hi < 99 else "all",
                   "n": int(sel.sum())}
            for who, col in (("network", "z_phot"), ("bpz", "zb")):
                m = M.photoz_metrics(frame[col].to_numpy(float)[sel], zt)
                row[f"{who}_sigma_nmad"], row[f"{who}_outlier_frac"] = m["sigma_nmad"], m["outlier_frac"]
            rows.append(row)
    return pd.DataFrame(rows)


def headline(metrics: dict) -> dict:
    """A few numbers for the console and the report's summary."""
    src = "truth" if "truth" in metrics["network"] else "catalogue"
    net = metrics["network"][src]
    h = {"labels": src,
         "redshift_sigma_nmad": net["redshift"]["overall"]["sigma_nmad"],
         "redshift_bias": net["redshift"]["overall"]["bias"],
         "redshift_outlier_frac": net["redshift"]["overall"]["outlier_frac"],
         "redshift_crps": net["redshift"]["overall"].get("crps"),
         "redshift_coverage68": net["redshift"]["overall"].get("coverage68"),
         "stellarity_balanced_accuracy": net["stellarity"]["overall"]["balanced_accuracy"],
         "stellarity_roc_auc": net["stellarity"]["overall"]["roc_auc"],
         "stellar_mass_nmad": net["stellar_mass"]["overall"]["nmad"],
         "spectral_type_nmad": net["spectral_type"]["overall"]["nmad"],
         "n_test": metrics["data"]["n_test"]}
    base = metrics.get("baseline")
    if base and src in base.get("bpz", {}):
        b = base["bpz"][src]["redshift"]["overall"]
        n = base["network"][src]["redshift"]["overall"]
        h.update(same_objects_n=base["n"], network_sigma_nmad_same_objects=n["sigma_nmad"],
                 bpz_sigma_nmad=b["sigma_nmad"], network_outlier_frac_same_objects=n["outlier_frac"],
                 bpz_outlier_frac=b["outlier_frac"],
                 network_objects_per_s=base["network"]["timing"].get("objects_per_s"),
                 bpz_objects_per_s=base["bpz"]["timing"]["objects_per_s"],
                 throughput_ratio=base["throughput_ratio"])
    return h


def evaluate(df: pd.DataFrame, survey: Survey, info: dict, opts: EvalOptions, ensemble=None,
             client=None, experiment_id: str | None = None) -> Evaluation:
    """Metrics on the joined test rows (pure pandas/numpy apart from the optional MLflow reads)."""
    mag = detection_magnitude(df, survey)
    sets = label_sets(df, survey, opts.spec_min_quality)
    if not sets:
        raise InputError("the catalogue has neither the label columns "
                         f"({', '.join(v for v in survey.labels.values() if isinstance(v, str))}) nor "
                         "the truth columns: nothing to evaluate against")
    notes = []
    metrics = {"data": {**info, "survey": survey.name, "label_sets": list(sets), "detection_band": survey.detection_band,
                        "mag_bins": list(MAG_BINS), "z_bins": list(Z_BINS),
                        "galaxy_definition": {"catalogue": f"not ({star_rule(survey)})",
                                              "truth": "is_star == 0",
                                              "spec": f"spec_class == galaxy, z_spec_quality >= {opts.spec_min_quality}"}},
               "network": {src: network_metrics(df, lab, mag) for src, lab in sets.items()}}
    bpz_frame = None
    if opts.bpz:
        base, bpz_frame = baseline_comparison(df, sets, mag, survey, opts.bpz_max_objects, ensemble)
        metrics["baseline"] = base
        metrics["comparisons"] = comparison_table(bpz_frame).to_dict(orient="records")
        if ensemble is None:
            notes.append("network throughput not measured: the model could not be loaded")
    else:
        notes.append("BPZ baseline skipped (--no-bpz)")
    this_test = None
    if "catalogue" in metrics["network"]:
        cn = metrics["network"]["catalogue"]
        gal = sets["catalogue"]["star"] == 0
        this_test = {"redshift": M.regression_metrics(_num(df, "z_phot")[gal], sets["catalogue"]["redshift"][gal])["r2"],
                     "stellarity": cn["stellarity"]["overall"]["accuracy"],
                     "stellar_mass": cn["stellar_mass"]["overall"]["r2"],
                     "spectral_type": cn["spectral_type"]["overall"]["r2"]}
    thesis, runs = thesis_table(client, experiment_id, info["model_run_id"], this_test)
    metrics["thesis"] = {"table": thesis.reset_index(), "runs": runs,
                         "published": THESIS_PUBLISHED,
                         "this_model_test": {src: metrics["network"][src]["thesis_metrics"] for src in sets}}
    if client is not None and not runs:
        notes.append("no paper/default training runs found in the MLflow experiment")
    histories = {}
    if client is not None:
        try:
            histories = loss_histories(client, info["model_run_id"])
        except Exception as e:  # noqa: BLE001 - curves are optional decoration
            notes.append(f"loss curves unavailable: {e}")
    metrics["headline"] = headline(metrics)
    metrics["notes"] = notes
    return Evaluation(metrics, df, bpz_frame, histories, notes)


def _commit_dir(staging: Path, target: Path) -> None:
    """Replace target with staging by rename (the old report stays intact until the swap)."""
    old = target.with_name(f"{target.name}.old-{uuid.uuid4().hex[:8]}")
    if target.exists():
        os.rename(target, old)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def run_evaluation(opts: EvalOptions, spark) -> dict:
    """The whole job: read, evaluate, write the report, log to MLflow. Returns a summary dict."""
    from galaxy_spark.report.html import write_report

    t0 = time.time()
    check_job_paths({"--scores": opts.scores, "--catalog": opts.catalog}, {"--out": (opts.out, "report")})
    survey = load_survey(opts.survey)
    df, info = read_test_join(spark, opts.scores, opts.catalog, survey, opts.model_run_id)
    if opts.spec:
        df, info["spec"] = attach_spec(spark, df, opts.catalog, opts.spec, survey)
    client = experiment_id = None
    ensemble = None
    if opts.mlflow:
        import mlflow
        from mlflow import MlflowClient

        client = MlflowClient()
        try:
            run = client.get_run(info["model_run_id"])
        except mlflow.exceptions.MlflowException:
            raise InputError(f"the scores' model run {info['model_run_id']} is not in the MLflow store "
                             f"{mlflow.get_tracking_uri()}: set MLFLOW_TRACKING_URI to the store the "
                             f"model came from, or pass --no-mlflow") from None
        experiment_id = run.info.experiment_id
        if opts.experiment:
            exp = client.get_experiment_by_name(opts.experiment)
            experiment_id = exp.experiment_id if exp else experiment_id
    uri = opts.model or (model_uri_for(info.get("model_name"), info.get("model_version"), info["model_run_id"])
                        if opts.mlflow else None)
    if uri and opts.bpz:
        try:
            resolved = resolve_model(uri)
            ensemble, model_run = resolved.ensemble, resolved.run_id
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001 - report without the throughput figure
            print(f"warning: could not load {uri} for the throughput timing: {str(e).splitlines()[0]}")
            model_run = None
        if opts.model and model_run and model_run != info["model_run_id"]:
            raise InputError(f"--model {opts.model} comes from run {model_run}, but the scores were "
                             f"produced by run {info['model_run_id']}")
    info["model_uri"] = uri
    ev = evaluate(df, survey, info, opts, ensemble, client, experiment_id)
    out = Path(opts.out)
    name = opts.name or out.resolve().name
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f"{out.name}.staging-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    staging.mkdir()
    try:
        ev.metrics["data"]["seconds"] = round(time.time() - t0, 1)
        write_report(ev, staging, title=f"galaxy_spark evaluation: {name}")
        _commit_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    flat = flat_metrics(ev.metrics)
    if opts.mlflow:
        log_to_run(info["model_run_id"], out, name, flat)
    return {"report": str(out / "report.html"), "metrics_json": str(out / "metrics.json"),
            "headline": ev.metrics["headline"], "comparisons": ev.metrics.get("comparisons"),
            "run_id": info["model_run_id"],
            "logged": bool(opts.mlflow), "n_flat_metrics": len(flat), "seconds": time.time() - t0}


# ---- the real-data check ------------------------------------------------------------------------
ODDS_MIN = 0.9            # "high Odds": P(|z - zb| < 0.02(1+zb)) > 0.9, the survey's secure-BPZ cut
STELLAR_FLAG_MAX = 0.7    # the survey's galaxy cut on Stellar_Flag
BRIGHT_MAG = 22.5         # Molino+2014 quote BPZ accuracy for I < 22.5 and 22.5 < I < 24.5


@dataclass
class RealDataOptions:
    input: str
    out: str
    model: str = "models:/galaxy-ensemble@champion"
    format: str = "vizier"
    odds_min: float = ODDS_MIN
    stellar_flag_max: float = STELLAR_FLAG_MAX
    survey: str = "alhambra"
    # Sim-to-real adaptation (galaxy_spark.train.finetune): K-fold fine-tuning of the redshift network on
    # labelled real galaxies; 0 = off.
    finetune_folds: int = 0
    finetune_label: str | None = None          # a column of the input; None: the survey's zb_1
    finetune_spec: str | None = None           # spectroscopic file (ID, z_spec, …): label z_spec
    finetune_epochs: int = 40
    finetune_lr_factor: float = 0.1
    finetune_calibration: str = "refit"        # keep | refit | identity
    finetune_seed: int = 42


def realdata_samples(cat: pd.DataFrame, survey: Survey, odds_min: float, stellar_flag_max: float) -> dict:
    """Boolean masks of the comparison samples (galaxies by Stellar_Flag; high-Odds; magnitude cuts)."""
    lab = survey.labels
    sf = _num(cat, lab.get("stellar_flag", "Stellar_Flag"))
    odds = _num(cat, lab.get("redshift_odds", "Odds_1"))
    mag = detection_magnitude(cat, survey)
    gal = sf < stellar_flag_max
    hi = gal & (odds > odds_min)
    return {f"galaxies, Odds_1 > {odds_min:g}": hi,
            "all galaxies": gal,
            f"galaxies, F814W < {BRIGHT_MAG:g}": gal & (mag < BRIGHT_MAG),
            f"galaxies, {BRIGHT_MAG:g} <= F814W < 24.5": gal & (mag >= BRIGHT_MAG) & (mag < 24.5),
            "galaxies, Odds_1 > 0.5": gal & (odds > 0.5)}


def run_realdata_check(opts: RealDataOptions, spark) -> dict:
    """Ingest real rows (via the ingest code), score them in-process with the Ensemble of
    ``opts.model``, compare z_phot with the survey's own BPZ zb_1; write metrics.json, a scatter plot
    and a small report.html into ``opts.out``. With ``opts.finetune_folds`` K >= 2, also K-fold
    fine-tuning of the redshift network on the labelled real galaxies (``galaxy_spark.train.finetune``):
    metrics["finetune"] holds before/after numbers on the same objects, the report a table."""
    import tempfile

    from galaxy_spark.catalog.ingest import run_ingest
    from galaxy_spark.report import plots as P
    from galaxy_spark.report.html import fmt, img_html, table_html, CSS, write_report_manifest

    t0 = time.time()
    survey = load_survey(opts.survey)
    if not opts.input:
        raise InputError("no --input given: pass a real catalogue file (e.g. the VizieR CSV of ALHAMBRA rows)")
    if not Path(opts.input).exists():
        raise InputError(f"input not found: {opts.input}")
    check_job_paths({"--input": opts.input}, {"--out": (opts.out, "report")})
    if not 0 <= opts.odds_min < 1:
        raise InputError(f"--odds-min must be in [0, 1), got {opts.odds_min}")
    from galaxy_spark.train import finetune as FT

    ft_settings = FT.FinetuneSettings(epochs=opts.finetune_epochs, lr_factor=opts.finetune_lr_factor,
                                      calibration=opts.finetune_calibration, seed=opts.finetune_seed)
    FT.check_options(opts.finetune_folds, opts.finetune_label, opts.finetune_spec, ft_settings)
    if opts.finetune_spec:
        check_job_paths({"--finetune-spec": opts.finetune_spec}, {"--out": (opts.out, "report")})
    resolved = resolve_model(opts.model)
    ensemble, run_id = resolved.ensemble, resolved.run_id
    work = Path(tempfile.mkdtemp(prefix="galaxy_spark_realdata_"))
    try:
        manifest = run_ingest(opts.input, work / "catalog", work / "quarantine", fmt=opts.format,
                              survey=survey, spark=spark, echo=lambda s: None)
        cat = spark.read.parquet(str(work / "catalog")).toPandas()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if cat.empty:
        raise InputError(f"{opts.input}: no valid rows after ingest (all quarantined?)")
    cat = cat.sort_values(survey.id_column, kind="mergesort").reset_index(drop=True)
    t1 = time.perf_counter()
    pred = ensemble.predict(cat)
    predict_s = time.perf_counter() - t1
    zref_col = survey.labels["redshift"]
    zref = _num(cat, zref_col)
    zp = pred["z_phot"].to_numpy(float)
    samples = realdata_samples(cat, survey, opts.odds_min, opts.stellar_flag_max)
    res = {}
    for name, mask in samples.items():
        r = M.photoz_metrics(zp[mask], zref[mask])
        r.update(M.interval_coverage(zref[mask], pred["z_phot_lo68"].to_numpy(float)[mask],
                                     pred["z_phot_hi68"].to_numpy(float)[mask],
                                     pred["z_phot_lo95"].to_numpy(float)[mask],
                                     pred["z_phot_hi95"].to_numpy(float)[mask]))
        res[name] = r
    primary = next(iter(samples))
    stars = M.classification_metrics((_num(cat, survey.labels.get("stellar_flag", "Stellar_Flag")) >= opts.stellar_flag_max)
                                     .astype(float), pred["p_star"].to_numpy(float))
    rows = manifest.get("rows", {})
    metrics = {"input": str(opts.input), "model": opts.model, "model_run_id": run_id,
               "rows": {"read": rows.get("read"), "ingested": int(len(cat)), "quarantined": rows.get("quarantined"),
                        "scorable": int(pred["scorable"].sum())},
               "reference": f"{zref_col} (the survey's own BPZ redshift)",
               "selection": {"galaxies": f"Stellar_Flag < {opts.stellar_flag_max:g}",
                             "high_odds": f"Odds_1 > {opts.odds_min:g}"},
               "primary_sample": primary, "samples": res,
               "stars_vs_stellar_flag": {k: stars[k] for k in ("purity", "completeness", "roc_auc",
                                                               "balanced_accuracy", "n")},
               "predict_objects_per_s": len(cat) / predict_s if predict_s > 0 else float("nan"),
               "seconds": round(time.time() - t0, 1)}
    bright_name = f"galaxies, F814W < {BRIGHT_MAG:g}"
    if opts.finetune_folds:
        label, label_name, label_desc = FT.realdata_labels(cat, survey, opts.finetune_label, opts.finetune_spec)
        block, _ = FT.finetune_check(ensemble, cat, cat[survey.id_column].to_numpy(np.int64), zp, label, label_name,
                                     samples["all galaxies"], (f"F814W < {BRIGHT_MAG:g} galaxies", samples[bright_name]),
                                     opts.finetune_folds, ft_settings, echo=lambda s: print(s, flush=True))
        metrics["finetune"] = {**block, "label_description": label_desc}
        metrics["seconds"] = round(time.time() - t0, 1)
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f"{out.name}.staging-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    staging.mkdir()
    try:
        gal = samples["all galaxies"]
        odds = _num(cat, survey.labels.get("redshift_odds", "Odds_1"))
        p = primary
        plot = P.realdata_scatter(zref[gal], zp[gal], odds[gal], samples[primary][gal], staging / "realdata_scatter.png",
                                  title=f"{Path(opts.input).name}: {p}: σ_NMAD {fmt(res[p]['sigma_nmad'])}, "
                                        f"outliers {fmt(res[p]['outlier_frac'])}")
        (staging / "metrics.json").write_text(json.dumps(jsonable(metrics), indent=1, allow_nan=False))
        write_report_manifest(staging)
        keys = ("n", "bias", "sigma_nmad", "outlier_frac", "outlier_frac_rail", "coverage68", "coverage95")
        tab = pd.DataFrame({k: {kk: v.get(kk) for kk in keys} for k, v in res.items()}).T
        tab.index.name = "sample"
        html_doc = ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>real-data check</title>"
                    f"<style>{CSS}</style></head><body><h1>Real-data check</h1>"
                    f"<p>Input <code>{Path(opts.input).name}</code>: {metrics['rows']['read']} rows read, "
                    f"{len(cat)} ingested; model <code>{opts.model}</code> (run {run_id}). Network z_phot vs "
                    f"the survey's own BPZ redshift <code>{zref_col}</code> — a consistency check against "
                    "another photo-z, not against spectroscopy.</p><h2>Redshift</h2>" + table_html(tab)
                    + img_html(plot, "z_phot vs zb_1 for Stellar_Flag galaxies, coloured by Odds_1; the "
                                     "primary sample ringed")
                    + FT.finetune_html(metrics.get("finetune"))
                    + "<h2>Definitions</h2><p>Galaxies: Stellar_Flag &lt; "
                    f"{opts.stellar_flag_max:g} (the survey's cut). High Odds: Odds_1 &gt; {opts.odds_min:g}, "
                    "i.e. more than 90% of BPZ's p(z) within zb ± 0.02(1+zb): objects whose catalogue "
                    "redshift is secure enough to serve as a reference. ez = (z_phot − zb_1)/(1 + zb_1); "
                    "σ_NMAD, bias, outliers |ez| &gt; 0.15 as in the evaluation report.</p></body></html>\n")
        (staging / "report.html").write_text(html_doc, encoding="utf-8")
        _commit_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"out": str(out), "report": str(out / "report.html"), "metrics": metrics}
