"""Pure DataFrame -> DataFrame cleaning: type the raw strings, decode sentinels, validate.

Everything here is Spark SQL expressions (no Python UDFs) driven by the Survey; nothing names a
band or a column. The flow used by the ingest job:

    validated = validate(raw, survey, convention)   # typed `_v_*` columns + `reason`
    dups      = find_duplicate_ids(validated, survey)
    validated = mark_duplicates(validated, dups, survey)
    good      = to_canonical(validated.where(reason IS NULL), survey, thesis_clip=...)
    bad       = to_quarantine(validated.where(reason IS NOT NULL), survey)

Quarantine reasons (`REASONS`, in priority order; a row gets the first that applies in
`reason` and every problem found in `reason_detail`):

  field_count    the line has a different number of fields than its file's header
  missing_value  ID/Field/Pointing/CCD empty, or (sentinel formats) a band magnitude/error empty
  non_numeric    a numeric column holds text (or an integer column a non-integral number)
  not_finite     NaN or +-inf in a numeric column
  bad_layout     Field/Pointing/CCD is not a CCD of the survey layout
  bad_id         ID does not follow the 11-digit scheme or disagrees with its Field/Pointing/CCD
  bad_magnitude  a magnitude/error pair outside the sentinel convention
  duplicate_id   the ID occurs more than once in the input (every copy is quarantined)
"""
from __future__ import annotations

import functools
import operator

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from galaxy_spark.catalog import readers as R
from galaxy_spark.catalog import schema as S
from galaxy_spark.survey import DETECTED, NOT_DETECTED, NOT_OBSERVED, Survey

REASON = "reason"
REASON_DETAIL = "reason_detail"
REASONS = ("field_count", "missing_value", "non_numeric", "not_finite", "bad_layout", "bad_id",
           "bad_magnitude", "duplicate_id")
THESIS_SUFFIX = "_thesis"
CONVENTIONS = ("sentinel", "vizier")

_INT_MAX = 2147483647


def typed(name: str) -> str:
    """Name of the typed / decoded column of `name` in a validated frame."""
    return f"_v_{name}"


def thesis_column(band: str) -> str:
    return f"{band}{THESIS_SUFFIX}"


def convention_for(fmt: str) -> str:
    """How a format encodes non-detections: ColorPro sentinels, or VizieR flags/empties."""
    return "vizier" if fmt == "vizier" else "sentinel"


# ---- small column helpers ------------------------------------------------------------------
def is_blank(c: Column) -> Column:
    return c.isNull() | (F.trim(c) == "")


def parse_double(c: Column) -> Column:
    """Trimmed string -> double; null when blank or not a number (never raises under ANSI)."""
    return F.trim(c).try_cast("double")


def is_finite(d: Column) -> Column:
    return ~F.isnan(d) & (F.abs(d) != F.lit(float("inf")))


def _any(conds: list[Column]) -> Column:
    return functools.reduce(operator.or_, conds) if conds else F.lit(False)


def _f(c: Column) -> Column:
    """Null-safe boolean: null -> false."""
    return F.coalesce(c, F.lit(False))


def _num(x: float) -> str:
    return f"{x:g}"


# ---- the thesis' preprocessing, kept as a pure function --------------------------------------
def thesis_clip_raw(mag: Column, survey: Survey) -> Column:
    """What the thesis did to a raw (sentinel-coded) magnitude: clip it to thesis_clip."""
    lo, hi = survey.thesis_clip
    return F.least(F.greatest(mag, F.lit(lo)), F.lit(hi))


def thesis_magnitude(mag: Column, state: Column, survey: Survey) -> Column:
    """The thesis' clipped magnitude from canonical columns (B, B_state).

    Detected -> clip(B); not detected -> clip(99) (= 27); not observed -> clip(-99) (= 0).
    """
    lo, hi = survey.thesis_clip
    s = survey.sentinels
    clip = lambda v: float(min(max(v, lo), hi))  # noqa: E731
    return (F.when(state == DETECTED, F.least(F.greatest(mag, F.lit(lo)), F.lit(hi)))
            .when(state == NOT_DETECTED, F.lit(clip(float(s["not_detected_magnitude"]))))
            .otherwise(F.lit(clip(float(s["not_observed_magnitude"])))))


def thesis_magnitude_array(mag, state, survey: Survey):
    """numpy version of `thesis_magnitude` for pandas/Keras feature code (same numbers)."""
    import numpy as np

    lo, hi = survey.thesis_clip
    s = survey.sentinels
    mag = np.asarray(mag, dtype="float64")
    state = np.asarray(state)
    out = np.clip(np.where(state == DETECTED, mag, 0.0), lo, hi)
    out = np.where(state == NOT_DETECTED, np.clip(float(s["not_detected_magnitude"]), lo, hi), out)
    out = np.where(state == NOT_OBSERVED, np.clip(float(s["not_observed_magnitude"]), lo, hi), out)
    return out


def add_thesis_columns(df: DataFrame, survey: Survey) -> DataFrame:
    """Append `B_thesis` for every band to a canonical frame."""
    return df.select("*", *[thesis_magnitude(F.col(b), F.col(S.state_column(b)), survey)
                            .alias(thesis_column(b)) for b in survey.band_names])


# ---- band decoding -------------------------------------------------------------------------
def decode_band_sentinel(m: Column, e: Column, survey: Survey, band: str = "band") -> dict:
    """ColorPro/BPZ pair (public ASCII, CSV): m, e parsed doubles.

    99 -> not detected, e = 1-sigma limit; -99 -> not observed, e must be 0; anything else is a
    detection with m inside valid_magnitude_range and e inside valid_error_range.
    Returns {mag, err, lim, state, bad (bool), problem (string or null)}.
    """
    s = survey.sentinels
    nd, no, noe = (float(s["not_detected_magnitude"]), float(s["not_observed_magnitude"]),
                   float(s["not_observed_error"]))
    lo, hi = map(float, s["valid_magnitude_range"])
    elo, ehi = map(float, s["valid_error_range"])
    state = F.when(m == nd, F.lit(NOT_DETECTED)).when(m == no, F.lit(NOT_OBSERVED)) \
        .otherwise(F.lit(DETECTED)).cast("byte")
    de = survey.error_column(band)
    problem = (
        F.when((m == nd) & ~e.between(lo, hi),
               F.format_string(f"{band}={_num(nd)} with limit {de}=%s outside [{_num(lo)}, {_num(hi)}]", e))
        .when((m == no) & (e != noe),
              F.format_string(f"{band}={_num(no)} (not observed) with {de}=%s, expected {_num(noe)}", e))
        .when((m != nd) & (m != no) & ~m.between(lo, hi),
              F.format_string(f"{band}=%s outside [{_num(lo)}, {_num(hi)}] and not a sentinel", m))
        .when((m != nd) & (m != no) & ~e.between(elo, ehi),
              F.format_string(f"{de}=%s outside [{_num(elo)}, {_num(ehi)}]", e)))
    return {
        "mag": F.when(state == DETECTED, m), "err": F.when(state == DETECTED, e),
        "lim": F.when(state == NOT_DETECTED, e), "state": state,
        "bad": _f(problem.isNotNull()), "problem": problem,
    }


def decode_band_vizier(m_raw: Column, e_raw: Column, flag: Column | None, m: Column, e: Column,
                       survey: Survey, band: str = "band") -> dict:
    """VizieR pair: flag '<' -> not detected with the limit in the magnitude column and an empty
    error; magnitude and error both empty -> not observed; else a detection (range-checked)."""
    s = survey.sentinels
    lo, hi = map(float, s["valid_magnitude_range"])
    elo, ehi = map(float, s["valid_error_range"])
    mb, eb = is_blank(m_raw), is_blank(e_raw)
    de = survey.error_column(band)
    if flag is not None:
        fl = F.coalesce(F.trim(flag), F.lit(""))
        limited, unflagged = fl == "<", fl == ""
        state = F.when(limited, F.lit(NOT_DETECTED))
        problem = (
            F.when(~unflagged & ~limited, F.format_string(f"{band}: unknown limit flag %s", fl))
            .when(limited & mb, F.lit(f"{band}: limit flag without a limit"))
            .when(limited & ~eb, F.format_string(f"{band}: limit flag with an error {de}=%s", e_raw))
            .when(limited & ~m.between(lo, hi),
                  F.format_string(f"{band}: limit %s outside [{_num(lo)}, {_num(hi)}]", m_raw)))
    else:  # a band without a limit-flag column (the detection band): never "not detected"
        limited, unflagged = F.lit(False), F.lit(True)
        state, problem = None, None

    def chain(c, cond, value):
        return F.when(cond, value) if c is None else c.when(cond, value)

    state = chain(state, mb & eb, F.lit(NOT_OBSERVED)).otherwise(F.lit(DETECTED)).cast("byte")
    problem = chain(problem, unflagged & mb & ~eb, F.lit(f"{band}: error without a magnitude"))
    problem = (problem
               .when(unflagged & ~mb & eb, F.lit(f"{band}: magnitude without an error"))
               .when(unflagged & ~mb & ~m.between(lo, hi),
                     F.format_string(f"{band}=%s outside [{_num(lo)}, {_num(hi)}]", m_raw))
               .when(unflagged & ~eb & ~e.between(elo, ehi),
                     F.format_string(f"{de}=%s outside [{_num(elo)}, {_num(ehi)}]", e_raw)))
    return {
        "mag": F.when(state == DETECTED, m), "err": F.when(state == DETECTED, e),
        "lim": F.when(state == NOT_DETECTED, m), "state": state,
        "bad": _f(problem.isNotNull()), "problem": problem,
    }


# ---- validation ----------------------------------------------------------------------------
def _id_coefficients(survey: Survey) -> tuple[int, int, int, int]:
    """ID = base + Field*kf + Pointing*kp + CCD*kc + n, 0 <= n < kc (from survey.make_id)."""
    base = survey.make_id(0, 0, 0, 0)
    return (base, survey.make_id(1, 0, 0, 0) - base, survey.make_id(0, 1, 0, 0) - base,
            survey.make_id(0, 0, 1, 0) - base)


def layout_ok(field: Column, pointing: Column, ccd: Column, survey: Survey) -> Column:
    """True when (Field, Pointing, CCD) is one of the survey's CCD catalogues."""
    per_field = [(field == f) & pointing.isin(*ps) for f, ps in survey.pointings.items()]
    return _f(_any(per_field) & ccd.isin(*survey.ccds))


def id_ok(id_raw: Column, id_long: Column, field: Column, pointing: Column, ccd: Column,
          survey: Survey) -> Column:
    """True when the ID has the survey's digit count and encodes its Field/Pointing/CCD."""
    base, kf, kp, kc = _id_coefficients(survey)
    n = (id_long - F.lit(base) - field.cast("long") * F.lit(kf) - pointing.cast("long") * F.lit(kp)
         - ccd.cast("long") * F.lit(kc))
    return _f(F.trim(id_raw).rlike(f"^[0-9]{{{survey.id_digits}}}$") & (n >= 0) & (n < kc))


def validate(raw: DataFrame, survey: Survey, convention: str = "sentinel") -> DataFrame:
    """Raw frame (readers) -> the same frame + `_v_*` typed/decoded columns + reason columns.

    `reason` is null for a good row. Pure: no actions, no side effects.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    s = survey.sentinels
    band_set = set(survey.band_names)
    err_set = {survey.error_column(b) for b in band_set}
    numeric = [c for c in R.raw_value_columns(survey) if c.type != "string"]
    keys = [survey.id_column, "Field", "Pointing", "CCD"]

    # 1. parse every numeric column once
    parsed = raw.select("*", *[parse_double(F.col(c.name)).alias(f"_d_{c.name}") for c in numeric])
    d = lambda name: F.col(f"_d_{name}")  # noqa: E731
    r = lambda name: F.col(name)  # noqa: E731

    fc_ok = F.col(R.N_FIELDS) == F.col(R.EXPECTED_FIELDS)
    problems: dict[str, list[tuple[Column, Column]]] = {k: [] for k in REASONS}
    out_cols: list[Column] = []

    # 2. per column checks and typed values
    for c in numeric:
        x, dx = r(c.name), d(c.name)
        required = c.name in keys or (convention == "sentinel" and (c.name in band_set or c.name in err_set))
        if required:
            problems["missing_value"].append((is_blank(x), F.lit(f"{c.name} empty")))
        not_num = ~is_blank(x) & dx.isNull()
        if c.type in ("int", "long") and c.name != survey.id_column:
            integral = _f((dx == F.floor(dx)) & (F.abs(dx) <= _INT_MAX))
            not_num = not_num | (dx.isNotNull() & is_finite(dx) & ~integral)
        problems["non_numeric"].append((_f(not_num), F.format_string(f"{c.name}=%s", x)))
        problems["not_finite"].append((_f(~is_finite(dx)), F.format_string(f"{c.name}=%s", x)))
        if c.name in band_set or c.name in err_set:
            continue  # decoded per band below
        if c.name == survey.id_column:
            v = F.when(F.trim(x).rlike(r"^[0-9]{1,18}$"), F.trim(x).try_cast("long"))
        elif c.type == "int":
            v = F.when(_f(is_finite(dx) & (dx == F.floor(dx)) & (F.abs(dx) <= _INT_MAX)),
                       dx.cast("int"))
        elif c.type == "long":
            v = F.when(_f(is_finite(dx) & (dx == F.floor(dx))), dx.cast("long"))
        else:
            v = dx
        null_value = (s.get("null_values") or {}).get(c.name)
        if null_value is not None:
            v = F.when(v != F.lit(float(null_value)), v)
        out_cols.append(v.alias(typed(c.name)))
    for c in survey.csv_extra:
        if c.type == "string":
            out_cols.append(F.when(~is_blank(r(c.name)), r(c.name)).alias(typed(c.name)))

    # 3. layout and ID
    fld, pnt, ccd = (F.col(typed(k)) for k in ("Field", "Pointing", "CCD"))
    idl = F.col(typed(survey.id_column))
    keys_typed = fld.isNotNull() & pnt.isNotNull() & ccd.isNotNull()
    problems["bad_layout"].append((
        keys_typed & ~layout_ok(fld, pnt, ccd, survey),
        F.format_string("Field/Pointing/CCD %s/%s/%s not in the survey layout", fld, pnt, ccd)))
    problems["bad_id"].append((
        keys_typed & ~is_blank(r(survey.id_column))
        & ~id_ok(r(survey.id_column), idl, fld, pnt, ccd, survey),
        F.format_string(f"{survey.id_column}=%s does not match the {survey.id_digits}-digit scheme "
                        "for Field/Pointing/CCD %s/%s/%s", r(survey.id_column), fld, pnt, ccd)))

    # 4. bands
    for b in survey.band_names:
        de = survey.error_column(b)
        if convention == "sentinel":
            dec = decode_band_sentinel(d(b), d(de), survey, b)
        else:
            flag = r(R.limit_flag_column(b)) if R.limit_flag_column(b) in raw.columns else None
            if b not in R.limit_flag_bands(survey):
                flag = None
            dec = decode_band_vizier(r(b), r(de), flag, d(b), d(de), survey, b)
        problems["bad_magnitude"].append((dec["bad"], dec["problem"]))
        out_cols += [dec["mag"].alias(typed(b)), dec["err"].alias(typed(de)),
                     dec["lim"].alias(typed(S.lim_column(b))),
                     dec["state"].alias(typed(S.state_column(b)))]

    typed_df = parsed.select("*", *out_cols)
    # 5. reason: the first failing check in priority order; detail lists every problem.
    reason = F.when(~fc_ok, F.lit("field_count"))
    for code in REASONS[1:]:
        if problems[code]:
            reason = reason.when(_any([c for c, _ in problems[code]]), F.lit(code))
    detail_all = F.concat_ws("; ", *[F.when(cond, msg) for code in REASONS for cond, msg in problems[code]])
    v = typed_df.select("*", reason.alias(REASON))
    v = v.select("*", F.when(~fc_ok, F.format_string("%d fields, expected %d", F.col(R.N_FIELDS),
                                                       F.col(R.EXPECTED_FIELDS)))
                 .when(F.col(REASON).isNotNull(), detail_all).alias(REASON_DETAIL))
    return v.drop(*[f"_d_{c.name}" for c in numeric])


# ---- duplicates ----------------------------------------------------------------------------
def find_duplicate_ids(validated: DataFrame, survey: Survey) -> DataFrame:
    """IDs (typed) that occur more than once among the rows whose ID could be read."""
    idc = typed(survey.id_column)
    return (validated.where(F.col(idc).isNotNull()).groupBy(idc).count()
            .where(F.col("count") > 1).select(idc))


def mark_duplicates(validated: DataFrame, duplicate_ids: DataFrame, survey: Survey) -> DataFrame:
    """Give every copy of a duplicated ID the reason `duplicate_id` (unless it already has one)."""
    idc = typed(survey.id_column)
    dup = duplicate_ids.select(F.col(idc), F.lit(True).alias("_dup"))
    j = validated.join(F.broadcast(dup), on=idc, how="left")
    isdup = _f(F.col("_dup"))
    msg = F.format_string(f"{survey.id_column}=%s occurs more than once", F.col(idc))
    j = j.withColumn(REASON_DETAIL, F.when(F.col(REASON).isNull() & isdup, msg)
                     .when(isdup, F.concat_ws("; ", F.col(REASON_DETAIL), msg))
                     .otherwise(F.col(REASON_DETAIL)))
    j = j.withColumn(REASON, F.when(F.col(REASON).isNull() & isdup, F.lit("duplicate_id"))
                     .otherwise(F.col(REASON)))
    return j.select(*validated.columns)


# ---- projections ---------------------------------------------------------------------------
def to_canonical(validated: DataFrame, survey: Survey, thesis_clip: bool = False) -> DataFrame:
    """Good rows -> the canonical schema (galaxy_spark.catalog.schema), + B_thesis if asked."""
    cols = []
    for f in S.canonical_fields(survey):
        src = F.col(R.SOURCE_FILE) if f.name == S.SOURCE_COLUMN else F.col(typed(f.name))
        cols.append(src.cast(f.dataType).alias(f.name))
    out = validated.select(*cols)
    return add_thesis_columns(out, survey) if thesis_clip else out


def quarantine_columns(survey: Survey) -> list[str]:
    return [REASON, REASON_DETAIL] + R.raw_columns(survey)


def to_quarantine(validated: DataFrame, survey: Survey) -> DataFrame:
    """Rejected rows: reason, detail, source_file, line_number, raw line and raw string values."""
    cols = [F.col(c) if c in validated.columns else F.lit(None).cast("string").alias(c)
            for c in quarantine_columns(survey)]
    return validated.select(*cols)
