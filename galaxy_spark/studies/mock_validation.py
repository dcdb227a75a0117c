"""Compare a mock with real ALHAMBRA rows (VizieR CSV) and write plots plus a table of differences.

The real rows are read here with pandas (VizieR labels mapped through the survey file). They are a
small, bright- and star-rich sample of one field, so every comparison is made *at fixed F814W*
(binned), where the selection matters least; marginal distributions are shown for shape only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_spark.errors import InputError

MAG_BINS = np.arange(16.0, 26.01, 1.0)
PAPER_MEAN_Z = {22.5: 0.56, 24.5: 0.86}      # Molino et al. 2014


def read_vizier(survey, path) -> pd.DataFrame:
    """Real rows -> canonical public names; band states: 0 detected, 1 limit, 2 not observed."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--real {path}: file not found")
    try:
        d = pd.read_csv(p, skipinitialspace=True, low_memory=False)
    except Exception as e:  # noqa: BLE001 - any parse failure is an input problem
        raise InputError(f"--real {path}: cannot parse as CSV: {e}") from None
    out = {}
    for c in survey.leading + survey.trailing:
        if c.vizier and c.vizier in d.columns:
            out[c.name] = pd.to_numeric(d[c.vizier], errors="coerce")
    for b in survey.bands:
        v = b.vizier
        if v.get("magnitude") not in d.columns:
            raise InputError(f"--real {path}: column {v.get('magnitude')!r} (band {b.name}) missing")
        m = pd.to_numeric(d[v["magnitude"]], errors="coerce")
        e = pd.to_numeric(d[v["error"]], errors="coerce") if v.get("error") in d.columns else pd.Series(np.nan, index=d.index)
        lim = d[v["limit_flag"]].astype(str).str.strip().eq("<") if v.get("limit_flag") in d.columns \
            else pd.Series(False, index=d.index)
        state = np.where(lim, 1, np.where(m.isna(), 2, 0))
        out[b.name] = np.where(state == 0, m, np.nan)
        out[survey.error_column(b.name)] = np.where(state == 0, e, np.nan)
        out[f"{b.name}_state"] = state
    return pd.DataFrame(out, index=d.index)


def mock_frame(survey, table: dict) -> pd.DataFrame:
    d = pd.DataFrame({k: v for k, v in table.items() if np.asarray(v).dtype != object})   # no image names
    nd = float(survey.sentinels["not_detected_magnitude"])
    no = float(survey.sentinels["not_observed_magnitude"])
    for b in survey.band_names:
        m = d[b].to_numpy()
        state = np.where(m == nd, 1, np.where(m == no, 2, 0))
        d[f"{b}_state"] = state
        d[b] = np.where(state == 0, m, np.nan)
        d[survey.error_column(b)] = np.where(state == 0, d[survey.error_column(b)], np.nan)
    return d


# The comparisons read the survey's columns through these role names (with_roles), so the code
# names no survey column: the detection band, the survey's label columns, and its detection count.
LABEL_ROLES = ("redshift", "redshift_odds", "absolute_magnitude", "stellar_mass", "spectral_type")


def with_roles(survey, d: pd.DataFrame) -> pd.DataFrame:
    """`d` with role-named copies: `detection` (the detection band), the label roles of the
    survey file, and `detections` (the column the file marks `mock: detections`)."""
    d = d.copy()
    d["detection"] = d[survey.detection_band]
    for role in LABEL_ROLES:
        d[role] = d[survey.label(role)] if survey.label(role) in d else np.nan
    counts = [c.name for c in survey.csv_columns() if c.mock == "detections" and c.name in d]
    d["detections"] = d[counts[0]] if counts else np.nan
    return d


def _binned(d, col, fn, mag="detection"):
    idx = np.digitize(d[mag], MAG_BINS) - 1
    out = []
    for i in range(len(MAG_BINS) - 1):
        s = d.loc[idx == i, col] if col else d.loc[idx == i]
        out.append(fn(s) if len(s) >= 5 else np.nan)
    return np.asarray(out, float)


def compare(survey, real: pd.DataFrame, mock: pd.DataFrame) -> pd.DataFrame:
    rows = []
    centres = 0.5 * (MAG_BINS[1:] + MAG_BINS[:-1])

    def add(metric, group, r, m, note=""):
        rows.append({"metric": metric, "group": group, "real": r, "mock": m,
                     "diff": (m - r) if np.isfinite(r) and np.isfinite(m) else np.nan, "note": note})

    det = survey.detection_band
    for b in survey.band_names:
        if b == det:
            continue
        st = f"{b}_state"
        rf = _binned(real[real[st] != 2], st, lambda s: (s == 0).mean())
        mf = _binned(mock[mock[st] != 2], st, lambda s: (s == 0).mean())
        ok = np.isfinite(rf) & np.isfinite(mf)
        add(f"detection fraction, mean abs diff over {survey.detection_band} bins", b, np.nan,
            float(np.nanmean(np.abs(mf - rf)[ok])) if ok.any() else np.nan)
        add("not-observed fraction", b, float((real[st] == 2).mean()), float((mock[st] == 2).mean()))
    for b in survey.band_names:
        e = survey.error_column(b)
        for lo in (20.0, 22.0, 24.0):
            sel_r = (real[b] >= lo) & (real[b] < lo + 1)
            sel_m = (mock[b] >= lo) & (mock[b] < lo + 1)
            if sel_r.sum() >= 5:
                add(f"median error at {b} {lo:.0f}-{lo + 1:.0f}", b, float(real.loc[sel_r, e].median()),
                    float(mock.loc[sel_m, e].median()))
    for b in survey.band_names:
        e, st = survey.error_column(b), f"{b}_state"
        if b != det:
            # magnitude-matched: the same F814W range in both, so the real rows' bright bias cancels
            sr = (real[det] >= 22) & (real[det] < 23) & (real[st] == 0)
            sm = (mock[det] >= 22) & (mock[det] < 23) & (mock[st] == 0)
            if sr.sum() >= 5:
                add(f"median error at {det} 22-23", b, float(real.loc[sr, e].median()),
                    float(mock.loc[sm, e].median()), "magnitude-matched")
            for lo, hi in ((21, 23), (23, 25)):
                sr = (real[det] >= lo) & (real[det] < hi) & (real[st] != 2)
                sm = (mock[det] >= lo) & (mock[det] < hi) & (mock[st] != 2)
                add(f"non-detection fraction at {det} {lo}-{hi}", b, float((real.loc[sr, st] == 1).mean()),
                    float((mock.loc[sm, st] == 1).mean()), "magnitude-matched")
        add("noise depth offset (mag)", b, 0.0, noise_depth_offset(survey, real, mock, b),
            "mock minus real at fixed band magnitude; add to noise_depth_5sigma")
    for a, c in _colour_pairs(survey):
        sel_r = (real["detection"] < 23) & real[a].notna() & real[c].notna()
        sel_m = (mock["detection"] < 23) & mock[a].notna() & mock[c].notna() & (mock["is_star"] == 0)
        add(f"median colour {a}-{c} (detection<23)", "colour", float((real[a] - real[c])[sel_r].median()),
            float((mock[a] - mock[c])[sel_m].median()), "mock galaxies only")
        add(f"IQR colour {a}-{c} (detection<23)", "colour", float(_iqr((real[a] - real[c])[sel_r])),
            float(_iqr((mock[a] - mock[c])[sel_m & (mock["is_star"] == 0)])))
    rs = (real["stell"] > 0.9) & (real["detection"] < 20)
    ms = (mock["stell"] > 0.9) & (mock["detection"] < 20)
    for a, c in _colour_pairs(survey):
        add(f"bright-star median colour {a}-{c}", "stars", float((real[a] - real[c])[rs].median()),
            float((mock[a] - mock[c])[ms].median()), "stell>0.9, detection<20")
    for lo, hi in ((19, 21), (21, 23), (23, 24), (24, 25)):
        sr = (real["detection"] >= lo) & (real["detection"] < hi)
        sm = (mock["detection"] >= lo) & (mock["detection"] < hi)
        add(f"median redshift label, detection {lo}-{hi}", "labels", float(real.loc[sr, "redshift"].median()), float(mock.loc[sm, "redshift"].median()))
        add(f"median odds, detection {lo}-{hi}", "labels", float(real.loc[sr, "redshift_odds"].median()), float(mock.loc[sm, "redshift_odds"].median()))
        add(f"median stell, detection {lo}-{hi}", "morphology", float(real.loc[sr, "stell"].median()), float(mock.loc[sm, "stell"].median()))
        add(f"fraction stell>0.9, detection {lo}-{hi}", "morphology", float((real.loc[sr, "stell"] > 0.9).mean()),
            float((mock.loc[sm, "stell"] > 0.9).mean()), "real sample is star-rich")
        add(f"median area, detection {lo}-{hi}", "morphology", float(real.loc[sr, "area"].median()), float(mock.loc[sm, "area"].median()))
        add(f"median detections, detection {lo}-{hi}", "flags", float(real.loc[sr, "detections"].median()), float(mock.loc[sm, "detections"].median()))
    for lim, paper in PAPER_MEAN_Z.items():
        add(f"<redshift label> for detection<{lim}", "n(z|m)", float(real.loc[real["detection"] < lim, "redshift"].mean()),
            float(mock.loc[mock["detection"] < lim, "redshift"].mean()), "real: biased sample")
        add(f"<z_true> galaxies detection<{lim} vs paper", "n(z|m)", paper,
            float(mock.loc[(mock["detection"] < lim) & (mock["is_star"] == 0), "z_true"].mean()), "Molino+2014")
    gal = mock[(mock["is_star"] == 0)]
    ez = (gal["redshift"] - gal["z_true"]) / (1 + gal["z_true"])
    for (lo, hi), paper in (((0, 22.5), 0.010), ((22.5, 24.5), 0.014)):
        s = ez[(gal["detection"] >= lo) & (gal["detection"] < hi)]
        add(f"sigma_NMAD redshift label vs z_true, detection {lo}-{hi}", "labels", paper,
            float(1.4826 * np.median(np.abs(s - s.median()))), "paper value in 'real'")
    add("star fraction", "population", np.nan, float(mock["is_star"].mean()), "thesis label ~2.6%")
    pf_r = real["photoflag"].value_counts(normalize=True)
    pf_m = mock["photoflag"].value_counts(normalize=True)
    for v in (0, 1, 2, 3):
        add(f"photoflag={v} fraction", "flags", float(pf_r.get(v, 0)), float(pf_m.get(v, 0)))
    _ = centres
    return pd.DataFrame(rows)


def noise_depth_offset(survey, real: pd.DataFrame, mock: pd.DataFrame, band: str) -> float:
    """How much deeper (mag) the mock's noise in `band` should be to match the real errors.

    Median errors are compared at fixed magnitude *in that band* (0.5 mag bins with ≥ 8 real and
    ≥ 30 mock detections), so colour differences between the mock's population and the real one do
    not enter; only sky-dominated bins (error > 0.03 in both) count, where error ∝ 10^(0.4·(m − m5)).
    The weighted mean of 2.5·log10(σ_mock/σ_real) is the shift to add to the band's
    `noise_depth_5sigma`. NaN when no bin qualifies.
    """
    e = survey.error_column(band)
    logs, weights = [], []
    for lo in np.arange(17.0, 26.0, 0.5):
        sr = (real[band] >= lo) & (real[band] < lo + 0.5)
        sm = (mock[band] >= lo) & (mock[band] < lo + 0.5)
        if sr.sum() < 8 or sm.sum() < 30:
            continue
        er, em = real.loc[sr, e].median(), mock.loc[sm, e].median()
        if er > 0.03 and em > 0.03:
            logs.append(np.log10(em / er))
            weights.append(int(sr.sum()))
    return float(2.5 * np.average(logs, weights=weights)) if logs else float("nan")


def _iqr(s):
    s = pd.Series(s).dropna()
    return s.quantile(0.75) - s.quantile(0.25) if len(s) else np.nan


def _colour_pairs(survey):
    names = [b.name for b in survey.observed_bands]
    picks = [0, 4, 8, 14, len(names) - 3, len(names) - 1]
    picks = [p for p in picks if p < len(names)]
    return [(names[a], names[b]) for a, b in zip(picks[:-1], picks[1:])]


def plots(survey, real, mock, out: Path) -> list[Path]:
    """The validation figures: the statistics are computed here at fixed F814W (as in ``compare``)
    and drawn by ``galaxy_spark.drawing.validation_plots``; returns the PNG paths."""
    from galaxy_spark.drawing import validation_plots as VP

    centres = 0.5 * (MAG_BINS[1:] + MAG_BINS[:-1])
    bands = [b for b in survey.band_names if b != survey.detection_band]
    frames = {"real": real, "mock": mock}

    def detected(s):
        return (s == 0).mean()

    det = {b: {who: _binned(d[d[f"{b}_state"] != 2], f"{b}_state", detected) for who, d in frames.items()}
           for b in bands}
    err = {b: {who: _binned(d, survey.error_column(b), np.median, mag=b) for who, d in frames.items()}
           for b in bands}
    colours = {f"{a} - {c}": {who: (d[a] - d[c])[d["detection"] < 23].dropna() for who, d in frames.items()}
               for a, c in _colour_pairs(survey)}
    binned = {who: {"stell median": _binned(d, "stell", np.median),
                    "stell frac>0.9": _binned(d, "stell", lambda s: (s > 0.9).mean()),
                    "odds median": _binned(d, "redshift_odds", np.median)} for who, d in frames.items()}
    return [VP.band_grid(centres, det, "Detection fraction vs detection-band magnitude", "detection", "detected / observed",
                         out / "detection_fraction.png", ylim=(-0.05, 1.05)),
            VP.band_grid(centres, err, "Median error vs magnitude", "magnitude in the band", "median error (mag)",
                         out / "error_magnitude.png", logy=True, ylim=(1e-3, 2)),
            VP.colour_histograms(colours, "Colour distributions, detection band < 23 (detected in both bands)",
                                 out / "colours.png"),
            VP.labels_morphology(real, mock, centres, binned, out / "labels_morphology.png"),
            VP.magnitude_counts(real["detection"], mock["detection"], "detection", out / "detection_counts.png")]


def run_validation(survey, real_path, n_objects, seed, out_dir, progress=False) -> Path:
    from galaxy_spark.mock.core import generate_table

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"--out {out_dir}: cannot create directory: {e.strerror}") from None
    real = with_roles(survey, read_vizier(survey, real_path))
    mock = with_roles(survey, mock_frame(survey, generate_table(survey, n_objects, seed, progress)))
    table = compare(survey, real, mock)
    table.to_csv(out / "differences.csv", index=False, float_format="%.4f")
    with open(out / "differences.md", "w") as fh:
        fh.write(f"# Mock vs real {survey.name} rows\n\nmock: {n_objects} objects, seed {seed}; real: {real_path} "
                 f"({len(real)} rows, one field, bright- and star-rich).\n\n")
        fh.write(_markdown(table))
    plots(survey, real, mock, out)
    return out


def _markdown(t: pd.DataFrame) -> str:
    lines = ["| metric | group | real | mock | diff | note |", "|---|---|---|---|---|---|"]
    for r in t.itertuples():
        f = lambda x: "" if not np.isfinite(x) else f"{x:.3f}"  # noqa: E731
        lines.append(f"| {r.metric} | {r.group} | {f(r.real)} | {f(r.mock)} | {f(r.diff)} | {r.note} |")
    return "\n".join(lines) + "\n"
