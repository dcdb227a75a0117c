"""Filter response curves named by the survey file.

Two kinds of `response:` entry:
- `{package: kcorrect, file: NAME}`: a curve an installed package ships (kcorrect's small
  Yanny-style tables, `| lambda | pass |`; read directly in milliseconds, kcorrect's own loader
  takes ~1 s each);
- `{file: PATH}`: a two-column text table (wavelength in Å, throughput; `#` comments), PATH
  relative to the survey file's directory or absolute — the official curves of a survey (e.g. from
  the SVO Filter Profile Service) or the approximate ones `scripts/make_curves.py` builds from a
  band's published centre and width (`approximate_throughput`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from galaxy_spark.survey_types import Band, Survey


@dataclass(frozen=True)
class Response:
    band: str
    wave_aa: np.ndarray      # Angstrom, increasing, padded with zero throughput at both ends
    throughput: np.ndarray   # normalised to a peak of 1

    @property
    def pivot_aa(self) -> float:
        w, t = self.wave_aa, self.throughput
        return float(np.sqrt(np.trapezoid(t * w, w) / np.trapezoid(t / w, w)))


# Approximate curves: a flat top with raised-cosine edges, each edge EDGE_FRACTION of the FWHM wide
# (10%-90% rise over ~0.2 FWHM, like the interference filters of J-PLUS/J-PAS), the half maximum
# exactly at centre ± FWHM/2, so the curve's FWHM and pivot are the published ones.
EDGE_FRACTION = 0.25


def approximate_throughput(wave_aa: np.ndarray, centre_aa: float, fwhm_aa: float) -> np.ndarray:
    """Peak-normalised throughput (0–1) at `wave_aa` of a band of the given centre and FWHM (Å)."""
    edge = EDGE_FRACTION * fwhm_aa
    d = np.abs(np.asarray(wave_aa, float) - centre_aa) - (fwhm_aa - edge) / 2   # distance into the edge
    return np.where(d <= 0, 1.0, np.where(d >= edge, 0.0, 0.5 * (1 + np.cos(np.pi * np.clip(d, 0, edge) / edge))))


def approximate_curve(centre_aa: float, fwhm_aa: float, step_aa: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """The sampled `approximate_throughput` curve, zero at both ends."""
    half = (1 + EDGE_FRACTION) * fwhm_aa / 2
    wave = np.arange(np.floor((centre_aa - half) / step_aa) * step_aa, centre_aa + half + step_aa, step_aa)
    return wave, approximate_throughput(wave, centre_aa, fwhm_aa)


@functools.lru_cache(maxsize=256)
def _read_table(location) -> tuple[np.ndarray, np.ndarray]:
    rows = []
    with location.open() as fh:
        for line in fh:
            if line.startswith("|"):          # kcorrect's Yanny tables
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
            elif line.strip() and not line.lstrip().startswith("#"):
                cells = line.split()          # plain two-column text
            else:
                continue
            try:
                rows.append((float(cells[0]), float(cells[1])))
            except (ValueError, IndexError):
                continue  # a header row
    if not rows:
        raise ValueError(f"no response table found in {location}")
    a = np.asarray(rows)
    return a[:, 0], a[:, 1]


def load_response(band: Band) -> Response:
    if band.response is None:
        raise ValueError(f"band {band.name} has no response curve in the survey file")
    wave, thr = _read_table(band.response["location"])
    order = np.argsort(wave)
    wave, thr = wave[order], np.clip(thr[order], 0.0, None)
    thr = thr / thr.max()  # 'percent' and 'fraction' curves alike end up peak-normalised
    dl, dr = wave[1] - wave[0], wave[-1] - wave[-2]
    wave = np.concatenate([[wave[0] - dl], wave, [wave[-1] + dr]])
    thr = np.concatenate([[0.0], thr, [0.0]])
    return Response(band.name, wave, thr)


def load_responses(survey: Survey, include_synthetic: bool = True) -> dict[str, Response]:
    """Responses of every band that names a curve, in survey order."""
    return {b.name: load_response(b) for b in survey.bands
            if b.response is not None and (include_synthetic or not b.synthetic)}


C_AA = 2.99792458e18          # speed of light, Å/s
AB_ZP = 3631e-23              # erg/s/cm²/Hz of an AB magnitude 0 source


def band_weights(wave_rest: np.ndarray, curve_wave: np.ndarray, curve_thr: np.ndarray, z: np.ndarray,
                 igm: np.ndarray | None = None) -> np.ndarray:
    """Weights W (n_wave, n_z) so that the AB maggies of a rest-frame f_λ sampled at `wave_rest`
    (the spectrum moved to redshift z: f_λ(λ/(1+z))/(1+z), no distance dimming) are ``f @ W``.

    ∫ f_obs R λ dλ over observed λ = (1+z) ∫ f(λr) R(λr(1+z)) λr dλr; the AB denominator is
    ∫ R c/λ dλ · 3631 Jy. `igm` (n_wave, n_z): the IGM transmission at each (λr, z), or None."""
    z = np.atleast_1d(np.asarray(z, float))
    dl = np.gradient(wave_rest)
    lobs = wave_rest[:, None] * (1.0 + z[None, :])
    r = np.interp(lobs, curve_wave, curve_thr, left=0.0, right=0.0)
    if igm is not None:
        r = r * igm
    den = np.trapezoid(curve_thr * C_AA / curve_wave, curve_wave) * AB_ZP
    return (1.0 + z)[None, :] * r * (wave_rest * dl)[:, None] / den


def igm_transmission(wave_rest: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Madau (1995) IGM transmission (n_wave, n_z) of light emitted at `wave_rest` by a source at
    each z (desc-bpz's implementation; 1 below z = 0.1, where it is negligible)."""
    from desc_bpz.bpz_tools_py3 import etau_madau

    z = np.atleast_1d(np.asarray(z, float))
    out = np.ones((wave_rest.size, z.size))
    for j, zz in enumerate(z):
        if zz > 0.1:
            out[:, j] = etau_madau(wave_rest * (1 + zz), zz)
    return out


def observed_weights(wave_rest: np.ndarray, curve_wave: np.ndarray, curve_thr: np.ndarray, z: np.ndarray,
                     min_coverage: float = 0.99) -> np.ndarray:
    """`band_weights` with the IGM, (n_wave, n_z), and NaN in the columns (redshifts) where the
    redshifted rest-frame grid covers less than `min_coverage` of the filter (its AB-weighted
    response ∫ R/λ dλ): a spectrum that stops inside a filter has no honest magnitude there."""
    z = np.atleast_1d(np.asarray(z, float))
    w = band_weights(wave_rest, curve_wave, curve_thr, z, igm_transmission(wave_rest, z))
    dens = curve_thr / curve_wave
    total = np.trapezoid(dens, curve_wave)
    for j, zz in enumerate(z):
        inside = (curve_wave >= wave_rest[0] * (1 + zz)) & (curve_wave <= wave_rest[-1] * (1 + zz))
        if np.trapezoid(np.where(inside, dens, 0.0), curve_wave) < min_coverage * total:
            w[:, j] = np.nan
    return w


@functools.lru_cache(maxsize=64)
def standard_curve(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(wavelength Å, peak-normalised throughput) of a filter `speclite` ships ('sdss2010-r',
    'bessell-V', 'galex-nuv', 'lsst2023-i', 'Euclid-VIS', 'twomass-Ks', 'wise2010-W1', …) or of a
    two-column text table when `name` is a path. ValueError naming the known groups otherwise."""
    from pathlib import Path

    if Path(name).suffix and Path(name).is_file():
        wave, thr = _read_table(Path(name))
    else:
        import speclite.filters

        try:
            f = speclite.filters.load_filter(name)
        except (ValueError, OSError, KeyError) as e:
            raise ValueError(f"unknown filter {name!r}: give a speclite name such as sdss2010-r, "
                             f"bessell-V, lsst2023-i, Euclid-VIS, twomass-Ks, or a curve file ({e})") from None
        wave, thr = np.asarray(f.wavelength, float), np.asarray(f.response, float)
    o = np.argsort(wave)
    wave, thr = wave[o], np.clip(thr[o], 0.0, None)
    return wave, thr / thr.max()


def ab_magnitudes(wave_aa: np.ndarray, f_lambda: np.ndarray, responses: dict[str, Response]) -> np.ndarray:
    """AB magnitudes of spectra f_lambda (erg/s/cm²/Å; shape (..., n_wave)) through photon-counting filters.

    m_AB = -2.5 log10( ∫ f_λ T λ dλ / ∫ c/λ T dλ ) - 48.60 (c in Å/s)
    """
    c_aa = C_AA
    out = []
    for r in responses.values():
        t = np.interp(wave_aa, r.wave_aa, r.throughput, left=0.0, right=0.0)
        num = np.trapezoid(f_lambda * t * wave_aa, wave_aa, axis=-1)
        den = np.trapezoid(c_aa * t / wave_aa, wave_aa)
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(-2.5 * np.log10(num / den) - 48.60)
    return np.stack(out, axis=-1)
