"""Batch estimation, pure NumPy: canonical catalogue rows → estimates, Monte Carlo uncertainties
and quality flags — what every Spark worker runs on each Arrow batch.

- `estimate_columns(ens, cols, opts)`: the one scoring path, on a mapping of column → array.
  Its two faces: `score_record_batch` (Arrow in, Arrow out: the Spark job, no pandas) and
  `score_frame` (pandas in and out: tests, in-process use). Without Monte Carlo the estimates are
  exactly `Ensemble.predict`'s (the same code path).
- Monte Carlo (`ScoreOptions.mc_samples = N`): every detected magnitude is redrawn N times from
  its catalogue error (`resample_photometry`) with counter-based normal deviates keyed by
  (object ID, sample, band, seed) (`mc_normal`), so any batching, partitioning or rerun gives the
  same draws; `mc_estimates` combines them with each network's own uncertainty.
- Quality flags (`FLAG_*`, a bitmask): not scorable, few detected bands, outside the training
  domain, star.
- `estimate.tasks` runs `score_record_batch` on Spark executors, Parquet file to Parquet file.

Nothing here imports Spark, MLflow or TensorFlow: the Spark job is `galaxy_spark.estimate.job`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from galaxy_spark.features import MAX_ERROR, FeatureSpec, _band_arrays, build_features, numeric, splitmix64
from galaxy_spark.model.ensemble import Ensemble, read_pdf
from galaxy_spark.survey import DETECTED

# ---- quality flags (bitmask; documented in docs/scoring.md) -------------------------------
FLAG_NOT_SCORABLE = 1     # no detection-band magnitude: every estimate is null
FLAG_FEW_BANDS = 2        # fewer than `min_bands` detected bands (detection band included)
FLAG_OUT_OF_DOMAIN = 4    # some |standardised feature| > DOMAIN_SIGMA for a network's training set
FLAG_STAR = 8             # star_class == 1: the galaxy estimates (z, type, mass) are not meaningful
QUALITY_FLAGS = {FLAG_NOT_SCORABLE: "not scorable (no detection-band magnitude)",
                 FLAG_FEW_BANDS: "fewer than min_bands detected bands",
                 FLAG_OUT_OF_DOMAIN: "inputs outside the training domain",
                 FLAG_STAR: "classified as a star"}
DEFAULT_MIN_BANDS = 5
DOMAIN_SIGMA = 6.0
MC_CHUNK_ROWS = 32768     # rows × samples evaluated at once in Monte Carlo mode (bounds memory)

PARTITION = "Field"       # catalogue and scores are partitioned by it (Parquet ``Field=N/``)
PASSTHROUGH = (PARTITION, "Pointing", "CCD", "RA", "Dec")   # + the survey's ID and detection band

# Estimate columns in output order, with units (the README table is generated from the same words).
ESTIMATES = {
    "z_phot": ("redshift", "median of p(z) (slope-corrected)"),
    "z_phot_lo68": ("redshift", "16th percentile of p(z)"),
    "z_phot_hi68": ("redshift", "84th percentile of p(z)"),
    "z_phot_lo95": ("redshift", "2.5th percentile of p(z)"),
    "z_phot_hi95": ("redshift", "97.5th percentile of p(z)"),
    "z_phot_mode": ("redshift", "mode of p(z)"),
    "z_phot_odds": ("probability", "P(|z − z_phot| < 0.02 (1 + z_phot))"),
    "z_phot_err": ("redshift", "(z_phot_hi68 − z_phot_lo68) / 2"),
    "p_star": ("probability", "probability that the object is a star"),
    "p_star_err": ("probability", "MC standard deviation of p_star (null without --mc-samples)"),
    "star_class": ("0/1", "1 when p_star >= 0.5"),
    "spectral_type": ("BPZ type 1–11", "spectral type (slope-corrected)"),
    "spectral_type_err": ("BPZ type", "1σ: validation NMAD, ⊕ MC spread with --mc-samples"),
    "log_stellar_mass": ("dex (log10 M*/M☉)", "stellar mass (slope-corrected)"),
    "log_stellar_mass_err": ("dex", "1σ: validation NMAD, ⊕ MC spread with --mc-samples"),
    "quality_flags": ("bitmask", "see QUALITY_FLAGS"),
}
PROVENANCE = ("model_name", "model_version", "model_run_id", "scored_at")


def sed_estimates(ens: Ensemble) -> list[str]:
    """The SED columns an ensemble scores (none without an SED network; model/sed.py)."""
    return list(ens.sed.columns()) if ens.sed is not None else []


def output_columns(id_column: str, detection_band: str, sed_columns=()) -> list[str]:
    """The scores' columns in order: ID, `PASSTHROUGH`, the detection-band magnitude, `ESTIMATES`,
    the ensemble's `sed_estimates`, `PROVENANCE`."""
    return [id_column, *PASSTHROUGH, detection_band, *ESTIMATES, *sed_columns, *PROVENANCE]


# =============================================================================================
# per-batch scoring
# =============================================================================================
@dataclass(frozen=True)
class ScoreOptions:
    """mc_samples: Monte Carlo resamples per object (0: off); mc_seed: mixed with each object's
    ID; min_bands: flag `FLAG_FEW_BANDS` below this many detected bands; id_column: the survey's."""

    mc_samples: int = 0
    mc_seed: int = 0
    min_bands: int = DEFAULT_MIN_BANDS
    id_column: str = "ID"


def columns_of(df) -> dict[str, np.ndarray]:
    """Canonical rows as a mapping of column name → array: a pandas DataFrame's columns, or a
    `pyarrow.RecordBatch`'s (float64/int arrays; null → NaN) without a pandas round-trip."""
    if isinstance(df, pd.DataFrame):
        return {c: df[c] for c in df.columns}
    return {name: col.to_numpy(zero_copy_only=False) for name, col in zip(df.schema.names, df.columns)}


def detected_band_count(cols, spec: FeatureSpec) -> np.ndarray:
    """Per row, how many of the model's bands are detected with a finite magnitude (int32)."""
    n = None
    for b in spec.bands:
        mag, _, _, state = _band_arrays(cols, spec, b)
        det = ((state == DETECTED) & np.isfinite(mag)).astype(np.int32)
        n = det if n is None else n + det
    return n


def out_of_domain(ens: Ensemble, x: np.ndarray, ok: np.ndarray, sigma: float = DOMAIN_SIGMA) -> np.ndarray:
    """True where any standardised feature exceeds `sigma` for any network that normalises its
    inputs (default preset: the training mean/std live in the network). Networks without a
    normalisation (the thesis preset) have no recorded domain: never flagged.

    |x − mean| > sigma·std for some network ⇔ x lies outside the intersection of the networks'
    [mean − sigma·std, mean + sigma·std]: one comparison per feature instead of one per network."""
    lo, hi = domain_bounds(ens, sigma)
    if lo is None:
        return np.zeros(len(x), dtype=bool)
    return ((x < lo) | (x > hi)).any(axis=1) & ok


def domain_bounds(ens: Ensemble, sigma: float = DOMAIN_SIGMA):
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


def mc_estimates(ens: Ensemble, cols, ids: np.ndarray, n: int, seed: int = 0,
                 chunk_rows: int = MC_CHUNK_ROWS) -> dict[str, np.ndarray]:
    """Estimates with photometric Monte Carlo (N samples per object), combined with each network's
    own uncertainty:

    - redshift (p(z) network): the N pdfs are averaged (the mixture = p(z) marginalised over the
      photometric errors); median, 68%/95% intervals, mode and odds are read from the mixture.
      (Regression network, thesis preset: the mean of the N samples, the residual-quantile interval
      half-widths added in quadrature to 1σ / 1.96σ of the samples.)
    - p_star: mean over samples; p_star_err: their standard deviation.
    - spectral type, stellar mass: mean over samples; *_err = validation NMAD ⊕ sample std.
    `cols`: canonical columns (DataFrame or mapping); `ids` (int64, one per row) key the draws with
    `seed`. All samples of a slice of objects go through each network in one pass; `chunk_rows`
    bounds rows × samples in memory at once. Unscorable rows come back NaN (the caller flags them).
    (Splitting the first layer into the object's part and the samples' perturbation was measured
    and dropped: no gain, the repeat and add cost what the skipped inputs saved.)
    """
    spec = ens.feature_spec
    nets = ens.networks
    total = len(ids)
    parts = []
    step = max(1, chunk_rows // max(n, 1))
    for s in range(0, total, step):
        sub = {c: numeric(cols[c])[s:s + step] for c in spec.required_columns()}
        m = min(step, total - s)
        x, _ = build_features(resample_photometry(sub, spec, ids[s:s + step], n, seed), spec)
        raw = {name: nets[name].raw(x) for name in ("redshift", "spectral_type", "stellar_mass")}
        out = {}
        z = nets["redshift"]
        if z.kind == "pdf":
            p = raw["redshift"].reshape(m, n, -1).mean(axis=1, dtype=np.float64)
            out.update(read_pdf(z, p))
        else:
            zs = z.calibration.apply(raw["redshift"][:, 0]).reshape(m, n)
            zp, sd = zs.mean(axis=1), zs.std(axis=1)
            rq = z.residual_quantiles
            out.update(z_phot=zp, z_phot_mode=zp, z_phot_odds=np.full(m, np.nan))
            for lo, hi, qlo, qhi, k in (("z_phot_lo68", "z_phot_hi68", "q16", "q84", 1.0),
                                        ("z_phot_lo95", "z_phot_hi95", "q02.5", "q97.5", 1.96)):
                dlo = -rq.get(qlo, np.nan) * (1 + zp)
                dhi = rq.get(qhi, np.nan) * (1 + zp)
                out[lo] = zp - np.hypot(dlo, k * sd)
                out[hi] = zp + np.hypot(dhi, k * sd)
        ps = nets["stellarity"].positive_probability(x).reshape(m, n)
        out["p_star"], out["p_star_err"] = ps.mean(axis=1), ps.std(axis=1)
        for name, col in (("spectral_type", "spectral_type"), ("stellar_mass", "log_stellar_mass")):
            net = nets[name]
            v = net.calibration.apply(raw[name][:, 0]).reshape(m, n)
            out[col] = v.mean(axis=1)
            out[f"{col}_err"] = np.hypot(net.scatter, v.std(axis=1))
        parts.append(out)
    if not parts:
        return {c: np.zeros(0) for c in ESTIMATES}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def estimate_columns(ens: Ensemble, cols, opts: ScoreOptions = ScoreOptions(), timer: dict | None = None) -> dict:
    """`ESTIMATES` as arrays for canonical rows `cols` (a DataFrame or a mapping of column →
    array): float64 estimates (NaN where not scorable), ``star_class`` int32 (0 where not
    scorable), ``quality_flags`` int32, and ``scorable`` (bool). `timer`, when given, accumulates
    seconds spent in "features", "networks" and "flags"."""
    t0 = time.perf_counter()
    spec = ens.feature_spec
    x, ok = build_features(cols, spec)
    m_det = numeric(cols[spec.detection_band])
    t1 = time.perf_counter()
    if opts.mc_samples and opts.mc_samples > 0:
        est = mc_estimates(ens, cols, np.asarray(cols[opts.id_column], np.int64), opts.mc_samples, opts.mc_seed)
        # the SED of the measured photometry at the Monte Carlo z_phot (its spread: the p(z) of
        # the measured photometry)
        est.update(ens.sed_arrays(x, est["z_phot"], m_det))
    else:
        est = ens.predict_arrays(x, m_det)
        est["p_star_err"] = np.full(len(x), np.nan)
    t2 = time.perf_counter()
    out = {}
    for c in [*ESTIMATES, *sed_estimates(ens)]:
        if c in ("star_class", "quality_flags"):
            continue
        v = est.get(c)
        v = np.full(len(x), np.nan) if v is None else np.asarray(v, np.float64)
        out[c] = np.where(ok, v, np.nan)
    out["z_phot_err"] = (out["z_phot_hi68"] - out["z_phot_lo68"]) / 2
    star = ok & (out["p_star"] >= 0.5)
    flags = np.where(ok, 0, FLAG_NOT_SCORABLE)
    flags |= np.where(detected_band_count(cols, spec) < opts.min_bands, FLAG_FEW_BANDS, 0)
    flags |= np.where(out_of_domain(ens, x, ok), FLAG_OUT_OF_DOMAIN, 0)
    flags |= np.where(star, FLAG_STAR, 0)
    out["star_class"] = star.astype(np.int32)
    out["quality_flags"] = flags.astype(np.int32)
    out["scorable"] = ok
    if timer is not None:
        t3 = time.perf_counter()
        for k, v in (("features", t1 - t0), ("networks", t2 - t1), ("flags", t3 - t2)):
            timer[k] = timer.get(k, 0.0) + v
    return out


def score_frame(ens: Ensemble, df: pd.DataFrame, opts: ScoreOptions = ScoreOptions()) -> pd.DataFrame:
    """Score canonical catalogue rows: ID, passthrough columns, the detection-band magnitude and
    `ESTIMATES` (units there), one row per input row in input order; unscorable rows keep their ID
    and get null estimates and `FLAG_NOT_SCORABLE`. The pandas face of `estimate_columns` (the
    Spark job scores Arrow batches with `score_record_batch`: same numbers)."""
    spec = ens.feature_spec
    est = estimate_columns(ens, df, opts)
    head = pd.DataFrame({
        opts.id_column: df[opts.id_column].to_numpy(np.int64),
        **{c: df[c].to_numpy() for c in PASSTHROUGH},
        spec.detection_band: numeric(df[spec.detection_band]),
    })
    for c in ("Field", "Pointing", "CCD"):
        head[c] = pd.to_numeric(head[c], errors="coerce").astype("Int32")
    for c in ("RA", "Dec"):
        head[c] = pd.to_numeric(head[c], errors="coerce").astype(np.float64)
    body = pd.DataFrame({c: est[c] for c in [*ESTIMATES, *sed_estimates(ens)]})
    body["star_class"] = pd.array(est["star_class"], dtype="Int32")
    body.loc[~est["scorable"], "star_class"] = pd.NA
    return pd.concat([head, body], axis=1)


def arrow_schema(id_column: str, detection_band: str, sed_columns=()):
    """What `score_record_batch` yields: `output_columns` without the provenance, as Arrow types."""
    import pyarrow as pa

    fields = [pa.field(id_column, pa.int64()), pa.field("Field", pa.int32()), pa.field("Pointing", pa.int32()),
              pa.field("CCD", pa.int32()), pa.field("RA", pa.float64()), pa.field("Dec", pa.float64()),
              pa.field(detection_band, pa.float64())]
    fields += [pa.field(c, pa.int32() if c in ("star_class", "quality_flags") else pa.float64()) for c in ESTIMATES]
    fields += [pa.field(c, pa.float64()) for c in sed_columns]
    return pa.schema(fields)


def score_record_batch(ens: Ensemble, batch, opts: ScoreOptions, timer: dict | None = None):
    """Score one `pyarrow.RecordBatch` of canonical rows into a RecordBatch of `arrow_schema`:
    Arrow → NumPy → estimates → Arrow, no pandas. Null estimates (and star_class) where a row is
    not scorable."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t0 = time.perf_counter()
    spec = ens.feature_spec
    cols = columns_of(batch)
    t1 = time.perf_counter()
    est = estimate_columns(ens, cols, opts, timer)
    t2 = time.perf_counter()
    schema = arrow_schema(opts.id_column, spec.detection_band, sed_estimates(ens))
    arrays = []
    for f in schema:
        if f.name in est:
            v = est[f.name]
            mask = ~est["scorable"] if f.name == "star_class" else (np.isnan(v) if v.dtype.kind == "f" else None)
            arrays.append(pa.array(v, type=f.type, mask=mask))
        else:
            col = batch.column(batch.schema.get_field_index(f.name))
            arrays.append(col if col.type == f.type else pc.cast(col, f.type, safe=False))
    out = pa.RecordBatch.from_arrays(arrays, schema=schema)
    if timer is not None:
        t3 = time.perf_counter()
        timer["arrow_in"] = timer.get("arrow_in", 0.0) + (t1 - t0)
        timer["arrow_out"] = timer.get("arrow_out", 0.0) + (t3 - t2)
    return out
