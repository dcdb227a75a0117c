"""Field-standard metrics for photo-z, probabilistic photo-z, star/galaxy classification and regression.

Pure numpy functions (no Spark): arrays in, floats / dicts / DataFrames out.

Conventions shared by every function
------------------------------------
* **NaN handling.** Inputs are paired arrays; a row where *any* paired input is NaN (or ±inf) is
  dropped before the metric is computed. Every dict-returning function reports ``n`` (rows used)
  and ``n_dropped`` (rows dropped for NaN/inf) so that silently shrinking samples are visible.
* **Empty inputs.** When no usable row is left, every metric is NaN and ``n = 0``; nothing raises.
* Redshift error: ``ez = (z_pred - z_true) / (1 + z_true)``.

Photo-z point estimates (``photoz_metrics``)
    bias = median(ez); sigma_nmad = nmad(ez) = 1.4826 * median(|ez - median(ez)|) (the exact normal
    scale 1/Φ⁻¹(3/4) = 1.482602…, ``scipy.stats.median_abs_deviation(scale="normal")``);
    outlier_frac = mean(|ez| > 0.15);
    sigma_iqr = IQR(ez) / 1.349 (exactly 2Φ⁻¹(3/4) = 1.348979…, ``scipy.stats.iqr(scale="normal")``);
    outlier_frac_rail = mean(|ez| > max(0.06, 3 sigma_iqr)) (LSST-DESC RAIL); also mean and std of ez.
Probabilistic photo-z
    PIT = CDF_i(z_true_i) from a gridded pdf/CDF, from samples, or from quantiles; a calibrated
    estimator gives a uniform PIT histogram; its KS distance to the uniform distribution is
    ``scipy.stats.kstest``'s statistic. CRPS = ∫ (F(z) - H(z - z_true))² dz on the grid, or from a
    few quantiles (``crps_from_quantiles``).
    Coverage = share of z_true inside [lower, upper] (nominal 0.68 / 0.95 for central intervals).
Classification (positive class = 1 unless ``positive`` says otherwise)
    purity = TP/(TP+FP) (precision); completeness = TP/(TP+FN) (recall); ROC curve and AUC from
    scikit-learn (the AUC equals Mann-Whitney U with ties averaged); balanced accuracy = (TPR + TNR)/2;
    accuracy; confusion counts.
Regression
    r2 = 1 - SS_res/SS_tot (``sklearn.metrics.r2_score``; NaN for a constant truth);
    bias = median(pred - true); nmad(pred - true); std = std(d); slope/intercept of pred = a + b * true
    by least squares.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics as skm

OUTLIER_CUT = 0.15


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _as_float(a) -> np.ndarray:
    return np.asarray(a, dtype=float).ravel()


def drop_nan(*arrays) -> tuple[list[np.ndarray], int]:
    """Return the arrays (flattened, float) restricted to rows finite in all of them, and the drop count.

    All arrays must have the same length. Non-finite (NaN, ±inf) values count as missing.
    """
    arrs = [_as_float(a) for a in arrays]
    if not arrs:
        return [], 0
    n = len(arrs[0])
    for a in arrs[1:]:
        if len(a) != n:
            raise ValueError(f"paired inputs differ in length: {[len(x) for x in arrs]}")
    ok = np.ones(n, bool)
    for a in arrs:
        ok &= np.isfinite(a)
    return [a[ok] for a in arrs], int(n - ok.sum())


def nmad(x) -> float:
    """Normalised median absolute deviation of the finite values, in the units of x: 1.4826 ·
    median(|x − median(x)|), the standard deviation of a Gaussian estimated robustly (catastrophic
    outliers barely move it). The one NMAD of the project (photo-z σ_NMAD, NMAD of a regression's
    residuals, running NMAD in the plots). NaN when no finite value."""
    x = _as_float(x)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    return float(stats.median_abs_deviation(x, scale="normal"))


def iqr_sigma(x) -> float:
    """IQR(x)/1.349 of the finite values, in the units of x: the interquartile range scaled to a
    Gaussian's σ (RAIL's σ_IQR). NaN when no finite value."""
    x = _as_float(x)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    return float(stats.iqr(x, scale="normal"))


# ---------------------------------------------------------------------------------------------
# photo-z point estimates
# ---------------------------------------------------------------------------------------------
def ez(z_pred, z_true) -> np.ndarray:
    """(z_pred − z_true)/(1 + z_true), elementwise (NaN propagates)."""
    zp, zt = _as_float(z_pred), _as_float(z_true)
    return (zp - zt) / (1.0 + zt)


def photoz_metrics(z_pred, z_true, outlier_cut: float = OUTLIER_CUT) -> dict:
    """bias, sigma_nmad, outlier_frac (|ez|>cut), sigma_iqr, outlier_frac_rail, mean, std, n, n_dropped."""
    (zp, zt), dropped = drop_nan(z_pred, z_true)
    out = dict(n=int(zp.size), n_dropped=dropped)
    keys = ("bias", "sigma_nmad", "outlier_frac", "sigma_iqr", "outlier_frac_rail", "rail_cut", "mean", "std")
    if zp.size == 0:
        out.update({k: float("nan") for k in keys})
        return out
    e = (zp - zt) / (1.0 + zt)
    s_iqr = iqr_sigma(e)
    rail_cut = max(0.06, 3.0 * s_iqr)
    out.update(
        bias=float(np.median(e)),
        sigma_nmad=nmad(e),
        outlier_frac=float(np.mean(np.abs(e) > outlier_cut)),
        sigma_iqr=s_iqr,
        outlier_frac_rail=float(np.mean(np.abs(e) > rail_cut)),
        rail_cut=float(rail_cut),
        mean=float(np.mean(e)),
        std=float(np.std(e)),
    )
    return out


def binned(metric_fn: Callable[..., dict], x, bins: Sequence[float] | np.ndarray, *arrays,
           min_count: int = 1, **kwargs) -> pd.DataFrame:
    """Apply ``metric_fn(*arrays_in_bin, **kwargs)`` in bins of ``x`` (e.g. F814W magnitude or z_true).

    Bins are half-open ``[lo, hi)`` except the last, which is closed. Rows with non-finite ``x`` are
    in no bin. Returns one row per bin: ``lo, hi, center, count`` (rows of ``x`` in the bin, before the
    metric's own NaN dropping) and the metric's dict entries. Bins with fewer than ``min_count`` rows
    get NaN metrics (``count`` is still reported).

    Example: ``binned(photoz_metrics, mag, [18, 20, 22, 24], z_pred, z_true)``.
    """
    x = _as_float(x)
    arrs = [_as_float(a) for a in arrays]
    for a in arrs:
        if len(a) != len(x):
            raise ValueError("binned: every array must have the length of x")
    edges = np.asarray(bins, float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("binned: bins must be an increasing sequence of at least 2 edges")
    rows = []
    template = None
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        last = i == edges.size - 2
        sel = (x >= lo) & ((x <= hi) if last else (x < hi))
        count = int(sel.sum())
        row = dict(lo=float(lo), hi=float(hi), center=float(0.5 * (lo + hi)), count=count)
        if count >= max(min_count, 1):
            res = metric_fn(*[a[sel] for a in arrs], **kwargs)
            template = template or list(res)
            row.update(res)
        rows.append(row)
    if template is None:  # every bin empty: ask the metric what it returns on empty input
        template = list(metric_fn(*[a[:0] for a in arrs], **kwargs))
    for row in rows:
        for k in template:
            row.setdefault(k, float("nan"))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# probabilistic photo-z
# ---------------------------------------------------------------------------------------------
def _grid_cdf(pdf_or_cdf: np.ndarray, z_grid: np.ndarray, is_cdf: bool, n_obj: int) -> np.ndarray:
    """(n_obj, n_z) CDF on the grid from a pdf (normalised here) or a CDF; checks the shapes."""
    p = np.asarray(pdf_or_cdf, float)
    if p.ndim == 1:
        p = p[None, :]
    if p.shape[1] != z_grid.size:
        raise ValueError(f"pdf grid has {p.shape[1]} points, z_grid {z_grid.size}")
    if p.shape[0] != n_obj:
        raise ValueError("one pdf row per z_true needed")
    if is_cdf:
        return p
    # trapezoid cumulative integral, normalised per object
    dz = np.diff(z_grid)
    cum = np.concatenate([np.zeros((p.shape[0], 1)), np.cumsum(0.5 * (p[:, 1:] + p[:, :-1]) * dz, axis=1)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cum / cum[:, -1:]


def pit_from_grid(pdf_or_cdf, z_grid, z_true, is_cdf: bool = False) -> np.ndarray:
    """PIT_i = CDF_i(z_true_i), linearly interpolated on the grid (0 below, 1 above the grid).

    ``pdf_or_cdf``: (n_obj, n_z) pdf (any normalisation; integrated with the trapezoid rule) or CDF.
    Objects with NaN ``z_true``, a NaN in their row or a zero-integral pdf get PIT NaN (drop them with
    ``pit_histogram``, which reports the count).
    """
    zg, zt = _as_float(z_grid), _as_float(z_true)
    if zt.size == 0:
        return np.empty(0)
    cdf = _grid_cdf(pdf_or_cdf, zg, is_cdf, zt.size)
    j = np.clip(np.searchsorted(zg, zt, side="right") - 1, 0, zg.size - 2)
    rows = np.arange(zt.size)
    z0, z1 = zg[j], zg[j + 1]
    w = np.clip((zt - z0) / (z1 - z0), 0.0, 1.0)
    pit = cdf[rows, j] * (1 - w) + cdf[rows, j + 1] * w
    pit = np.where(zt < zg[0], 0.0, np.where(zt > zg[-1], 1.0, pit))
    bad = ~np.isfinite(zt) | ~np.all(np.isfinite(cdf), axis=1)
    return np.where(bad, np.nan, pit)


def pit_from_samples(samples, z_true) -> np.ndarray:
    """PIT_i = share of object i's samples ≤ z_true_i (samples: (n_obj, n_samples), NaN samples ignored)."""
    s = np.asarray(samples, float)
    zt = _as_float(z_true)
    if zt.size == 0:
        return np.empty(0)
    if s.ndim == 1:
        s = s[None, :]
    valid = np.isfinite(s)
    nvalid = valid.sum(axis=1)
    below = (valid & (s <= zt[:, None])).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pit = below / nvalid
    return np.where(np.isfinite(zt) & (nvalid > 0), pit, np.nan)


def pit_from_quantiles(quantile_values, quantile_levels, z_true) -> np.ndarray:
    """PIT_i by linear interpolation of the levels at z_true_i between object i's quantile values.

    ``quantile_values``: (n_obj, n_q), increasing per row; ``quantile_levels``: (n_q,) in (0, 1).
    Outside the quantile range the tail shape is unknown: z_true below the first quantile gives 0,
    above the last gives 1 (``np.interp(z, q, levels, left=0, right=1)``). Include levels close to
    0 and 1 to make this approximation negligible.
    """
    q = np.asarray(quantile_values, float)
    lv = _as_float(quantile_levels)
    zt = _as_float(z_true)
    if zt.size == 0:
        return np.empty(0)
    if q.ndim == 1:
        q = q[None, :]
    out = np.full(zt.size, np.nan)
    for i in range(zt.size):
        if np.isfinite(zt[i]) and np.all(np.isfinite(q[i])):
            out[i] = np.interp(zt[i], q[i], lv, left=0.0, right=1.0)
    return out


def pit_histogram(pit, n_bins: int = 10) -> dict:
    """Histogram of PIT values on [0, 1]: edges, counts, density (1 everywhere when calibrated),
    the KS distance to the uniform distribution, n and n_dropped (NaN PITs)."""
    (p,), dropped = drop_nan(pit)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts, _ = np.histogram(np.clip(p, 0.0, 1.0), bins=edges)
    if p.size == 0:
        return dict(edges=edges, counts=counts, density=np.full(n_bins, np.nan), ks=float("nan"),
                    n=0, n_dropped=dropped)
    density = counts / (p.size / n_bins)
    ks = float(stats.kstest(np.clip(p, 0.0, 1.0), "uniform").statistic)
    return dict(edges=edges, counts=counts, density=density, ks=ks, n=int(p.size), n_dropped=dropped)


def crps_from_grid(pdf, z_grid, z_true, is_cdf: bool = False) -> np.ndarray:
    """Per-object CRPS = ∫ (F(z) − H(z − z_true))² dz over the grid (trapezoid rule).

    The step function H is evaluated exactly at grid points (so the result is accurate to ~dz).
    NaN for NaN z_true or pdf rows with NaN / zero integral. Average with ``np.nanmean``.
    """
    zg, zt = _as_float(z_grid), _as_float(z_true)
    if zt.size == 0:
        return np.empty(0)
    cdf = _grid_cdf(pdf, zg, is_cdf, zt.size)
    step = (zg[None, :] >= zt[:, None]).astype(float)
    integrand = (cdf - step) ** 2
    crps = np.trapezoid(integrand, zg, axis=1)
    bad = ~np.isfinite(zt) | ~np.all(np.isfinite(cdf), axis=1)
    return np.where(bad, np.nan, crps)


def crps_from_quantiles(quantile_values, quantile_levels, z_true, n_tau: int = 201,
                        chunk: int = 20000) -> np.ndarray:
    """Approximate per-object CRPS (in redshift units) from a few quantiles of each p(z), for scores
    that keep only quantiles (the network's five points) rather than the whole p(z).

    CRPS(F, y) = 2 ∫₀¹ ρ_τ(y − F⁻¹(τ)) dτ (the quantile-score form; ρ_τ(u) = u(τ − 1[u < 0]) is the
    pinball loss); F⁻¹ linear between the given (level, value) points and linearly extrapolated to
    τ = 0 and 1 (clipped at z = 0), integrated by the trapezoid rule on ``n_tau`` levels. It ignores the
    shape of p(z) between the points. NaN where z_true or any quantile is NaN.
    """
    q = np.sort(np.atleast_2d(np.asarray(quantile_values, float)), axis=1)
    lv = _as_float(quantile_levels)
    zt = _as_float(z_true)
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


def coverage(z_true, lower, upper) -> dict:
    """Share of z_true in [lower, upper] (inclusive), with n and n_dropped."""
    (zt, lo, hi), dropped = drop_nan(z_true, lower, upper)
    if zt.size == 0:
        return dict(coverage=float("nan"), n=0, n_dropped=dropped)
    return dict(coverage=float(np.mean((zt >= lo) & (zt <= hi))), n=int(zt.size), n_dropped=dropped)


def interval_coverage(z_true, lower68=None, upper68=None, lower95=None, upper95=None) -> dict:
    """Coverage of the central 68% and 95% intervals (nominal 0.68 and 0.95) — whichever are given."""
    out = {}
    if lower68 is not None:
        c = coverage(z_true, lower68, upper68)
        out.update(coverage68=c["coverage"], n68=c["n"], n_dropped68=c["n_dropped"])
    if lower95 is not None:
        c = coverage(z_true, lower95, upper95)
        out.update(coverage95=c["coverage"], n95=c["n"], n_dropped95=c["n_dropped"])
    return out


# ---------------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------------
def roc_auc(y_true, score, positive=1) -> float:
    """Area under the ROC curve of ``score`` for the class ``y_true == positive``
    (``sklearn.metrics.roc_auc_score``; equal to Mann-Whitney U with ties counted half). NaN rows
    dropped; NaN when either class is absent."""
    (y, s), _ = drop_nan(y_true, score)
    pos = y == positive
    if pos.all() or not pos.any():
        return float("nan")
    return float(skm.roc_auc_score(pos, s))


def roc_curve(y_true, score, positive=1) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate), both in [0, 1], at every distinct threshold of
    ``score`` for the class ``y_true == positive``, starting at (0, 0) (``sklearn.metrics.roc_curve``
    without dropping collinear points). NaN rows dropped; the diagonal when either class is absent."""
    (y, s), _ = drop_nan(y_true, score)
    pos = y == positive
    if pos.all() or not pos.any():
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    fpr, tpr, _ = skm.roc_curve(pos, s, drop_intermediate=False)
    return fpr, tpr


def classification_metrics(y_true, score, threshold: float = 0.5, positive=1) -> dict:
    """Purity, completeness, ROC AUC, balanced accuracy, accuracy and confusion counts.

    ``score`` is the probability (or any monotone score) of the positive class; ``score`` ≥
    ``threshold`` predicts the positive class (pass 0/1 predictions with threshold 0.5
    when there is no score; the AUC is then that of the hard labels). ``y_true == positive`` defines
    the positive class. Ratios with a zero denominator are NaN.
    """
    (y, s), dropped = drop_nan(y_true, score)
    truth = y == positive
    pred = s >= threshold
    tp = int(np.sum(truth & pred))
    fp = int(np.sum(~truth & pred))
    fn = int(np.sum(truth & ~pred))
    tn = int(np.sum(~truth & ~pred))

    def ratio(a, b):
        return float(a / b) if b > 0 else float("nan")

    tpr = ratio(tp, tp + fn)
    tnr = ratio(tn, tn + fp)
    return dict(
        purity=ratio(tp, tp + fp),
        completeness=tpr,
        specificity=tnr,
        roc_auc=roc_auc(y, s, positive) if y.size else float("nan"),
        balanced_accuracy=float((tpr + tnr) / 2) if np.isfinite(tpr) and np.isfinite(tnr) else float("nan"),
        accuracy=ratio(tp + tn, y.size),
        tp=tp, fp=fp, fn=fn, tn=tn, threshold=float(threshold),
        n=int(y.size), n_dropped=dropped,
    )


# ---------------------------------------------------------------------------------------------
# regression
# ---------------------------------------------------------------------------------------------
def regression_metrics(pred, true) -> dict:
    """r2, bias (median of pred−true), nmad and std of pred−true, rmse (all in the units of the
    target), slope/intercept of pred vs true, n, n_dropped. r2 and slope are NaN for a constant truth."""
    (p, t), dropped = drop_nan(pred, true)
    out = dict(n=int(p.size), n_dropped=dropped)
    keys = ("r2", "bias", "nmad", "std", "rmse", "slope", "intercept")
    if p.size == 0:
        out.update({k: float("nan") for k in keys})
        return out
    d = p - t
    varies = p.size >= 2 and np.ptp(t) > 0         # r² and the slope need a truth that varies
    if varies:
        slope, intercept = np.polyfit(t, p, 1)
    else:
        slope = intercept = float("nan")
    out.update(
        r2=float(skm.r2_score(t, p)) if varies else float("nan"),
        bias=float(np.median(d)),
        nmad=nmad(d),
        std=float(np.std(d)),
        rmse=float(np.sqrt(np.mean(d ** 2))),
        slope=float(slope),
        intercept=float(intercept),
    )
    return out
