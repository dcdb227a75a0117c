"""The head table is the one contract for networks and outputs: the docs are generated from it, the
scoring kernel writes exactly its columns with its dtypes, and inputs outside the survey's valid
set are flagged at the model's door (served and batch alike)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from galaxy_spark.model import heads as H
from galaxy_spark.survey import DETECTED, NOT_DETECTED, lim_column, load_survey, state_column

REPO = Path(__file__).resolve().parent.parent


def test_outputs_doc_is_generated_from_the_head_table():
    """docs/outputs.md is what `python -m galaxy_spark.model.heads` writes: regenerate it after
    editing the table."""
    assert (REPO / "docs" / "outputs.md").read_text() == H.outputs_document(), \
        "docs/outputs.md is stale: run `python -m galaxy_spark.model.heads`"
    for h in H.HEADS:
        for c in h.outputs:
            assert f"`{c.name}`" in H.outputs_document()


def test_head_table_is_consistent():
    names = [c.name for c in H.output_table({})]
    assert len(names) == len(set(names)), "one name per column"
    assert all(c.dtype in ("float64", "int32") for c in H.output_table({}))
    assert H.REQUIRED_HEADS == ("redshift", "stellarity", "spectral_type", "stellar_mass")
    assert H.OPTIONAL_HEADS == ("sed",)
    survey = load_survey()
    for h in H.HEADS:                     # every head's label role is a key the survey file can name
        assert h.label in survey.labels, h
    # every flag bit is distinct and documented in the flags column
    assert all(bin(b).count("1") == 1 for b in H.QUALITY_FLAGS)
    assert all(f"{b}:" in H.FLAGS.description for b in H.QUALITY_FLAGS)


@pytest.fixture(scope="module")
def tiny_ensemble():
    """A random-weight ensemble of the default feature set (no training: the kernel's contract is
    about columns, dtypes, flags and chunking, not accuracy)."""
    from galaxy_spark.features import make_feature_spec
    from galaxy_spark.model.ensemble import Calibration, DenseStack, Ensemble, Network

    survey = load_survey()
    spec = make_feature_spec("default", survey)
    rng = np.random.default_rng(0)
    nf = len(spec.names)

    def stack(n_out, act):
        return DenseStack([{"W": rng.normal(0, 0.1, (nf, 8)), "b": np.zeros(8), "activation": "relu"},
                           {"W": rng.normal(0, 0.1, (8, n_out)), "b": np.zeros(n_out), "activation": act}],
                          {"mean": np.zeros(nf), "std": np.full(nf, 3.0)})

    z_bins = np.linspace(0.005, 2.995, 300)
    nets = {"redshift": Network("redshift", "pdf", stack(300, "softmax"), Calibration.identity(), z_bins),
            "stellarity": Network("stellarity", "classifier", stack(2, "softmax"), Calibration.identity()),
            "spectral_type": Network("spectral_type", "regression", stack(1, "linear"), Calibration.identity(), scatter=0.5),
            "stellar_mass": Network("stellar_mass", "regression", stack(1, "linear"), Calibration.identity(), scatter=0.2)}
    return Ensemble(spec, nets, {"survey": survey.name})


def _rows(n=40, seed=1):
    import sys
    sys.path.insert(0, str(REPO / "tests"))
    from synthetic import canonical_frame

    return canonical_frame(load_survey(), n=n, seed=seed)


def test_predict_equals_score_frame_and_chunks(tiny_ensemble):
    """predict (served) = score_frame's estimate columns (batch), names, dtypes and bits, whatever
    the chunk size."""
    from galaxy_spark.estimate.batch import estimate_names, score_frame

    rows = _rows(300)
    pred = tiny_ensemble.predict(rows)
    batch = score_frame(tiny_ensemble, rows)
    assert list(pred.columns) == estimate_names(tiny_ensemble) == [c.name for c in H.output_table({})]
    pd.testing.assert_frame_equal(pred.reset_index(drop=True), batch[list(pred.columns)], check_exact=True)
    chunked = tiny_ensemble.predict(rows, chunk_rows=7)
    pd.testing.assert_frame_equal(chunked, pred, check_exact=True)
    assert str(pred["star_class"].dtype) == "Int32" and pred["quality_flags"].dtype == np.int32


def test_inputs_outside_the_survey_set_are_flagged_not_scored(tiny_ensemble):
    """A band state of 7 or −1, an undecoded sentinel (99 with state detected), an error or limit
    out of range: null estimates and FLAG_INVALID_INPUT on that row only."""
    survey = load_survey()
    spec = tiny_ensemble.feature_spec
    det, other = spec.detection_band, [b for b in spec.bands if b != spec.detection_band][0]
    rows = _rows(8)
    rows = rows[rows[state_column(det)] == DETECTED].reset_index(drop=True).iloc[:7].copy()
    rows.loc[0, state_column(other)] = 7
    rows.loc[1, state_column(other)] = -1
    rows.loc[2, det] = float(survey.sentinels["not_detected_magnitude"])     # 99, state detected
    rows.loc[2, state_column(det)] = DETECTED
    rows.loc[3, f"{spec.error_prefix}{det}"] = -0.5
    rows.loc[4, state_column(other)] = NOT_DETECTED
    rows.loc[4, lim_column(other)] = 99.0
    pred = tiny_ensemble.predict(rows)
    bad = (pred["quality_flags"] & H.FLAG_INVALID_INPUT) > 0
    assert bad.tolist() == [True] * 5 + [False] * 2
    assert pred.loc[bad, "z_phot"].isna().all() and pred.loc[bad, "star_class"].isna().all()
    assert ((pred.loc[bad, "quality_flags"] & H.FLAG_NOT_SCORABLE) > 0).all()
    assert pred.loc[~bad, "z_phot"].notna().all()


def test_missing_columns_are_one_short_error(tiny_ensemble):
    from galaxy_spark.errors import InputError

    rows = _rows(5)
    need = tiny_ensemble.feature_spec.required_columns()
    with pytest.raises(InputError) as e:
        tiny_ensemble.predict(rows.drop(columns=need[:3]))
    msg = str(e.value)
    assert all(c in msg for c in need[:3]) and len(msg) < 300 and "\n" not in msg
