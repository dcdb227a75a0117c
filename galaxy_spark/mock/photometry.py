"""Noise, detection and the ColorPro sentinels.

Error model per band (noise depth m5 = noise_depth_5sigma from the survey file, varied by ~0.15 mag
from CCD to CCD together with the written limits):
  σ_f² = (ap · f5/5)² + (floor · f / 1.0857)²,   ap = sqrt(A_aperture / A_REF)
The first term is the sky noise in the object's (isophotal, ColorPro-like) aperture: faint objects
have small apertures, bright ones large, which is why the real error–magnitude relation is much
shallower than a sky-limited one at fixed aperture (log S/N falls by ~0.22 dex per magnitude on the
real rows, not 0.4). A_REF = 32 px is calibrated on the real F814W relation (0.175 at 24–25, area ~28 px). The
second term is a calibration floor (0.8%). Non-detections carry the image's 1σ limit
m5 + 1.747 (on the real rows the limits are per image, not per aperture).

Observed flux = true flux + N(0, σ_f). Detected (flux > 0.3σ): magnitude and 1.0857·σ_f/flux.
Not detected (flux ≤ 0.3σ, the lowest S/N seen among real detections): magnitude 99, error = the 1σ limiting magnitude. Not observed
(outside a band's coverage, saturated): magnitude −99, error 0.
"""
from __future__ import annotations

import numpy as np

A_REF = 32.0                 # aperture area (px) where the sky term equals the image's f5/5
ERR_FLOOR = 0.008
MIN_APERTURE_PX = 15.0
# Noise of the observed (non-detection) bands: each band's noise_depth_5sigma from the survey file,
# measured on the real rows (the errors of detected objects imply deeper images than the limits the
# survey writes for non-detections). Without one, the band's noise is DEFAULT_NOISE_DEPTH_GAIN mag
# deeper than its written limit (the median over ALHAMBRA's bands).
DEFAULT_NOISE_DEPTH_GAIN = 0.65
NIR_PIVOT_AA = 10000.0
AUTO_GAIN = 0.055            # s2n (AUTO aperture) = snr·(1 + AUTO_GAIN·snr) on the real rows
LIM_OFFSET = 2.5 * np.log10(5.0)   # 1σ limit = m5 + 1.747


def maggies_to_mag(f):
    with np.errstate(divide="ignore", invalid="ignore"):
        return -2.5 * np.log10(f)


def band_depths(survey, band_names):
    """The 5σ limits (AB mag) the survey writes for non-detections, in band order."""
    return np.array([survey.band(b).depth_5sigma for b in band_names])


def noise_depths(survey, band_names):
    """The 5σ depths (AB mag, 32 px aperture) that set the mock's flux errors, in band order.

    The detection band keeps its written depth: its errors come from the detection model, whose
    aperture reference A_REF was calibrated on it.
    """
    out = []
    for b in band_names:
        band = survey.band(b)
        if b == survey.detection_band:
            out.append(band.depth_5sigma)
        elif band.noise_depth_5sigma is not None:
            out.append(band.noise_depth_5sigma)
        else:
            out.append(band.depth_5sigma + DEFAULT_NOISE_DEPTH_GAIN)
    return np.array(out)


def aperture_factor(area_px):
    return np.sqrt(np.maximum(area_px, MIN_APERTURE_PX) / A_REF)


def flux_sigma(f_true, m5, ap):
    """1σ flux error (maggies) for true fluxes (n, nb), noise depths (nb,), aperture factors (n,)."""
    f5 = 10 ** (-0.4 * np.asarray(m5))
    sky = ap[:, None] * f5 / 5.0
    return np.sqrt(sky ** 2 + (ERR_FLOOR / 1.0857 * np.maximum(f_true, 0)) ** 2)


def observe(rng, f_true, m5, ap):
    """Noisy fluxes and their σ for every band."""
    sig = flux_sigma(f_true, m5, ap)
    return f_true + rng.standard_normal(f_true.shape) * sig, sig


def detection_snr(rng, f_obs_det, sig_det):
    """The `s2n` column: S/N in the AUTO aperture on the detection image."""
    snr = f_obs_det / sig_det
    return snr * (1 + AUTO_GAIN * np.clip(snr, 0, None)) * 10 ** rng.normal(0, 0.06, f_obs_det.shape)


MIN_DETECTED_SNR = 0.3       # lowest S/N among the real rows' detections (error ≤ 3.4 mag)


def to_catalogue(f_obs, sig, m5, observed, nd_mag, no_mag, no_err):
    """Magnitude and error arrays with the survey's sentinels."""
    det = f_obs > MIN_DETECTED_SNR * sig
    mag = np.where(det, maggies_to_mag(np.where(det, f_obs, 1.0)), nd_mag)
    err = np.where(det, 1.0857 * sig / np.where(det, f_obs, 1.0), 0.0)
    lim = np.broadcast_to(m5 + LIM_OFFSET, mag.shape)
    err = np.where(det, err, lim)
    mag = np.where(observed, mag, no_mag)
    err = np.where(observed, err, no_err)
    return mag, err, det & observed
