"""Batch estimation, pure pandas/NumPy: canonical catalogue rows → estimates, Monte Carlo
uncertainties and quality flags — what every Spark worker runs on each Arrow batch.

- `score_frame(ens, df, opts)`: passthrough columns + `ESTIMATES`, one row per input row, in
  input order. Without Monte Carlo it is exactly `Ensemble.predict(df)` (the same code path).
- Monte Carlo (`ScoreOptions.mc_samples = N`): every detected magnitude is redrawn N times from
  its catalogue error (`resample_photometry`) with counter-based normal deviates keyed by
  (object ID, sample, band, seed) (`mc_normal`), so any batching, partitioning or rerun gives the
  same draws; `mc_estimates` combines them with each network's own uncertainty.
- Quality flags (`FLAG_*`, a bitmask): not scorable, few detected bands, outside the training
  domain, star.
- `make_batch_scorer`: the iterator function for ``DataFrame.mapInPandas``; it rebuilds the
  broadcast ensemble once per Python worker (`worker_ensemble`).

Nothing here imports Spark, MLflow or TensorFlow: the Spark job is `galaxy_spark.estimate.job`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from galaxy_spark.features import MAX_ERROR, FeatureSpec, _band_arrays, build_features, splitmix64
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


def output_columns(id_column: str = "ID", detection_band: str = "F814W") -> list[str]:
    """The scores' columns in order: ID, `PASSTHROUGH`, the detection-band magnitude, `ESTIMATES`,
    `PROVENANCE`."""
    return [id_column, *PASSTHROUGH, detection_band, *ESTIMATES, *PROVENANCE]


def udf_schema(id_column: str, detection_band: str) -> str:
    """DDL of what the mapInPandas function yields (provenance is added by Spark afterwards)."""
    cols = [f"`{id_column}` bigint", "Field int", "Pointing int", "CCD int", "RA double", "Dec double",
            f"`{detection_band}` double"]
    for c in ESTIMATES:
        cols.append(f"{c} int" if c in ("star_class", "quality_flags") else f"{c} double")
    return ", ".join(cols)


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


def detected_band_count(df: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    """Per row, how many of the model's bands are detected with a finite magnitude (int32)."""
    n = np.zeros(len(df), dtype=np.int32)
    for b in spec.bands:
        mag, _, _, state = _band_arrays(df, spec, b)
        n += ((state == DETECTED) & np.isfinite(mag)).astype(np.int32)
    return n


def out_of_domain(ens: Ensemble, x: np.ndarray, ok: np.ndarray, sigma: float = DOMAIN_SIGMA) -> np.ndarray:
    """True where any standardised feature exceeds `sigma` for any network that normalises its
    inputs (default preset: the training mean/std live in the network). Networks without a
    normalisation (the thesis preset) have no recorded domain: never flagged."""
    bad = np.zeros(len(x), dtype=bool)
    for net in ens.networks.values():
        norm = net.stack.norm
        if norm is None:
            continue
        z = (x.astype(np.float64) - norm["mean"]) / norm["std"]
        bad |= (np.abs(z) > sigma).any(axis=1)
    return bad & ok


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


def resample_photometry(df: pd.DataFrame, spec: FeatureSpec, ids: np.ndarray, n: int, seed: int = 0) -> pd.DataFrame:
    """The rows of `df` (required columns) tiled `n` times (object-major), each detected magnitude
    redrawn as mag + err·N(0,1) (Gaussian in magnitude with the catalogue error, clipped to the
    feature builder's MAX_ERROR; a missing error → unchanged). Non-detections keep their limit and
    state; not-observed bands stay not observed — exactly what the feature builder saw in training."""
    rep = df[spec.required_columns()].iloc[np.repeat(np.arange(len(df)), n)].reset_index(drop=True)
    rid = np.repeat(np.asarray(ids, dtype=np.int64), n)
    sample = np.tile(np.arange(n, dtype=np.uint64), len(df))
    for j, b in enumerate(spec.bands):
        mag, err, _, state = _band_arrays(rep, spec, b)
        e = np.clip(np.nan_to_num(err, nan=0.0), 0.0, MAX_ERROR)
        det = (state == DETECTED) & np.isfinite(mag)
        rep[b] = np.where(det, mag + e * mc_normal(rid, sample, j, seed), mag)
    return rep


def mc_estimates(ens: Ensemble, df: pd.DataFrame, ids: np.ndarray, n: int, seed: int = 0,
                 chunk_rows: int = MC_CHUNK_ROWS) -> pd.DataFrame:
    """Estimates with photometric Monte Carlo (N samples per object), combined with each network's
    own uncertainty:

    - redshift (p(z) network): the N pdfs are averaged (the mixture = p(z) marginalised over the
      photometric errors); median, 68%/95% intervals, mode and odds are read from the mixture.
      (Regression network, thesis preset: the mean of the N samples, the residual-quantile interval
      half-widths added in quadrature to 1σ / 1.96σ of the samples.)
    - p_star: mean over samples; p_star_err: their standard deviation.
    - spectral type, stellar mass: mean over samples; *_err = validation NMAD ⊕ sample std.
    `ids` (int64, one per row of `df`) key the draws with `seed`; columns and units as in
    `ESTIMATES`; `chunk_rows` bounds rows × samples in memory at once. Unscorable rows come back
    NaN (the caller flags them).
    """
    spec = ens.feature_spec
    nets = ens.networks
    parts = []
    step = max(1, chunk_rows // max(n, 1))
    for s in range(0, len(df), step):
        sub = df.iloc[s:s + step]
        m = len(sub)
        rep = resample_photometry(sub, spec, ids[s:s + step], n, seed)
        x, _ = build_features(rep, spec)
        out = {}
        z = nets["redshift"]
        if z.kind == "pdf":
            p = z.raw(x).astype(np.float64).reshape(m, n, -1).mean(axis=1)
            out.update(read_pdf(z, p))
        else:
            zs = z.calibration.apply(z.raw(x)[:, 0]).reshape(m, n)
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
            v = net.calibration.apply(net.raw(x)[:, 0]).reshape(m, n)
            out[col] = v.mean(axis=1)
            out[f"{col}_err"] = np.hypot(net.scatter, v.std(axis=1))
        parts.append(pd.DataFrame(out))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in ESTIMATES})
    return pd.concat(parts, ignore_index=True)


def score_frame(ens: Ensemble, df: pd.DataFrame, opts: ScoreOptions = ScoreOptions()) -> pd.DataFrame:
    """Score canonical catalogue rows: ID, passthrough columns, the detection-band magnitude and
    `ESTIMATES` (units there), one row per input row in input order; unscorable rows keep their ID
    and get null estimates and `FLAG_NOT_SCORABLE`.

    Without Monte Carlo the estimates are exactly `Ensemble.predict(df)` (same code path)."""
    spec = ens.feature_spec
    x, ok = build_features(df, spec)
    if opts.mc_samples and opts.mc_samples > 0:
        est = mc_estimates(ens, df, df[opts.id_column].to_numpy(np.int64), opts.mc_samples, opts.mc_seed)
    else:
        est = ens.predict_features(x, ok).drop(columns=["is_star", "scorable"])
        est["p_star_err"] = np.nan
    est = est.reset_index(drop=True)
    est["z_phot_err"] = (est["z_phot_hi68"] - est["z_phot_lo68"]) / 2
    for c in ESTIMATES:
        if c not in est:
            est[c] = np.nan
    est.loc[~ok, [c for c in ESTIMATES if c not in ("star_class", "quality_flags")]] = np.nan
    star = np.where(ok, (est["p_star"].to_numpy() >= 0.5), False)
    flags = np.where(ok, 0, FLAG_NOT_SCORABLE)
    flags |= np.where(detected_band_count(df, spec) < opts.min_bands, FLAG_FEW_BANDS, 0)
    flags |= np.where(out_of_domain(ens, x, ok), FLAG_OUT_OF_DOMAIN, 0)
    flags |= np.where(star, FLAG_STAR, 0)
    est["star_class"] = pd.array(np.where(ok, star.astype(np.int32), 0), dtype="Int32")
    est.loc[~ok, "star_class"] = pd.NA
    est["quality_flags"] = flags.astype(np.int32)
    head = pd.DataFrame({
        opts.id_column: df[opts.id_column].to_numpy(np.int64),
        **{c: df[c].to_numpy() for c in PASSTHROUGH},
        spec.detection_band: pd.to_numeric(df[spec.detection_band], errors="coerce").to_numpy(np.float64),
    })
    for c in ("Field", "Pointing", "CCD"):
        head[c] = pd.to_numeric(head[c], errors="coerce").astype("Int32")
    for c in ("RA", "Dec"):
        head[c] = pd.to_numeric(head[c], errors="coerce").astype(np.float64)
    return pd.concat([head, est[list(ESTIMATES)].astype({c: np.float64 for c in ESTIMATES
                                                          if c not in ("star_class", "quality_flags")})],
                     axis=1)


# ---- per-worker cache of the broadcast ensemble ------------------------------------------------
_ENSEMBLES: dict[str, Ensemble] = {}


def worker_ensemble(key: str, parts_bc) -> Ensemble:
    """The Ensemble for model `key`, rebuilt from the broadcast once per Python worker process."""
    ens = _ENSEMBLES.get(key)
    if ens is None:
        doc, arrays = parts_bc.value
        ens = Ensemble.from_parts(doc, arrays)
        _ENSEMBLES.clear()           # one model per job: drop any previous job's
        _ENSEMBLES[key] = ens
    return ens


def make_batch_scorer(key: str, parts_bc, opts: ScoreOptions):
    """The iterator function for `DataFrame.mapInPandas`: pandas batches in, `score_frame` of each
    out. `key` names the model (the worker cache's key), `parts_bc` is a Spark broadcast of
    `Ensemble.to_parts()`."""
    def score_batches(batches):
        ens = worker_ensemble(key, parts_bc)
        for pdf in batches:
            yield score_frame(ens, pdf, opts)
    return score_batches
