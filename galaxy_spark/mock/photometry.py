"""Noise, detection and the ColorPro sentinels.

Error model per band (depth m5 = depth_5sigma from the survey file, varied by ~0.15 mag from CCD
to CCD):
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
# The depth_5sigma of the observed bands reproduces the limits the survey writes for
# non-detections; the errors of detected objects imply ~0.65 mag deeper images (real rows: the
# median error at fixed magnitude is ~1.8× smaller than limit/aperture scaling predicts). The
# mock writes the survey's limits and scales the noise of the non-detection bands by this.
NOISE_SCALE_OBSERVED = 0.55       # colour apertures are never smaller than the PSF core
NIR_PIVOT_AA = 10000.0
AUTO_GAIN = 0.055            # s2n (AUTO aperture) = snr·(1 + AUTO_GAIN·snr) on the real rows
LIM_OFFSET = 2.5 * np.log10(5.0)   # 1σ limit = m5 + 1.747


def maggies_to_mag(f):
    with np.errstate(divide="ignore", invalid="ignore"):
        return -2.5 * np.log10(f)


def band_depths(survey, band_names):
    return np.array([survey.band(b).depth_5sigma for b in band_names])


def aperture_factor(area_px):
    return np.sqrt(np.maximum(area_px, MIN_APERTURE_PX) / A_REF)


def flux_sigma(f_true, m5, ap, scale=1.0):
    """1σ flux error (maggies) for true fluxes (n, nb), depths (nb,), aperture factors (n,)."""
    f5 = 10 ** (-0.4 * np.asarray(m5)) * scale
    sky = ap[:, None] * f5 / 5.0
    return np.sqrt(sky ** 2 + (ERR_FLOOR / 1.0857 * np.maximum(f_true, 0)) ** 2)


def observe(rng, f_true, m5, ap, scale=1.0):
    """Noisy fluxes and their σ for every band."""
    sig = flux_sigma(f_true, m5, ap, scale)
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
