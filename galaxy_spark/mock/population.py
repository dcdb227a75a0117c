"""Joint draws of redshift, luminosity, SED and dust for galaxies, and of stars.

Galaxies come from two Schechter rest-frame B-band (AB) luminosity functions, "red" (quiescent)
and "blue" (star-forming), with luminosity and density evolution, times the comoving volume
element dV/dz of Planck18. (z, M_B) pairs are drawn from that density over cells that can reach
the generation limit, then every galaxy gets an SED (a real SDSS mixture of the kcorrect
templates from its colour class, projected on the mixtures' two leading principal components,
and extra Calzetti dust; the optional young-star component, YOUNG_*, is off: it made the SEDs
degenerate with redshift, see docs/mock.md "Photo-z fidelity"), its exact apparent magnitudes from the template grid, and is
kept only if it passes the detection cut (photometry.detect). So n(z | m) follows from the
luminosity functions and the K-corrections; nothing is drawn independently of redshift.

Stars: F814W from a shallow power law of number counts, T_eff from a two-component
(thick-disc/halo FGK + M dwarf) mixture, colours from seds.StarGrid.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from galaxy_spark.fitting import templates as T
from galaxy_spark.fitting.templates import AV_BLUE, AV_RED
from galaxy_spark.mock import seds

# --- luminosity functions (rest-frame B, AB, Planck18 h) ---------------------------------------
# Loosely after Faber et al. 2007 / López-Sanjuan et al. 2017 (ALHAMBRA B-band LF), tuned so
# that <z> = 0.56 for F814W < 22.5 and 0.86 for F814W < 24.5 (Molino et al. 2014).
LF = {
    # name: (phi* [Mpc^-3], alpha, M*0, Q [mag per unit z], P density evolution, z_break)
    "red": (2.6e-3, -0.5, -20.55, 0.85, -2.2, 1.2),
    "blue": (3.2e-3, -1.3, -20.3, 1.35, -0.3, 1.8),
}
M_RANGE = (-25.5, -11.0)
Z_RANGE = (0.02, 6.5)


# young component: mean fraction of rest-B light = a + b·z (capped at c); scatter Gamma(k)/k
YOUNG_BLUE = (0.0, 0.0, 0.0)
YOUNG_RED = (0.0, 0.0, 0.0)
YOUNG_SHAPE = 16.0
BLUE_TILT = 0.0              # how fast star-forming galaxies shift to the bluer mixtures with z


def schechter_mag(M, phi, alpha, Mstar):
    x = 10 ** (-0.4 * (M - Mstar))
    return 0.4 * np.log(10) * phi * x ** (alpha + 1) * np.exp(-x)


def lf_params(kind: str, z: np.ndarray):
    phi, alpha, M0, Q, P, zb = LF[kind]
    zz = np.minimum(z, zb)
    Mstar = M0 - Q * zz
    ph = phi * 10 ** (0.4 * P * zz)
    # beyond z_break the luminosity function fades (density falls as (1+z)^-3)
    ph = ph * np.where(z > zb, ((1 + z) / (1 + zb)) ** -3.0, 1.0)
    return ph, alpha, Mstar


class Cosmo:
    """Planck18 distances tabulated once (interpolation is ~100× faster than astropy calls)."""

    def __init__(self, z_max: float = 7.5):
        from astropy.cosmology import Planck18

        self.z = np.concatenate([[1e-4], np.expm1(np.linspace(np.log1p(1e-3), np.log1p(z_max), 3000))])
        self.dm = Planck18.distmod(self.z).value
        self.da_kpc_per_arcsec = Planck18.angular_diameter_distance(self.z).value * 1e3 * np.pi / 180 / 3600
        self.dvdz = Planck18.differential_comoving_volume(self.z).value  # Mpc^3 / sr / dz

    def distmod(self, z):
        return np.interp(z, self.z, self.dm)

    def kpc_per_arcsec(self, z):
        return np.interp(z, self.z, self.da_kpc_per_arcsec)

    def dV(self, z):
        return np.interp(z, self.z, self.dvdz)


@dataclass
class Galaxies:
    z: np.ndarray
    M_B: np.ndarray
    red: np.ndarray           # bool
    coeffs: np.ndarray        # (n, 5) physical coefficients (M☉ formed per template)
    av: np.ndarray
    maggies: np.ndarray       # (n, n_bands) noiseless apparent fluxes
    logmass: np.ndarray
    u_minus_v: np.ndarray     # rest frame, AB, dust included
    type_bpz: np.ndarray      # continuous 1–11
    r_e_arcsec: np.ndarray
    q: np.ndarray             # intrinsic axis ratio

    def take(self, idx):
        return Galaxies(**{k: v[idx] for k, v in self.__dict__.items()})


class GalaxyModel:
    """Everything shared by all chunks: grids, mixtures, sampling tables (built once)."""

    def __init__(self, survey, det_limit: float = 27.0):
        self.survey = survey
        self.grid = T.TemplateGrid(survey)
        self.cosmo = Cosmo()
        self.det_index = self.grid.band_names.index(survey.detection_band)
        self.mix = T.galaxy_mixtures(self.grid)
        # the young-star component: the template with the bluest rest U−V (unit rest-B light)
        r0 = self.grid.rest[:, 0, :]
        self.young = int(np.argmin(-2.5 * np.log10(r0[:, 0] / r0[:, 2])))
        self.young_coeffs = np.eye(r0.shape[0])[self.young] / r0[self.young, 1]
        self.det_limit = det_limit
        self._build_tables()

    # expected apparent F814W − M_B − DM at each z for each class (bright end of its mixtures)
    def _k_envelope(self, kind, zc):
        mix = self.mix[kind]
        pick = mix[:: max(1, len(mix) // 300)]
        k = []
        for zz in zc:
            c = self._evolve(pick, np.full(len(pick), zz), kind, np.ones(len(pick)))
            av = np.zeros(len(pick))
            obs = self.grid.observed(c, np.full(len(pick), zz), av)[:, self.det_index]
            b = self.grid.restframe(c, av)[:, 1]
            k.append(np.min(-2.5 * np.log10(obs / b)))
        return np.asarray(k)

    def _build_tables(self):
        ze = np.expm1(np.linspace(np.log1p(Z_RANGE[0]), np.log1p(Z_RANGE[1]), 241))
        zc = 0.5 * (ze[1:] + ze[:-1])
        Me = np.arange(M_RANGE[0], M_RANGE[1] + 1e-9, 0.05)
        Mc = 0.5 * (Me[1:] + Me[:-1])
        self.z_edges, self.M_edges = ze, Me
        weights, kinds = [], []
        for kind in ("red", "blue"):
            ph, al, Ms = lf_params(kind, zc)
            dens = schechter_mag(Mc[None, :], ph[:, None], al, Ms[:, None])
            w = dens * (self.cosmo.dV(zc) * np.diff(ze))[:, None] * 0.05
            kmin = self._k_envelope(kind, zc)
            mapp = Mc[None, :] + self.cosmo.distmod(zc)[:, None] + kmin[:, None]
            w = np.where(mapp < self.det_limit, w, 0.0)
            weights.append(w)
            kinds.append(kind)
        W = np.stack(weights)                          # (2, nz, nM)
        self.cdf = np.cumsum(W.ravel())
        self.cdf /= self.cdf[-1]
        self.table_shape = W.shape

    def _evolve(self, c, z, kind, u):
        """Add a young component (fraction of rest-B light) growing with z; u ~ Gamma(k)/k."""
        c = c.copy()
        lb = c @ self.grid.rest[:, 0, 1]
        if kind == "blue":
            mu = np.minimum(YOUNG_BLUE[0] + YOUNG_BLUE[1] * z, YOUNG_BLUE[2])
        else:
            mu = np.minimum(YOUNG_RED[0] + YOUNG_RED[1] * z, YOUNG_RED[2])
        f = np.clip(mu * u, 0.0, 0.9)
        c += (f / (1 - f) * lb)[:, None] * self.young_coeffs[None, :]
        return c

    def draw(self, rng: np.random.Generator, n: int) -> Galaxies:
        """n candidate galaxies (before detection)."""
        cells = np.searchsorted(self.cdf, rng.random(n), side="right")
        cells = np.minimum(cells, self.cdf.size - 1)
        k, iz, iM = np.unravel_index(cells, self.table_shape)
        ze, Me = self.z_edges, self.M_edges
        z = ze[iz] + rng.random(n) * (ze[iz + 1] - ze[iz])
        M = Me[iM] + rng.random(n) * (Me[iM + 1] - Me[iM])
        red = k == 0
        coeffs = np.empty((n, self.grid.n_templates))
        av = np.empty(n)
        u = rng.gamma(YOUNG_SHAPE, 1.0 / YOUNG_SHAPE, n)
        for kind, sel in (("red", red), ("blue", ~red)):
            m = int(sel.sum())
            if not m:
                continue
            mix = self.mix[kind]
            # evolution within the observed family: at higher z star-forming galaxies are drawn
            # from the bluer SDSS mixtures (quantile u^(1 + k·z), sorted bluest first)
            tilt = 1.0 + BLUE_TILT * np.minimum(z[sel], 2.0) if kind == "blue" else np.ones(m)
            c = mix[np.minimum((rng.random(m) ** tilt * len(mix)).astype(int), len(mix) - 1)]
            coeffs[sel] = self._evolve(c, z[sel], kind, u[sel])
            av[sel] = rng.gamma(*AV_BLUE, m) if kind == "blue" else rng.exponential(AV_RED, m)
        av = np.clip(av, 0.0, self.grid.av[-1])
        rest = self.grid.restframe(coeffs, av)
        scale = 10 ** (-0.4 * M) / rest[:, 1]
        coeffs = coeffs * scale[:, None]
        obs = self.grid.observed(coeffs, z, av) * (10 ** (-0.4 * self.cosmo.distmod(z)))[:, None]
        logmass = np.log10(coeffs @ self.grid.mremain)
        uv = -2.5 * np.log10(rest[:, 0] / rest[:, 2])
        tb = T.bpz_type_from_colour(uv)
        # sizes: r_e ∝ L^β, shrinking as (1+z)^-1 (Shen et al. 2003; van der Wel et al. 2014 style)
        beta = np.where(red, 0.45, 0.25)
        r0 = np.where(red, 3.0, 4.5)
        r_e_kpc = r0 * 10 ** (-0.4 * beta * (M + 20.5)) * (1 + z) ** -0.9 * 10 ** rng.normal(0, 0.2, n)
        r_e = np.minimum(r_e_kpc / self.cosmo.kpc_per_arcsec(z), 15.0)
        q = np.where(red, rng.uniform(0.5, 1.0, n), np.clip(rng.beta(2.5, 1.6, n), 0.15, 1.0))
        return Galaxies(z, M, red, coeffs, av, obs, logmass, uv, tb, r_e, q)


# --- stars -----------------------------------------------------------------------------------
STAR_MAG_RANGE = (14.0, 26.5)
STAR_COUNT_SLOPE = 0.12      # d log10 N / dm of star counts at high latitude, faint end


@dataclass
class Stars:
    teff: np.ndarray
    mag_det: np.ndarray
    colours: np.ndarray      # band − detection band
    b_minus_det: np.ndarray

    def take(self, idx):
        return Stars(**{k: v[idx] for k, v in self.__dict__.items()})


class StarModel:
    def __init__(self, survey):
        self.grid = seds.StarGrid(survey)

    def draw(self, rng: np.random.Generator, n: int) -> Stars:
        a, b = STAR_MAG_RANGE
        s = STAR_COUNT_SLOPE * np.log(10)
        u = rng.random(n)
        m = np.log(np.exp(s * a) + u * (np.exp(s * b) - np.exp(s * a))) / s
        # high-latitude stars at F814W > 16 are mostly M dwarfs plus thick-disc/halo K/G dwarfs
        dwarf = rng.random(n) < np.clip(0.55 + 0.02 * (m - 18), 0.4, 0.7)
        teff = np.where(dwarf, rng.normal(3400, 300, n), rng.normal(4900, 700, n))
        teff = np.clip(teff, 2850, 9500)
        col = self.grid.colours_at(teff) + rng.normal(0, 0.03, (n, self.grid.colours.shape[1]))
        bmd = np.interp(teff, self.grid.teff, self.grid.b_minus_det)
        return Stars(teff, m, col, bmd)


