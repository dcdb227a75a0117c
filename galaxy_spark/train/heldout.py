"""Field-standard metrics of an ensemble's outputs on held-out rows, against one label set: the
test-split metrics the driver logs and the selection metrics of the champion rule (champion.py).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from galaxy_spark import metrics as M


def field_metrics(pred: pd.DataFrame, targets: dict[str, np.ndarray], galaxy: np.ndarray) -> dict:
    """Metrics of ensemble outputs (`Ensemble.predict` columns) against one label set (`targets`
    per network, NaN = no label): redshift σ_NMAD, bias, outlier fractions, r², interval coverage
    and the type and mass metrics on the `galaxy` rows; star/galaxy purity, completeness, ROC AUC,
    (balanced) accuracy on every row."""
    out = {}
    z = M.photoz_metrics(pred["z_phot"].to_numpy()[galaxy], targets["redshift"][galaxy])
    out.update({f"redshift_{k}": z[k] for k in ("sigma_nmad", "bias", "outlier_frac", "outlier_frac_rail", "n")})
    out["redshift_r2"] = M.regression_metrics(pred["z_phot"].to_numpy()[galaxy], targets["redshift"][galaxy])["r2"]
    cov = M.interval_coverage(targets["redshift"][galaxy], pred["z_phot_lo68"].to_numpy()[galaxy],
                              pred["z_phot_hi68"].to_numpy()[galaxy], pred["z_phot_lo95"].to_numpy()[galaxy],
                              pred["z_phot_hi95"].to_numpy()[galaxy])
    out.update({f"redshift_{k}": cov[k] for k in ("coverage68", "coverage95") if k in cov})
    s = M.classification_metrics(targets["stellarity"], pred["p_star"].to_numpy())
    out.update({f"stellarity_{k}": s[k] for k in ("purity", "completeness", "roc_auc", "balanced_accuracy", "accuracy")})
    for name, col in (("spectral_type", "spectral_type"), ("stellar_mass", "log_stellar_mass")):
        r = M.regression_metrics(pred[col].to_numpy()[galaxy], targets[name][galaxy])
        out.update({f"{name}_{k}": r[k] for k in ("nmad", "bias", "std", "r2", "slope")})
    return out


def spec_metrics(pred: pd.DataFrame, spec_targets: dict[str, np.ndarray]) -> dict:
    """Redshift metrics against z_spec (spectroscopic galaxies) and star/galaxy metrics against
    the spectroscopic classes — what a user can measure on real data."""
    zs = np.isfinite(spec_targets["redshift"])
    out = {"redshift_n": int(zs.sum())}
    if zs.any():
        z = M.photoz_metrics(pred["z_phot"].to_numpy()[zs], spec_targets["redshift"][zs])
        out.update({f"redshift_{k}": z[k] for k in ("sigma_nmad", "bias", "outlier_frac")})
        cov = M.interval_coverage(spec_targets["redshift"][zs], pred["z_phot_lo68"].to_numpy()[zs],
                                  pred["z_phot_hi68"].to_numpy()[zs], pred["z_phot_lo95"].to_numpy()[zs],
                                  pred["z_phot_hi95"].to_numpy()[zs])
        out.update({f"redshift_{k}": cov[k] for k in ("coverage68", "coverage95") if k in cov})
    cls = np.isfinite(spec_targets["stellarity"])
    if cls.any() and len(np.unique(spec_targets["stellarity"][cls])) == 2:
        c = M.classification_metrics(spec_targets["stellarity"][cls], pred["p_star"].to_numpy()[cls])
        out.update({f"stellarity_{k}": c[k] for k in ("purity", "completeness", "roc_auc", "balanced_accuracy")})
    return out
