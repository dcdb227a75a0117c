"""Filter response curves named by the survey file, read straight from the package data.

kcorrect ships the real ALHAMBRA curves as small Yanny-style tables (`| lambda | pass |`); reading
them directly takes milliseconds (kcorrect's own loader takes ~1 s each).
"""
from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass

import numpy as np

from galaxy_spark.survey import Band, Survey


@dataclass(frozen=True)
class Response:
    band: str
    wave_aa: np.ndarray      # Angstrom, increasing, padded with zero throughput at both ends
    throughput: np.ndarray   # normalised to a peak of 1

    @property
    def pivot_aa(self) -> float:
        w, t = self.wave_aa, self.throughput
        return float(np.sqrt(np.trapezoid(t * w, w) / np.trapezoid(t / w, w)))


@functools.lru_cache(maxsize=256)
def _read_table(package: str, file: str) -> tuple[np.ndarray, np.ndarray]:
    path = importlib.resources.files(package) / "data" / "responses" / file
    rows = []
    with path.open() as fh:
        for line in fh:
            if line.startswith("|"):
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                try:
                    rows.append((float(cells[0]), float(cells[1])))
                except ValueError:
                    continue  # the header row
    if not rows:
        raise ValueError(f"no response table found in {package}:{file}")
    a = np.asarray(rows)
    return a[:, 0], a[:, 1]


def load_response(band: Band) -> Response:
    if band.response is None:
        raise ValueError(f"band {band.name} has no response curve in the survey file")
    wave, thr = _read_table(band.response["package"], band.response["file"])
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


def ab_magnitudes(wave_aa: np.ndarray, f_lambda: np.ndarray, responses: dict[str, Response]) -> np.ndarray:
    """AB magnitudes of spectra f_lambda (erg/s/cm²/Å; shape (..., n_wave)) through photon-counting filters.

    m_AB = -2.5 log10( ∫ f_λ T λ dλ / ∫ c/λ T dλ ) - 48.60 (c in Å/s)
    """
    c_aa = 2.99792458e18
    out = []
    for r in responses.values():
        t = np.interp(wave_aa, r.wave_aa, r.throughput, left=0.0, right=0.0)
        num = np.trapezoid(f_lambda * t * wave_aa, wave_aa, axis=-1)
        den = np.trapezoid(c_aa * t / wave_aa, wave_aa)
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(-2.5 * np.log10(num / den) - 48.60)
    return np.stack(out, axis=-1)
