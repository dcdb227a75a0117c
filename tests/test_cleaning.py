"""Pure cleaning functions on tiny DataFrames."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from galaxy_spark.catalog import cleaning as C
from galaxy_spark.catalog import readers as R
from galaxy_spark.features import ThesisClip
from galaxy_spark.survey import DETECTED, NOT_DETECTED, NOT_OBSERVED


def _validated(spark, survey, raw_row, overrides, fmt="csv"):
    raw = raw_row(spark, survey, overrides, fmt)
    return C.validate(raw, survey, C.convention_for(fmt))


def _reasons(df):
    return [r[C.REASON] for r in df.orderBy(R.LINE_NUMBER).select(C.REASON).collect()]


def test_decode_sentinels_per_band(spark, survey, raw_row):
    v = _validated(spark, survey, raw_row, [
        {"F365W": "20.568", "dF365W": "0.064"},       # detected
        {"F365W": "99", "dF365W": "25.41"},           # not detected, limit 25.41
        {"F365W": "-99", "dF365W": "0"},              # not observed
        {"F365W": "-99.000", "dF365W": "0.000"},      # not observed, written %.3f
    ])
    rows = v.orderBy(R.LINE_NUMBER).select(
        *[C.typed(c) for c in ("F365W", "dF365W", "F365W_lim", "F365W_state")], C.REASON).collect()
    assert [r[C.REASON] for r in rows] == [None] * 4
    assert tuple(rows[0])[:4] == (20.568, 0.064, None, DETECTED)
    assert tuple(rows[1])[:4] == (None, None, 25.41, NOT_DETECTED)
    assert tuple(rows[2])[:4] == (None, None, None, NOT_OBSERVED)
    assert tuple(rows[3])[:4] == (None, None, None, NOT_OBSERVED)


def test_null_sentinels_of_other_columns(spark, survey, raw_row):
    v = _validated(spark, survey, raw_row, [{"Chi2": "99", "F814W_3arcs_corr": "-99"},
                                           {"Chi2": "1.5"}])
    rows = v.orderBy(R.LINE_NUMBER).select(C.typed("Chi2"), C.typed("F814W_3arcs_corr")).collect()
    assert rows[0][0] is None and rows[0][1] is None
    assert rows[1][0] == 1.5


BROKEN = [
    ({R.N_FIELDS: 112}, "field_count"),
    ({"ID": ""}, "missing_value"),
    ({"F396W": ""}, "missing_value"),
    ({"F365W": "abc"}, "non_numeric"),
    ({"photoflag": "2.5"}, "non_numeric"),
    ({"dF396W": "NaN"}, "not_finite"),
    ({"RA": "inf"}, "not_finite"),
    ({"F427W": "45.0"}, "bad_magnitude"),          # neither a sentinel nor in the valid range
    ({"F427W": "-99", "dF427W": "0.5"}, "bad_magnitude"),  # not observed with non-zero error
    ({"dF427W": "-0.1"}, "bad_magnitude"),         # negative error
    ({"F427W": "99", "dF427W": "99"}, "bad_magnitude"),    # limit outside the range
    ({"Field": "9", "ID": "81491106512"}, "bad_layout"),
    ({"CCD": "5"}, "bad_layout"),
    ({"Pointing": "3"}, "bad_layout"),
    ({"ID": "8142110651"}, "bad_id"),              # 10 digits
    ({"ID": "81421206512"}, "bad_id"),             # pointing 2 in the ID, 1 in the row
    ({"ID": "71421106512"}, "bad_id"),             # wrong prefix
    ({"photoflag": "1e400"}, "not_finite"),        # overflows to inf (SQL floor() failed the job here)
    ({"nfobs": "99999999999999999999"}, "non_numeric"),   # integral but beyond int
    ({"RA": "12.5.1"}, "non_numeric"),
    ({"Dec": "-nan"}, "non_numeric"),              # Spark reads "nan" only; Arrow would take "-nan"
    ({"x": "1_000"}, "non_numeric"),               # Python's float() would take it
]


def test_each_reason(spark, survey, raw_row):
    """One good row, then one row per kind of problem (one Spark job for all of them)."""
    v = _validated(spark, survey, raw_row, [{}] + [ov for ov, _ in BROKEN])
    rows = v.orderBy(R.LINE_NUMBER).select(C.REASON, C.REASON_DETAIL).collect()
    assert rows[0][C.REASON] is None
    for (override, reason), row in zip(BROKEN, rows[1:]):
        assert row[C.REASON] == reason, (override, row[C.REASON_DETAIL])
        assert row[C.REASON_DETAIL], override


def test_integral_float_is_accepted_for_int_columns(spark, survey, raw_row):
    v = _validated(spark, survey, raw_row, [{"photoflag": "3.0", "Field": "2"}])
    r = v.select(C.REASON, C.typed("photoflag")).first()
    assert r[0] is None and r[1] == 3


def test_detail_lists_every_problem(spark, survey, raw_row):
    v = _validated(spark, survey, raw_row, [{"F365W": "abc", "dF396W": "NaN", "F427W": "45"}])
    r = v.select(C.REASON, C.REASON_DETAIL).first()
    assert r[0] == "non_numeric"
    assert "F365W=abc" in r[1] and "dF396W=NaN" in r[1] and "F427W=45" in r[1]


def test_vizier_convention(spark, survey, raw_row):
    lf = R.limit_flag_column("F365W")
    v = _validated(spark, survey, raw_row, [
        {"F365W": "20.568", "dF365W": "0.064", lf: ""},
        {"F365W": "25.41", "dF365W": "", lf: "<"},
        {"F365W": "", "dF365W": "", lf: ""},
        {"F365W": "25.41", "dF365W": "0.1", lf: "<"},     # limit with an error: inconsistent
        {"F365W": "", "dF365W": "0.1", lf: ""},           # error without magnitude
        {"F365W": "25.41", "dF365W": "", lf: ">"},        # unknown flag
    ], fmt="vizier")
    rows = v.orderBy(R.LINE_NUMBER).select(
        C.typed("F365W"), C.typed("dF365W"), C.typed("F365W_lim"), C.typed("F365W_state"),
        C.REASON).collect()
    assert tuple(rows[0]) == (20.568, 0.064, None, DETECTED, None)
    assert tuple(rows[1]) == (None, None, 25.41, NOT_DETECTED, None)
    assert tuple(rows[2]) == (None, None, None, NOT_OBSERVED, None)
    assert [r[C.REASON] for r in rows[3:]] == ["bad_magnitude"] * 3


def test_duplicates_all_copies(spark, survey, raw_row):
    v = _validated(spark, survey, raw_row, [{}, {}, {"ID": "81421100001"}, {"ID": ""}])
    dups = C.find_duplicate_ids(v, survey)
    assert [r[0] for r in dups.collect()] == [81421106512]
    m = C.mark_duplicates(v, dups, survey)
    assert _reasons(m) == ["duplicate_id", "duplicate_id", None, "missing_value"]


def test_to_canonical_matches_schema(spark, survey, raw_row):
    from galaxy_spark.catalog.schema import canonical_schema

    v = _validated(spark, survey, raw_row, [{}])
    out = C.to_canonical(v, survey)
    assert [(f.name, f.dataType) for f in out.schema] == \
        [(f.name, f.dataType) for f in canonical_schema(survey)]
    r = out.first()
    assert r["ID"] == 81421106512 and r["Field"] == 2 and r["F365W"] == 20.568
    assert r["source_file"] == "test.csv"


def test_thesis_clip_column_and_numpy_agree(spark, survey, raw_row):
    """The ingest's B_thesis column (SQL) and the thesis feature (NumPy) are one rule: ThesisClip."""
    v = _validated(spark, survey, raw_row, [
        {"F365W": "20.5"}, {"F365W": "27.8", "dF365W": "0.5"},
        {"F365W": "99", "dF365W": "25.4"}, {"F365W": "-99", "dF365W": "0"}])
    out = C.to_canonical(v.orderBy(R.LINE_NUMBER), survey, thesis_clip=True)
    rows = out.select("F365W", "F365W_state", C.thesis_column("F365W")).collect()
    assert [r[2] for r in rows] == [20.5, 27.0, 27.0, 0.0]
    mags = np.array([r[0] if r[0] is not None else math.nan for r in rows])
    states = np.array([r[1] for r in rows])
    assert list(ThesisClip.from_survey(survey).apply(mags, states)) == [20.5, 27.0, 27.0, 0.0]


def test_thesis_clip_follows_the_survey_file(spark, survey):
    """Other sentinels and another clip range in the survey file change both renderings alike."""
    other = dataclasses.replace(survey, sentinels={**survey.sentinels, "thesis_clip": [1.0, 26.0],
                                                   "not_detected_magnitude": 25.5})
    clip = ThesisClip.from_survey(other)
    mags = [20.5, 27.8, math.nan, math.nan, 0.5, math.nan]        # the last: detected without a value
    states = [DETECTED, DETECTED, NOT_DETECTED, NOT_OBSERVED, DETECTED, DETECTED]
    expected = [20.5, 26.0, 25.5, 1.0, 1.0, 1.0]
    assert list(clip.apply(np.array(mags), np.array(states))) == expected
    df = spark.createDataFrame([(None if math.isnan(m) else m, s) for m, s in zip(mags, states)], "m double, s int")
    assert [r[0] for r in df.selectExpr(clip.sql("m", "s")).collect()] == expected


def test_validate_rejects_unknown_convention(spark, survey, raw_row):
    with pytest.raises(ValueError):
        C.validate(raw_row(spark, survey, [{}]), survey, "other")
