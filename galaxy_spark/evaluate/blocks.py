"""Metric blocks: every metric of one estimator's outputs against one label set, overall and binned,
as the nested dicts metrics.json holds (``network.<labels>.<output>.{overall, by_mag, by_z, pit}``).

Pure numpy/pandas on the joined test rows (``evaluate.data``); the formulas are in
``evaluate.metrics``. What each block holds:

* redshift (galaxies only: label star = 0): σ_NMAD, bias, outlier fractions (|ez| > 0.15 and the
  RAIL cut), binned by detection magnitude and by redshift; PIT histogram and CRPS from the score
  quantiles; coverage of the 68% and 95% intervals;
* star/galaxy (all objects, star = positive class, score ``p_star``): purity, completeness, ROC AUC,
  balanced accuracy, overall and by magnitude;
* stellar mass and spectral type (galaxies): bias, NMAD, std, r²;
* the thesis' own metrics (all objects, like the thesis): r² per regression, accuracy (and the
  majority-class accuracy next to it).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from galaxy_spark import metrics as M
from galaxy_spark.evaluate.data import QUANTILE_COLUMNS, QUANTILE_LEVELS, num
from galaxy_spark.model.heads import HEADS

MAG_BINS = (14.0, 18.0, 19.0, 20.0, 21.0, 22.0, 22.5, 23.0, 23.5, 24.0, 24.5, 27.0)   # AB mag
Z_BINS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 7.0)


def quantiles(df: pd.DataFrame) -> np.ndarray:
    """The scores' five p(z) quantiles as an (n, 5) array, levels ``QUANTILE_LEVELS``."""
    return np.column_stack([num(df, c) for c in QUANTILE_COLUMNS])


def redshift_block(z_pred, z_true, mag, lo68=None, hi68=None, lo95=None, hi95=None,
                   pit=None, crps=None) -> dict:
    """Point-estimate metrics of z_pred against z_true, overall and binned by ``mag`` (``MAG_BINS``)
    and by z_true (``Z_BINS``); with intervals, their coverage; with per-object PIT values, the PIT
    histogram and its KS distance; with per-object CRPS, their mean (redshift units)."""
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


def network_redshift_block(df: pd.DataFrame, rows: np.ndarray, z_true: np.ndarray, mag: np.ndarray) -> dict:
    """``redshift_block`` of the network's scores in ``df`` (z_phot, its intervals, PIT and CRPS from
    the five quantiles) for the rows selected by the boolean mask ``rows`` (the galaxies); ``z_true``
    and ``mag`` are aligned with ``df``."""
    qv = quantiles(df)[rows]
    zt = z_true[rows]
    z = {c: num(df, c)[rows] for c in ("z_phot", "z_phot_lo68", "z_phot_hi68", "z_phot_lo95", "z_phot_hi95")}
    return redshift_block(z["z_phot"], zt, mag[rows], z["z_phot_lo68"], z["z_phot_hi68"], z["z_phot_lo95"],
                          z["z_phot_hi95"], pit=M.pit_from_quantiles(qv, QUANTILE_LEVELS, zt),
                          crps=M.crps_from_quantiles(qv, QUANTILE_LEVELS, zt))


def network_metrics(df: pd.DataFrame, labels: dict[str, np.ndarray], mag: np.ndarray) -> dict:
    """All metrics of the network's outputs against one label set (catalogue, spec or truth): one
    block per required head of the head table (model/heads.py; galaxies: the classifier's label
    0), and the thesis' own metrics (all objects: r² of each regression, the classifier's accuracy
    beside the majority-class accuracy)."""
    classifier = next(h for h in HEADS if h.kind == "classifier")
    gal = labels[classifier.name] == 0
    out, thesis = {}, {}
    for h in HEADS:
        if h.optional:
            continue
        pred, y = num(df, h.column(0)), labels[h.name]
        if h.kind == "pdf":
            out[h.name] = network_redshift_block(df, gal, y, mag)
            thesis[f"{h.name}_r2"] = M.regression_metrics(pred, y)["r2"]
        elif h.kind == "classifier":
            cls = M.classification_metrics(y, pred)
            out[h.name] = {"overall": cls, "by_mag": M.binned(M.classification_metrics, mag, MAG_BINS, y, pred)}
            known = y[np.isfinite(y)]
            thesis[f"{h.name}_accuracy"] = cls["accuracy"]
            thesis[f"{h.name}_majority_class_accuracy"] = (float(max(np.mean(known == 0), np.mean(known == 1)))
                                                           if known.size else float("nan"))
        else:
            out[h.name] = {"overall": M.regression_metrics(pred[gal], y[gal]),
                           "by_mag": M.binned(M.regression_metrics, mag[gal], MAG_BINS, pred[gal], y[gal])}
            thesis[f"{h.name}_r2"] = M.regression_metrics(pred, y)["r2"]
    out["thesis_metrics"] = thesis
    return out


def headline(metrics: dict) -> dict:
    """A few numbers for the console and the report's summary: the network against the truth when
    the catalogue has it (else the catalogue labels), and, when the BPZ baseline ran, network and
    BPZ on the same objects with their throughputs (objects/s) and ratio."""
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
