"""The spectroscopic sample: canonical columns, the mock's draw, a reader for users' files, the join.

A spectroscopic table has one row per object and the columns

- the survey's ID column (``survey.id_column``, int64): the catalogue object it belongs to;
- ``z_spec`` (float, >= 0): the spectroscopic redshift;
- ``spec_class`` (``galaxy`` | ``star``);
- ``z_spec_quality`` (int 1-4): 4 and 3 secure, 2 probable, 1 insecure.

Photo-z accuracy is measured against it, so nothing in a user's file is dropped silently: every
rejected row is counted by reason, and every spectrum without a catalogue object is counted.
How the mock draws its sample (fields, completeness curves, quality flags, wrong-redshift rates)
lives in the survey YAML's ``spectroscopy:`` section (`galaxy_spark.survey.Spectroscopy`).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_spark.errors import InputError

Z_SPEC = "z_spec"
SPEC_CLASS = "spec_class"
QUALITY = "z_spec_quality"
CLASSES = ("galaxy", "star")
QUALITIES = (1, 2, 3, 4)
SECURE_QUALITY = 3          # flags 3 and 4 are secure, 2 probable, 1 insecure
DEFAULT_CLASS = "galaxy"    # when a file has no spec_class column (or an empty cell)
DEFAULT_QUALITY = 4         # when a file has no z_spec_quality column (or an empty cell)

# Rejection reasons of read_spec, in the order they are checked (a row counts under its first one)
REASONS = ("id_unparsable", "duplicate_id", "z_spec_not_numeric", "z_spec_not_finite", "z_spec_negative",
           "unknown_spec_class", "quality_out_of_range")

_INT_RE = re.compile(r"^[+-]?\d{1,18}$")


def spec_columns(survey) -> list[str]:
    """The canonical column order: ID, z_spec, spec_class, z_spec_quality."""
    return [survey.id_column, Z_SPEC, SPEC_CLASS, QUALITY]


def secure(quality, min_quality: int = SECURE_QUALITY) -> np.ndarray:
    """Boolean mask of spectra with z_spec_quality >= min_quality (default: the secure flags 3-4).

    Missing spectra (quality 0 from `join_spec`) are never secure."""
    if min_quality not in QUALITIES:
        raise ValueError(f"min_quality must be one of {QUALITIES}, got {min_quality!r}")
    return np.asarray(quality) >= min_quality


# ---- the mock's draw ---------------------------------------------------------------------------
def _logistic(mag: np.ndarray, src) -> np.ndarray:
    return src.fraction / (1.0 + np.exp(np.clip((mag - src.mag_50) / src.mag_width, -50, 50)))


def spec_probability(mag: np.ndarray, field: np.ndarray, is_star: np.ndarray, survey) -> np.ndarray:
    """P(object has a spectrum) from its detection-band magnitude (AB), field and star flag.

    Union of the deep survey overlapping its field (if any) and the shallow all-field survey; zero
    for magnitudes outside the survey's valid range (the 99 / -99 sentinels)."""
    cfg = survey.spec_config()
    mag = np.asarray(mag, float)
    field = np.asarray(field)
    lo, hi = survey.sentinels["valid_magnitude_range"]
    ok = np.isfinite(mag) & (mag > lo) & (mag < hi)
    m = np.where(ok, mag, hi)
    p_deep = np.zeros(len(m))
    for f, src in cfg.deep_fields.items():
        sel = field == f
        p_deep[sel] = _logistic(m[sel], src)
    p = 1 - (1 - p_deep) * (1 - _logistic(m, cfg.shallow))
    p *= np.where(np.asarray(is_star).astype(bool), cfg.star_factor, 1.0)
    return np.where(ok, p, 0.0)


def quality_probabilities(mag: np.ndarray, survey) -> np.ndarray:
    """(n, 4) probabilities of z_spec_quality 1..4 at detection-band magnitudes `mag`."""
    cfg = survey.spec_config()
    p = np.column_stack([np.interp(mag, cfg.quality_mags, cfg.quality_fractions[q]) for q in QUALITIES])
    return p / p.sum(axis=1, keepdims=True)


def draw_spec_sample(table: dict, survey, rng: np.random.Generator) -> pd.DataFrame:
    """Draw the mock's spectroscopic subsample of the objects in `table` (a mock column dict).

    `table` needs the survey's ID column, ``Field``, the detection band, ``z_true`` and ``is_star``.
    Selection follows `spec_probability`; quality flags follow `quality_probabilities`; a share
    ``wrong_rate[flag]`` of the galaxies get a catastrophically wrong redshift (a line confusion
    when it lands inside ``uniform_range``, else uniform in it), the others z_true + N(0, z_error
    (1 + z)); stars get |N(0, z_error)|. Every random array has a size fixed by the input, so the
    result depends only on the table and the rng state. Returns the canonical columns sorted by ID."""
    cfg = survey.spec_config()
    ids = np.asarray(table[survey.id_column], np.int64)
    mag = np.asarray(table[survey.detection_band], float)
    star = np.asarray(table["is_star"]).astype(bool)
    z_true = np.asarray(table["z_true"], float)
    p = spec_probability(mag, table["Field"], star, survey)
    sel = np.flatnonzero(rng.random(len(ids)) < p)
    n = len(sel)
    mag, star, z = mag[sel], star[sel], z_true[sel]
    # quality: inverse-CDF draw from the magnitude-dependent fractions
    cdf = np.cumsum(quality_probabilities(mag, survey), axis=1)
    quality = np.asarray(QUALITIES)[np.minimum((rng.random(n)[:, None] > cdf).sum(axis=1), 3)]
    # redshifts
    noise = rng.normal(0.0, cfg.z_error, n)
    z_spec = np.where(star, np.abs(noise), np.abs(z + noise * (1 + z)))
    wrong = ~star & (rng.random(n) < np.array([cfg.wrong_rate[q] for q in QUALITIES])[quality - 1])
    pairs = np.asarray(cfg.line_pairs_aa, float).reshape(-1, 2)
    k = rng.integers(0, len(pairs), n)
    z_line = (1 + z) * pairs[k, 0] / pairs[k, 1] - 1
    lo, hi = cfg.uniform_range
    z_uni = rng.uniform(lo, hi, n)
    use_line = (rng.random(n) < cfg.line_confusion) & (z_line >= 0) & (z_line <= hi)
    z_spec = np.where(wrong, np.where(use_line, z_line, z_uni), z_spec)
    out = pd.DataFrame({survey.id_column: ids[sel], Z_SPEC: z_spec,
                        SPEC_CLASS: np.where(star, "star", "galaxy").astype(object),
                        QUALITY: quality.astype(np.int64)})
    return out.sort_values(survey.id_column, kind="stable").reset_index(drop=True)


# ---- reading a user's file ---------------------------------------------------------------------
def _read_frame(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    try:
        if path.is_dir() or name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if name.endswith((".csv", ".csv.gz")):
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                               skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputError(f"spectroscopic file {path}: is empty (no header line)") from None
    except Exception as e:  # OSError, a CSV parser error, pyarrow's errors on a corrupt Parquet file
        raise InputError(f"spectroscopic file {path}: cannot read: {e}") from None
    raise InputError(f"spectroscopic file {path}: unknown format; expected .csv, .parquet or a directory of Parquet")


def _as_str(col: pd.Series) -> pd.Series:
    """Strings, stripped; missing values -> ''."""
    return col.astype(object).where(col.notna(), "").astype(str).str.strip()


def _parse_ids(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(int64 ids, ok mask): integers, or integral floats from a Parquet float column."""
    if pd.api.types.is_integer_dtype(col.dtype):
        ok = col.notna().to_numpy()
        return col.fillna(0).to_numpy(np.int64), ok
    if pd.api.types.is_float_dtype(col.dtype):
        v = col.to_numpy(float)
        ok = np.isfinite(v) & (v == np.round(v)) & (np.abs(v) < 2.0 ** 53)
        return np.where(ok, v, 0).astype(np.int64), ok
    s = _as_str(col)
    ok = s.str.match(_INT_RE).to_numpy(bool)
    ids = np.zeros(len(s), np.int64)
    ids[ok] = s[ok].astype(np.int64).to_numpy()
    return ids, ok


def read_spec(path, survey) -> tuple[pd.DataFrame, dict]:
    """Read a user's spectroscopic file (CSV, Parquet, or a directory of Parquet) into canonical form.

    Columns are matched case-insensitively (a UTF-8 BOM is tolerated): the survey's ID column and
    ``z_spec`` are required; ``spec_class`` (default galaxy) and ``z_spec_quality`` (default 4) are
    optional, and an empty cell takes the default. Bad rows are removed and counted per reason
    (`REASONS`; a row counts under its first failing check); every copy of a duplicated ID is
    removed as ``duplicate_id``. Returns (frame sorted by ID, report) with report
    ``{"path", "rows_read", "rows_valid", "rejected": {reason: count}}``; rows_read = rows_valid +
    the rejected counts. Raises InputError for a missing/unreadable file or a missing column."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"spectroscopic file not found: {path}")
    raw = _read_frame(p)
    names = {}
    for c in raw.columns:
        key = str(c).lstrip("\ufeff").strip().lower()
        if key in names:
            raise InputError(f"spectroscopic file {path}: columns {names[key]!r} and {c!r} clash (case-insensitively)")
        names[key] = c
    for req in (survey.id_column, Z_SPEC):
        if req.lower() not in names:
            raise InputError(f"spectroscopic file {path}: missing required column {req!r} "
                             f"(columns: {', '.join(map(str, raw.columns))})")
    n = len(raw)
    ids, id_ok = _parse_ids(raw[names[survey.id_column.lower()]])
    zcol = raw[names[Z_SPEC]]
    if pd.api.types.is_numeric_dtype(zcol.dtype) and not pd.api.types.is_bool_dtype(zcol.dtype):
        z, z_num = zcol.to_numpy(float, na_value=np.nan), np.ones(n, bool)     # NaN/null: not finite
    else:
        zs = _as_str(zcol)
        z = pd.to_numeric(zs, errors="coerce").to_numpy(float)
        z_num = ~np.isnan(z) | zs.str.lower().isin(["nan", "+nan", "-nan"]).to_numpy()
    if SPEC_CLASS in names:
        cls = _as_str(raw[names[SPEC_CLASS]]).str.lower().replace("", DEFAULT_CLASS).to_numpy(object)
    else:
        cls = np.full(n, DEFAULT_CLASS, dtype=object)
    if QUALITY in names:
        qcol = raw[names[QUALITY]]
        qs = _as_str(qcol)
        qv = pd.to_numeric(qs.where(qs != "", str(DEFAULT_QUALITY)), errors="coerce").to_numpy(float)
    else:
        qv = np.full(n, float(DEFAULT_QUALITY))
    q_ok = np.isin(qv, QUALITIES)
    dup = np.zeros(n, bool)
    dup[id_ok] = pd.Series(ids[id_ok]).duplicated(keep=False).to_numpy()
    checks = [("id_unparsable", ~id_ok), ("duplicate_id", dup), ("z_spec_not_numeric", ~z_num),
              ("z_spec_not_finite", ~np.isfinite(z)), ("z_spec_negative", z < 0),
              ("unknown_spec_class", ~np.isin(cls, CLASSES)), ("quality_out_of_range", ~q_ok)]
    bad = np.zeros(n, bool)
    rejected = {}
    for reason, mask in checks:
        new = mask & ~bad
        if new.any():
            rejected[reason] = int(new.sum())
        bad |= new
    keep = ~bad
    out = pd.DataFrame({survey.id_column: ids[keep], Z_SPEC: z[keep], SPEC_CLASS: cls[keep],
                        QUALITY: qv[keep].astype(np.int64)})
    out = out.sort_values(survey.id_column, kind="stable").reset_index(drop=True)
    return out, {"path": str(path), "rows_read": n, "rows_valid": len(out), "rejected": rejected}


# ---- joining to a catalogue ------------------------------------------------------------------
def join_spec(ids, spec: pd.DataFrame, id_column: str | None = None) -> tuple[dict, dict]:
    """Align a spectroscopic table to catalogue IDs (vectorised; fast for the full 446k catalogue).

    `ids`: the catalogue's int64 IDs, in catalogue order. `spec`: a canonical table (from
    `read_spec` or `draw_spec_sample`) with unique IDs; its ID column is `id_column`, by default
    its first column. Returns (arrays, report): arrays aligned with `ids` --
    ``z_spec`` (NaN where no spectrum), ``spec_class`` (None where none), ``z_spec_quality``
    (0 where none) -- and report ``{"catalogue_rows", "spec_rows", "matched", "not_in_catalogue",
    "not_in_catalogue_examples"}`` with matched + not_in_catalogue = spec_rows: spectra whose ID
    is not in the catalogue are counted (up to five shown), never dropped silently."""
    col = spec.columns[0] if id_column is None else id_column
    sid = spec[col].to_numpy(np.int64)
    index = pd.Index(sid)
    if not index.is_unique:
        raise InputError(f"spectroscopic table has duplicate {col} values; read it with read_spec")
    cat = np.asarray(ids, np.int64)
    pos = index.get_indexer(cat)
    has = pos >= 0
    z = np.full(len(cat), np.nan)
    z[has] = spec[Z_SPEC].to_numpy(float)[pos[has]]
    cls = np.full(len(cat), None, dtype=object)
    cls[has] = spec[SPEC_CLASS].to_numpy(object)[pos[has]]
    q = np.zeros(len(cat), np.int64)
    q[has] = spec[QUALITY].to_numpy(np.int64)[pos[has]]
    missing = ~np.isin(sid, cat)
    report = {"catalogue_rows": int(len(cat)), "spec_rows": int(len(sid)), "matched": int((~missing).sum()),
              "not_in_catalogue": int(missing.sum()),
              "not_in_catalogue_examples": [int(x) for x in sid[missing][:5]]}
    return {Z_SPEC: z, SPEC_CLASS: cls, QUALITY: q}, report
