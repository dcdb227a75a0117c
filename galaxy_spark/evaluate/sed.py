"""How good are the predicted spectra: the SED network's scores against the mock's true SEDs and
against each object's own photometry (test split, galaxies).

- Reconstruction: per galaxy, the median over rest-frame 3,000–9,000 Å of |f_pred/f_true − 1|,
  both shapes normalised over that range; medians by detection-band magnitude and by true type
  (BPZ classes: early ≤ 5.5 < spiral ≤ 7.5 < starburst). The catalogue label's own SED (the
  survey's template at the catalogue type, what the default network learns from) is scored the
  same way: the floor emulation of those labels can reach.
- Rest-frame U − V (and the second colour) against the true SED's.
- Synthetic SDSS r (or the model's first synthetic filter) against the truth's: the true SED at the
  true redshift, scaled to the noiseless detection-band magnitude.
- χ² per band: the predicted SED at z_phot, scaled to the measured detection-band magnitude,
  against the measured magnitudes of the detected bands; the true SED at the true redshift gives
  the reference χ² (photometric noise plus this machinery's 600-point rest-frame grid).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from galaxy_spark import metrics as M
from galaxy_spark.features import TRUTH_DETECTION_MAG, TRUTH_SED_COLUMNS
from galaxy_spark.evaluate.data import num
from galaxy_spark.model.sed import NORM_RANGE_AA, SEDBasis, filter_column, normalised_log
from galaxy_spark.survey import DETECTED, Survey, state_column

BRIGHT_MAG = 22.5                      # the split of the detection-band magnitude
TYPE_CLASSES = (("early (type ≤ 5.5)", 0.0, 5.5), ("spiral (5.5–7.5)", 5.5, 7.5), ("starburst (> 7.5)", 7.5, 99.0))
N_EXAMPLES = 12
EXAMPLE_MAX_MAG = 23.0


def fractional_error(log_pred: np.ndarray, log_true: np.ndarray, wave: np.ndarray) -> np.ndarray:
    """Per row, median over `NORM_RANGE_AA` of |f_pred/f_true − 1| (normalised log10 spectra)."""
    win = (wave >= NORM_RANGE_AA[0]) & (wave <= NORM_RANGE_AA[1])
    return np.median(np.abs(10.0 ** (log_pred[:, win] - log_true[:, win]) - 1.0), axis=1)


def _colour_stats(pred: np.ndarray, true: np.ndarray) -> dict:
    d = pred - true
    ok = np.isfinite(d)
    if not ok.any():
        return {"n": 0, "bias": np.nan, "nmad": np.nan, "rms": np.nan}
    return {"n": int(ok.sum()), "bias": float(np.median(d[ok])), "nmad": float(M.nmad(d[ok])),
            "rms": float(np.sqrt(np.mean(d[ok] ** 2)))}


def _groups(mag: np.ndarray, tclass: np.ndarray) -> dict[str, np.ndarray]:
    g = {"all": np.ones(len(mag), bool), f"< {BRIGHT_MAG}": mag < BRIGHT_MAG, f"≥ {BRIGHT_MAG}": mag >= BRIGHT_MAG}
    for name, lo, hi in TYPE_CLASSES:
        g[name] = (tclass > lo) & (tclass <= hi)
    return g


def band_photometry_basis(basis: SEDBasis, survey: Survey) -> tuple[SEDBasis, list[str], np.ndarray]:
    """(`basis` with the survey's bands as synthetic filters, band names, pivot wavelengths Å)."""
    from dataclasses import replace

    from galaxy_spark.filters import load_responses, observed_weights

    resp = load_responses(survey, include_synthetic=False)
    weights = {name: observed_weights(basis.wave, r.wave_aa, r.throughput, basis.z_nodes) for name, r in resp.items()}
    return replace(basis, observed=weights), list(resp), np.array([r.pivot_aa for r in resp.values()])


def observed_frame_mag(s: np.ndarray, wave: np.ndarray, z: float, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """(observed wavelength Å, AB magnitude per unit frequency) of rest-frame f_λ `s` moved to `z`,
    shifted by `offset` mag (so that its synthetic detection magnitude is the object's)."""
    lobs = wave * (1 + z)
    fnu = s / (1 + z) * lobs ** 2 / 2.99792458e18
    return lobs, -2.5 * np.log10(np.maximum(fnu, 1e-300)) - 48.60 + offset


def sed_evaluation(df: pd.DataFrame, survey: Survey, basis: SEDBasis, mag: np.ndarray) -> tuple[dict, dict]:
    """(metrics, arrays for the report's figures) of the SED scores in the joined test rows `df`
    (galaxies by the truth; the mock's truth columns are needed). `mag`: detection-band magnitude."""
    from galaxy_spark.train.sed import truth_log_spectra

    coef_cols = basis.coefficient_columns()
    missing = [c for c in [*coef_cols, *TRUTH_SED_COLUMNS, TRUTH_DETECTION_MAG, "z_true", "is_star"] if c not in df]
    if missing:
        return {"skipped": f"missing column(s) {', '.join(missing)}: the SED is measured against the mock's truth"}, {}
    gal = (num(df, "is_star") == 0) & np.isfinite(df[coef_cols].to_numpy(np.float64)).all(axis=1)
    d = df.loc[gal].reset_index(drop=True)
    m = mag[gal]
    wave = basis.wave
    coeffs = d[coef_cols].to_numpy(np.float64)
    lt = truth_log_spectra(d, wave)
    s_true = 10.0 ** lt
    z_true, z_phot = num(d, "z_true"), num(d, "z_phot")
    err_net = fractional_error(normalised_log(basis.spectra(coeffs), wave), lt, wave)
    err_label, uv_label = _label_errors(d, survey, basis, lt, z_true)
    true_phot = basis.photometry(s_true, z_true, num(d, TRUTH_DETECTION_MAG))
    groups = _groups(m, num(d, "type_true"))
    recon = _reconstruction(d, basis, groups, err_net, err_label, uv_label, true_phot)
    synth = _synthetic(d, basis, groups, m, true_phot)
    band_basis = band_photometry_basis(basis, survey)
    chi_rows, chi2_median = _chi2_bands(d, survey, basis, band_basis, coeffs, s_true, z_phot, z_true, m)
    metrics = {"n_galaxies": int(len(d)), "label_source": basis.label_source, "reconstruction": recon,
               "synthetic": synth, "chi2_bands": chi_rows, "chi2_per_band_median": {"network": chi2_median}}
    metrics["summary"] = _summary(recon, synth, basis, chi2_median)
    abs_v = next((f"abs_{filter_column(f)}" for f in basis.absolute if f.endswith("-V")), None)
    colour = basis.colours[0][0]
    arrays = {"mag": m, "frac_error_network": err_net, "frac_error_label": err_label, "type_true": num(d, "type_true"),
              "colour": colour, "colour_filters": " − ".join(basis.colours[0][1:]), "colour_pred": num(d, colour),
              "colour_true": true_phot[colour], "colour_label": uv_label,
              "abs_name": abs_v, "abs_pred": num(d, abs_v) if abs_v else None,
              "abs_true": true_phot.get(abs_v) if abs_v else None,
              "chi2_bands": chi_rows,
              "examples": _examples(d, survey, basis, band_basis, coeffs, s_true, m, err_net, true_phot),
              "bright_mag": BRIGHT_MAG}
    return metrics, arrays


def _label_errors(d: pd.DataFrame, survey: Survey, basis: SEDBasis, lt: np.ndarray, z_true: np.ndarray):
    """(|Δf/f| of the catalogue label's own SED against the truth, its rest-frame colour): the label
    the default network is trained on; NaN without the catalogue's type column."""
    from galaxy_spark.train.sed import template_family, template_log_spectra

    err_label, uv_label = np.full(len(d), np.nan), np.full(len(d), np.nan)
    type_col = survey.labels.get("spectral_type")
    if type_col in d:
        tb = num(d, type_col)
        ok = np.isfinite(tb)
        ll = template_log_spectra(tb[ok], *template_family(survey, basis.wave), basis.wave)
        err_label[ok] = fractional_error(ll, lt[ok], basis.wave)
        uv_label[ok] = basis.photometry(10.0 ** ll, z_true[ok])[basis.colours[0][0]]
    return err_label, uv_label


def _reconstruction(d, basis, groups, err_net, err_label, uv_label, true_phot) -> list[dict]:
    """Per galaxy group: the median |Δf/f| of the network and of the label, colour bias and NMAD."""
    recon = []
    for name, sel in groups.items():
        row = {"galaxies": name, "n": int(sel.sum()),
               "network median |Δf/f|": float(np.median(err_net[sel])) if sel.any() else np.nan,
               "catalogue label median |Δf/f|": float(np.nanmedian(err_label[sel])) if np.isfinite(err_label[sel]).any() else np.nan}
        for col, _, _ in basis.colours:
            st = _colour_stats(num(d, col)[sel], true_phot[col][sel])
            row[f"{col} bias"], row[f"{col} NMAD"] = st["bias"], st["nmad"]
        st = _colour_stats(uv_label[sel], true_phot[basis.colours[0][0]][sel])
        row[f"label {basis.colours[0][0]} NMAD"] = st["nmad"]
        recon.append(row)
    return recon


def _synthetic(d, basis, groups, m, true_phot) -> list[dict]:
    """Synthetic magnitudes in the model's filters against the truth's (all, bright, faint)."""
    synth = []
    for f in basis.observed:
        col = f"mag_{filter_column(f)}"
        if col not in d:
            continue
        pred, true = num(d, col), true_phot[col]
        # the part of the error that is the SED and z_phot, not the measured detection magnitude's noise
        colour_err = (pred - m) - (true - num(d, TRUTH_DETECTION_MAG))
        for name, sel in groups.items():
            if name in ("all", f"< {BRIGHT_MAG}", f"≥ {BRIGHT_MAG}"):
                st = _colour_stats(pred[sel], true[sel])
                ce = colour_err[sel][np.isfinite(colour_err[sel])]
                synth.append({"filter": f, "galaxies": name, **st,
                              "NMAD of colour to detection band": float(M.nmad(ce)) if ce.size else np.nan,
                              "outliers |Δm| > 0.3": float(np.mean(np.abs(pred[sel] - true[sel])[np.isfinite(pred[sel] - true[sel])] > 0.3))
                              if st["n"] else np.nan})
    return synth


def _chi2_bands(d, survey, basis, band_basis, coeffs, s_true, z_phot, z_true, m) -> tuple[list[dict], float]:
    """χ² per band of the network's SED (at z_phot) and of the true SED against the measured
    photometry, and the median over galaxies of the network's χ² per band."""
    pb, bands, _ = band_basis
    pred_bands = pb.photometry(basis.spectra(coeffs), z_phot, m)
    true_bands = pb.photometry(s_true, z_true, num(d, TRUTH_DETECTION_MAG))
    chi_rows = []
    chi_obj = np.zeros(len(d))
    n_obj = np.zeros(len(d))
    for b in bands:
        obs, err = num(d, b), num(d, survey.error_column(b))
        det = (num(d, state_column(b)) == DETECTED) & np.isfinite(obs) & (err > 0)
        c_pred = ((obs - pred_bands[f"mag_{filter_column(b)}"]) / err) ** 2
        c_true = ((obs - true_bands[f"mag_{filter_column(b)}"]) / err) ** 2
        use = det & np.isfinite(c_pred)
        chi_obj += np.where(use, c_pred, 0.0)
        n_obj += use
        chi_rows.append({"band": b, "n": int(use.sum()),
                         "median χ² network SED": float(np.median(c_pred[use])) if use.any() else np.nan,
                         "median χ² true SED": float(np.nanmedian(c_true[det])) if det.any() else np.nan,
                         "median Δm network": float(np.median((obs - pred_bands[f"mag_{filter_column(b)}"])[use])) if use.any() else np.nan})
    red = chi_obj / np.maximum(n_obj, 1)
    return chi_rows, float(np.median(red[n_obj > 0])) if (n_obj > 0).any() else np.nan


def _summary(recon: list[dict], synth: list[dict], basis: SEDBasis, chi2_median: float) -> dict:
    first = {r["galaxies"]: r for r in recon}
    uv = basis.colours[0][0]
    out = {
        "frac_error_bright": first[f"< {BRIGHT_MAG}"]["network median |Δf/f|"],
        "frac_error_faint": first[f"≥ {BRIGHT_MAG}"]["network median |Δf/f|"],
        "frac_error_label_bright": first[f"< {BRIGHT_MAG}"]["catalogue label median |Δf/f|"],
        "frac_error_label_faint": first[f"≥ {BRIGHT_MAG}"]["catalogue label median |Δf/f|"],
        f"{uv}_nmad": first["all"][f"{uv} NMAD"], f"{uv}_nmad_bright": first[f"< {BRIGHT_MAG}"][f"{uv} NMAD"],
        f"{uv}_bias": first["all"][f"{uv} bias"],
        "chi2_per_band_median": chi2_median,
    }
    for r in synth:
        key = {"all": "all", f"< {BRIGHT_MAG}": "bright", f"≥ {BRIGHT_MAG}": "faint"}[r["galaxies"]]
        out[f"{filter_column(r['filter'])}_nmad_{key}"] = r["nmad"]
    return out


def _examples(d, survey, basis, band_basis, coeffs, s_true, m, err_net, true_phot) -> list[dict]:
    """A dozen bright galaxies spanning the colour range, for the figure."""
    _, bands, pivots = band_basis
    colour = true_phot[basis.colours[0][0]]
    bright = np.flatnonzero((m < EXAMPLE_MAX_MAG) & np.isfinite(colour))
    if not len(bright):
        return []
    z_true, z_phot, wave = num(d, "z_true"), num(d, "z_phot"), basis.wave
    order = bright[np.argsort(colour[bright], kind="stable")]
    pick = order[np.unique(np.round(np.linspace(0, len(order) - 1, min(N_EXAMPLES, len(order)))).astype(int))]
    sp = basis.spectra(coeffs[pick])
    det_model_p = basis.detection_magnitude(sp, z_phot[pick])
    det_model_t = basis.detection_magnitude(s_true[pick], z_true[pick])
    examples = []
    for j, i in enumerate(pick):
        examples.append({
            "id": int(d[survey.id_column].iloc[i]), "z_true": float(z_true[i]), "z_phot": float(z_phot[i]),
            "mag": float(m[i]), "type_true": float(num(d, "type_true")[i]), "frac_error": float(err_net[i]),
            "pivots": pivots, "obs": np.array([num(d, b)[i] for b in bands]),
            "err": np.array([num(d, survey.error_column(b))[i] for b in bands]),
            "detected": np.array([num(d, state_column(b))[i] == DETECTED for b in bands]),
            "pred": observed_frame_mag(sp[j], wave, z_phot[i], m[i] - det_model_p[j]),
            "true": observed_frame_mag(s_true[i], wave, z_true[i], num(d, TRUTH_DETECTION_MAG)[i] - det_model_t[j]),
        })
    return examples
