"""One CCD catalogue of the mock: every column the survey file declares, and the truth.

`make_ccd(ctx, field, pointing, ccd, n, seed_seq)` returns a dict column-name -> numpy array,
with the columns of survey.csv_columns() + survey.truth. Band names, their order, the ID scheme,
the sentinels, the label columns (`labels:`) and the survey's own extra columns (each naming the
quantity it holds with `mock:`, one of MOCK_QUANTITIES) all come from the survey file; this module
knows by name only the canonical schema every survey maps onto (ID, Field, …, stell, s2n; see
galaxy_spark.catalog.schema) and the mock's truth columns.
"""
from __future__ import annotations

import numpy as np

from galaxy_spark.features import TRUTH_DETECTION_MAG, TRUTH_SED_COLUMNS
from galaxy_spark.mock import photometry as ph
from galaxy_spark.mock.labels import SurveyLabeller
from galaxy_spark.mock.population import GalaxyModel, StarModel

PIXEL_ARCSEC = 0.221
PSF_FWHM_PX = 4.9            # ~1.08", the median FWHM of the real bright stars
SIGMA_PSF = PSF_FWHM_PX / 2.355
CCD_PIX = (500.0, 4550.0)    # x, y range of the detection image covered by a CCD catalogue
CCD_CENTRE = 0.5 * (CCD_PIX[0] + CCD_PIX[1])
# The quantities a survey column can hold (its `mock:` key in the survey file); `irms` needs `band:`.
MOCK_QUANTITIES = ("aperture_magnitude", "aperture_magnitude_error", "aperture_magnitude_corrected",
                   "detections", "xray", "weight_percentage", "saturated", "stellar_flag", "duplicate",
                   "prior_magnitude", "irms", "low_weight_optical", "low_weight_nir", "detection_image")
POINTING_STEP_DEG = 0.45     # pointings of a field side by side in RA
CCD_OFFSET_DEG = 0.19        # the 4 LAICA CCDs sit on a 2×2 grid with gaps


class Context:
    """Models and survey facts shared by all CCDs."""

    def __init__(self, survey):
        self.survey = survey
        self.mock = survey.mock_config()
        self.gal = GalaxyModel(survey, det_limit=self.mock.candidate_limit_mag)
        self.star = StarModel(survey)
        self.bands = self.gal.grid.band_names           # survey order (all with a response)
        assert self.bands == survey.band_names, "every survey band needs a response curve"
        self.det = self.bands.index(survey.detection_band)
        self.m5 = ph.band_depths(survey, self.bands)
        self.m5_noise = ph.noise_depths(survey, self.bands)
        self.optical = np.array([survey.band(b).pivot_aa < ph.NIR_PIVOT_AA and not survey.band(b).synthetic
                                 for b in self.bands])
        self.nir = np.array([survey.band(b).pivot_aa >= ph.NIR_PIVOT_AA for b in self.bands])
        s = survey.sentinels
        self.nd_mag = float(s["not_detected_magnitude"])
        self.no_mag = float(s["not_observed_magnitude"])
        self.no_err = float(s["not_observed_error"])
        self.min_snr = survey.detection_min_snr
        self.labeller = SurveyLabeller(self)


# Isophotal area (px) of a typical galaxy vs F814W (medians of the real rows), and the typical
# observed size (σ_obs / σ_PSF) of the mock's galaxies at that magnitude; areas scale with size².
AREA_MAG = np.array([14, 16, 19, 20, 21, 22, 23, 24, 25, 26, 27])
AREA_MED = np.array([3600, 1800, 580, 329, 222, 119, 63, 28, 12, 6, 5])
SIZE_REF = np.array([1.5, 1.4, 1.36, 1.23, 1.19, 1.13, 1.09, 1.066, 1.04, 1.02, 1.01])
AREA_K2 = (np.array([19, 22, 24, 25]), np.array([7.6, 5.0, 3.6, 2.85]))  # area / (π a b) on real rows


def isophotal_area(rng, mag, sig_obs, star):
    logA = np.interp(mag, AREA_MAG, np.log10(AREA_MED))
    ref = np.interp(mag, AREA_MAG, SIZE_REF) * SIGMA_PSF
    gal_area = 10 ** logA * np.clip((sig_obs / ref) ** 2, 0.2, 6.0)
    star_area = np.minimum(np.pi * (13.6 * 10 ** (-0.1 * (mag - 18.8))) ** 2, 10 ** logA * 0.9)
    area = np.where(star, star_area, gal_area) * 10 ** rng.normal(0, 0.08, mag.shape)
    return np.maximum(np.round(area), 5)


def object_sizes(r_e_arcsec, q):
    """(intrinsic σ, observed major- and minor-axis σ) in pixels of objects of half-light radius
    `r_e_arcsec` and axis ratio `q`, the PSF included."""
    size_px = r_e_arcsec / PIXEL_ARCSEC / 1.18          # exponential r_e -> Gaussian-ish σ
    sig_maj = np.sqrt(size_px ** 2 + SIGMA_PSF ** 2)
    sig_min = np.sqrt((q * size_px) ** 2 + SIGMA_PSF ** 2)
    return size_px, sig_maj, sig_min


def _detect(ctx, rng, n, draw, true_mag, sizes, m5_det):
    """Draw candidates in batches until n pass the detection cut; first n kept (deterministic)."""
    parts, have, batch = [], 0, max(64, int(n * 1.6))
    while have < n or not parts:
        obj = draw(rng, batch)
        mt = true_mag(obj)
        size_px, sig_maj, sig_min = sizes(obj, batch)
        sig_obs = np.sqrt(sig_maj * sig_min)
        star = np.full(batch, obj.__class__.__name__ == "Stars")
        area = isophotal_area(rng, mt, sig_obs, star)
        ap = ph.aperture_factor(area)
        fd, sd = ph.observe(rng, 10 ** (-0.4 * mt)[:, None], np.array([m5_det]), ap)
        s2n = ph.detection_snr(rng, fd[:, 0], sd[:, 0])
        keep = np.flatnonzero(s2n > ctx.min_snr)
        parts.append((obj.take(keep), area[keep], fd[keep, 0], sd[keep, 0], s2n[keep]))
        have += keep.size
        batch = max(64, int((n - have) * 2.0))
    cls = parts[0][0].__class__
    obj = cls(**{k: np.concatenate([p[0].__dict__[k] for p in parts])[:n] for k in parts[0][0].__dict__})
    rest = [np.concatenate([p[i] for p in parts])[:n] for i in range(1, 5)]
    return (obj, *rest)


def make_ccd(ctx: Context, field: int, pointing: int, ccd: int, n: int, seed_seq: np.random.SeedSequence):
    """One CCD catalogue as columns (rows in ID order): detection and photometry, coverage,
    morphology, flags, the 3" aperture, template-fit labels, positions and IDs, the truth. The
    random draws happen in this fixed order (a seed gives the same file, byte for byte)."""
    rng = np.random.default_rng(seed_seq)
    ph_ = _photometry(ctx, rng, n)
    star, mag_det = ph_["star"], ph_["mag_det"]
    x, y, observed, irms = _coverage(ctx, rng, n)
    # saturated bright stars: some optical bands lost
    nb = len(ctx.bands)
    satur = star & (mag_det < ctx.mock.saturation_mag)
    lost = satur[:, None] & ctx.optical[None, :] & (rng.random((n, nb)) < 0.3) \
        & (ph.maggies_to_mag(ph_["f_true"]) < ctx.mock.saturation_mag - 0.5)
    observed &= ~lost
    f_obs, sig = ph_["f_obs"], ph_["sig"]
    mag, err, detected = ph.to_catalogue(f_obs, sig, ph_["m5"], observed, ctx.nd_mag, ctx.no_mag, ctx.no_err)
    mag[:, ctx.det] = mag_det
    err[:, ctx.det] = 1.0857 * sig[:, ctx.det] / f_obs[:, ctx.det]
    detected[:, ctx.det] = True
    morph = _morphology(rng, ph_)
    photoflag = _photoflags(rng, mag_det, satur)
    aperture = _aperture3(ctx, rng, ph_, morph["sig_obs"])
    flags = _flags(ctx, rng, star, mag_det, detected, irms)
    # catalogue labels: template fitting on the observed photometry, as the survey did
    labels = ctx.labeller.labels(mag, err, detected, observed, mag_det, ctx.det)
    ra, dec, ids = _sky_and_ids(ctx, field, pointing, ccd, x, y)

    cols: dict[str, np.ndarray] = {"ID": ids, "Field": np.full(n, field), "Pointing": np.full(n, pointing),
                                   "CCD": np.full(n, ccd), "RA": ra, "Dec": dec, "x": x, "y": y, "area": ph_["area"]}
    cols.update({k: morph[k] for k in ("fwhm", "stell", "ell", "a", "b", "theta", "rk", "rf")})
    cols["s2n"] = ph_["s2n"]
    cols["photoflag"] = photoflag
    survey = ctx.survey
    for k, band in enumerate(ctx.bands):
        cols[band] = mag[:, k]
        cols[survey.error_column(band)] = err[:, k]
    quantities = {
        **aperture, **flags, "xray": np.zeros(n, int), "saturated": satur.astype(int), "prior_magnitude": mag_det,
        "detection_image": np.full(n, ctx.mock.image_pattern.format(field=field, pointing=pointing, ccd=ccd,
                                                                    band=survey.detection_band), dtype=object),
    }
    for c in survey.csv_columns():
        if c.mock == "irms":
            cols[c.name] = irms[:, ctx.bands.index(c.band)]
        elif c.mock is not None:
            cols[c.name] = quantities[c.mock]
    for role, values in labels.items():
        if survey.label(role):
            cols[survey.label(role)] = values
    cols.update(_truth(ph_))
    # rows in ID order, like the public files
    o = np.argsort(ids, kind="stable")
    return {k: v[o] for k, v in cols.items()}


def _photometry(ctx: Context, rng, n: int) -> dict:
    """This CCD's depths (the survey's, varied image to image), the detected galaxies and stars,
    their true and observed fluxes (the detection band keeps the flux measured at detection)."""
    n_star = int(rng.binomial(n, ctx.mock.star_fraction))
    n_gal = n - n_star
    nb = len(ctx.bands)
    image_depth = rng.normal(0, 0.15, nb)
    m5 = ctx.m5 + image_depth
    m5_det = float(ctx.m5[ctx.det] + rng.normal(0, 0.08))
    m5[ctx.det] = m5_det
    g, area_g, fdet_g, sdet_g, s2n_g = _detect(
        ctx, rng, n_gal, ctx.gal.draw, lambda o: ph.maggies_to_mag(o.maggies[:, ctx.det]),
        lambda o, k: object_sizes(o.r_e_arcsec, o.q), m5_det)
    s, area_s, fdet_s, sdet_s, s2n_s = _detect(
        ctx, rng, n_star, ctx.star.draw, lambda o: o.mag_det,
        lambda o, k: object_sizes(np.zeros(k), np.ones(k)), m5_det)
    is_star = np.r_[np.zeros(n_gal, int), np.ones(n_star, int)]
    f_true = np.empty((n, nb))
    f_true[:n_gal] = g.maggies
    f_true[n_gal:] = 10 ** (-0.4 * (s.mag_det[:, None] + s.colours))
    area = np.r_[area_g, area_s]
    f_obs, sig = ph.observe(rng, f_true, ctx.m5_noise + image_depth, ph.aperture_factor(area))
    f_obs[:, ctx.det] = np.r_[fdet_g, fdet_s]
    sig[:, ctx.det] = np.r_[sdet_g, sdet_s]
    return {"g": g, "n_star": n_star, "is_star": is_star, "star": is_star.astype(bool), "f_true": f_true,
            "f_obs": f_obs, "sig": sig, "area": area, "s2n": np.r_[s2n_g, s2n_s], "m5": m5, "m5_det": m5_det,
            "mag_det_true": ph.maggies_to_mag(f_true[:, ctx.det]), "mag_det": ph.maggies_to_mag(f_obs[:, ctx.det])}


def _coverage(ctx: Context, rng, n: int):
    """Pixel positions, which bands observe each object and the relative weights (irms)."""
    nb = len(ctx.bands)
    lo, hi = CCD_PIX
    x = rng.uniform(lo, hi, n)
    y = rng.uniform(lo, hi, n)
    observed = np.ones((n, nb), bool)
    irms = np.empty((n, nb))
    irms[:, ctx.optical] = 1 - np.abs(rng.normal(0, 0.012, (n, int(ctx.optical.sum()))))
    irms[:, ctx.nir] = 0.965 - np.abs(rng.normal(0, 0.02, (n, int(ctx.nir.sum()))))
    for k in range(nb):
        if k == ctx.det:
            continue
        # each band's dithered coverage misses a strip along one edge of the CCD: usually a
        # few pixels, now and then (6%) a wide one (chip gaps, a missing exposure)
        side = rng.integers(0, 4)
        width = rng.uniform(150, 500) if rng.random() < 0.06 else rng.exponential(8.0)
        coord = (x, y)[side % 2]
        dist = (coord - lo) if side < 2 else (hi - coord)
        observed[:, k] = dist > width
        ramp = (dist > width) & (dist < width + 60)
        irms[ramp, k] = rng.uniform(0.2, 0.85, int(ramp.sum()))
        irms[~observed[:, k], k] = 0.0
        bad = rng.random(n) < 0.004
        irms[bad, k] = np.minimum(irms[bad, k], rng.uniform(0.3, 0.95, int(bad.sum())))
    irms = np.clip(irms, 0, 1)
    irms[:, ctx.det] = np.clip(irms[:, ctx.optical].mean(1) + rng.normal(0, 0.003, n), 0, 1)
    return x, y, observed, irms


def _morphology(rng, p: dict) -> dict:
    """Shape, size, Kron and flux radii and CLASS_STAR (`stell`) of every object."""
    g, n_star, star, area, mag_det, mag_det_true = p["g"], p["n_star"], p["star"], p["area"], p["mag_det"], p["mag_det_true"]
    n = len(area)
    size_px, sig_maj, sig_min = object_sizes(np.r_[g.r_e_arcsec, np.zeros(n_star)], np.r_[g.q, np.ones(n_star)])
    sig_obs = np.sqrt(sig_maj * sig_min)
    k2 = np.interp(mag_det_true, *AREA_K2)
    qobs = np.clip(sig_min / sig_maj * 10 ** rng.normal(0, 0.04, n), 0.05, 1.0)
    a = np.sqrt(area / (np.pi * qobs * k2)) * 10 ** rng.normal(0, 0.04, n)
    b = a * qobs
    ell = 1 - b / a
    theta = rng.uniform(-90, 90, n)
    fwhm = 2.355 * sig_obs * 10 ** rng.normal(0, 0.04, n) * np.where(star, 1.0, 1.45)
    rf = 1.42 * sig_obs * np.clip(0.75 + 0.25 * (26 - mag_det) / 4, 0.75, 1.05) * 10 ** rng.normal(0, 0.04, n)
    rk = np.clip(3.5 + np.clip(0.35 * (mag_det - 21.5), 0, None) + np.abs(rng.normal(0, 0.3, n))
                 * (mag_det > 21), 3.5, 9.0)

    # CLASS_STAR: near 0/1 when bright, drifting to ~0.5 when faint; compact galaxies higher
    compact = np.clip(1 - size_px / (2 * SIGMA_PSF), 0, 1)
    mu_g = np.interp(mag_det, [14, 20, 21, 22, 23, 24, 25, 26], [0.02, 0.03, 0.04, 0.07, 0.14, 0.58, 0.5, 0.5])
    mu_g = np.clip(mu_g + 0.15 * (compact - 0.5) * (mag_det > 21), 0.01, 0.8)
    # real rows: stars keep CLASS_STAR ≈ 0.97–0.98 down to F814W ≈ 23 (≥ 73% above 0.9)
    mu_s = np.interp(mag_det, [14, 20, 21.5, 23, 24, 25.5], [0.985, 0.98, 0.975, 0.95, 0.8, 0.6])
    # a few % of galaxies at F814W 21–24 are unresolved (compact) and score like stars
    p_pt = np.interp(mag_det, [20, 21, 22, 23, 24, 25], [0.0, 0.04, 0.09, 0.07, 0.01, 0.0])
    point_like = ~star & (rng.random(n) < p_pt * 2 * compact)
    mu_g = np.where(point_like, 0.95, mu_g)
    mu = np.where(star, mu_s, mu_g)
    kap = np.interp(mag_det, [14, 20, 22, 24, 26], [60, 40, 12, 12, 14])
    kap = np.where(star | point_like, np.maximum(kap, np.interp(mag_det, [20, 23, 25], [60, 40, 14])), kap)
    stell = np.round(rng.beta(mu * kap, (1 - mu) * kap), 2)
    return {"fwhm": fwhm, "stell": stell, "ell": ell, "a": a, "b": b, "theta": theta, "rk": rk, "rf": rf,
            "sig_obs": sig_obs}


def _photoflags(rng, mag_det: np.ndarray, satur: np.ndarray) -> np.ndarray:
    n = len(mag_det)
    # photometric flags: 0 61%, 2 18%, 3 19%, 1 1% (blends more common for bright, big objects)
    p0 = np.interp(mag_det, [18, 19, 22, 24, 25], [0.2, 0.25, 0.45, 0.6, 0.65])
    u = rng.random(n)
    rest = (u - p0) / (1 - p0)
    photoflag = np.where(u < p0, 0, np.where(rest < 0.025, 1, np.where(rest < 0.5, 2, 3)))
    photoflag = np.where(satur, photoflag | 4, photoflag)
    return photoflag


def _aperture3(ctx: Context, rng, p: dict, sig_obs: np.ndarray) -> dict:
    """The 3" aperture magnitude (shares most of its noise with the detection measurement)."""
    star, f_true, f_obs, sig, m5_det = p["star"], p["f_true"], p["f_obs"], p["sig"], p["m5_det"]
    n = len(star)
    frac3 = 1 - np.exp(-(1.5 / PIXEL_ARCSEC) ** 2 / (2 * (sig_obs * np.where(star, 1.0, 1.4)) ** 2))
    f3_true = f_true[:, ctx.det] * frac3 * 10 ** (-0.4 * 0.1)
    ap3 = np.full(n, ph.aperture_factor(np.pi * (1.5 / PIXEL_ARCSEC) ** 2) * 0.45)
    sig3 = ph.flux_sigma(f3_true[:, None], np.array([m5_det]), ap3)[:, 0]
    zdet = (f_obs[:, ctx.det] - f_true[:, ctx.det]) / sig[:, ctx.det]
    f3_obs = f3_true + sig3 * (0.8 * zdet + 0.6 * rng.standard_normal(n))
    m3, e3, det3 = ph.to_catalogue(f3_obs[:, None], sig3[:, None], np.array([m5_det]),
                                   np.ones((n, 1), bool), ctx.nd_mag, ctx.no_mag, ctx.no_err)
    m3, e3, det3 = m3[:, 0], e3[:, 0], det3[:, 0]
    m3c = np.where(det3, m3 + rng.normal(0.19, 0.03, n), ctx.no_mag)
    return {"aperture_magnitude": m3, "aperture_magnitude_error": e3, "aperture_magnitude_corrected": m3c}


def _flags(ctx: Context, rng, star, mag_det, detected, irms) -> dict:
    n = len(star)
    nfobs = detected.sum(1)
    percw = np.clip(1 - rng.gamma(1.2, 0.012, n) - 0.1 * (irms[:, ctx.optical] < 0.8).mean(1), 0.8, 1.0)
    sflag = np.where(star, np.clip(1 - rng.exponential(0.01, n), 0, 1), np.clip(rng.exponential(0.035, n), 0, 1))
    confused = rng.random(n) < np.where(star, 0.04, 0.01)
    sflag = np.where(confused, rng.uniform(0.1, 0.9, n), sflag)
    sflag = np.where(mag_det >= ctx.mock.stellar_flag_mag, 0.5, np.round(sflag, 2))
    dupli = (rng.random(n) < 0.006).astype(int)
    return {"detections": nfobs, "weight_percentage": percw, "stellar_flag": sflag, "duplicate": dupli,
            "low_weight_optical": (irms[:, ctx.optical] < 0.8).sum(1), "low_weight_nir": (irms[:, ctx.nir] < 0.8).sum(1)}


def _sky_and_ids(ctx: Context, field: int, pointing: int, ccd: int, x: np.ndarray, y: np.ndarray):
    """(RA, Dec, IDs): the CCD's place in its pointing and field; SExtractor-like numbering by y."""
    survey, n = ctx.survey, len(x)
    ra0, dec0 = ctx.mock.field_centres[field]
    pts = survey.pointings[field]
    pi = pts.index(pointing) - 0.5 * (len(pts) - 1)
    ci = survey.ccds.index(ccd)
    dx = (ci % 2 - 0.5) * 2 * CCD_OFFSET_DEG
    dy = (ci // 2 - 0.5) * 2 * CCD_OFFSET_DEG
    dec = dec0 + dy + (y - CCD_CENTRE) * PIXEL_ARCSEC / 3600
    ra = ra0 + (pi * POINTING_STEP_DEG + dx + (x - CCD_CENTRE) * PIXEL_ARCSEC / 3600) / np.cos(np.radians(dec))
    ra = np.mod(ra, 360.0)
    order = np.argsort(y, kind="stable")           # SExtractor numbers objects roughly by y
    number = np.empty(n, np.int64)
    number[order] = np.arange(1, n + 1)
    ids = np.array([survey.make_id(field, pointing, ccd, int(k)) for k in number], dtype=np.int64)
    return ra, dec, ids


def _truth(p: dict) -> dict:
    """The truth columns: redshift, type, mass, class, the true SED (shape only: mixture weights of
    the 5 templates, sum 1, and the dust) and the noiseless detection-band magnitude."""
    g, n_star = p["g"], p["n_star"]
    weights = g.coeffs / g.coeffs.sum(axis=1, keepdims=True)
    out = {"z_true": np.r_[g.z, np.zeros(n_star)], "type_true": np.r_[g.type_bpz, np.zeros(n_star)],
           "logmass_true": np.r_[g.logmass, np.zeros(n_star)], "is_star": p["is_star"]}
    for k, name in enumerate(TRUTH_SED_COLUMNS[:-1]):
        out[name] = np.r_[weights[:, k], np.zeros(n_star)]
    out[TRUTH_SED_COLUMNS[-1]] = np.r_[g.av, np.zeros(n_star)]
    out[TRUTH_DETECTION_MAG] = p["mag_det_true"]
    return out
