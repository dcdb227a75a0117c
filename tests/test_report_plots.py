"""The figure functions on awkward inputs (no Spark, no model): each writes a PNG and never raises."""
from __future__ import annotations

import numpy as np

from galaxy_spark.drawing import plots as P


def test_pred_vs_true_with_predictions_outside_the_axes(tmp_path):
    # an untrained network: every prediction far from the targets' range (the colour scale has no counts)
    rng = np.random.default_rng(0)
    t = rng.uniform(8, 11, 300)
    path = P.pred_vs_true(t, {"before correction": np.full(300, 2.0), "after correction": t + rng.normal(0, 0.2, 300)},
                          "stellar mass", tmp_path / "pvt.png")
    assert path.stat().st_size > 1000


def test_density_panels_and_curves_on_empty_inputs(tmp_path):
    panels = [{"true": [np.nan], "pred": [1.0], "label": "z", "title": "all NaN"},
              {"true": [1.0, 1.0, 1.0], "pred": [0.5, 1.0, 2.0], "label": "z", "title": "constant truth"}]
    assert P.density_panels(panels, tmp_path / "d.png").stat().st_size > 1000
    assert P.epoch_curves({}, tmp_path / "e.png").stat().st_size > 1000
    assert P.curves({"train_loss": [3.0, 2.0]}, list(P.LOSS_KEYS), "redshift: loss", "loss",
                    tmp_path / "c.png").stat().st_size > 1000
