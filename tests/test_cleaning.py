"""Pure cleaning functions on tiny Arrow batches (no Spark)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from galaxy_spark.catalog import cleaning as C
from galaxy_spark.catalog import readers as R
from galaxy_spark.features import ThesisClip
from galaxy_spark.survey import DETECTED, NOT_DETECTED, NOT_OBSERVED


def _validated(survey, raw_row, overrides, fmt="csv"):
    """The validated batch of one raw row per override, in line order."""
    return C.validate_batch(raw_row(survey, overrides, fmt), survey, C.convention_for(fmt))


def _rows(batch, *cols):
    """Tuples of `cols` per row (None for null)."""
    return list(zip(*[batch.column(batch.schema.get_field_index(c)).to_pylist() for c in cols]))


def _reasons(batch):
    return [r for (r,) in _rows(batch, C.REASON)]


def test_decode_sentinels_per_band(survey, raw_row):
    v = _validated(survey, raw_row, [
        {"F365W": "20.568", "dF365W": "0.064"},       # detected
        {"F365W": "99", "dF365W": "25.41"},           # not detected, limit 25.41
        {"F365W": "-99", "dF365W": "0"},              # not observed
        {"F365W": "-99.000", "dF365W": "0.000"},      # not observed, written %.3f
    ])
    rows = _rows(v, *[C.typed(c) for c in ("F365W", "dF365W", "F365W_lim", "F365W_state")], C.REASON)
    assert [r[4] for r in rows] == [None] * 4
    assert tuple(rows[0])[:4] == (20.568, 0.064, None, DETECTED)
    assert tuple(rows[1])[:4] == (None, None, 25.41, NOT_DETECTED)
    assert tuple(rows[2])[:4] == (None, None, None, NOT_OBSERVED)
    assert tuple(rows[3])[:4] == (None, None, None, NOT_OBSERVED)


def test_null_sentinels_of_other_columns(survey, raw_row):
    v = _validated(survey, raw_row, [{"Chi2": "99", "F814W_3arcs_corr": "-99"}, {"Chi2": "1.5"}])
    rows = _rows(v, C.typed("Chi2"), C.typed("F814W_3arcs_corr"))
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


def test_each_reason(survey, raw_row):
    """One good row, then one row per kind of problem."""
    v = _validated(survey, raw_row, [{}] + [ov for ov, _ in BROKEN])
    rows = _rows(v, C.REASON, C.REASON_DETAIL)
    assert rows[0][0] is None
    for (override, reason), row in zip(BROKEN, rows[1:]):
        assert row[0] == reason, (override, row[1])
        assert row[1], override


def test_integral_float_is_accepted_for_int_columns(survey, raw_row):
    v = _validated(survey, raw_row, [{"photoflag": "3.0", "Field": "2"}])
    r = _rows(v, C.REASON, C.typed("photoflag"))[0]
    assert r[0] is None and r[1] == 3


def test_detail_lists_every_problem(survey, raw_row):
    v = _validated(survey, raw_row, [{"F365W": "abc", "dF396W": "NaN", "F427W": "45"}])
    r = _rows(v, C.REASON, C.REASON_DETAIL)[0]
    assert r[0] == "non_numeric"
    assert "F365W=abc" in r[1] and "dF396W=NaN" in r[1] and "F427W=45" in r[1]


def test_vizier_convention(survey, raw_row):
    lf = R.limit_flag_column("F365W")
    v = _validated(survey, raw_row, [
        {"F365W": "20.568", "dF365W": "0.064", lf: ""},
        {"F365W": "25.41", "dF365W": "", lf: "<"},
        {"F365W": "", "dF365W": "", lf: ""},
        {"F365W": "25.41", "dF365W": "0.1", lf: "<"},     # limit with an error: inconsistent
        {"F365W": "", "dF365W": "0.1", lf: ""},           # error without magnitude
        {"F365W": "25.41", "dF365W": "", lf: ">"},        # unknown flag
    ], fmt="vizier")
    rows = _rows(v, C.typed("F365W"), C.typed("dF365W"), C.typed("F365W_lim"), C.typed("F365W_state"),
                 C.REASON)
    assert tuple(rows[0]) == (20.568, 0.064, None, DETECTED, None)
    assert tuple(rows[1]) == (None, None, 25.41, NOT_DETECTED, None)
    assert tuple(rows[2]) == (None, None, None, NOT_OBSERVED, None)
    assert [r[4] for r in rows[3:]] == ["bad_magnitude"] * 3


def test_duplicates_all_copies(survey, raw_row):
    v = _validated(survey, raw_row, [{}, {}, {"ID": "81421200001"}, {"ID": ""}])
    m = C.mark_duplicates(v, np.array([81421106512]), survey)
    assert _reasons(m) == ["duplicate_id", "duplicate_id", "bad_id", "missing_value"]
    assert "81421106512 occurs more than once" in _rows(m, C.REASON_DETAIL)[0][0]
    m = C.mark_duplicates(v, np.array([81421200001]), survey)      # already rejected: keeps its reason
    assert _reasons(m) == [None, None, "bad_id", "missing_value"]
    assert "occurs more than once" in _rows(m, C.REASON_DETAIL)[2][0]


def test_to_canonical_matches_schema(survey, raw_row):
    from galaxy_spark.catalog.schema import canonical_schema

    v = _validated(survey, raw_row, [{}])
    out = C.to_canonical(v, survey)
    assert out.schema.names == [f.name for f in canonical_schema(survey)]
    assert str(out.schema.field("F365W_state").type) == "int8" and str(out.schema.field("Field").type) == "int32"
    r = out.to_pylist()[0]
    assert r["ID"] == 81421106512 and r["Field"] == 2 and r["F365W"] == 20.568
    assert r["source_file"] == "test.csv"


def test_thesis_clip_column_and_numpy_agree(survey, raw_row):
    """The ingest's B_thesis column and the thesis feature are one rule: ThesisClip."""
    v = _validated(survey, raw_row, [
        {"F365W": "20.5"}, {"F365W": "27.8", "dF365W": "0.5"},
        {"F365W": "99", "dF365W": "25.4"}, {"F365W": "-99", "dF365W": "0"}])
    out = C.to_canonical(v, survey, thesis_clip=True)
    rows = _rows(out, "F365W", "F365W_state", C.thesis_column("F365W"))
    assert [r[2] for r in rows] == [20.5, 27.0, 27.0, 0.0]
    mags = np.array([r[0] if r[0] is not None else math.nan for r in rows])
    states = np.array([r[1] for r in rows])
    assert list(ThesisClip.from_survey(survey).apply(mags, states)) == [20.5, 27.0, 27.0, 0.0]


def test_thesis_clip_follows_the_survey_file(survey):
    """Other sentinels and another clip range in the survey file change the clip."""
    other = dataclasses.replace(survey, sentinels={**survey.sentinels, "thesis_clip": [1.0, 26.0],
                                                   "not_detected_magnitude": 25.5})
    clip = ThesisClip.from_survey(other)
    mags = [20.5, 27.8, math.nan, math.nan, 0.5, math.nan]        # the last: detected without a value
    states = [DETECTED, DETECTED, NOT_DETECTED, NOT_OBSERVED, DETECTED, DETECTED]
    expected = [20.5, 26.0, 25.5, 1.0, 1.0, 1.0]
    assert list(clip.apply(np.array(mags), np.array(states))) == expected


def test_validate_rejects_unknown_convention(survey, raw_row):
    with pytest.raises(ValueError):
        C.validate_batch(raw_row(survey, [{}]), survey, "other")


def test_an_empty_batch_validates_to_an_empty_batch(survey, raw_row):
    v = _validated(survey, raw_row, [])
    assert v.num_rows == 0 and v.schema.names[-2:] == [C.REASON, C.REASON_DETAIL]
    assert C.to_canonical(v, survey).num_rows == 0


def test_long_columns_hold_int64_and_int_columns_int32(survey, raw_row):
    """A `type: long` column takes values beyond 2^31 (it was checked against int32 and every row
    was quarantined as non_numeric); an `int` column still refuses them, naming the column."""
    col = next(c for c in survey.trailing if c.name == "nfobs")
    as_long = dataclasses.replace(col, type="long")
    long_survey = dataclasses.replace(survey, trailing=tuple(as_long if c is col else c for c in survey.trailing))
    v = _validated(long_survey, raw_row, [{"nfobs": "3000000000"}, {"nfobs": "-3000000000"}])
    assert _reasons(v) == [None, None]
    assert [r for (r,) in _rows(v, C.typed("nfobs"))] == [3000000000, -3000000000]
    v = _validated(survey, raw_row, [{"nfobs": "3000000000"}, {"nfobs": "2147483647"}])
    assert _reasons(v) == ["non_numeric", None]
    assert "nfobs=3000000000" in _rows(v, C.REASON_DETAIL)[0][0]
