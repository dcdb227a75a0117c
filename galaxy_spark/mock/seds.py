"""The mock's stellar sequence (galaxy templates: galaxy_spark.fitting.templates).

Stars (an approximation, see docs/mock.md)
    No stellar library ships offline. Stars are Planck spectra over a T_eff sequence with
    the main spectral features imposed as smooth multiplicative masks: metal-line blanketing
    below ~4300 Å growing towards cool stars, the Balmer jump at 3646 Å for A/F stars, the 4000 Å
    break, and TiO/VO molecular bands plus a depressed optical continuum in M dwarfs.
"""
from __future__ import annotations

import numpy as np

from galaxy_spark.filters import band_weights as _band_weights, load_responses
from galaxy_spark.fitting.templates import REST_B, _curve
from galaxy_spark.survey import Survey


def _smoothstep(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def star_spectrum(wave: np.ndarray, teff: float) -> np.ndarray:
    """Approximate stellar f_lambda (arbitrary normalisation) at effective temperature teff."""
    h_c_k = 1.4387769e8  # hc/k in Å·K
    x = np.clip(h_c_k / (wave * teff), None, 700)
    f = wave ** -5 / np.expm1(x)
    cool = np.clip((7000.0 - teff) / 3500.0, 0, 1)                 # 0 for A stars, 1 at 3500 K
    # metal-line blanketing and the 4000 Å break (grows towards cool stars)
    f *= 1 - (0.25 + 0.55 * cool) * cool * _smoothstep((4100.0 - wave) / 60.0)
    f *= 1 - 0.35 * cool * _smoothstep((3800.0 - wave) / 80.0)
    # Balmer jump, strongest near 9,000 K
    bj = 0.55 * np.exp(-0.5 * ((teff - 9000.0) / 2000.0) ** 2)
    f *= 1 - bj * _smoothstep((3646.0 - wave) / 20.0)
    # M dwarfs: TiO/VO bands and a depressed blue-optical continuum
    m = np.clip((4000.0 - teff) / 1000.0, 0, 1)
    if m > 0:
        for lo, hi, depth in ((4950, 5200, 0.4), (5450, 5700, 0.4), (6150, 6350, 0.45),
                              (6650, 6900, 0.4), (7050, 7500, 0.55), (7600, 8000, 0.3),
                              (8430, 8700, 0.25)):
            f *= 1 - depth * m * _smoothstep((wave - lo) / 25.0) * _smoothstep((hi - wave) / 25.0)
        f *= 1 - 0.5 * m * _smoothstep((6000.0 - wave) / 400.0)
    return f


class StarGrid:
    """AB colours (band − detection band) of the approximate stellar sequence on a T_eff grid."""

    def __init__(self, survey: Survey, teff=None):
        self.teff = np.asarray(teff if teff is not None else np.geomspace(2800.0, 15000.0, 120))
        resp = load_responses(survey)
        self.band_names = list(resp)
        wave = np.geomspace(1000.0, 30000.0, 8000)
        spec = np.stack([star_spectrum(wave, t) for t in self.teff])
        mags = np.empty((self.teff.size, len(resp)))
        for k, r in enumerate(resp.values()):
            W = _band_weights(wave, r.wave_aa, r.throughput, np.zeros(1), None)[:, 0]
            mags[:, k] = -2.5 * np.log10(spec @ W)
        det = self.band_names.index(survey.detection_band)
        self.colours = mags - mags[:, [det]]
        cw, ct = _curve(REST_B)
        wb = _band_weights(wave, cw, ct, np.zeros(1), None)[:, 0]
        self.b_minus_det = -2.5 * np.log10(spec @ wb) - mags[:, det]

    def colours_at(self, teff: np.ndarray) -> np.ndarray:
        return np.stack([np.interp(teff, self.teff, self.colours[:, k]) for k in range(self.colours.shape[1])], -1)
