"""The SED network's labels and basis (model/sed.py decodes them).

Labels, by source:

- ``catalogue`` (default; what real data allows): the survey's best-fit template at the catalogue
  redshift — the labelling template set (``fitting.templates.label_templates``: the survey's 11
  templates on BPZ's 1–11 scale) interpolated in flux at the catalogue's spectral type, as BPZ
  interpolates between neighbouring templates. On real rows the survey's own template set would be
  the faithful choice; this project ships only its stand-in, so on real data the label is that
  stand-in's template at the catalogue's type.
- ``truth`` (simulation studies, ``--labels truth``): each mock galaxy's own SED, from its truth
  columns (template weights and A_V).

Spectroscopy gives no SED: the spectroscopic label modes keep the catalogue labels for it.

The basis is the principal components of the training split's label spectra (log10 f_λ,
normalised over 3,000–9,000 Å), fitted on at most `BASIS_SAMPLE` galaxies of the training split.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from galaxy_spark.errors import InputError
from galaxy_spark.features import TRUTH_SED_COLUMNS
from galaxy_spark.fitting.templates import rest_spectra, survey_label_set
from galaxy_spark.log import get_logger
from galaxy_spark.model.sed import SEDBasis, normalised_log, with_filters
from galaxy_spark.survey import Survey

log = get_logger(__name__)

BASIS_SAMPLE = 20000          # training galaxies the principal components are fitted on
CHUNK = 20000                 # rows turned into spectra at once (bounds memory)
TYPE_GRID = 2001              # catalogue labels: spectral types tabulated on this fine grid
DEFAULTS = {"wave": {"min": 1000.0, "max": 25000.0, "count": 600}, "components": 8,
            "z_nodes": {"max": 6.0, "step": 0.025},
            "colours": [["rest_u_minus_v", "bessell-U", "bessell-V"], ["rest_nuv_minus_r", "galex-nuv", "sdss2010-r"]],
            "absolute": ["bessell-U", "bessell-B", "bessell-V", "sdss2010-r"],
            "synthetic_filters": ["sdss2010-r"]}


def sed_settings(cfg: dict) -> dict:
    """The SED network's `basis:` settings from the preset, defaults filled in."""
    b = {**DEFAULTS, **(cfg.get("basis") or {})}
    if int(b["components"]) != int(cfg["output"]["units"]):
        raise InputError(f"networks.sed: basis.components ({b['components']}) must equal output.units "
                         f"({cfg['output']['units']})")
    return b


def rest_wave(settings: dict) -> np.ndarray:
    w = settings["wave"]
    return np.geomspace(float(w["min"]), float(w["max"]), int(w["count"]))


def template_family(survey: Survey, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(BPZ types ascending, rest-frame spectra (T, G)) of the survey's labelling templates."""
    coeffs, av, types = survey_label_set(survey)
    order = np.argsort(types, kind="stable")
    return types[order], rest_spectra(coeffs[order], av[order], wave)


def template_log_spectra(types: np.ndarray, family_types: np.ndarray, family: np.ndarray, wave: np.ndarray) -> np.ndarray:
    """Normalised log spectra at spectral types `types`: the family interpolated linearly in flux
    between the two neighbouring templates (clipped to the family's range)."""
    t = np.clip(np.asarray(types, np.float64), family_types[0], family_types[-1])
    i = np.clip(np.searchsorted(family_types, t, side="right") - 1, 0, len(family_types) - 2)
    w = ((t - family_types[i]) / (family_types[i + 1] - family_types[i]))[:, None]
    a, b = family[i], family[i + 1]
    # each template normalised first, so the interpolation mixes shapes, not luminosities
    na, nb = 10 ** normalised_log(a, wave), 10 ** normalised_log(b, wave)
    return normalised_log((1 - w) * na + w * nb, wave)


def truth_log_spectra(df: pd.DataFrame, wave: np.ndarray) -> np.ndarray:
    """Normalised log spectra of the mock galaxies' true SEDs (truth columns), chunked."""
    coeffs = df[list(TRUTH_SED_COLUMNS[:-1])].to_numpy(np.float64)
    av = df[TRUTH_SED_COLUMNS[-1]].to_numpy(np.float64)
    out = np.empty((len(df), wave.size))
    for s in range(0, len(df), CHUNK):
        out[s:s + CHUNK] = normalised_log(rest_spectra(coeffs[s:s + CHUNK], av[s:s + CHUNK], wave), wave)
    return out


def fit_components(log_spectra: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean (G,), components (k, G), explained variance share) of normalised log spectra."""
    mean = log_spectra.mean(axis=0)
    _, s, vt = np.linalg.svd(log_spectra - mean, full_matrices=False)
    var = s ** 2
    return mean, vt[:k], float(var[:k].sum() / var.sum())


def build_basis(settings: dict, survey: Survey, mean: np.ndarray, components: np.ndarray, scale: float,
                label_source: str) -> SEDBasis:
    """The decoding and photometry tables: the survey's detection band, the rest-frame filters of
    the colours and absolute magnitudes, the preset's synthetic filters, on the redshift nodes."""
    from astropy.cosmology import Planck18

    from galaxy_spark.filters import band_weights, load_response, observed_weights, standard_curve

    wave = rest_wave(settings)
    zn = settings["z_nodes"]
    z_nodes = np.round(np.arange(0.0, float(zn["max"]) + 1e-9, float(zn["step"])), 6)
    det = load_response(next(b for b in survey.bands if b.name == survey.detection_band))
    detection = observed_weights(wave, det.wave_aa, det.throughput, z_nodes)
    rest_filters = tuple(dict.fromkeys([f for _, a, b in settings["colours"] for f in (a, b)] + list(settings["absolute"])))
    try:
        rest_weights = np.stack([band_weights(wave, *standard_curve(f), np.zeros(1))[:, 0] for f in rest_filters], axis=1)
    except ValueError as e:
        raise InputError(f"networks.sed.basis: {e}") from None
    distmod = np.r_[np.nan, Planck18.distmod(z_nodes[1:]).value]
    basis = SEDBasis(wave, mean, components, float(scale), z_nodes, distmod, detection, rest_filters, rest_weights,
                     tuple(tuple(c) for c in settings["colours"]), tuple(settings["absolute"]), {}, label_source)
    return with_filters(basis, settings.get("synthetic_filters") or [])


def sed_labels(df: pd.DataFrame, survey: Survey, cfg: dict, fit_rows: np.ndarray, fit_source: str,
               sources: tuple[str, ...], type_labels: np.ndarray) -> tuple[SEDBasis, dict[str, np.ndarray]]:
    """(basis, {source: network targets (n, K), NaN rows without a label}) for the label `sources`
    ('catalogue' and/or 'truth'). The basis is fitted on `fit_rows` (training galaxies) of the
    `fit_source` labels; `type_labels` are the catalogue's spectral types."""
    settings = sed_settings(cfg)
    wave = rest_wave(settings)
    k = int(settings["components"])
    family = template_family(survey, wave) if "catalogue" in sources else None

    def log_spectra(source: str, rows: np.ndarray) -> np.ndarray:
        if source == "truth":
            return truth_log_spectra(df.iloc[np.flatnonzero(rows)], wave)
        return template_log_spectra(type_labels[rows], *family, wave)

    pick = np.flatnonzero(fit_rows)
    if len(pick) < k + 1:
        raise InputError(f"sed: too few labelled training galaxies ({len(pick)}) to fit a {k}-component basis")
    pick = np.random.default_rng(0).choice(pick, min(BASIS_SAMPLE, len(pick)), replace=False)
    sample = np.zeros(len(df), bool)
    sample[pick] = True
    mean, comps, explained = fit_components(log_spectra(fit_source, sample), k)
    log.info(f"sed basis: {k} components of the {fit_source} label spectra explain {explained:.5f} of the variance")
    targets = {}
    for src in sources:
        coeffs = np.full((len(df), k), np.nan)
        if src == "catalogue":
            grid = np.linspace(*family[0][[0, -1]], TYPE_GRID)
            table = (template_log_spectra(grid, *family, wave) - mean) @ comps.T
            ok = np.isfinite(type_labels)
            t = np.clip(type_labels[ok], grid[0], grid[-1])
            coeffs[ok] = np.stack([np.interp(t, grid, table[:, j]) for j in range(k)], axis=1)
        else:
            vals = df[list(TRUTH_SED_COLUMNS)].to_numpy(np.float64)
            ok = np.isfinite(vals).all(axis=1) & (vals[:, :-1].sum(axis=1) > 0)     # stars: all weights 0
            for s in range(0, len(df), CHUNK):
                rows = np.zeros(len(df), bool)
                rows[s:s + CHUNK] = ok[s:s + CHUNK]
                if rows.any():
                    coeffs[rows] = (truth_log_spectra(df.iloc[np.flatnonzero(rows)], wave) - mean) @ comps.T
        targets[src] = coeffs
    scale = float(np.nanstd(targets[fit_source][fit_rows][:, 0])) or 1.0
    basis = build_basis(settings, survey, mean, comps, scale, fit_source)
    return basis, {src: (v / scale).astype(np.float64) for src, v in targets.items()}
