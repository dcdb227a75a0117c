"""How redshift accuracy grows with the number of bands: one simulated population observed through
several survey files, on the same objects.

The mock draws galaxies once (redshift, luminosity, SED mixture, dust, size: `mock.population`,
seed → same objects) and observes them through each survey: its response curves give the noiseless
fluxes, its noise depths the errors, its detection band and S/N cut the detections, its labeller the
template-fit redshift the survey would publish (BPZ with the mock's templates: `mock.labels`). Per
survey a redshift network of the preset (p(z) output, photometric features only) is trained on the
true redshifts of the ID-hash training split of its own detected galaxies — a simulation-only
measure of what the bands carry, not the pipeline's label policy — and three estimators are scored
against the truth on the test-split galaxies every survey detects: the network, the survey's own
template fit (its catalogue labels) and the evaluation's BPZ baseline (desc-bpz CWW+Kinney
templates, HDF-N prior: `evaluate.baseline.run_bpz`), the template fitting a user would run. Morphology is left out so only the
photometry differs. Stars are not drawn: this compares redshifts of galaxies.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd

from galaxy_spark import metrics as M
from galaxy_spark.evaluate.baseline import run_bpz
from galaxy_spark.features import assign_split, build_features, make_feature_spec
from galaxy_spark.log import get_logger
from galaxy_spark.mock import photometry as ph
from galaxy_spark.mock.columns import isophotal_area, object_sizes
from galaxy_spark.mock.core import context
from galaxy_spark.mock.population import GalaxyModel
from galaxy_spark.survey import DETECTED, NOT_DETECTED, NOT_OBSERVED, Survey, lim_column, state_column
from galaxy_spark.train.fit import fit_network, numpy_network, point_prediction

log = get_logger(__name__)
ESTIMATORS = ("network", "template_fit", "bpz")
BAND_STUDY_MAG_BINS = (14.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0)     # AB, the reference detection band


def draw_population(reference: Survey, n: int, seed: int, depth_limit: float):
    """n candidate galaxies to `depth_limit` (AB, `reference`'s detection band), with one isophotal
    area each (the aperture every survey measures them in)."""
    pop = GalaxyModel(reference, det_limit=depth_limit)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    gal = pop.draw(rng, n)
    _, sig_maj, sig_min = object_sizes(gal.r_e_arcsec, gal.q)
    area = isophotal_area(rng, ph.maggies_to_mag(gal.maggies[:, pop.det_index]), np.sqrt(sig_maj * sig_min),
                          np.zeros(n, bool))
    return pop, gal, area


def observe(survey: Survey, pop: GalaxyModel, gal, area: np.ndarray, seed: int) -> dict:
    """The population through `survey`: the detection mask, the catalogue photometry (magnitudes,
    errors, detected/observed masks, with the survey's sentinels) and the canonical columns the
    features read."""
    ctx = context(survey)
    rng = np.random.default_rng(np.random.SeedSequence([seed, len(survey.band_names)]).spawn(1)[0])
    f_true = ctx.gal.grid.observed(gal.coeffs, gal.z, gal.av) * (10 ** (-0.4 * pop.cosmo.distmod(gal.z)))[:, None]
    ap = ph.aperture_factor(area)
    f_obs, sig = ph.observe(rng, f_true, ctx.m5_noise, ap)
    s2n = ph.detection_snr(rng, f_obs[:, ctx.det], sig[:, ctx.det])
    found = s2n > ctx.min_snr
    observed = np.ones(f_obs.shape, bool)
    mag, err, det = ph.to_catalogue(f_obs, sig, ctx.m5, observed, ctx.nd_mag, ctx.no_mag, ctx.no_err)
    det[:, ctx.det] &= found
    cols = {}
    for k, b in enumerate(ctx.bands):
        state = np.where(det[:, k], DETECTED, np.where(observed[:, k], NOT_DETECTED, NOT_OBSERVED))
        cols[b] = np.where(det[:, k], mag[:, k], np.nan)
        cols[f"{survey.error_prefix}{b}"] = np.where(det[:, k], err[:, k], np.nan)
        cols[lim_column(b)] = np.where(state == NOT_DETECTED, err[:, k], np.nan)
        cols[state_column(b)] = state
    return {"found": found, "photometry": (mag, err, det, observed), "columns": pd.DataFrame(cols)}


def template_fit_redshift(survey: Survey, photometry: tuple, rows: np.ndarray) -> np.ndarray:
    """The survey's own template-fit redshift (its catalogue label, `mock.labels`) of the objects
    `rows` (boolean mask); NaN elsewhere. Each object is fitted on its own, so fitting only the
    objects that are scored gives them the labels a whole catalogue would."""
    ctx = context(survey)
    mag, err, det, observed = photometry
    z = np.full(rows.size, np.nan)
    if rows.any():
        z[rows] = ctx.labeller.labels(mag[rows], err[rows], det[rows], observed[rows], mag[rows, ctx.det],
                                      ctx.det)["redshift"]
    return z


def photometric_spec(survey: Survey):
    """The default feature set without morphology: only the photometry differs between surveys."""
    spec = make_feature_spec("default", survey)
    return dataclasses.replace(spec, morphology=(), names=spec.names[:len(spec.names) - len(spec.morphology)])


def train_redshift(x: np.ndarray, z: np.ndarray, split: np.ndarray, cfg: dict, seed: int, max_epochs: int | None):
    """The preset's redshift network on rows split == 'train' (early stopping on 'validation');
    returns (network, training seconds)."""
    tr, va = split == "train", split == "validation"
    t0 = time.time()
    model, _ = fit_network("redshift", cfg, x[tr], z[tr], x[va], z[va], max_epochs, seed, normalise=True, verbose=0)
    return numpy_network("redshift", cfg, model, x[va][:256]), time.time() - t0


def bands_study(surveys: list[Survey], preset: dict, n: int, seed: int, depth_limit: float,
                max_epochs: int | None = None) -> dict:
    """Draw `n` galaxies once and measure, per survey, the network's and the template fit's
    redshift accuracy against the truth on the same test-split objects. Returns a JSON-ready dict:
    per survey the band count, detections, timings and metrics overall and by magnitude (of the
    first survey's detection band, true)."""
    pop, gal, area = draw_population(surveys[0], n, seed, depth_limit)
    ids = np.arange(n, dtype=np.int64)
    split = assign_split(ids, preset["split"]["train"], preset["split"]["validation"])
    cfg = preset["networks"]["redshift"]
    ref_mag = ph.maggies_to_mag(gal.maggies[:, pop.det_index])
    per, z_net, found, observations = {}, {}, {}, {}
    for s in surveys:
        t0 = time.time()
        obs = observe(s, pop, gal, area, seed)
        t_obs = time.time() - t0
        spec = photometric_spec(s)
        x, ok = build_features(obs["columns"], spec)
        use = obs["found"] & ok
        net, t_train = train_redshift(x[use], gal.z[use], split[use], cfg, seed, max_epochs)
        t1 = time.time()
        zp = np.full(n, np.nan)
        zp[use] = point_prediction("pdf", net.stack(x[use]), net.z_bins)
        t_score = time.time() - t1
        z_net[s.name], found[s.name], observations[s.name] = zp, use, obs
        per[s.name] = {"bands": len(s.band_names), "detection_band": s.detection_band,
                       "detected": int(use.sum()), "train_rows": int((use & (split == "train")).sum()),
                       "seconds": {"observe": round(t_obs, 1), "train": round(t_train, 1),
                                   "score": round(t_score, 2)},
                       "network_objects_per_s": round(int(use.sum()) / max(t_score, 1e-9))}
        log.info(f"{s.name}: {len(s.band_names)} bands, {int(use.sum()):,} of {n:,} detected; "
                 f"train {t_train:.0f} s")
    common = (split == "test") & np.logical_and.reduce([found[k] for k in found])
    for s in surveys:
        name, obs = s.name, observations[s.name]
        t0 = time.time()
        z_fit = template_fit_redshift(s, obs["photometry"], common)
        per[name]["seconds"]["template_fit"] = round(time.time() - t0, 1)
        z_bpz = np.full(n, np.nan)
        fit, timing = run_bpz(obs["columns"][common].reset_index(drop=True), s)
        z_bpz[common] = fit["zb"].to_numpy(float)
        per[name]["seconds"]["bpz_fit"] = round(timing["seconds"], 1)
        per[name]["bpz_objects_per_s"] = round(timing["objects_per_s"])
        blocks = {}
        for est, zz in (("network", z_net[name]), ("template_fit", z_fit), ("bpz", z_bpz)):
            blocks[est] = {"all": M.photoz_metrics(zz[common], gal.z[common]),
                           "by_mag": M.binned(M.photoz_metrics, ref_mag[common], BAND_STUDY_MAG_BINS,
                                              zz[common], gal.z[common]).to_dict(orient="records")}
        per[name].update(blocks)
    return {"objects_drawn": n, "seed": seed, "depth_limit": depth_limit,
            "magnitude_band": surveys[0].detection_band, "same_objects": int(common.sum()),
            "network_labels": "true redshift (simulation only)", "surveys": per}


def study_table(result: dict) -> pd.DataFrame:
    """One row per survey and estimator: bands, σ_NMAD, outlier fraction, bias on the same objects."""
    rows = []
    for name, r in result["surveys"].items():
        for est in ESTIMATORS:
            a = r[est]["all"]
            rows.append({"survey": name, "bands": r["bands"], "estimator": est, "n": a.get("n"),
                         "sigma_nmad": a.get("sigma_nmad"), "outlier_frac": a.get("outlier_frac"),
                         "bias": a.get("bias")})
    return pd.DataFrame(rows)
