"""The real-data check: real survey rows → the ingest code → the model's Ensemble in-process →
z_phot against the survey's own BPZ redshift (zb_1) for galaxies by the survey's Stellar_Flag cut,
with and without its high-Odds selection; optionally K-fold fine-tuning of the redshift network on
the labelled real galaxies (``galaxy_spark.train.finetune``).

``run_realdata_check`` returns a ``RealDataCheck``; ``galaxy_spark.studies.realdata_report`` writes it
(metrics.json, the scatter plot, report.html). This is agreement with another photo-z, not accuracy
against spectroscopy.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_spark.errors import InputError
from galaxy_spark import metrics as M
from galaxy_spark.evaluate.data import detection_magnitude, num
from galaxy_spark.io.paths import check_job_paths
from galaxy_spark.model.heads import FLAG_NOT_SCORABLE
from galaxy_spark.model.registry import resolve_model
from galaxy_spark.model.sed import filter_column
from galaxy_spark.survey import Survey, load_survey
from galaxy_spark.log import get_logger

log = get_logger(__name__)

ODDS_MIN = 0.9            # "high Odds": P(|z - zb| < 0.02(1+zb)) > 0.9, the survey's secure-BPZ cut
STELLAR_FLAG_MAX = 0.7    # the survey's galaxy cut on Stellar_Flag


@dataclass
class RealDataOptions:
    """What ``run_realdata_check`` checks (jobs/realdata_check.py's options)."""
    input: str
    out: str
    model: str = "models:/galaxy-ensemble@champion"
    format: str = "vizier"
    odds_min: float = ODDS_MIN
    stellar_flag_max: float = STELLAR_FLAG_MAX
    survey: str | None = None          # a survey name or file; None: pipeline.yaml's
    # Sim-to-real adaptation (galaxy_spark.train.finetune): K-fold fine-tuning of the redshift network on
    # labelled real galaxies; 0 = off.
    finetune_folds: int = 0
    finetune_label: str | None = None          # a column of the input; None: the survey's zb_1
    finetune_spec: str | None = None           # spectroscopic file (ID, z_spec, …): label z_spec
    finetune_epochs: int = 40
    finetune_lr_factor: float = 0.1
    finetune_calibration: str = "refit"        # keep | refit | identity
    finetune_seed: int = 42


@dataclass
class RealDataCheck:
    """A finished real-data check: metrics.json's content and what the scatter plot draws."""
    metrics: dict
    options: RealDataOptions
    z_ref: np.ndarray         # the survey's redshift (zb_1) per ingested row
    z_phot: np.ndarray        # the network's
    odds: np.ndarray          # the survey's Odds_1
    samples: dict             # {sample name: boolean mask}; the first is the primary sample
    reference_column: str     # the survey's redshift column (zb_1)
    odds_column: str          # the survey's redshift odds column (Odds_1)


def realdata_samples(cat: pd.DataFrame, survey: Survey, odds_min: float, stellar_flag_max: float) -> dict:
    """Boolean masks of the comparison samples, the primary (high-Odds galaxies) first: galaxies by
    Stellar_Flag < ``stellar_flag_max``; with Odds_1 > ``odds_min``; by detection magnitude (AB)
    below the survey's detection.bright_mag and between it and completeness_mag; with Odds_1 > 0.5."""
    sf_col, odds_col, det = _label(survey, "stellar_flag"), _label(survey, "redshift_odds"), survey.detection_band
    sf, odds = num(cat, sf_col), num(cat, odds_col)
    mag = detection_magnitude(cat, survey)
    gal = sf < stellar_flag_max
    hi = gal & (odds > odds_min)
    return {f"galaxies, {odds_col} > {odds_min:g}": hi,
            "all galaxies": gal,
            bright_sample(survey): gal & (mag < survey.bright_mag),
            f"galaxies, {survey.bright_mag:g} <= {det} < {survey.completeness_mag:g}":
                gal & (mag >= survey.bright_mag) & (mag < survey.completeness_mag),
            f"galaxies, {odds_col} > 0.5": gal & (odds > 0.5)}


def sed_on_real_rows(pred: pd.DataFrame, cat: pd.DataFrame, survey: Survey, samples: dict, sed) -> dict:
    """What the SED outputs look like on real rows, which have no true spectra: per sample the
    predicted rest-frame colours' 16/50/84th percentiles (to set beside the mock's), and the SED's
    absolute magnitude against the survey's own (BPZ's) in the filter the survey file names."""
    out = {}
    label = survey.labels.get("absolute_magnitude")
    band = survey.labels.get("absolute_magnitude_filter")
    col = f"abs_{filter_column(band)}" if band else None
    for name, mask in samples.items():
        row = {"n": int(mask.sum())}
        for c, _, _ in sed.colours:
            v = pred[c].to_numpy(float)[mask]
            v = v[np.isfinite(v)]
            row.update({f"{c}_p{q}": float(np.percentile(v, q)) if v.size else float("nan") for q in (16, 50, 84)})
        if label in cat and col in pred:
            d = pred[col].to_numpy(float)[mask] - num(cat, label)[mask]
            d = d[np.isfinite(d)]
            row[f"{col}_minus_{label}_median"] = float(np.median(d)) if d.size else float("nan")
            row[f"{col}_minus_{label}_nmad"] = float(M.nmad(d)) if d.size else float("nan")
        out[name] = row
    return out


def bright_sample(survey: Survey) -> str:
    """Name of the bright-galaxy sample (detection band < the survey's detection.bright_mag)."""
    return f"galaxies, {survey.detection_band} < {survey.bright_mag:g}"


def _label(survey: Survey, role: str) -> str:
    """The survey's label column `role`; the real-data check needs it (InputError when missing)."""
    col = survey.label(role)
    if not col:
        raise InputError(f"survey {survey.name!r} ({survey.source}) has no labels.{role} column: the real-data "
                         f"check compares with the survey's own labels")
    return col


def _ingest(opts: RealDataOptions, survey: Survey, spark) -> tuple[pd.DataFrame, dict]:
    """The input's rows through the ingest code (in a temporary directory, removed afterwards),
    sorted by ID; plus the ingest manifest (row accounting)."""
    from galaxy_spark.catalog.ingest import run_ingest

    work = Path(tempfile.mkdtemp(prefix="galaxy_spark_realdata_"))
    try:
        manifest = run_ingest(opts.input, work / "catalog", work / "quarantine", fmt=opts.format,
                              survey=survey, spark=spark, echo=lambda s: None)
        cat = spark.read.parquet(str(work / "catalog")).toPandas()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if cat.empty:
        raise InputError(f"{opts.input}: no valid rows after ingest (all quarantined?)")
    return cat.sort_values(survey.id_column, kind="mergesort").reset_index(drop=True), manifest


def run_realdata_check(opts: RealDataOptions, spark) -> RealDataCheck:
    """Ingest the real rows, score them in-process with the Ensemble of ``opts.model``, compare z_phot
    with the survey's own BPZ zb_1 per sample (σ_NMAD, bias, outliers, 68/95% coverage) and the star
    score with Stellar_Flag ≥ ``opts.stellar_flag_max``. With ``opts.finetune_folds`` K ≥ 2, also K-fold
    fine-tuning of the redshift network on the labelled real galaxies: metrics["finetune"] holds
    before/after numbers on the same objects."""
    from galaxy_spark.train import finetune as FT

    t0 = time.time()
    survey = load_survey(opts.survey)
    if not opts.input:
        raise InputError("no --input given: pass a real catalogue file (e.g. a VizieR CSV of the survey's rows)")
    if not Path(opts.input).exists():
        raise InputError(f"input not found: {opts.input}")
    check_job_paths({"--input": opts.input}, {"--out": (opts.out, "report")})
    if not 0 <= opts.odds_min < 1:
        raise InputError(f"--odds-min must be in [0, 1), got {opts.odds_min}")
    ft_settings = FT.FinetuneSettings(epochs=opts.finetune_epochs, lr_factor=opts.finetune_lr_factor,
                                      calibration=opts.finetune_calibration, seed=opts.finetune_seed)
    FT.check_options(opts.finetune_folds, opts.finetune_label, opts.finetune_spec, ft_settings)
    if opts.finetune_spec:
        check_job_paths({"--finetune-spec": opts.finetune_spec}, {"--out": (opts.out, "report")})
    resolved = resolve_model(opts.model)
    ensemble, run_id = resolved.ensemble, resolved.run_id
    cat, manifest = _ingest(opts, survey, spark)
    t1 = time.perf_counter()
    pred = ensemble.predict(cat)
    predict_s = time.perf_counter() - t1
    zref_col = survey.labels["redshift"]
    zref = num(cat, zref_col)
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
    stellar_flag = num(cat, _label(survey, "stellar_flag"))
    stars = M.classification_metrics((stellar_flag >= opts.stellar_flag_max).astype(float),
                                     pred["p_star"].to_numpy(float))
    rows = manifest.get("rows", {})
    metrics = {"input": str(opts.input), "model": opts.model, "model_run_id": run_id,
               "rows": {"read": rows.get("read"), "ingested": int(len(cat)), "quarantined": rows.get("quarantined"),
                        "scorable": int(((pred["quality_flags"] & FLAG_NOT_SCORABLE) == 0).sum())},
               "reference": f"{zref_col} (the survey's own BPZ redshift)",
               "selection": {"galaxies": f"{_label(survey, 'stellar_flag')} < {opts.stellar_flag_max:g}",
                             "high_odds": f"{_label(survey, 'redshift_odds')} > {opts.odds_min:g}"},
               "primary_sample": next(iter(samples)), "samples": res,
               "stars_vs_stellar_flag": {k: stars[k] for k in ("purity", "completeness", "roc_auc",
                                                               "balanced_accuracy", "n")},
               "predict_objects_per_s": len(cat) / predict_s if predict_s > 0 else float("nan"),
               "seconds": round(time.time() - t0, 1)}
    if ensemble.sed is not None:
        metrics["sed"] = sed_on_real_rows(pred, cat, survey, samples, ensemble.sed)
    if opts.finetune_folds:
        bright_name = bright_sample(survey)
        label, label_name, label_desc = FT.realdata_labels(cat, survey, opts.finetune_label, opts.finetune_spec)
        block, _ = FT.finetune_check(ensemble, cat, cat[survey.id_column].to_numpy(np.int64), zp, label, label_name,
                                     samples["all galaxies"], (f"{survey.detection_band} < {survey.bright_mag:g} galaxies", samples[bright_name]),
                                     opts.finetune_folds, ft_settings, echo=log.info)
        metrics["finetune"] = {**block, "label_description": label_desc}
        metrics["seconds"] = round(time.time() - t0, 1)
    odds_col = _label(survey, "redshift_odds")
    return RealDataCheck(metrics, opts, zref, zp, num(cat, odds_col), samples, zref_col, odds_col)
