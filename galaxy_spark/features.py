"""The one feature builder, shared by training and scoring (no train/serve skew), plus targets
and the deterministic ID-hash split.

Inputs are canonical catalogue rows (see galaxy_spark/catalog/schema.py) as a pandas DataFrame.
Two feature sets:
- ``thesis``: the 24 magnitudes clipped the way the thesis did (`ThesisClip`: the survey file's
  sentinels.thesis_clip; for ALHAMBRA [0, 27], so not detected → 27, not observed → 0), no
  normalisation — to reproduce its numbers.
- ``default``: per band the colour against the detection band (the 1σ limit for a non-detection,
  0 when not observed), the magnitude error (1.0857, i.e. S/N = 1, for a non-detection), two state
  flags, plus the detection-band magnitude and error and a few morphology measurements.
  Normalisation happens inside the networks, so scoring needs no external scaler.
Nothing that is a target or derived from one is an input: no `stell` (the star/galaxy label comes
from it), no column of the survey file's `labels:` section (its star flag, template-fit redshift,
type, odds, mass, absolute magnitude, chi2, prior magnitude).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from galaxy_spark.errors import InputError
from galaxy_spark.survey import DETECTED, NOT_DETECTED, NOT_OBSERVED, Survey, lim_column, state_column

# Morphology columns used by the default features (log10 where the quantity spans decades).
MORPHOLOGY = {"fwhm": "log", "area": "log", "ell": "linear", "rk": "linear", "rf": "log", "s2n": "log"}
# Canonical columns a model must never see (the star/galaxy label comes from `stell`); every
# column of the survey file's `labels:` section is excluded as well (forbidden_inputs).
FORBIDDEN_INPUTS = {"stell"}


def forbidden_inputs(survey: Survey) -> set[str]:
    """Columns no feature may read: FORBIDDEN_INPUTS and the survey's label columns."""
    return set(FORBIDDEN_INPUTS) | {v for v in survey.labels.values() if isinstance(v, str)}
NONDETECTION_ERROR = 1.0857  # magnitude error at S/N = 1
MAX_ERROR = 2.0

SPLIT_TEST = (0.0, 0.2)          # fixed for every preset: models are compared on the same objects
SPLIT_VALIDATION_START = 0.2
SPLIT_TRAIN_START = 0.3
SELECTION_SPLIT = (0.2, 0.3)     # where champion/challenger comparisons are made


# ---- the thesis' magnitude clip ------------------------------------------------------------
@dataclass(frozen=True)
class ThesisClip:
    """The thesis' preprocessing of a magnitude: the value as the public catalogue writes it (a
    measured AB magnitude, or the survey's sentinel for "not detected" / "not observed") clipped
    to [low, high] (AB mag). Every number comes from the survey file's `sentinels:` section
    (thesis_clip, not_detected_magnitude, not_observed_magnitude); for ALHAMBRA a non-detection
    (99) becomes 27 and an unobserved band (−99) 0.

    The one definition of the rule, for both places that apply it: the thesis feature set and the
    optional `B_thesis` columns of the ingest (catalog.cleaning.to_canonical)."""
    low: float
    high: float
    not_detected: float     # raw magnitude the survey writes for a non-detection (before clipping)
    not_observed: float     # raw magnitude the survey writes for a band not observed

    @classmethod
    def from_survey(cls, survey: Survey) -> "ThesisClip":
        """The survey file's thesis clip and magnitude sentinels."""
        lo, hi = survey.thesis_clip
        s = survey.sentinels
        return cls(lo, hi, float(s["not_detected_magnitude"]), float(s["not_observed_magnitude"]))

    def apply(self, mag, state) -> np.ndarray:
        """Clipped magnitudes (float64) from decoded columns: `mag` (AB, NaN when not detected) and
        `state` (DETECTED / NOT_DETECTED / NOT_OBSERVED). A detected row without a finite magnitude
        counts as not observed."""
        mag, state = np.asarray(mag, np.float64), np.asarray(state)
        raw = np.where(state == DETECTED, mag, np.where(state == NOT_DETECTED, self.not_detected, self.not_observed))
        return np.clip(np.nan_to_num(raw, nan=self.not_observed), self.low, self.high)



@dataclass(frozen=True)
class FeatureSpec:
    """What a model's features are made of; saved with the model (ensemble.json), so scoring
    rebuilds the same features without the survey file."""
    kind: str                       # "thesis" | "default"
    survey: str
    bands: tuple[str, ...]
    detection_band: str
    error_prefix: str
    morphology: tuple[str, ...] = ()
    clip: tuple[float, float] = ()               # the thesis clip [low, high] (AB mag)
    names: tuple[str, ...] = field(default=())
    clip_sentinels: tuple[float, float] = ()     # raw not-detected, not-observed magnitudes it clips
    # the survey's valid ranges (sentinels.valid_*_range): the model checks its inputs against them
    valid_magnitude_range: tuple[float, float] = ()
    valid_error_range: tuple[float, float] = ()

    def to_dict(self) -> dict:
        """JSON-ready fields (ensemble.json)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        """The inverse of `to_dict`. Models saved before `clip_sentinels` was recorded get
        (high, low): their survey's sentinels lay outside the clip range (99 and −99 around
        [0, 27]), so they clipped to its ends — the same numbers."""
        d = dict(d)
        for k in ("bands", "morphology", "clip", "names", "clip_sentinels", "valid_magnitude_range", "valid_error_range"):
            d[k] = tuple(d.get(k, ()))
        if not d["clip_sentinels"] and len(d["clip"]) == 2:
            d["clip_sentinels"] = (d["clip"][1], d["clip"][0])
        return cls(**d)

    def thesis_clip(self) -> ThesisClip:
        """The thesis clip this spec was made with."""
        (lo, hi), (nd, no) = self.clip, self.clip_sentinels
        return ThesisClip(lo, hi, nd, no)

    def required_columns(self) -> list[str]:
        """Canonical catalogue columns the features are built from: per band magnitude, error,
        limit and state, then the morphology columns."""
        cols = []
        for b in self.bands:
            cols += [b, f"{self.error_prefix}{b}", lim_column(b), state_column(b)]
        return cols + list(self.morphology)


def make_feature_spec(kind: str, survey: Survey) -> FeatureSpec:
    """The feature set `kind` ('thesis' or 'default', see the module docstring) of `survey`."""
    bands = tuple(survey.band_names)
    tc = ThesisClip.from_survey(survey)
    clip = {"clip": (tc.low, tc.high), "clip_sentinels": (tc.not_detected, tc.not_observed),
            "valid_magnitude_range": tuple(map(float, survey.sentinels["valid_magnitude_range"])),
            "valid_error_range": tuple(map(float, survey.sentinels["valid_error_range"]))}
    if kind == "thesis":
        names = tuple(f"{b}_clipped" for b in bands)
        return FeatureSpec("thesis", survey.name, bands, survey.detection_band, survey.error_prefix,
                           names=names, **clip)
    if kind == "default":
        det = survey.detection_band
        others = [b for b in bands if b != det]
        names = [f"{det}_mag", f"{det}_err"]
        for b in others:
            names += [f"{b}-{det}", f"{b}_err", f"{b}_undetected", f"{b}_unobserved"]
        morph = tuple(m for m in MORPHOLOGY if m not in forbidden_inputs(survey))
        names += [f"{'log_' if MORPHOLOGY[m] == 'log' else ''}{m}" for m in morph]
        return FeatureSpec("default", survey.name, bands, det, survey.error_prefix,
                           morphology=morph, names=tuple(names), **clip)
    raise InputError(f"unknown feature set {kind!r}: expected 'thesis' or 'default'")


def numeric(values) -> np.ndarray:
    """A column as float64 (NaN for null or non-numeric): a pandas Series, or a NumPy array as
    Arrow batches give them (`estimate.batch` scores those without going through pandas)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return values.astype(np.float64, copy=False)
    if isinstance(values, pd.Series) and pd.api.types.is_numeric_dtype(values.dtype):
        return values.to_numpy(np.float64, na_value=np.nan)
    return np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float64)


def check_columns(df, spec: FeatureSpec) -> None:
    """InputError naming the columns `spec` needs that `df` (a DataFrame or a mapping of column
    name → array) lacks."""
    have = df.columns if isinstance(df, pd.DataFrame) else df.keys()
    missing = [c for c in spec.required_columns() if c not in have]
    if missing:
        raise InputError(f"catalogue lacks {len(missing)} column(s) the model needs: "
                         f"{', '.join(missing[:8])}{' …' if len(missing) > 8 else ''}")


def _band_arrays(df, spec: FeatureSpec, band: str):
    """(magnitude, error, limit, state) of one band as arrays; a state that claims a value the row
    lacks becomes NOT_OBSERVED."""
    mag = numeric(df[band])
    err = numeric(df[f"{spec.error_prefix}{band}"])
    lim = numeric(df[lim_column(band)])
    state = np.nan_to_num(numeric(df[state_column(band)]), nan=NOT_OBSERVED).astype(np.int8)
    # A state that claims a value the row lacks is treated as not observed.
    state = np.where((state == DETECTED) & ~np.isfinite(mag), NOT_OBSERVED, state)
    state = np.where((state == NOT_DETECTED) & ~np.isfinite(lim), NOT_OBSERVED, state)
    return mag, err, lim, state


def build_features(df, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 [n, len(spec.names)], scorable bool [n]) from canonical catalogue rows:
    a pandas DataFrame or a mapping of column name → array.

    A row is not scorable when its detection-band magnitude is missing; its features are zeros
    and the caller flags it (never drops it).
    """
    check_columns(df, spec)
    n = len(df) if isinstance(df, pd.DataFrame) else len(next(iter(df.values()), ()))
    if spec.kind == "thesis":
        clip = spec.thesis_clip()
        cols = []
        for b in spec.bands:
            mag, _, _, state = _band_arrays(df, spec, b)
            cols.append(clip.apply(mag, state))
        x = np.stack(cols, axis=1) if cols else np.zeros((n, 0))
        det_mag, _, _, det_state = _band_arrays(df, spec, spec.detection_band)
        ok = det_state == DETECTED
        return x.astype(np.float32), ok

    det_mag, det_err, _, det_state = _band_arrays(df, spec, spec.detection_band)
    ok = (det_state == DETECTED) & np.isfinite(det_mag)
    m0 = np.where(ok, det_mag, 0.0)
    cols = [m0, np.where(ok, np.clip(np.nan_to_num(det_err, nan=MAX_ERROR), 0, MAX_ERROR), 0.0)]
    for b in spec.bands:
        if b == spec.detection_band:
            continue
        mag, err, lim, state = _band_arrays(df, spec, b)
        value = np.where(state == DETECTED, mag, np.where(state == NOT_DETECTED, lim, np.nan))
        colour = np.where(np.isfinite(value) & ok, value - m0, 0.0)
        e = np.where(state == DETECTED, np.clip(np.nan_to_num(err, nan=MAX_ERROR), 0, MAX_ERROR),
                     np.where(state == NOT_DETECTED, NONDETECTION_ERROR, 0.0))
        cols += [colour, e, (state == NOT_DETECTED).astype(float), (state == NOT_OBSERVED).astype(float)]
    for m in spec.morphology:
        v = numeric(df[m])
        if MORPHOLOGY.get(m) == "log":
            v = np.log10(np.clip(v, 1e-3, None))
        cols.append(np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0))
    x = np.stack(cols, axis=1)
    x[~ok] = 0.0
    return x.astype(np.float32), ok


# ---- the mock's truth columns beyond each head's own (model/heads.py) --------------------------
# the mock's true SED: weights of the 5 kcorrect templates (sum 1) and Calzetti A_V; and the
# noiseless detection-band magnitude (what synthetic photometry is measured against)
TRUTH_SED_COLUMNS = tuple(f"sed_coeff{k}_true" for k in range(1, 6)) + ("av_true",)
TRUTH_DETECTION_MAG = "det_mag_true"
DEFAULT_STAR_THRESHOLD = 0.9  # stell >= threshold -> star (survey file: labels.star_threshold)


# ---- split ------------------------------------------------------------------------------
def splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser, uint64 → uint64: a fast, well-mixed hash that is the same on every
    machine and in every order (the test split and the Monte Carlo draws are functions of the ID)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def id_hash_unit(ids) -> np.ndarray:
    """Map int64 IDs to [0, 1) through SplitMix64 (53 bits): deterministic across runs, machines
    and orderings."""
    x = splitmix64(np.asarray(ids, dtype=np.int64).astype(np.uint64))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def in_test_split(ids) -> np.ndarray:
    """True for IDs in the held-out test split (id_hash_unit in SPLIT_TEST)."""
    u = id_hash_unit(ids)
    return (u >= SPLIT_TEST[0]) & (u < SPLIT_TEST[1])


def assign_split(ids, train: float, validation: float) -> np.ndarray:
    """'test' (first 20% of hash space, fixed for every preset), 'validation', 'train' or 'unused'."""
    max_val, max_train = round(SPLIT_TRAIN_START - SPLIT_VALIDATION_START, 9), round(1 - SPLIT_TRAIN_START, 9)
    if not (0 < validation <= max_val):
        raise InputError(f"validation fraction must be in (0, {max_val}], got {validation}")
    if not (0 < train <= max_train):
        raise InputError(f"train fraction must be in (0, {max_train}], got {train}")
    u = id_hash_unit(ids)
    out = np.full(u.shape, "unused", dtype=object)
    out[(u >= SPLIT_TEST[0]) & (u < SPLIT_TEST[1])] = "test"
    out[(u >= SPLIT_VALIDATION_START) & (u < SPLIT_VALIDATION_START + validation)] = "validation"
    out[(u >= SPLIT_TRAIN_START) & (u < SPLIT_TRAIN_START + train)] = "train"
    return out
