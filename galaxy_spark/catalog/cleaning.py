"""Pure cleaning on Arrow batches: type the raw strings, decode sentinels, validate, split.

NumPy and pyarrow only, driven by the Survey; nothing names a band or a column. The flow of the
ingest's tasks (galaxy_spark.catalog.tasks), per batch of raw strings (readers.raw_columns):

    validated = validate_batch(raw, survey, convention)     # + typed `_v_*` columns + reason
    validated = mark_duplicates(validated, duplicate_ids, survey)
    good      = to_canonical(validated.filter(reason IS NULL), survey, thesis_clip=...)
    bad       = to_quarantine(validated.filter(reason IS NOT NULL), survey)

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
  no_final_newline  (--strict only) the file's last line has no newline: a copy cut short looks
                 exactly like this, its last value possibly cut inside a number
"""
from __future__ import annotations

import numpy as np

from galaxy_spark.catalog import readers as R
from galaxy_spark.catalog import schema as S
from galaxy_spark.catalog.decode import Parsed, blank, decode_sentinel, decode_vizier
from galaxy_spark.features import ThesisClip
from galaxy_spark.survey import Survey, lim_column, state_column

REASON = "reason"
REASON_DETAIL = "reason_detail"
REASONS = ("field_count", "missing_value", "non_numeric", "not_finite", "bad_layout", "bad_id",
           "bad_magnitude", "duplicate_id", "no_final_newline")
THESIS_SUFFIX = "_thesis"
CONVENTIONS = ("sentinel", "vizier")

_INT_MAX = 2147483647
_INTEGER_LIMIT = {"int": 2.0 ** 31, "long": 2.0 ** 63}     # |value| below which a typed integer column holds it


def typed(name: str) -> str:
    """Name of the typed / decoded column of `name` in a validated frame."""
    return f"_v_{name}"


def thesis_column(band: str) -> str:
    """Name of the optional thesis-clipped magnitude column of `band` (ingest --thesis-clip)."""
    return f"{band}{THESIS_SUFFIX}"


def convention_for(fmt: str) -> str:
    """How a format encodes non-detections: ColorPro sentinels, or VizieR flags/empties."""
    return "vizier" if fmt == "vizier" else "sentinel"


# ---- validation (Arrow batches in Python tasks) ------------------------------------------------
# Validation runs in NumPy on Arrow batches: the same checks as Spark SQL expressions made one
# generated projection of ~3,000 nodes that ran at ~0.4 ms per row (every row evaluated every
# column's checks); here a column of plain numbers is one Arrow cast, ~13 us per 113-column row.
LAYOUT_COLUMNS = ("Field", "Pointing", "CCD")  # required by every survey file (survey.py)
_ID_RE = r"^[0-9]{1,18}$"


def _id_coefficients(survey: Survey) -> tuple[int, int, int, int]:
    """ID = base + Field*kf + Pointing*kp + CCD*kc + n, 0 <= n < kc (from survey.make_id)."""
    base = survey.make_id(0, 0, 0, 0)
    return (base, survey.make_id(1, 0, 0, 0) - base, survey.make_id(0, 1, 0, 0) - base,
            survey.make_id(0, 0, 1, 0) - base)


def validated_columns(survey: Survey) -> list[tuple[str, str]]:
    """(name, Spark type) of the columns `validate` appends to the raw frame, in order."""
    bands = set(survey.band_names) | {survey.error_column(b) for b in survey.band_names}
    out = [(typed(c.name), c.type) for c in R.raw_value_columns(survey)
           if c.type != "string" and c.name not in bands]
    out += [(typed(c.name), "string") for c in survey.csv_extra if c.type == "string"]
    for b in survey.band_names:
        out += [(typed(b), "double"), (typed(survey.error_column(b)), "double"),
                (typed(lim_column(b)), "double"), (typed(state_column(b)), "tinyint")]
    return out + [(REASON, "string"), (REASON_DETAIL, "string")]


def typed_ids(raw):
    """IDs as int64 from their raw strings: 1-18 ASCII digits after trimming spaces, else null. The
    one rule for the validation and for the ingest's duplicate scan (tasks.index_inputs)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = pc.utf8_trim(raw, " ")
    digits = pc.fill_null(pc.match_substring_regex(t, _ID_RE), False)
    return pc.cast(pc.if_else(digits, t, pa.scalar(None, pa.string())), pa.int64())


def validate_batch(batch, survey: Survey, convention: str):
    """One Arrow batch of a raw frame -> the batch + typed columns + reason, reason_detail.

    The checks, per row (reason = the first that fails, in `REASONS` order; reason_detail = every
    problem found):
      field_count    n_fields != expected_fields (the value columns are then null)
      missing_value  ID/Field/Pointing/CCD blank; sentinel formats: a band magnitude or error blank
      non_numeric    text that is not a number; in integer columns also a non-integral number
      not_finite     NaN or +-inf
      bad_layout     (Field, Pointing, CCD) not a CCD catalogue of the survey
      bad_id         the ID is not `id_digits` digits or does not encode its Field/Pointing/CCD
      bad_magnitude  a band's magnitude/error pair breaks the sentinel (or VizieR flag) convention
    """
    import pyarrow as pa

    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    n = batch.num_rows
    if n == 0:      # a header-only file: the same columns, no rows
        names = list(batch.schema.names) + [nm for nm, _ in validated_columns(survey)]
        return pa.RecordBatch.from_arrays(
            list(batch.columns) + [pa.array([], pa.type_for_alias(_ARROW[t])) for _, t in validated_columns(survey)],
            names=names)
    col = {name: batch.column(i) for i, name in enumerate(batch.schema.names)}
    problems: dict[str, list] = {k: [] for k in REASONS}   # code -> [(row mask, message(rows))]
    typed_out, parsed = _typed_columns(col, survey, convention, problems)
    _decode_bands(col, parsed, survey, convention, problems, typed_out)
    _check_layout_and_id(col, parsed, survey, problems, typed_out, n)
    reason, detail = _reasons(n, problems, col[R.N_FIELDS], col[R.EXPECTED_FIELDS])
    names = list(batch.schema.names) + [nm for nm, _ in validated_columns(survey)]
    arrays = list(batch.columns) + [typed_out[nm] for nm, _ in validated_columns(survey)[:-2]] + [reason, detail]
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _masked(values, keep, arrow_type):
    import pyarrow as pa

    return pa.array(values, type=arrow_type, mask=~keep)


def _typed_columns(col: dict, survey: Survey, convention: str, problems: dict) -> tuple[dict, dict]:
    """Parse every numeric raw column (`Parsed`), record missing, non-numeric and non-finite
    values in `problems`, and type the non-band columns (ID, integers with the int32/int64 range,
    floats; the survey's null values → null). Returns (typed columns, parsed columns)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    s = survey.sentinels
    band_set = set(survey.band_names)
    err_set = {survey.error_column(b) for b in band_set}
    keys = [survey.id_column, *LAYOUT_COLUMNS]
    typed_out: dict[str, pa.Array] = {}
    parsed: dict[str, Parsed] = {}
    for c in R.raw_value_columns(survey):
        if c.type == "string":
            continue
        p = parsed[c.name] = Parsed(col[c.name])
        is_band = c.name in band_set or c.name in err_set
        if c.name in keys or (convention == "sentinel" and is_band):
            problems["missing_value"].append((p.blank, lambda rows, name=c.name: [f"{name} empty"] * len(rows)))
        finite = p.ok & np.isfinite(p.value)
        with np.errstate(invalid="ignore"):
            whole = finite & (p.value == np.floor(p.value))
        not_num = ~p.blank & ~p.ok
        if c.type in _INTEGER_LIMIT and c.name != survey.id_column:
            not_num = not_num | (finite & ~(whole & (np.abs(p.value) < _INTEGER_LIMIT[c.type])))
        say = (lambda rows, name=c.name, p=p: [f"{name}={t}" for t in p.text(rows)])
        problems["non_numeric"].append((not_num, say))
        problems["not_finite"].append((p.ok & ~np.isfinite(p.value), say))
        if is_band:
            continue  # decoded per band below
        if c.name == survey.id_column:
            arr = typed_ids(col[c.name])
        elif c.type in _INTEGER_LIMIT:
            keep = whole & (np.abs(p.value) < _INTEGER_LIMIT[c.type])
            dtype = (np.int32, pa.int32()) if c.type == "int" else (np.int64, pa.int64())
            arr = _masked(np.where(keep, p.value, 0).astype(dtype[0]), keep, dtype[1])
        else:
            arr = _masked(p.value, p.ok, pa.float64())
        null_value = (s.get("null_values") or {}).get(c.name)
        if null_value is not None:
            v = arr.to_numpy(zero_copy_only=False)
            keep = ~np.asarray(arr.is_null()) & (v != float(null_value))
            arr = _masked(np.where(keep, v, 0).astype(v.dtype), keep, arr.type)
        typed_out[typed(c.name)] = arr
    for c in survey.csv_extra:
        if c.type == "string":
            typed_out[typed(c.name)] = pc.if_else(blank(col[c.name]), pa.scalar(None, pa.string()), col[c.name])
    return typed_out, parsed


def _decode_bands(col: dict, parsed: dict, survey: Survey, convention: str, problems: dict, typed_out: dict) -> None:
    """Decode each band's magnitude/error pair by the survey's convention into magnitude, error,
    limit and state columns (in `typed_out`); convention breaks go to `problems`."""
    import pyarrow as pa

    decode = decode_sentinel if convention == "sentinel" else decode_vizier
    flag_bands = set(R.limit_flag_bands(survey))
    for b in survey.band_names:
        de = survey.error_column(b)
        flag = col.get(R.limit_flag_column(b)) if b in flag_bands else None
        mag, err, lim, state, bad = decode(parsed[b], parsed[de], flag, survey, b)
        problems["bad_magnitude"].append(bad)
        typed_out[typed(b)] = _masked(mag[0], mag[1], pa.float64())
        typed_out[typed(de)] = _masked(err[0], err[1], pa.float64())
        typed_out[typed(lim_column(b))] = _masked(lim[0], lim[1], pa.float64())
        typed_out[typed(state_column(b))] = pa.array(state, type=pa.int8())


def _check_layout_and_id(col: dict, parsed: dict, survey: Survey, problems: dict, typed_out: dict, n: int) -> None:
    """(Field, Pointing, CCD) must be a CCD catalogue of the survey; the ID must have the scheme's
    digits and encode them."""
    import pyarrow.compute as pc

    fpc = [typed_out[typed(k)] for k in LAYOUT_COLUMNS]
    have = ~np.asarray(fpc[0].is_null()) & ~np.asarray(fpc[1].is_null()) & ~np.asarray(fpc[2].is_null())
    fld, pnt, ccd = (np.asarray(a.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64) for a in fpc)
    in_layout = np.zeros(n, bool)
    for f, ps in survey.pointings.items():
        in_layout |= (fld == f) & np.isin(pnt, list(ps))
    in_layout &= np.isin(ccd, list(survey.ccds))

    def where(rows):
        return ["/".join(str(int(v[r])) for v in (fld, pnt, ccd)) for r in rows]

    problems["bad_layout"].append((have & ~in_layout, lambda rows: [
        "/".join(LAYOUT_COLUMNS) + f" {w} not in the survey layout" for w in where(rows)]))
    base, kf, kp, kc = _id_coefficients(survey)
    id_typed = typed_out[typed(survey.id_column)]
    id_val = np.asarray(id_typed.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    id_raw = col[survey.id_column]
    id_digits = pc.fill_null(pc.match_substring_regex(
        pc.utf8_trim(id_raw, " "), f"^[0-9]{{{survey.id_digits}}}$"), False).to_numpy(zero_copy_only=False)
    serial = id_val - base - fld * kf - pnt * kp - ccd * kc
    id_ok = id_digits & ~np.asarray(id_typed.is_null()) & (serial >= 0) & (serial < kc)
    ids = parsed[survey.id_column]
    problems["bad_id"].append((have & ~ids.blank & ~id_ok, lambda rows: [
        f"{survey.id_column}={t} does not match the {survey.id_digits}-digit scheme for "
        + "/".join(LAYOUT_COLUMNS) + f" {w}" for t, w in zip(ids.text(rows), where(rows))]))


def _reasons(n: int, problems: dict, n_fields, expected):
    """reason (first failing check in REASONS order) and reason_detail (every problem)."""
    import pyarrow as pa

    wrong_count = np.asarray(n_fields.to_numpy(zero_copy_only=False) != expected.to_numpy(zero_copy_only=False))
    reason = np.full(n, None, dtype=object)
    reason[wrong_count] = "field_count"
    open_rows = ~wrong_count
    for code in REASONS:
        for mask, _ in problems[code]:
            hit = open_rows & mask
            if hit.any():
                reason[hit] = code
                open_rows &= ~hit
    detail = np.full(n, None, dtype=object)
    for r in np.flatnonzero(wrong_count):
        detail[r] = f"{n_fields[r].as_py()} fields, expected {expected[r].as_py()}"
    rejected = ~open_rows & ~wrong_count
    if rejected.any():
        parts: dict[int, list] = {}
        for code in REASONS:
            for mask, say in problems[code]:
                rows = np.flatnonzero(rejected & mask)
                if len(rows):
                    for r, m in zip(rows, say(rows)):
                        parts.setdefault(int(r), []).append(m)
        for r, ms in parts.items():
            detail[r] = "; ".join(ms)
    return pa.array(reason, type=pa.string()), pa.array(detail, type=pa.string())


# ---- duplicates and projections -----------------------------------------------------------------
_ARROW = {"bigint": "int64", "long": "int64", "int": "int32", "double": "float64", "string": "string", "tinyint": "int8"}


def canonical_arrow_schema(survey: Survey, thesis_clip: bool = False):
    """The catalogue's Arrow schema (`schema.canonical_fields`, + B_thesis columns if asked)."""
    import pyarrow as pa

    fields = [pa.field(f.name, pa.type_for_alias(_ARROW[f.dataType.simpleString()]), f.nullable)
              for f in S.canonical_fields(survey)]
    if thesis_clip:
        fields += [pa.field(thesis_column(b), pa.float64()) for b in survey.band_names]
    return pa.schema(fields)


def quarantine_columns(survey: Survey) -> list[str]:
    """Columns of the quarantine table, in order: reason, detail, then the raw frame's columns."""
    return [REASON, REASON_DETAIL] + R.raw_columns(survey)


def quarantine_arrow_schema(survey: Survey):
    """The quarantine's Arrow schema: line numbers and field counts as integers, the rest text."""
    import pyarrow as pa

    types = {R.LINE_NUMBER: pa.int64(), R.N_FIELDS: pa.int32(), R.EXPECTED_FIELDS: pa.int32()}
    return pa.schema([pa.field(c, types.get(c, pa.string())) for c in quarantine_columns(survey)])


def mark_duplicates(v, duplicate_ids: np.ndarray, survey: Survey):
    """Every copy of a duplicated ID gets the reason `duplicate_id` (a row already rejected keeps
    its reason; the duplicate is added to its detail). `duplicate_ids`: typed IDs."""

    idc = v.column(v.schema.get_field_index(typed(survey.id_column)))
    ids = idc.fill_null(-1).to_numpy(zero_copy_only=False)
    dup = np.isin(ids, duplicate_ids) & ~np.asarray(idc.is_null())
    return mark_rows(v, dup, "duplicate_id", lambda r: f"{survey.id_column}={ids[r]} occurs more than once")


def mark_rows(v, rows: np.ndarray, reason_name: str, message):
    """Rows of a validated batch selected by the mask `rows` get the reason `reason_name` (a row
    already rejected keeps its reason; `message(row)` is added to its detail)."""
    import pyarrow as pa

    if not rows.any():
        return v
    ri, di = v.schema.get_field_index(REASON), v.schema.get_field_index(REASON_DETAIL)
    reason = np.asarray(v.column(ri).to_pylist(), dtype=object)
    detail = np.asarray(v.column(di).to_pylist(), dtype=object)
    for r in np.flatnonzero(rows):
        msg = message(r)
        detail[r] = msg if reason[r] is None else f"{detail[r]}; {msg}"
        reason[r] = reason[r] or reason_name
    v = v.set_column(ri, REASON, pa.array(reason, pa.string()))
    return v.set_column(di, REASON_DETAIL, pa.array(detail, pa.string()))


def to_canonical(v, survey: Survey, thesis_clip: bool = False):
    """Good rows of a validated batch -> a table in `canonical_arrow_schema` (the thesis clip by
    `features.ThesisClip`, the rule the thesis feature set applies)."""
    import pyarrow as pa

    schema = canonical_arrow_schema(survey, thesis_clip)
    cols = {}
    for f in S.canonical_fields(survey):
        src = R.SOURCE_FILE if f.name == S.SOURCE_COLUMN else typed(f.name)
        cols[f.name] = v.column(v.schema.get_field_index(src)).cast(schema.field(f.name).type)
    if thesis_clip:
        clip = ThesisClip.from_survey(survey)
        for b in survey.band_names:
            cols[thesis_column(b)] = pa.array(clip.apply(cols[b].to_numpy(zero_copy_only=False),
                                                         cols[state_column(b)].to_numpy(zero_copy_only=False)))
    return pa.Table.from_arrays([cols[n] for n in schema.names], schema=schema)


def to_quarantine(v, survey: Survey):
    """Rejected rows: reason, detail, source file, line, raw line and every raw value read."""
    import pyarrow as pa

    schema = quarantine_arrow_schema(survey)
    return pa.Table.from_arrays([v.column(v.schema.get_field_index(c)) for c in schema.names], schema=schema)
