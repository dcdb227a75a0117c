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

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from galaxy_spark.catalog import readers as R
from galaxy_spark.catalog import schema as S
from galaxy_spark.features import ThesisClip
from galaxy_spark.survey import DETECTED, NOT_DETECTED, NOT_OBSERVED, Survey, lim_column, state_column

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
    """Name of the optional thesis-clipped magnitude column of `band` (ingest --thesis-clip)."""
    return f"{band}{THESIS_SUFFIX}"


def convention_for(fmt: str) -> str:
    """How a format encodes non-detections: ColorPro sentinels, or VizieR flags/empties."""
    return "vizier" if fmt == "vizier" else "sentinel"


# ---- SQL text helpers ------------------------------------------------------------------------
# The validation expressions are generated as SQL text and handed to Spark in one `selectExpr`
# per projection: building the same ~3,000-node trees through the Column API costs thousands of
# Python->JVM calls (seconds per plan), SQL text costs one.
def q(name: str) -> str:
    """Quote a column name for SQL."""
    return "`" + name.replace("`", "``") + "`"


def lit(s: str) -> str:
    """A SQL string literal."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def dbl(x: float) -> str:
    """A SQL double literal."""
    return f"{float(x)!r}D"


def blank_sql(x: str) -> str:
    """SQL: the string expression `x` is null or only whitespace."""
    return f"({x} IS NULL OR trim({x}) = '')"


def finite_sql(d: str) -> str:
    """SQL: the double expression `d` is neither NaN nor infinite."""
    return f"(NOT isnan({d}) AND abs({d}) != CAST('Infinity' AS DOUBLE))"


def between_sql(x: str, lo: float, hi: float) -> str:
    """SQL: lo <= x <= hi."""
    return f"({x} BETWEEN {dbl(lo)} AND {dbl(hi)})"


def _or(conds: list[str]) -> str:
    return "(" + " OR ".join(conds) + ")" if conds else "false"


def _f(c: str) -> str:
    """Null-safe boolean: null -> false."""
    return f"coalesce({c}, false)"


def _fmt(template: str, *args: str) -> str:
    """format_string with a literal template (no % in survey names)."""
    return f"format_string({lit(template)}, {', '.join(args)})" if args else lit(template)


def _num(x: float) -> str:
    return f"{x:g}"


# ---- the thesis' preprocessing ---------------------------------------------------------------
def add_thesis_columns(df: DataFrame, survey: Survey) -> DataFrame:
    """Append `B_thesis` for every band to a canonical frame: the thesis' clipped magnitude
    (galaxy_spark.features.ThesisClip, the survey file's sentinels), as the thesis feature set
    computes it."""
    clip = ThesisClip.from_survey(survey)
    return df.selectExpr("*", *[f"{clip.sql(q(b), q(state_column(b)))} AS {q(thesis_column(b))}"
                                for b in survey.band_names])


# ---- band decoding (SQL text) ----------------------------------------------------------------
def decode_band_sentinel(m: str, e: str, survey: Survey, band: str = "band") -> dict:
    """ColorPro/BPZ pair (public ASCII, CSV); m, e: SQL expressions of the parsed doubles.

    99 -> not detected, e = 1-sigma limit; -99 -> not observed, e must be 0; anything else is a
    detection with m inside valid_magnitude_range and e inside valid_error_range.
    Returns SQL text for {mag, err, lim, state, bad (boolean), problem (string or null)}.
    """
    s = survey.sentinels
    nd, no, noe = (float(s["not_detected_magnitude"]), float(s["not_observed_magnitude"]),
                   float(s["not_observed_error"]))
    lo, hi = map(float, s["valid_magnitude_range"])
    elo, ehi = map(float, s["valid_error_range"])
    de = survey.error_column(band)
    is_nd, is_no = f"({m} = {dbl(nd)})", f"({m} = {dbl(no)})"
    state = (f"CAST(CASE WHEN {is_nd} THEN {NOT_DETECTED} WHEN {is_no} THEN {NOT_OBSERVED} "
             f"ELSE {DETECTED} END AS TINYINT)")
    problem = (
        f"CASE WHEN {is_nd} AND NOT {between_sql(e, lo, hi)} THEN "
        f"{_fmt(f'{band}={_num(nd)} with limit {de}=%s outside [{_num(lo)}, {_num(hi)}]', e)} "
        f"WHEN {is_no} AND {e} != {dbl(noe)} THEN "
        f"{_fmt(f'{band}={_num(no)} (not observed) with {de}=%s, expected {_num(noe)}', e)} "
        f"WHEN NOT {is_nd} AND NOT {is_no} AND NOT {between_sql(m, lo, hi)} THEN "
        f"{_fmt(f'{band}=%s outside [{_num(lo)}, {_num(hi)}] and not a sentinel', m)} "
        f"WHEN NOT {is_nd} AND NOT {is_no} AND NOT {between_sql(e, elo, ehi)} THEN "
        f"{_fmt(f'{de}=%s outside [{_num(elo)}, {_num(ehi)}]', e)} END")
    return {"mag": f"CASE WHEN {is_nd} OR {is_no} THEN NULL ELSE {m} END",
            "err": f"CASE WHEN {is_nd} OR {is_no} THEN NULL ELSE {e} END",
            "lim": f"CASE WHEN {is_nd} THEN {e} END", "state": state,
            "bad": _f(f"({problem}) IS NOT NULL"), "problem": problem}


def decode_band_vizier(m_raw: str, e_raw: str, flag: str | None, m: str, e: str,
                       survey: Survey, band: str = "band") -> dict:
    """VizieR pair: flag '<' -> not detected with the limit in the magnitude column and an empty
    error; magnitude and error both empty -> not observed; else a detection (range-checked).
    Arguments are SQL expressions (raw strings, the flag or None, parsed doubles)."""
    s = survey.sentinels
    lo, hi = map(float, s["valid_magnitude_range"])
    elo, ehi = map(float, s["valid_error_range"])
    mb, eb = blank_sql(m_raw), blank_sql(e_raw)
    de = survey.error_column(band)
    whens_state, whens_problem = [], []
    if flag is not None:
        fl = f"coalesce(trim({flag}), '')"
        limited, unflagged = f"({fl} = '<')", f"({fl} = '')"
        whens_state.append((limited, str(NOT_DETECTED)))
        whens_problem += [
            (f"NOT {unflagged} AND NOT {limited}", _fmt(f"{band}: unknown limit flag %s", fl)),
            (f"{limited} AND {mb}", lit(f"{band}: limit flag without a limit")),
            (f"{limited} AND NOT {eb}", _fmt(f"{band}: limit flag with an error {de}=%s", e_raw)),
            (f"{limited} AND NOT {between_sql(m, lo, hi)}",
             _fmt(f"{band}: limit %s outside [{_num(lo)}, {_num(hi)}]", m_raw))]
        lim = f"CASE WHEN {limited} THEN {m} END"
    else:  # a band without a limit-flag column (the detection band): never "not detected"
        unflagged = "true"
        lim = "CAST(NULL AS DOUBLE)"
    whens_state.append((f"{mb} AND {eb}", str(NOT_OBSERVED)))
    whens_problem += [
        (f"{unflagged} AND {mb} AND NOT {eb}", lit(f"{band}: error without a magnitude")),
        (f"{unflagged} AND NOT {mb} AND {eb}", lit(f"{band}: magnitude without an error")),
        (f"{unflagged} AND NOT {mb} AND NOT {between_sql(m, lo, hi)}",
         _fmt(f"{band}=%s outside [{_num(lo)}, {_num(hi)}]", m_raw)),
        (f"{unflagged} AND NOT {eb} AND NOT {between_sql(e, elo, ehi)}",
         _fmt(f"{de}=%s outside [{_num(elo)}, {_num(ehi)}]", e_raw))]
    state_case = "CASE " + " ".join(f"WHEN {c} THEN {v}" for c, v in whens_state) + f" ELSE {DETECTED} END"
    problem = "CASE " + " ".join(f"WHEN {c} THEN {v}" for c, v in whens_problem) + " END"
    detected = f"(({state_case}) = {DETECTED})"
    return {"mag": f"CASE WHEN {detected} THEN {m} END",
            "err": f"CASE WHEN {detected} THEN {e} END",
            "lim": lim, "state": f"CAST({state_case} AS TINYINT)",
            "bad": _f(f"({problem}) IS NOT NULL"), "problem": problem}


# ---- validation ----------------------------------------------------------------------------
LAYOUT_COLUMNS = ("Field", "Pointing", "CCD")  # required by every survey file (survey.py)


def _id_coefficients(survey: Survey) -> tuple[int, int, int, int]:
    """ID = base + Field*kf + Pointing*kp + CCD*kc + n, 0 <= n < kc (from survey.make_id)."""
    base = survey.make_id(0, 0, 0, 0)
    return (base, survey.make_id(1, 0, 0, 0) - base, survey.make_id(0, 1, 0, 0) - base,
            survey.make_id(0, 0, 1, 0) - base)


def layout_ok_sql(field: str, pointing: str, ccd: str, survey: Survey) -> str:
    """SQL: true when (Field, Pointing, CCD) is one of the survey's CCD catalogues."""
    per_field = [f"({field} = {f} AND {pointing} IN ({', '.join(map(str, ps))}))"
                 for f, ps in survey.pointings.items()]
    return _f(f"({_or(per_field)} AND {ccd} IN ({', '.join(map(str, survey.ccds))}))")


def id_ok_sql(id_raw: str, id_long: str, field: str, pointing: str, ccd: str, survey: Survey) -> str:
    """SQL: true when the ID has the survey's digit count and encodes its Field/Pointing/CCD."""
    base, kf, kp, kc = _id_coefficients(survey)
    n = (f"({id_long} - {base}L - CAST({field} AS BIGINT) * {kf}L - CAST({pointing} AS BIGINT) * {kp}L"
         f" - CAST({ccd} AS BIGINT) * {kc}L)")
    return _f(f"(trim({id_raw}) RLIKE {lit(f'^[0-9]{{{survey.id_digits}}}$')} "
              f"AND {n} >= 0 AND {n} < {kc}L)")


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
    keys = [survey.id_column, *LAYOUT_COLUMNS]

    def d(name):
        return q(f"_d_{name}")

    # 1. parse every numeric column once
    parsed = raw.selectExpr("*", *[f"try_cast(trim({q(c.name)}) AS DOUBLE) AS {d(c.name)}"
                                   for c in numeric])
    fc_ok = f"({q(R.N_FIELDS)} = {q(R.EXPECTED_FIELDS)})"
    problems: dict[str, list[tuple[str, str]]] = {k: [] for k in REASONS}
    out: list[str] = []

    # 2. per column checks and typed values
    for c in numeric:
        x, dx = q(c.name), d(c.name)
        is_band = c.name in band_set or c.name in err_set
        if c.name in keys or (convention == "sentinel" and is_band):
            problems["missing_value"].append((blank_sql(x), lit(f"{c.name} empty")))
        integral = f"({dx} = floor({dx}) AND abs({dx}) <= {_INT_MAX})"
        not_num = f"(NOT {blank_sql(x)} AND {dx} IS NULL)"
        if c.type in ("int", "long") and c.name != survey.id_column:
            not_num = f"({not_num} OR ({dx} IS NOT NULL AND {finite_sql(dx)} AND NOT {integral}))"
        problems["non_numeric"].append((_f(not_num), _fmt(f"{c.name}=%s", x)))
        problems["not_finite"].append((_f(f"NOT {finite_sql(dx)}"), _fmt(f"{c.name}=%s", x)))
        if is_band:
            continue  # decoded per band below
        if c.name == survey.id_column:
            v = f"CASE WHEN trim({x}) RLIKE '^[0-9]{{1,18}}$' THEN try_cast(trim({x}) AS BIGINT) END"
        elif c.type == "int":
            v = f"CASE WHEN {_f(f'{finite_sql(dx)} AND {integral}')} THEN CAST({dx} AS INT) END"
        elif c.type == "long":
            v = (f"CASE WHEN {_f(f'{finite_sql(dx)} AND {dx} = floor({dx})')} "
                 f"THEN try_cast({dx} AS BIGINT) END")
        else:
            v = dx
        null_value = (s.get("null_values") or {}).get(c.name)
        if null_value is not None:
            v = f"CASE WHEN ({v}) = {dbl(null_value)} THEN NULL ELSE ({v}) END"
        out.append(f"{v} AS {q(typed(c.name))}")
    for c in survey.csv_extra:
        if c.type == "string":
            out.append(f"CASE WHEN NOT {blank_sql(q(c.name))} THEN {q(c.name)} END AS {q(typed(c.name))}")

    # 3. bands
    flag_bands = set(R.limit_flag_bands(survey))
    for b in survey.band_names:
        de = survey.error_column(b)
        if convention == "sentinel":
            dec = decode_band_sentinel(d(b), d(de), survey, b)
        else:
            fc = R.limit_flag_column(b)
            flag = q(fc) if (b in flag_bands and fc in raw.columns) else None
            dec = decode_band_vizier(q(b), q(de), flag, d(b), d(de), survey, b)
        problems["bad_magnitude"].append((dec["bad"], dec["problem"]))
        out += [f"{dec['mag']} AS {q(typed(b))}", f"{dec['err']} AS {q(typed(de))}",
                f"{dec['lim']} AS {q(typed(lim_column(b)))}",
                f"{dec['state']} AS {q(typed(state_column(b)))}"]
    typed_df = parsed.selectExpr("*", *out)

    # 4. layout and ID (on the typed columns)
    fld, pnt, ccd = (q(typed(k)) for k in LAYOUT_COLUMNS)
    idr, idl = q(survey.id_column), q(typed(survey.id_column))
    keys_typed = f"({fld} IS NOT NULL AND {pnt} IS NOT NULL AND {ccd} IS NOT NULL)"
    problems["bad_layout"].append((
        f"{keys_typed} AND NOT {layout_ok_sql(fld, pnt, ccd, survey)}",
        _fmt("/".join(LAYOUT_COLUMNS) + " %s/%s/%s not in the survey layout", fld, pnt, ccd)))
    problems["bad_id"].append((
        f"{keys_typed} AND NOT {blank_sql(idr)} AND NOT {id_ok_sql(idr, idl, fld, pnt, ccd, survey)}",
        _fmt(f"{survey.id_column}=%s does not match the {survey.id_digits}-digit scheme for "
             + "/".join(LAYOUT_COLUMNS) + " %s/%s/%s", idr, fld, pnt, ccd)))

    # 5. reason: the first failing check in priority order; detail lists every problem.
    reason = f"CASE WHEN NOT {fc_ok} THEN 'field_count' " + " ".join(
        f"WHEN {_or([c for c, _ in problems[code]])} THEN {lit(code)}"
        for code in REASONS[1:] if problems[code]) + " END"
    detail = ("concat_ws('; ', " + ", ".join(
        f"CASE WHEN {c} THEN {m} END" for code in REASONS for c, m in problems[code]) + ")")
    v = typed_df.selectExpr("*", f"{reason} AS {q(REASON)}")
    v = v.selectExpr("*", f"CASE WHEN NOT {fc_ok} THEN format_string('%d fields, expected %d', "
                          f"{q(R.N_FIELDS)}, {q(R.EXPECTED_FIELDS)}) WHEN {q(REASON)} IS NOT NULL "
                          f"THEN {detail} END AS {q(REASON_DETAIL)}")
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
    dup = duplicate_ids.selectExpr(q(idc), "true AS `_dup`")
    j = validated.join(F.broadcast(dup), on=idc, how="left")
    isdup = "coalesce(`_dup`, false)"
    msg = _fmt(f"{survey.id_column}=%s occurs more than once", q(idc))
    r, dt = q(REASON), q(REASON_DETAIL)
    exprs = []
    for c in validated.columns:
        if c == REASON:
            exprs.append(f"CASE WHEN {r} IS NULL AND {isdup} THEN 'duplicate_id' ELSE {r} END AS {r}")
        elif c == REASON_DETAIL:
            exprs.append(f"CASE WHEN {r} IS NULL AND {isdup} THEN {msg} "
                         f"WHEN {isdup} THEN concat_ws('; ', {dt}, {msg}) ELSE {dt} END AS {dt}")
        else:
            exprs.append(q(c))
    return j.selectExpr(*exprs)


# ---- projections ---------------------------------------------------------------------------
def slim(validated: DataFrame, survey: Survey) -> DataFrame:
    """Drop what neither output needs: parsed helpers, and raw strings of good rows (-> null)."""
    meta = [R.SOURCE_FILE, R.LINE_NUMBER, R.INPUT_FORMAT]
    keep_typed = [q(c) for c in validated.columns if c.startswith("_v_")]
    raw = [f"CASE WHEN {q(REASON)} IS NOT NULL THEN {q(c)} END AS {q(c)}"
           for c in R.raw_columns(survey) if c in validated.columns and c not in meta]
    return validated.selectExpr(*map(q, meta), q(REASON), q(REASON_DETAIL), *keep_typed, *raw)


def to_canonical(validated: DataFrame, survey: Survey, thesis_clip: bool = False) -> DataFrame:
    """Good rows -> the canonical schema (galaxy_spark.catalog.schema), + B_thesis if asked."""
    exprs = []
    for f in S.canonical_fields(survey):
        src = q(R.SOURCE_FILE) if f.name == S.SOURCE_COLUMN else q(typed(f.name))
        exprs.append(f"CAST({src} AS {f.dataType.simpleString()}) AS {q(f.name)}")
    out = validated.selectExpr(*exprs)
    return add_thesis_columns(out, survey) if thesis_clip else out


def quarantine_columns(survey: Survey) -> list[str]:
    """Columns of the quarantine table, in order: reason, detail, then the raw frame's columns."""
    return [REASON, REASON_DETAIL] + R.raw_columns(survey)


def to_quarantine(validated: DataFrame, survey: Survey) -> DataFrame:
    """Rejected rows: reason, detail, source_file, line_number, raw line and raw string values."""
    return validated.selectExpr(*[q(c) if c in validated.columns else f"CAST(NULL AS STRING) AS {q(c)}"
                                  for c in quarantine_columns(survey)])
