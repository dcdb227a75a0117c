"""The one scoring kernel, pure NumPy: canonical catalogue rows → every estimate column of the head
table (model/heads.py), with input checks, Monte Carlo uncertainties and quality flags.

`estimate_columns(ens, cols, opts)` is what the Spark scores (`estimate.batch`, Arrow batches),
`Ensemble.predict` (the served model) and in-process scoring all run, so the served output equals
the batch scores column for column. Shipped inside the registered model (model/pyfunc.py).

- Inputs are checked per row against the survey's valid set, recorded in the model's feature spec
  (`invalid_inputs`): a band state other than detected / not detected / not observed, a magnitude,
  limit or error outside the survey's valid range (an undecoded sentinel such as 99 lands there).
  Such a row gets null estimates and `FLAG_INVALID_INPUT`, never a silent estimate.
- Monte Carlo (`ScoreOptions.mc_samples = N`): every detected magnitude is redrawn N times from
  its catalogue error (`resample_photometry`) with counter-based normal deviates keyed by
  (object ID, sample, band, seed) (`mc_normal`), so any batching, partitioning or rerun gives the
  same draws; the resampled rows go through the same head read-outs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from galaxy_spark.features import MAX_ERROR, FeatureSpec, _band_arrays, build_features, numeric, splitmix64
from galaxy_spark.model import heads as H
from galaxy_spark.survey import DETECTED, NOT_DETECTED, NOT_OBSERVED, lim_column, state_column

DEFAULT_MIN_BANDS = 5
DOMAIN_SIGMA = 6.0
MC_CHUNK_ROWS = 32768     # rows × samples evaluated at once in Monte Carlo mode (bounds memory)
VALID_STATES = (DETECTED, NOT_DETECTED, NOT_OBSERVED)


@dataclass(frozen=True)
class ScoreOptions:
    """mc_samples: Monte Carlo resamples per object (0: off); mc_seed: mixed with each object's
    ID; min_bands: flag `FLAG_FEW_BANDS` below this many detected bands; id_column: the survey's
    (keys the Monte Carlo draws)."""

    mc_samples: int = 0
    mc_seed: int = 0
    min_bands: int = DEFAULT_MIN_BANDS
    id_column: str = "ID"


def detected_band_count(cols, spec: FeatureSpec) -> np.ndarray:
    """Per row, how many of the model's bands are detected with a finite magnitude (int32)."""
    n = None
    for b in spec.bands:
        mag, _, _, state = _band_arrays(cols, spec, b)
        det = ((state == DETECTED) & np.isfinite(mag)).astype(np.int32)
        n = det if n is None else n + det
    return n


def invalid_inputs(cols, spec: FeatureSpec) -> dict[str, np.ndarray]:
    """Per input column, a boolean mask of the rows whose value lies outside the survey's valid
    set (only columns with at least one such row): a state (non-null) outside `VALID_STATES`; a
    detection's magnitude or error, or a non-detection's limit, outside the survey's valid ranges
    (`FeatureSpec.valid_magnitude_range` / `valid_error_range`; models saved without them check
    for the survey's raw sentinels instead)."""
    bad = {}
    mag_range, err_range = spec.valid_magnitude_range, spec.valid_error_range
    sentinels = np.asarray(spec.clip_sentinels, np.float64)

    def outside(v, rng):
        with np.errstate(invalid="ignore"):
            if len(rng) == 2:
                return np.isfinite(v) & ((v < rng[0]) | (v > rng[1]))
            return np.isin(v, sentinels) if sentinels.size else np.zeros(len(v), bool)

    for b in spec.bands:
        raw_state = numeric(cols[state_column(b)])
        state_ok = np.isnan(raw_state) | np.isin(raw_state, VALID_STATES)
        mag, err = numeric(cols[b]), numeric(cols[f"{spec.error_prefix}{b}"])
        lim = numeric(cols[lim_column(b)])
        checks = {state_column(b): ~state_ok,
                  b: (raw_state == DETECTED) & outside(mag, mag_range),
                  f"{spec.error_prefix}{b}": (raw_state == DETECTED) & outside(err, err_range),
                  lim_column(b): (raw_state == NOT_DETECTED) & outside(lim, mag_range)}
        bad.update({c: m for c, m in checks.items() if m.any()})
    return bad


def domain_bounds(ens, sigma: float = DOMAIN_SIGMA):
    """(lower, upper) per feature (float64), or (None, None) without normalised networks; cached
    on the ensemble."""
    key = ("_domain_bounds", sigma)
    cached = ens.__dict__.get(key)
    if cached is None:
        lo = hi = None
        for net in ens.networks.values():
            norm = net.stack.norm
            if norm is None:
                continue
            mean, std = np.asarray(norm["mean"], np.float64), np.asarray(norm["std"], np.float64)
            lo = mean - sigma * std if lo is None else np.maximum(lo, mean - sigma * std)
            hi = mean + sigma * std if hi is None else np.minimum(hi, mean + sigma * std)
        cached = ens.__dict__[key] = (lo, hi)
    return cached


def out_of_domain(ens, x: np.ndarray, ok: np.ndarray, sigma: float = DOMAIN_SIGMA) -> np.ndarray:
    """True where any standardised feature exceeds `sigma` for any network that normalises its
    inputs (default preset: the training mean/std live in the network). Networks without a
    normalisation (the thesis preset) have no recorded domain: never flagged.

    |x − mean| > sigma·std for some network ⇔ x lies outside the intersection of the networks'
    [mean − sigma·std, mean + sigma·std]: one comparison per feature instead of one per network."""
    lo, hi = domain_bounds(ens, sigma)
    if lo is None:
        return np.zeros(len(x), dtype=bool)
    return ((x < lo) | (x > hi)).any(axis=1) & ok


def mc_normal(ids: np.ndarray, sample: np.ndarray, band: int, seed: int = 0) -> np.ndarray:
    """Standard normal deviates that depend only on (object ID, sample index, band index, seed):
    counter-based (SplitMix64 + Box–Muller), so reruns, any batching and any partitioning give the
    same draws."""
    with np.errstate(over="ignore"):
        key = (np.asarray(ids, dtype=np.int64).astype(np.uint64) * np.uint64(0xD1342543DE82EF95)
               ^ (np.asarray(sample, dtype=np.uint64) * np.uint64(0x2545F4914F6CDD1D))
               ^ np.uint64((band + 1) * 0x9E3779B97F4A7C15 % (1 << 64))
               ^ np.uint64((seed * 0xBF58476D1CE4E5B9 + 0x632BE59BD9B4E019) % (1 << 64)))
        h1 = splitmix64(key)
        h2 = splitmix64(h1 ^ np.uint64(0x94D049BB133111EB))
    u1 = ((h1 >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)   # (0, 1)
    u2 = (h2 >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def resample_photometry(cols, spec: FeatureSpec, ids: np.ndarray, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The rows of `cols` (canonical columns: a DataFrame or a mapping) tiled `n` times
    (object-major) as a mapping of the required columns, each detected magnitude redrawn as
    mag + err·N(0,1) (Gaussian in magnitude with the catalogue error, clipped to the feature
    builder's MAX_ERROR; a missing error → unchanged). Non-detections keep their limit and state;
    not-observed bands stay not observed — exactly what the feature builder saw in training."""
    rep = {c: np.repeat(numeric(cols[c]), n) for c in spec.required_columns()}
    rid = np.repeat(np.asarray(ids, dtype=np.int64), n)
    sample = np.tile(np.arange(n, dtype=np.uint64), len(rid) // max(n, 1))
    for j, b in enumerate(spec.bands):
        mag, err, _, state = _band_arrays(rep, spec, b)
        e = np.clip(np.nan_to_num(err, nan=0.0), 0.0, MAX_ERROR)
        det = (state == DETECTED) & np.isfinite(mag)
        rep[b] = np.where(det, mag + e * mc_normal(rid, sample, j, seed), mag)
    return rep


def mc_estimates(ens, cols, ids: np.ndarray, n: int, seed: int = 0, chunk_rows: int = MC_CHUNK_ROWS) -> dict:
    """The fixed heads' columns with photometric Monte Carlo (N samples per object) through the
    heads' read-outs (`heads.read_heads` with samples = N: p(z) mixture, means, spreads combined
    with each network's own uncertainty). `chunk_rows` bounds rows × samples in memory at once.
    (Splitting the first layer into the object's part and the samples' perturbation was measured
    and dropped: no gain, the repeat and add cost what the skipped inputs saved.)"""
    spec = ens.feature_spec
    parts = []
    step = max(1, chunk_rows // max(n, 1))
    for s in range(0, max(len(ids), 1), step):       # once for no rows: the columns, empty
        sub = {c: numeric(cols[c])[s:s + step] for c in spec.required_columns()}
        x, _ = build_features(resample_photometry(sub, spec, ids[s:s + step], n, seed), spec)
        parts.append(H.read_heads(ens.networks, x, samples=n)[0])
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def estimate_columns(ens, cols, opts: ScoreOptions = ScoreOptions(), timer: dict | None = None) -> dict:
    """Every column of `heads.output_table` (the ensemble's) as arrays for canonical rows `cols`
    (a DataFrame or a mapping of column → array): float64 estimates (NaN where not scorable),
    int32 estimates (0 where not scorable; `scorable` masks them), ``quality_flags`` int32; plus
    ``scorable`` (bool) and ``invalid`` ({input column: row mask}, `invalid_inputs`). `timer`,
    when given, accumulates seconds spent in "features", "networks" and "flags"."""
    t0 = time.perf_counter()
    spec = ens.feature_spec
    x, ok = build_features(cols, spec)          # checks the columns first (one InputError naming them)
    invalid = invalid_inputs(cols, spec)
    bad = np.zeros(len(x), bool)
    for m in invalid.values():
        bad |= m
    scorable = ok & ~bad
    m_det = numeric(cols[spec.detection_band])
    t1 = time.perf_counter()
    if opts.mc_samples and opts.mc_samples > 0:
        est = mc_estimates(ens, cols, np.asarray(cols[opts.id_column], np.int64), opts.mc_samples, opts.mc_seed)
        # the SED of the measured photometry at the Monte Carlo z_phot (its spread: the p(z) of
        # the measured photometry)
        est.update(ens.sed_arrays(x, est["z_phot"], m_det))
    else:
        est, p = H.read_heads(ens.networks, x)
        est.update(ens.sed_arrays(x, est["z_phot"], m_det, p))
    t2 = time.perf_counter()
    out = {}
    for c in ens.output_table():
        if not c.estimate:
            continue
        v = est.get(c.name)
        if c.dtype == "int32":
            out[c.name] = np.where(scorable, np.zeros(len(x), np.int32) if v is None else v, 0).astype(np.int32)
        else:
            v = np.full(len(x), np.nan) if v is None else np.asarray(v, np.float64)
            out[c.name] = np.where(scorable, v, np.nan)
    flags = np.where(scorable, 0, H.FLAG_NOT_SCORABLE)
    flags |= np.where(bad, H.FLAG_INVALID_INPUT, 0)
    flags |= np.where(detected_band_count(cols, spec) < opts.min_bands, H.FLAG_FEW_BANDS, 0)
    flags |= np.where(out_of_domain(ens, x, scorable), H.FLAG_OUT_OF_DOMAIN, 0)
    flags |= np.where(scorable & (out[H.HEAD["stellarity"].column(2)] == 1), H.FLAG_STAR, 0)
    out[H.FLAGS.name] = flags.astype(np.int32)
    out["scorable"] = scorable
    out["invalid"] = invalid
    if timer is not None:
        t3 = time.perf_counter()
        for k, v in (("features", t1 - t0), ("networks", t2 - t1), ("flags", t3 - t2)):
            timer[k] = timer.get(k, 0.0) + v
    return out
