"""Metrics on tiny arrays whose values can be checked by hand, plus NaN / empty edge cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from galaxy_spark import metrics as M

NMAD_SCALE = 1 / norm.ppf(0.75)        # 1.482602…: median(|x − median x|) → σ of a Gaussian
IQR_SCALE = 2 * norm.ppf(0.75)         # 1.348980…: IQR → σ of a Gaussian


def test_photoz_metrics_by_hand():
    z_true = np.array([0.0, 1.0, 1.0, 0.5, 0.0])
    # ez = (zp - zt)/(1+zt) = 0.01, 0.02, -0.02, 0.0, 0.30
    z_pred = np.array([0.01, 1.04, 0.96, 0.5, 0.30])
    m = M.photoz_metrics(z_pred, z_true)
    assert m["n"] == 5 and m["n_dropped"] == 0
    assert m["bias"] == pytest.approx(0.01)                     # median of (-0.02, 0, 0.01, 0.02, 0.30)
    # |ez - 0.01| = 0, 0.01, 0.03, 0.01, 0.29 -> median 0.01
    assert m["sigma_nmad"] == pytest.approx(NMAD_SCALE * 0.01)
    assert m["outlier_frac"] == pytest.approx(1 / 5)            # only 0.30 > 0.15
    # IQR with linear percentiles: q25 = 0.0, q75 = 0.02 -> sigma_IQR = 0.02/1.349; cut = max(0.06, 0.0445)
    assert m["sigma_iqr"] == pytest.approx(0.02 / IQR_SCALE)
    assert m["rail_cut"] == pytest.approx(0.06)
    assert m["outlier_frac_rail"] == pytest.approx(1 / 5)
    assert m["mean"] == pytest.approx(0.31 / 5)


def test_photoz_metrics_nan_and_empty():
    m = M.photoz_metrics([0.1, np.nan, 0.3], [0.1, 0.2, np.nan])
    assert m["n"] == 1 and m["n_dropped"] == 2 and m["bias"] == 0.0
    e = M.photoz_metrics([], [])
    assert e["n"] == 0 and math.isnan(e["sigma_nmad"]) and math.isnan(e["outlier_frac"])
    with pytest.raises(ValueError):
        M.photoz_metrics([1, 2], [1])


def test_binned():
    mag = np.array([18.0, 19.0, 21.0, 21.5, 22.0, 30.0, np.nan])
    zt = np.zeros(7)
    zp = np.array([0.0, 0.2, 0.01, 0.03, 0.5, 0.0, 0.0])
    df = M.binned(M.photoz_metrics, mag, [18, 20, 22], zp, zt)
    assert list(df["count"]) == [2, 3]                          # 22.0 falls in the closed last bin
    assert df.loc[0, "outlier_frac"] == pytest.approx(0.5)
    assert df.loc[1, "bias"] == pytest.approx(0.03)
    assert list(df["center"]) == [19.0, 21.0]
    empty = M.binned(M.photoz_metrics, mag, [40, 41], zp, zt)
    assert empty.loc[0, "count"] == 0 and math.isnan(empty.loc[0, "sigma_nmad"])
    assert "sigma_nmad" in empty.columns
    sparse = M.binned(M.photoz_metrics, mag, [18, 20, 22], zp, zt, min_count=3)
    assert math.isnan(sparse.loc[0, "bias"]) and sparse.loc[0, "count"] == 2


def test_pit_from_grid_uniform_pdf():
    z = np.linspace(0.0, 1.0, 11)
    pdf = np.ones((3, 11))                                      # uniform on [0, 1]
    pit = M.pit_from_grid(pdf, z, [0.25, 0.5, 2.0])
    np.testing.assert_allclose(pit, [0.25, 0.5, 1.0])
    assert M.pit_from_grid(pdf[:1], z, [-1.0])[0] == 0.0
    assert np.isnan(M.pit_from_grid(pdf[:1], z, [np.nan])[0])
    assert M.pit_from_grid(pdf[:0], z, []).size == 0
    cdf = np.tile(z, (1, 1))
    np.testing.assert_allclose(M.pit_from_grid(cdf, z, [0.35], is_cdf=True), [0.35])


def test_pit_from_samples_and_quantiles():
    s = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, 2.0, np.nan, 3.0]])
    np.testing.assert_allclose(M.pit_from_samples(s, [0.25, 2.5]), [0.5, 2 / 3])
    q = np.array([[0.1, 0.2, 0.3]])
    np.testing.assert_allclose(M.pit_from_quantiles(q, [0.16, 0.5, 0.84], [0.25]), [0.67])
    np.testing.assert_allclose(M.pit_from_quantiles(q, [0.16, 0.5, 0.84], [0.0]), [0.0])


def test_pit_histogram():
    pit = np.array([0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95, np.nan])
    h = M.pit_histogram(pit, n_bins=10)
    assert list(h["counts"]) == [1] * 10 and h["n"] == 10 and h["n_dropped"] == 1
    np.testing.assert_allclose(h["density"], 1.0)
    assert h["ks"] == pytest.approx(0.05)
    e = M.pit_histogram([], 5)
    assert e["n"] == 0 and math.isnan(e["ks"]) and list(e["counts"]) == [0] * 5


def test_crps_delta_and_uniform():
    z = np.linspace(0.0, 2.0, 2001)
    # near-delta pdf at z=1 versus truth 1.5: CRPS = |1.5 - 1| = 0.5
    pdf = np.exp(-0.5 * ((z - 1.0) / 0.002) ** 2)[None, :]
    assert M.crps_from_grid(pdf, z, [1.5])[0] == pytest.approx(0.5, abs=2e-3)
    # uniform on [0, 2], truth 1: ∫_0^1 (z/2)^2 dz + ∫_1^2 (1 - z/2)^2 dz = 1/12 + 1/12 = 1/6
    uni = np.ones((1, z.size))
    assert M.crps_from_grid(uni, z, [1.0])[0] == pytest.approx(1 / 6, abs=1e-4)
    assert np.isnan(M.crps_from_grid(uni, z, [np.nan])[0])


def test_coverage():
    c = M.coverage([0.5, 1.0, 2.0, np.nan], [0.4, 1.1, 1.0, 0.0], [0.6, 1.2, 2.0, 1.0])
    assert c == dict(coverage=pytest.approx(2 / 3), n=3, n_dropped=1)
    assert math.isnan(M.coverage([], [], [])["coverage"])
    both = M.interval_coverage([0.5, 1.0], [0.4, 0.9], [0.45, 1.1], [0.0, 0.0], [1.0, 2.0])
    assert both["coverage68"] == 0.5 and both["coverage95"] == 1.0


def test_classification_by_hand():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.6, 0.4, 0.7, 0.2, 0.1, 0.3, 0.05])
    m = M.classification_metrics(y, s, threshold=0.5)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 4)
    assert m["purity"] == pytest.approx(2 / 3)
    assert m["completeness"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(4 / 5)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert m["accuracy"] == pytest.approx(6 / 8)
    # AUC: pairs (pos, neg) ranked correctly: 0.9 beats 5, 0.6 beats 4 (not 0.7), 0.4 beats 4 -> 13/15
    assert m["roc_auc"] == pytest.approx(13 / 15)
    from sklearn.metrics import roc_auc_score
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, s))


def test_classification_ties_nan_and_degenerate():
    assert M.roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)           # tie counts half
    m = M.classification_metrics([0, 0, 0], [0.1, 0.2, 0.9])            # no positives
    assert math.isnan(m["completeness"]) and math.isnan(m["roc_auc"]) and m["fp"] == 1
    m = M.classification_metrics([1, np.nan, 0], [0.9, 0.9, np.nan])
    assert m["n"] == 1 and m["n_dropped"] == 2
    e = M.classification_metrics([], [])
    assert e["n"] == 0 and math.isnan(e["accuracy"]) and math.isnan(e["purity"])
    # positive class chosen explicitly (galaxies = 0); the score is then P(galaxy)
    g = M.classification_metrics([0, 0, 1], [0.9, 0.8, 0.1], threshold=0.5, positive=0)
    assert (g["tp"], g["fp"], g["fn"], g["tn"]) == (2, 0, 0, 1) and g["roc_auc"] == 1.0


def test_regression_by_hand():
    true = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.5, 2.5, 3.5, 4.5])                        # offset 0.5, slope 1
    m = M.regression_metrics(pred, true)
    assert m["bias"] == pytest.approx(0.5) and m["nmad"] == pytest.approx(0.0)
    assert m["slope"] == pytest.approx(1.0) and m["intercept"] == pytest.approx(0.5)
    # SS_res = 4 * 0.25 = 1, SS_tot = 5 -> r2 = 0.8
    assert m["r2"] == pytest.approx(0.8)
    assert m["std"] == pytest.approx(0.0) and m["rmse"] == pytest.approx(0.5)
    m2 = M.regression_metrics([2.0, 4.0, 6.0, np.nan], [1.0, 2.0, 3.0, 4.0])
    assert m2["n"] == 3 and m2["n_dropped"] == 1 and m2["slope"] == pytest.approx(2.0)
    e = M.regression_metrics([], [])
    assert e["n"] == 0 and math.isnan(e["r2"])
    c = M.regression_metrics([1.0, 1.0], [2.0, 2.0])             # constant truth: r2/slope undefined
    assert math.isnan(c["r2"]) and math.isnan(c["slope"]) and c["bias"] == -1.0


def test_nmad_iqr_helpers():
    assert NMAD_SCALE == pytest.approx(1.4826, rel=2e-6) and IQR_SCALE == pytest.approx(1.349, rel=2e-5)
    assert M.nmad([1.0, 2.0, 3.0, np.nan]) == pytest.approx(NMAD_SCALE)
    assert math.isnan(M.nmad([]))
    assert M.iqr_sigma([0.0, 1.0, 2.0, 3.0, 4.0]) == pytest.approx(2.0 / IQR_SCALE)
    assert math.isnan(M.iqr_sigma([np.nan]))


def test_roc_curve_matches_auc_and_hand_points():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.6, 0.4, 0.7, 0.2, 0.1, 0.3, 0.05])
    fpr, tpr = M.roc_curve(y, s)
    # thresholds 0.9, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05 after the (0, 0) start
    np.testing.assert_allclose(fpr, [0, 0, 0.2, 0.2, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 1 / 3, 2 / 3, 1, 1, 1, 1, 1])
    assert np.trapezoid(tpr, fpr) == pytest.approx(M.roc_auc(y, s))
    f0, t0 = M.roc_curve([0, 0, np.nan], [0.1, 0.2, 0.3])      # one class only: the diagonal
    assert list(f0) == [0.0, 1.0] and list(t0) == [0.0, 1.0]
