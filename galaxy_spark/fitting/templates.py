"""Galaxy template sets for template fitting, labelling and the SED network's basis: kcorrect's
templates and real-galaxy mixtures of them, and the labelling set built from those mixtures.

kcorrect's 5 NMF templates (`kcorrect-default-v4.fits`, f_lambda at 10 pc per solar mass formed;
MREMAIN = surviving stellar mass per template). Mixture coefficients are fitted (non-negative
least squares) to the ~10,000 real SDSS galaxies kcorrect ships (`gst_tests_small.fits`, ugriz
model fluxes corrected for Galactic extinction, z < 0.5). The fit takes ~2 s and is done at
start-up; nothing is downloaded and no cache is needed.

Every band flux is precomputed once on a grid (`TemplateGrid`): template x redshift x A_V
(Calzetti 2000 attenuation, rest frame) with Madau (1995) IGM, through the survey's response
curves. A galaxy's flux in a band is then sum_t c_t * G[t, z, A_V, band], bilinearly
interpolated; that is linear in the coefficients, so all galaxies are done with a few gathers.

The labelling set (`label_templates`): 11 templates at the quantiles of rest U−V over the
mixtures (red and blue classes pooled with the weight of their numbers), each with its class's
typical dust, ordered reddest first on BPZ's 1–11 scale (`bpz_type_from_colour`). The simulated
survey (mock/) draws its galaxies from the same mixtures and labels them with this set; training
uses it for the SED network's labels and basis (train/sed.py) — nothing here depends on the mock.
"""
from __future__ import annotations

import functools
import importlib.resources
import warnings

import numpy as np

from galaxy_spark.filters import _read_table, band_weights as _band_weights, igm_transmission, load_responses
from galaxy_spark.survey import Survey, response_location

RED_UV_SPLIT = 1.85          # rest-frame U−V (AB) separating the SDSS mixtures into red / blue
AV_BLUE = (1.5, 0.06)        # extra Calzetti A_V (gamma shape, scale) for star-forming galaxies
AV_RED = 0.03                # exponential mean for quiescent ones
MIXTURE_PCS = 2              # principal components of the SDSS light fractions kept
LABEL_TEMPLATES = 11         # templates of the labelling set (BPZ2 had 11)

SDSS_BANDS = ("sdss_u0.dat", "sdss_g0.dat", "sdss_r0.dat", "sdss_i0.dat", "sdss_z0.dat",
              "twomass_J.dat", "twomass_H.dat", "twomass_Ks.dat")
TWOMASS_AB = (0.91, 1.39, 1.85)      # Vega -> AB offsets of 2MASS J, H, Ks (Blanton & Roweis 2007)
REST_B = "bessell_B.dat"
REST_U = "bessell_U.dat"
REST_V = "bessell_V.dat"


def _kc_path(*parts: str):
    return importlib.resources.files("kcorrect").joinpath("data", *parts)


@functools.lru_cache(maxsize=1)
def load_templates() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(wave Å, flux (5, n_wave) erg/s/cm²/Å at 10 pc per M☉ formed, mremain (5,))."""
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(str(_kc_path("templates", "kcorrect-default-v4.fits"))) as h:
            wave = np.asarray(h["FLUX"].data["wave"][0], float)
            flux = np.asarray(h["FLUX"].data["flux"][0], float).reshape(-1, wave.size)
            mremain = np.asarray(h["MREMAIN"].data, float)
    keep = (wave > 700) & (wave < 60000)            # all the survey's bands need, z ≤ 7
    return wave[keep], flux[:, keep], mremain


def _curve(file: str) -> tuple[np.ndarray, np.ndarray]:
    w, t = _read_table(response_location({"package": "kcorrect", "file": file}))
    o = np.argsort(w)
    t = np.clip(t[o], 0, None)
    return w[o], t / t.max()


def _calzetti_mag(wave: np.ndarray, a_v: float) -> np.ndarray:
    """Calzetti (2000) A_λ in magnitudes; flat below 1200 Å, power-law tail beyond 2.2 µm."""
    import extinction

    if a_v == 0:
        return np.zeros_like(wave)
    w = np.clip(wave, 1200.0, 22000.0)
    a = extinction.calzetti00(w, float(a_v), 4.05)
    tail = wave > 22000.0
    a[tail] = a[tail] * (22000.0 / wave[tail]) ** 1.5
    return a


@functools.lru_cache(maxsize=1)
def madau_grid(z_grid_key: tuple) -> np.ndarray:
    wave, _, _ = load_templates()
    return igm_transmission(wave, np.asarray(z_grid_key))


class TemplateGrid:
    """Observed-frame band maggies of the kcorrect templates on a (z, A_V) grid.

    flux[t, iz, iav, b]: maggies of template t (at 10 pc, per M☉ formed) attenuated by A_V and
    moved to redshift z (IGM included) but *without* the distance dimming, which is added per
    galaxy as 10^(-0.4 DM(z)). rest[t, iav, k]: rest-frame maggies (U, B, V Bessell) at 10 pc.
    """

    def __init__(self, survey: Survey, z_max: float = 7.0, n_z: int = 1500,
                 av_grid=(0.0, 0.25, 0.5, 0.8, 1.2, 1.8)):
        wave, tflux, mremain = load_templates()
        self.n_templates = tflux.shape[0]
        self.wave, self.mremain = wave, mremain
        self.band_names = [b.name for b in survey.bands if b.response is not None]
        # uniform in ln(1+z): finer steps where the galaxies are
        self.z = np.expm1(np.linspace(np.log1p(0.002), np.log1p(z_max), n_z))
        self.av = np.asarray(av_grid, float)
        dusty = np.stack([tflux * 10 ** (-0.4 * _calzetti_mag(wave, a))[None, :] for a in self.av], axis=1)
        self.dusty = dusty                                        # (5, n_av, n_wave)
        igm = madau_grid(tuple(self.z))
        resp = load_responses(survey)
        flat = dusty.reshape(-1, wave.size)
        G = np.empty((tflux.shape[0] * self.av.size, self.z.size, len(self.band_names)))
        for k, name in enumerate(self.band_names):
            r = resp[name]
            G[:, :, k] = flat @ _band_weights(wave, r.wave_aa, r.throughput, self.z, igm)
        self.flux = G.reshape(tflux.shape[0], self.av.size, self.z.size, -1).transpose(0, 2, 1, 3).copy()
        self.logflux = np.log(np.maximum(self.flux, 1e-300))
        rest = []
        for f in (REST_U, REST_B, REST_V):
            cw, ct = _curve(f)
            rest.append(flat @ _band_weights(wave, cw, ct, np.zeros(1), None)[:, 0])
        self.rest = np.stack(rest, -1).reshape(tflux.shape[0], self.av.size, 3)

    # -- per-object evaluation ----------------------------------------------------------
    def _locate(self, grid: np.ndarray, x: np.ndarray):
        i = np.clip(np.searchsorted(grid, x) - 1, 0, grid.size - 2)
        w = np.clip((x - grid[i]) / (grid[i + 1] - grid[i]), 0.0, 1.0)
        return i, w

    def observed(self, coeffs: np.ndarray, z: np.ndarray, av: np.ndarray) -> np.ndarray:
        """(n, n_bands) maggies (no distance dimming) for coefficient rows at (z, A_V)."""
        iz, wz = self._locate(self.z, z)
        ia, wa = self._locate(self.av, av)
        # attenuation is exponential in A_V: interpolate each template's band flux geometrically
        # in A_V (linear interpolation of flux overestimated it by up to 0.1 mag between nodes)
        out = np.zeros((z.size, self.flux.shape[-1]))
        for dz, fz in ((0, 1 - wz), (1, wz)):
            g = np.exp((1 - wa)[None, :, None] * self.logflux[:, iz + dz, ia, :]
                       + wa[None, :, None] * self.logflux[:, iz + dz, ia + 1, :])   # (5, n, nb)
            out += fz[:, None] * np.einsum("nt,tnb->nb", coeffs, g)
        return out

    def restframe(self, coeffs: np.ndarray, av: np.ndarray) -> np.ndarray:
        """(n, 3) rest-frame U, B, V maggies at 10 pc."""
        ia, wa = self._locate(self.av, av)
        lr = np.log(np.maximum(self.rest, 1e-300))
        g = np.exp((1 - wa)[None, :, None] * lr[:, ia, :] + wa[None, :, None] * lr[:, ia + 1, :])
        return np.einsum("nt,tnk->nk", coeffs, g)


def binned_templates(wave_grid: np.ndarray) -> np.ndarray:
    """The kcorrect templates (5, n_grid) averaged over bins centred on the log-spaced
    `wave_grid` (Å): what a spectrum on that grid of those templates is, without aliasing their
    emission lines."""
    wave, tflux, _ = load_templates()
    lg = np.log(wave_grid)
    half = 0.5 * np.diff(lg)
    edges = np.exp(np.r_[lg[0] - half[0], lg[:-1] + half, lg[-1] + half[-1]])
    cum = np.concatenate([np.zeros((tflux.shape[0], 1)),
                          np.cumsum(0.5 * (tflux[:, 1:] + tflux[:, :-1]) * np.diff(wave), axis=1)], axis=1)
    at = np.stack([np.interp(edges, wave, c) for c in cum])
    return np.diff(at, axis=1) / np.diff(edges)


def rest_spectra(coeffs: np.ndarray, av: np.ndarray, wave_grid: np.ndarray) -> np.ndarray:
    """Rest-frame f_λ (n, n_grid) of galaxies with kcorrect mixture `coeffs` (n, 5) and Calzetti
    attenuation `av` (n,), on `wave_grid`: the mock's SED of each galaxy (Calzetti's A_λ is
    proportional to A_V, so one curve serves every galaxy)."""
    t = binned_templates(np.asarray(wave_grid, float))
    a1 = _calzetti_mag(np.asarray(wave_grid, float), 1.0)
    return (np.asarray(coeffs, float) @ t) * 10 ** (-0.4 * np.asarray(av, float)[:, None] * a1[None, :])


@functools.lru_cache(maxsize=1)
def sdss_mixtures() -> tuple[np.ndarray, np.ndarray]:
    """NNLS mixture coefficients of the 5 templates for kcorrect's real SDSS galaxies.

    Returns (coeffs (n, 5) normalised to unit sum, redshift (n,)). Deterministic, ~2 s.
    """
    from astropy.io import fits
    from scipy.optimize import nnls

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(str(_kc_path("test", "gst_tests_small.fits"))) as h:
            d = h[1].data
            z = np.asarray(d["Z"], float)
            mf = np.asarray(d["MODELFLUX"], float) * 1e-9          # nanomaggies -> maggies
            iv = np.asarray(d["MODELFLUX_IVAR"], float) * 1e18
            ext = np.asarray(d["EXTINCTION"], float)
            nir_m = np.stack([np.asarray(d[f"{b}_M_EXT"], float) for b in "JHK"], -1)
            nir_s = np.stack([np.asarray(d[f"{b}_MSIG_EXT"], float) for b in "JHK"], -1)
    mf = mf * 10 ** (0.4 * ext)
    iv = iv * 10 ** (-0.8 * ext)
    # 2MASS extended-source magnitudes (Vega) constrain the near-infrared of the mixtures
    nir_ok = (nir_m > 5) & (nir_m < 20) & (nir_s > 0) & (nir_s < 0.5)
    nir_f = np.where(nir_ok, 10 ** (-0.4 * (nir_m + np.asarray(TWOMASS_AB))), 0.0)
    nir_iv = np.where(nir_ok, 1.0 / np.maximum(nir_f * nir_s / 1.0857, 1e-30) ** 2, 0.0)
    mf = np.concatenate([mf, nir_f], 1)
    iv = np.concatenate([iv, nir_iv], 1)
    good = (z > 0.01) & (z < 0.5) & np.all(iv[:, :5] > 0, 1) & np.all(mf[:, :5] > 0, 1)
    z, mf, iv = z[good], mf[good], iv[good]
    # floor the errors at 3% (template mismatch), as kcorrect fits usually do
    with np.errstate(divide="ignore"):
        sig = np.sqrt(np.where(iv > 0, 1 / iv, np.inf) + (0.03 * mf) ** 2)
    wave, tflux, _ = load_templates()
    zg = np.linspace(0.0, 0.5, 101)
    A = np.stack([tflux @ _band_weights(wave, *_curve(f), zg, None) for f in SDSS_BANDS], -1)  # (5, nz, 8)
    from astropy.cosmology import Planck18

    dm = 10 ** (-0.4 * Planck18.distmod(z).value)
    out = np.zeros((z.size, tflux.shape[0]))
    for i in range(z.size):
        j = min(int(z[i] / 0.005), zg.size - 2)
        w = (z[i] - zg[j]) / 0.005
        use = np.isfinite(sig[i])
        M = ((1 - w) * A[:, j, :] + w * A[:, j + 1, :]).T[use] * dm[i]    # (bands, 5 templates)
        Ms = M / sig[i][use][:, None]
        norm = Ms.max(0)
        try:
            out[i] = nnls(Ms / norm, mf[i][use] / sig[i][use], maxiter=200)[0] / norm
        except RuntimeError:
            out[i] = 0.0
    ok = out.sum(1) > 0
    out = out[ok] / out[ok].sum(1, keepdims=True)
    return out, z[ok]


# ---- BPZ spectral-type scale --------------------------------------------------------------
# Rest-frame U−V anchors of the 1–11 BPZ scale, from the desc-bpz CWW+Kinney templates placed at
# the positions the ALHAMBRA BPZ2 library gives their look-alikes (1–5 early, 6–7 spirals,
# 8–11 starbursts); see docs/mock.md. Computed once from the template files.
BPZ_TYPE_ANCHORS = (("El_B2004a.sed", 2.0), ("Sbc_B2004a.sed", 6.0), ("Scd_B2004a.sed", 7.0),
                    ("Im_B2004a.sed", 8.0), ("SB3_B2004a.sed", 9.0), ("SB2_B2004a.sed", 10.0),
                    ("ssp_25Myr_z008.sed", 11.0))


@functools.lru_cache(maxsize=1)
def bpz_type_anchors() -> tuple[np.ndarray, np.ndarray]:
    """(rest U−V colours, type values), colour decreasing."""
    cols, types = [], []
    cu, cv = _curve(REST_U), _curve(REST_V)
    for fname, t in BPZ_TYPE_ANCHORS:
        path = importlib.resources.files("desc_bpz").joinpath("data_files", "SED", fname)
        a = np.loadtxt(str(path))
        w, f = a[:, 0], a[:, 1]
        u = f @ _band_weights(w, *cu, np.zeros(1), None)[:, 0]
        v = f @ _band_weights(w, *cv, np.zeros(1), None)[:, 0]
        cols.append(-2.5 * np.log10(u / v))
        types.append(t)
    return np.asarray(cols), np.asarray(types)


def bpz_type_from_colour(u_minus_v: np.ndarray) -> np.ndarray:
    """Map rest-frame U−V (AB) onto the continuous 1–11 BPZ scale (linear between anchors,
    extrapolated with the end slopes, clipped to [1, 11])."""
    c, t = bpz_type_anchors()
    o = np.argsort(c)
    c, t = c[o], t[o]
    out = np.interp(u_minus_v, c, t)
    lo_slope = (t[1] - t[0]) / (c[1] - c[0])
    hi_slope = (t[-1] - t[-2]) / (c[-1] - c[-2])
    out = np.where(u_minus_v < c[0], t[0] + lo_slope * (u_minus_v - c[0]), out)
    out = np.where(u_minus_v > c[-1], t[-1] + hi_slope * (u_minus_v - c[-1]), out)
    return np.clip(out, 1.0, 11.0)


def smooth_mixtures(co: np.ndarray, lb: np.ndarray, n_pc: int = MIXTURE_PCS) -> np.ndarray:
    """Project the SDSS mixtures onto their leading principal components (in rest-B light fractions).

    The NNLS fits to 5 SDSS + 3 2MASS fluxes (3% floor) leave the weakly constrained directions
    (rest-UV shape, line strengths) to the photometric noise of each SDSS galaxy; taken literally
    that noise becomes random per-galaxy structure in the medium bands at z > 0.3, where the rest
    UV enters the survey's bands. The first two components carry 94% of the variance; the rest is
    treated as fit noise and removed. Coefficients stay non-negative, normalised to unit sum.
    """
    if n_pc is None or n_pc >= co.shape[1]:
        return co
    L = co * lb[None, :]
    frac = L / L.sum(1, keepdims=True)
    mu = frac.mean(0)
    u, s, vt = np.linalg.svd(frac - mu, full_matrices=False)
    rec = mu + (u[:, :n_pc] * s[:n_pc]) @ vt[:n_pc]
    rec = np.clip(rec, 0.0, None)
    rec /= rec.sum(1, keepdims=True)
    c = rec / lb[None, :]
    return c / c.sum(1, keepdims=True)


def galaxy_mixtures(grid: TemplateGrid) -> dict[str, np.ndarray]:
    """The smoothed SDSS mixtures split into "red" and "blue" by rest U−V (`RED_UV_SPLIT`), each
    class sorted bluest first (so evolution can favour the bluer mixtures)."""
    co, _ = sdss_mixtures()
    co = smooth_mixtures(co, grid.rest[:, 0, 1])
    rest = grid.restframe(co, np.zeros(len(co)))
    uv = -2.5 * np.log10(rest[:, 0] / rest[:, 2])
    o = np.argsort(uv, kind="stable")
    co, uv = co[o], uv[o]
    return {"red": co[uv >= RED_UV_SPLIT], "blue": co[uv < RED_UV_SPLIT]}


def label_templates(grid: TemplateGrid, mix: dict[str, np.ndarray],
                    n: int = LABEL_TEMPLATES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coeffs (n, 5), A_V (n,), BPZ type (n,)) of the labelling set, reddest first.

    Quantiles of rest U−V over the mixtures `mix` (`galaxy_mixtures`; red and blue classes pooled
    with the weight of their numbers), each with the median extra dust of its class."""
    red, blue = mix["red"], mix["blue"]
    co = np.concatenate([red, blue])
    av = np.r_[np.full(len(red), AV_RED * np.log(2)), np.full(len(blue), AV_BLUE[0] * AV_BLUE[1] * 0.89)]
    rest = grid.restframe(co, av)
    uv = -2.5 * np.log10(rest[:, 0] / rest[:, 2])
    order = np.argsort(-uv, kind="stable")                # reddest first
    pick = order[np.round(np.linspace(0, len(order) - 1, n)).astype(int)]
    coeffs = co[pick] / rest[pick, 1:2]                  # unit rest-frame B light
    return coeffs, av[pick], bpz_type_from_colour(uv[pick])


_LABEL_SETS: dict = {}


def survey_label_set(survey: Survey, n: int = LABEL_TEMPLATES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`label_templates` on the survey's template grid (cached per survey file)."""
    key = (survey.name, survey.source, n)
    if key not in _LABEL_SETS:
        grid = TemplateGrid(survey)
        _LABEL_SETS[key] = label_templates(grid, galaxy_mixtures(grid), n)
    return _LABEL_SETS[key]
