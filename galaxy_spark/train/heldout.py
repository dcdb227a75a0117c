"""Field-standard metrics of an ensemble's outputs on held-out rows, against one label set: the
test-split metrics the driver logs and the selection metrics of the champion rule (champion.py).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from galaxy_spark import metrics as M
from galaxy_spark.model.heads import HEADS


def head_metrics(head, pred: pd.DataFrame, target: np.ndarray, galaxy: np.ndarray) -> dict:
    """Every metric of `head.metrics` for one head's outputs against its target (NaN = no label):
    a p(z) head's point and interval metrics and a regression head's on the `galaxy` rows, a
    classifier's on every row."""
    col = pred[head.column(0)].to_numpy()
    if head.kind == "classifier":
        r = M.classification_metrics(target, col)
    elif head.kind == "pdf":
        r = {**M.photoz_metrics(col[galaxy], target[galaxy]),
             "r2": M.regression_metrics(col[galaxy], target[galaxy])["r2"],
             **M.interval_coverage(target[galaxy], *(pred[head.column(i)].to_numpy()[galaxy] for i in (1, 2, 3, 4)))}
    else:
        r = M.regression_metrics(col[galaxy], target[galaxy])
    return {k: r[k] for k in head.metrics if k in r}


def field_metrics(pred: pd.DataFrame, targets: dict[str, np.ndarray], galaxy: np.ndarray) -> dict:
    """Metrics of ensemble outputs (`Ensemble.predict` columns) against one label set (`targets`
    per head, NaN = no label), every required head's `head_metrics` as ``<head>_<metric>``."""
    return {f"{h.name}_{k}": v for h in HEADS if not h.optional and h.name in targets
            for k, v in head_metrics(h, pred, targets[h.name], galaxy).items()}


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
