import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from galaxy_spark import features
from galaxy_spark.errors import InputError
from galaxy_spark.features import (FORBIDDEN_INPUTS, NONDETECTION_ERROR, FeatureSpec, assign_split, build_features,
                                   id_hash_unit, make_feature_spec)
from galaxy_spark.model.heads import build_targets
from galaxy_spark.survey import DETECTED, NOT_DETECTED, NOT_OBSERVED, load_survey, lim_column, state_column

SURVEY = load_survey("alhambra")


def tiny_rows():
    """Three objects: all detected; F365W not detected (limit 25.5); F365W not observed."""
    rows = []
    for i, state in enumerate([DETECTED, NOT_DETECTED, NOT_OBSERVED]):
        r = {SURVEY.id_column: 81421100001 + i, "fwhm": 2.0, "area": 100.0, "ell": 0.1, "rk": 3.5,
             "rf": 4.0, "s2n": 50.0, "stell": 0.9}
        for b in SURVEY.band_names:
            r[b], r[SURVEY.error_column(b)], r[lim_column(b)], r[state_column(b)] = 21.0, 0.05, np.nan, DETECTED
        r["F814W"] = 20.0
        if state == NOT_DETECTED:
            r["F365W"], r["dF365W"], r["F365W_lim"], r["F365W_state"] = np.nan, np.nan, 25.5, NOT_DETECTED
        if state == NOT_OBSERVED:
            r["F365W"], r["dF365W"], r["F365W_lim"], r["F365W_state"] = np.nan, np.nan, np.nan, NOT_OBSERVED
        rows.append(r)
    return pd.DataFrame(rows)


def test_thesis_features_reproduce_the_clip():
    spec = make_feature_spec("thesis", SURVEY)
    x, ok = build_features(tiny_rows(), spec)
    assert x.shape == (3, 24) and ok.all()
    j = spec.bands.index("F365W")
    assert list(x[:, j]) == [21.0, 27.0, 0.0]   # detected, 99 -> 27, -99 -> 0


def test_default_features_keep_state_and_limit():
    spec = make_feature_spec("default", SURVEY)
    x, ok = build_features(tiny_rows(), spec)
    names = list(spec.names)
    assert x.shape == (3, len(names)) and ok.all()
    col = {n: x[:, names.index(n)] for n in ("F365W-F814W", "F365W_err", "F365W_undetected", "F365W_unobserved")}
    np.testing.assert_allclose(col["F365W-F814W"], [1.0, 5.5, 0.0])
    np.testing.assert_allclose(col["F365W_err"], [0.05, NONDETECTION_ERROR, 0.0], rtol=1e-6)
    assert list(col["F365W_undetected"]) == [0, 1, 0]
    assert list(col["F365W_unobserved"]) == [0, 0, 1]
    np.testing.assert_allclose(x[:, names.index("log_fwhm")], np.log10(2.0), rtol=1e-6)


def test_no_target_or_derived_value_is_an_input():
    for kind in ("thesis", "default"):
        spec = make_feature_spec(kind, SURVEY)
        used = set(spec.required_columns())
        assert not used & FORBIDDEN_INPUTS
        assert not used & {v for v in SURVEY.labels.values() if isinstance(v, str)}
        assert not any(c in used for c in ("zb_1", "Tb_1", "Odds_1", "Stell_Mass_1", "M_Abs_1", "MagPrior", "z_ml",
                                           "Stellar_Flag"))


# Columns that are targets or derived from them: the survey file's label columns, the mock's truth,
# the survey's other BPZ outputs and everything features.FORBIDDEN_INPUTS names.
LABEL_COLUMNS = sorted({v for v in SURVEY.labels.values() if isinstance(v, str)} | set(FORBIDDEN_INPUTS)
                       | {c.name for c in SURVEY.truth} | {"z_ml", "t_ml", "Chi2", "M_Abs_1", "MagPrior", "Stellar_Flag"})


def labelled_rows():
    """tiny_rows plus a value in every label column."""
    df = tiny_rows()
    for i, c in enumerate(LABEL_COLUMNS):
        df[c] = 0.25 + 0.1 * i
    return df


def assert_labels_do_not_reach_features(spec, df):
    """Features are unchanged when any one label column takes other values."""
    x0, ok0 = build_features(df, spec)
    rng = np.random.default_rng(0)
    for c in LABEL_COLUMNS:
        changed = df.assign(**{c: rng.uniform(1, 100, len(df))})
        x1, ok1 = build_features(changed, spec)
        assert np.array_equal(x0, x1) and np.array_equal(ok0, ok1), f"label column {c!r} reaches the features"


def test_changing_a_label_does_not_change_features():
    for kind in ("thesis", "default"):
        assert_labels_do_not_reach_features(make_feature_spec(kind, SURVEY), labelled_rows())


def test_the_label_check_catches_a_leaked_label(monkeypatch):
    """The check above can fail: let `stell` (the star/galaxy label's column) through as a
    morphology input and it reports it."""
    monkeypatch.setattr(features, "forbidden_inputs", lambda survey: set())
    monkeypatch.setitem(features.MORPHOLOGY, "stell", "linear")
    spec = make_feature_spec("default", SURVEY)
    assert "stell" in spec.morphology
    with pytest.raises(AssertionError, match="'stell' reaches the features"):
        assert_labels_do_not_reach_features(spec, labelled_rows())


def test_thesis_clip_comes_from_the_survey_file():
    other = dataclasses.replace(SURVEY, sentinels={**SURVEY.sentinels, "thesis_clip": [1.0, 26.0]})
    spec = make_feature_spec("thesis", other)
    x, _ = build_features(tiny_rows(), spec)
    assert list(x[:, spec.bands.index("F365W")]) == [21.0, 26.0, 1.0]
    assert spec.clip == (1.0, 26.0) and spec.clip_sentinels == (99.0, -99.0)


def test_feature_spec_round_trip_and_older_models():
    spec = make_feature_spec("thesis", SURVEY)
    assert FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    old = {k: v for k, v in spec.to_dict().items() if k != "clip_sentinels"}   # saved before the field existed
    x_old, _ = build_features(tiny_rows(), FeatureSpec.from_dict(old))
    x_new, _ = build_features(tiny_rows(), spec)
    assert np.array_equal(x_old, x_new)


def test_missing_detection_band_is_flagged_not_dropped():
    df = tiny_rows()
    df.loc[1, ["F814W", "F814W_state"]] = [np.nan, NOT_OBSERVED]
    x, ok = build_features(df, make_feature_spec("default", SURVEY))
    assert len(x) == 3 and list(ok) == [True, False, True]
    assert np.all(x[1] == 0)


def test_missing_column_is_a_clear_error():
    with pytest.raises(InputError, match="F954W"):
        build_features(tiny_rows().drop(columns=["F954W_state"]), make_feature_spec("default", SURVEY))


def test_targets_star_label_from_stell_threshold():
    df = tiny_rows().assign(zb_1=0.5, Tb_1=3.0, Stell_Mass_1=10.0, stell=[0.95, 0.6, np.nan])
    t = build_targets(df, SURVEY)
    assert list(t["stellarity"][:2]) == [1.0, 0.0] and np.isnan(t["stellarity"][2])


def test_split_is_deterministic_and_order_free():
    ids = np.arange(81421100001, 81421100001 + 50000, dtype=np.int64)
    a = assign_split(ids, 0.7, 0.1)
    perm = np.random.default_rng(1).permutation(len(ids))
    b = assign_split(ids[perm], 0.7, 0.1)
    assert np.array_equal(a[perm], b)
    frac = {s: np.mean(a == s) for s in ("train", "validation", "test")}
    assert abs(frac["test"] - 0.2) < 0.01 and abs(frac["validation"] - 0.1) < 0.01 and abs(frac["train"] - 0.7) < 0.01
    # pinned values: the hash must never change between versions or machines
    np.testing.assert_allclose(id_hash_unit([81421106512, 81421106513, 81421106529]),
                               [0.5743941324851916, 0.19362563344952344, 0.09675751502654784], rtol=0, atol=1e-15)
    assert list(assign_split(np.array([81421106512, 81421106513]), 0.7, 0.1)) == ["train", "test"]


def test_test_split_is_shared_by_presets():
    ids = np.arange(1, 20001, dtype=np.int64) + 81400000000
    paper, default = assign_split(ids, 0.10, 0.01), assign_split(ids, 0.70, 0.10)
    assert np.array_equal(paper == "test", default == "test")
    assert not np.any((paper == "train") & (default == "test"))

