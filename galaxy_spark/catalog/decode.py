"""Reading a raw text value the way Spark/Java does (`Parsed`: blank, parsed, the number) and the
survey's band conventions: a magnitude/error pair (+ a VizieR limit flag) decoded into magnitude,
error, 1σ limit and state, with the rows that break the convention. Pure NumPy/pyarrow on Arrow
arrays, for `catalog.cleaning`.
"""
from __future__ import annotations

import numpy as np

from galaxy_spark.survey import DETECTED, NOT_DETECTED, NOT_OBSERVED, Survey

_JAVA_WS = "".join(map(chr, range(0x21)))      # what Java's String.trim removes (chars <= ' ')
# Numbers as Java's Double.parseDouble reads them (decimal forms; an f/d suffix is allowed),
# plus Spark's special literals inf/infinity/nan in any case.
_NUMBER_RE = r"^[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[fFdD]?|NaN|Infinity)$"
_SPECIAL_RE = r"^([+-]?inf(inity)?|nan)$"


def blank(arr):
    """Null or only spaces (SQL trim() = '')."""
    import pyarrow.compute as pc

    return pc.fill_null(pc.equal(pc.utf8_trim(arr, " "), ""), True).to_numpy(zero_copy_only=False)


class Parsed:
    """One raw string column: its text, blank mask, parsed doubles (NaN where unreadable) and
    the mask of values that parsed."""

    def __init__(self, arr, fast: bool = True):
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        self.raw = arr
        value = None
        if fast:    # a column of plain numbers (and nulls) casts in one call
            try:
                value = pc.cast(arr, pa.float64())
            except pa.ArrowInvalid:
                pass
        if value is not None:
            self.blank = np.asarray(arr.is_null())
            self.ok = ~self.blank
            self.value = value.to_numpy(zero_copy_only=False).copy()    # writable: odd rows are redone
            odd = self.ok & ~np.isfinite(self.value)
            if not odd.any():
                return
            # NaN/inf spellings differ between Arrow and Java/Spark ("-nan"): those rows the slow way
            slow = Parsed(arr.filter(pa.array(odd)), fast=False)
            self.ok[odd], self.value[odd] = slow.ok, slow.value
            return
        self.blank = blank(arr)
        t = pc.utf8_trim(arr, _JAVA_WS)
        number = pc.fill_null(pc.match_substring_regex(t, _NUMBER_RE), False)
        special = pc.fill_null(pc.match_substring_regex(t, _SPECIAL_RE, ignore_case=True), False)
        ok = pc.or_(number, special)
        # Arrow's parser takes neither Java's f/d suffix (but "inf" keeps its f) nor a leading +
        t = pc.if_else(pc.and_not(number, special), pc.replace_substring_regex(t, r"[fFdD]$", ""), t)
        text = pc.if_else(ok, pc.replace_substring_regex(t, r"^\+", ""), pa.scalar(None, pa.string()))
        self.ok = ok.to_numpy(zero_copy_only=False)
        self.value = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
        self.value = np.where(self.ok, self.value, np.nan)

    def text(self, rows) -> list:
        """The raw strings of `rows` (indices), as the file had them ('null' for no value)."""
        return ["null" if v is None else v for v in self.raw.take(rows).to_pylist()]


def _outside(p: Parsed, lo: float, hi: float):
    """Rows whose value parsed and is not inside [lo, hi] (NaN is outside, as in SQL)."""

    with np.errstate(invalid="ignore"):
        return p.ok & ~((p.value >= lo) & (p.value <= hi))


def _first(n: int, checks: list, band: str):
    """The first applicable (mask, message(rows)) of `checks` per row, as one bad_magnitude check."""

    which = np.full(n, -1)
    for i, (mask, _) in enumerate(checks):
        which[(which < 0) & mask] = i

    def say(rows):
        return [checks[which[r]][1](r) for r in rows]

    return which >= 0, say


def decode_sentinel(m: Parsed, e: Parsed, flag, survey: Survey, band: str):
    """ColorPro/BPZ pair (public ASCII, CSV): 99 -> not detected with the 1-sigma limit in the error
    column; -99 -> not observed, error must be 0; anything else a detection with the magnitude in
    valid_magnitude_range and the error in valid_error_range.
    Returns (mag, err, lim) as (values, present) pairs, state, and the bad_magnitude check."""

    s = survey.sentinels
    nd_v, no_v, noe = (float(s["not_detected_magnitude"]), float(s["not_observed_magnitude"]),
                       float(s["not_observed_error"]))
    lo, hi = map(float, s["valid_magnitude_range"])
    elo, ehi = map(float, s["valid_error_range"])
    de = survey.error_column(band)
    nd, no = m.ok & (m.value == nd_v), m.ok & (m.value == no_v)
    state = np.where(nd, NOT_DETECTED, np.where(no, NOT_OBSERVED, DETECTED)).astype(np.int8)
    plain = m.ok & ~nd & ~no
    et, mt = e.text, m.text
    checks = [
        (nd & _outside(e, lo, hi), lambda r: f"{band}={nd_v:g} with limit {de}={et([r])[0]} outside [{lo:g}, {hi:g}]"),
        (no & e.ok & (e.value != noe), lambda r: f"{band}={no_v:g} (not observed) with {de}={et([r])[0]}, "
                                                 f"expected {noe:g}"),
        (plain & _outside(m, lo, hi), lambda r: f"{band}={mt([r])[0]} outside [{lo:g}, {hi:g}] and not a sentinel"),
        (plain & _outside(e, elo, ehi), lambda r: f"{de}={et([r])[0]} outside [{elo:g}, {ehi:g}]"),
    ]
    # a magnitude that did not parse leaves the error as it is (the row is rejected anyway)
    sentinel = nd | no
    return ((m.value, m.ok & ~sentinel), (e.value, e.ok & ~sentinel), (e.value, nd & e.ok), state,
            _first(len(state), checks, band))


def decode_vizier(m: Parsed, e: Parsed, flag, survey: Survey, band: str):
    """VizieR pair: flag '<' -> not detected with the limit in the magnitude column and an empty
    error; magnitude and error both empty -> not observed; else a detection (range-checked).
    A band without a limit-flag column (the detection band) is never "not detected"."""
    import pyarrow.compute as pc

    s = survey.sentinels
    lo, hi = map(float, s["valid_magnitude_range"])
    elo, ehi = map(float, s["valid_error_range"])
    de = survey.error_column(band)
    n = len(m.blank)
    mb, eb = m.blank, e.blank
    checks = []
    if flag is not None:
        fl = pc.fill_null(pc.utf8_trim(flag, " "), "")
        flt = fl.to_numpy(zero_copy_only=False)
        limited, unflagged = flt == "<", flt == ""
        checks += [
            (~unflagged & ~limited, lambda r: f"{band}: unknown limit flag {flt[r]}"),
            (limited & mb, lambda r: f"{band}: limit flag without a limit"),
            (limited & ~eb, lambda r: f"{band}: limit flag with an error {de}={e.text([r])[0]}"),
            (limited & _outside(m, lo, hi), lambda r: f"{band}: limit {m.text([r])[0]} outside [{lo:g}, {hi:g}]"),
        ]
    else:
        limited, unflagged = np.zeros(n, bool), np.ones(n, bool)
    checks += [
        (unflagged & mb & ~eb, lambda r: f"{band}: error without a magnitude"),
        (unflagged & ~mb & eb, lambda r: f"{band}: magnitude without an error"),
        (unflagged & ~mb & _outside(m, lo, hi), lambda r: f"{band}={m.text([r])[0]} outside [{lo:g}, {hi:g}]"),
        (unflagged & ~eb & _outside(e, elo, ehi), lambda r: f"{de}={e.text([r])[0]} outside [{elo:g}, {ehi:g}]"),
    ]
    state = np.where(limited, NOT_DETECTED, np.where(mb & eb, NOT_OBSERVED, DETECTED)).astype(np.int8)
    detected = state == DETECTED
    return ((m.value, m.ok & detected), (e.value, e.ok & detected), (m.value, m.ok & limited), state,
            _first(n, checks, band))
