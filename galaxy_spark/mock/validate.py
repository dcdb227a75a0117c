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
    d = pd.DataFrame({k: v for k, v in table.items() if k != "F814W_Image"})
    nd = float(survey.sentinels["not_detected_magnitude"])
    no = float(survey.sentinels["not_observed_magnitude"])
    for b in survey.band_names:
        m = d[b].to_numpy()
        state = np.where(m == nd, 1, np.where(m == no, 2, 0))
        d[f"{b}_state"] = state
        d[b] = np.where(state == 0, m, np.nan)
        d[survey.error_column(b)] = np.where(state == 0, d[survey.error_column(b)], np.nan)
    return d


def _binned(d, col, fn, mag="F814W"):
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
        add("detection fraction, mean abs diff over F814W bins", b, np.nan,
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
        sel_r = (real["F814W"] < 23) & real[a].notna() & real[c].notna()
        sel_m = (mock["F814W"] < 23) & mock[a].notna() & mock[c].notna() & (mock["is_star"] == 0)
        add(f"median colour {a}-{c} (F814W<23)", "colour", float((real[a] - real[c])[sel_r].median()),
            float((mock[a] - mock[c])[sel_m].median()), "mock galaxies only")
        add(f"IQR colour {a}-{c} (F814W<23)", "colour", float(_iqr((real[a] - real[c])[sel_r])),
            float(_iqr((mock[a] - mock[c])[sel_m & (mock["is_star"] == 0)])))
    rs = (real["stell"] > 0.9) & (real["F814W"] < 20)
    ms = (mock["stell"] > 0.9) & (mock["F814W"] < 20)
    for a, c in _colour_pairs(survey):
        add(f"bright-star median colour {a}-{c}", "stars", float((real[a] - real[c])[rs].median()),
            float((mock[a] - mock[c])[ms].median()), "stell>0.9, F814W<20")
    for lo, hi in ((19, 21), (21, 23), (23, 24), (24, 25)):
        sr = (real["F814W"] >= lo) & (real["F814W"] < hi)
        sm = (mock["F814W"] >= lo) & (mock["F814W"] < hi)
        add(f"median zb_1, F814W {lo}-{hi}", "labels", float(real.loc[sr, "zb_1"].median()), float(mock.loc[sm, "zb_1"].median()))
        add(f"median Odds_1, F814W {lo}-{hi}", "labels", float(real.loc[sr, "Odds_1"].median()), float(mock.loc[sm, "Odds_1"].median()))
        add(f"median stell, F814W {lo}-{hi}", "morphology", float(real.loc[sr, "stell"].median()), float(mock.loc[sm, "stell"].median()))
        add(f"fraction stell>0.9, F814W {lo}-{hi}", "morphology", float((real.loc[sr, "stell"] > 0.9).mean()),
            float((mock.loc[sm, "stell"] > 0.9).mean()), "real sample is star-rich")
        add(f"median area, F814W {lo}-{hi}", "morphology", float(real.loc[sr, "area"].median()), float(mock.loc[sm, "area"].median()))
        add(f"median nfobs, F814W {lo}-{hi}", "flags", float(real.loc[sr, "nfobs"].median()), float(mock.loc[sm, "nfobs"].median()))
    for lim, paper in PAPER_MEAN_Z.items():
        add(f"<zb_1> for F814W<{lim}", "n(z|m)", float(real.loc[real["F814W"] < lim, "zb_1"].mean()),
            float(mock.loc[mock["F814W"] < lim, "zb_1"].mean()), "real: biased sample")
        add(f"<z_true> galaxies F814W<{lim} vs paper", "n(z|m)", paper,
            float(mock.loc[(mock["F814W"] < lim) & (mock["is_star"] == 0), "z_true"].mean()), "Molino+2014")
    gal = mock[(mock["is_star"] == 0)]
    ez = (gal["zb_1"] - gal["z_true"]) / (1 + gal["z_true"])
    for (lo, hi), paper in (((0, 22.5), 0.010), ((22.5, 24.5), 0.014)):
        s = ez[(gal["F814W"] >= lo) & (gal["F814W"] < hi)]
        add(f"sigma_NMAD zb_1 vs z_true, F814W {lo}-{hi}", "labels", paper,
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    centres = 0.5 * (MAG_BINS[1:] + MAG_BINS[:-1])
    bands = [b for b in survey.band_names if b != survey.detection_band]

    def grid(title, fn, fname, ylabel):
        n = len(bands)
        nc = 6
        nr = int(np.ceil(n / nc))
        fig, axs = plt.subplots(nr, nc, figsize=(3 * nc, 2.4 * nr), sharex=True)
        for ax, b in zip(axs.ravel(), bands):
            fn(ax, b)
            ax.set_title(b, fontsize=9)
        for ax in axs.ravel()[n:]:
            ax.axis("off")
        axs.ravel()[0].legend(fontsize=7)
        fig.suptitle(title)
        fig.supxlabel("F814W" if "detection" in fname else "magnitude in the band")
        fig.supylabel(ylabel)
        fig.tight_layout()
        p = out / fname
        fig.savefig(p, dpi=80)
        plt.close(fig)
        files.append(p)

    def detfrac(ax, b):
        st = f"{b}_state"
        for d, lab, sty in ((real, "real", "ko-"), (mock, "mock", "r.-")):
            ax.plot(centres, _binned(d[d[st] != 2], st, lambda s: (s == 0).mean()), sty, label=lab, ms=3)
        ax.set_ylim(-0.05, 1.05)

    grid("Detection fraction vs F814W", detfrac, "detection_fraction.png", "detected / observed")

    def errmag(ax, b):
        e = survey.error_column(b)
        for d, lab, sty in ((real, "real", "ko-"), (mock, "mock", "r.-")):
            ax.semilogy(centres, _binned(d, e, np.median, mag=b), sty, label=lab, ms=3)
        ax.set_ylim(1e-3, 2)

    grid("Median error vs magnitude", errmag, "error_magnitude.png", "median error (mag)")

    pairs = _colour_pairs(survey)
    fig, axs = plt.subplots(1, len(pairs), figsize=(3.3 * len(pairs), 3))
    for ax, (a, c) in zip(axs, pairs):
        cr = (real[a] - real[c])[(real["F814W"] < 23)].dropna()
        cm = (mock[a] - mock[c])[(mock["F814W"] < 23)].dropna()
        bins = np.linspace(-1.5, 3.5, 41)
        ax.hist(cr, bins, density=True, histtype="step", color="k", label="real")
        ax.hist(cm, bins, density=True, histtype="step", color="r", label="mock")
        ax.set_xlabel(f"{a} - {c}")
    axs[0].legend(fontsize=8)
    fig.suptitle("Colour distributions, F814W < 23 (detected in both bands)")
    fig.tight_layout()
    p = out / "colours.png"
    fig.savefig(p, dpi=80)
    plt.close(fig)
    files.append(p)

    fig, axs = plt.subplots(2, 3, figsize=(14, 7.5))
    sub = mock.sample(min(len(mock), 8000), random_state=0)
    ax = axs[0, 0]
    ax.scatter(sub["F814W"], sub["zb_1"], s=1, c="r", alpha=0.3, label="mock")
    ax.scatter(real["F814W"], real["zb_1"], s=3, c="k", label="real")
    ax.set_xlabel("F814W"); ax.set_ylabel("zb_1"); ax.set_ylim(0, 4); ax.legend(fontsize=8)
    ax = axs[0, 1]
    for d, lab, sty in ((real, "real", "ko-"), (mock, "mock", "r.-")):
        ax.plot(centres, _binned(d, "stell", np.median), sty, label=f"{lab} median")
        ax.plot(centres, _binned(d, "stell", lambda s: (s > 0.9).mean()), sty.replace("-", "--"), label=f"{lab} frac>0.9", alpha=0.6)
    ax.set_xlabel("F814W"); ax.set_ylabel("stell"); ax.legend(fontsize=7)
    ax = axs[0, 2]
    for d, lab, sty in ((real, "real", "ko-"), (mock, "mock", "r.-")):
        ax.plot(centres, _binned(d, "Odds_1", np.median), sty, label=lab)
    ax.set_xlabel("F814W"); ax.set_ylabel("median Odds_1"); ax.legend(fontsize=8)
    ax = axs[1, 0]
    zb = np.linspace(0, 4, 41)
    for lim in (22.5, 24.5):
        ax.hist(real.loc[real["F814W"] < lim, "zb_1"], zb, density=True, histtype="step", color="k",
                ls="-" if lim == 22.5 else "--", label=f"real zb, <{lim}")
        g = mock[(mock["is_star"] == 0) & (mock["F814W"] < lim)]
        ax.hist(g["z_true"], zb, density=True, histtype="step", color="r", ls="-" if lim == 22.5 else "--",
                label=f"mock z_true, <{lim} (mean {g['z_true'].mean():.2f})")
    ax.set_xlabel("z"); ax.legend(fontsize=7); ax.set_title("n(z | F814W limit)")
    ax = axs[1, 1]
    ax.scatter(sub["M_Abs_1"], sub["Stell_Mass_1"], s=1, c=sub["Tb_1"], cmap="coolwarm_r")
    ax.scatter(real["M_Abs_1"], real["Stell_Mass_1"], s=4, facecolors="none", edgecolors="k")
    ax.set_xlabel("M_Abs_1"); ax.set_ylabel("Stell_Mass_1"); ax.set_title("mass vs M_B (mock colour = Tb)")
    ax = axs[1, 2]
    g = sub[sub["is_star"] == 0]
    ax.scatter(g["z_true"], g["zb_1"], s=1, c="r", alpha=0.3)
    ax.plot([0, 4], [0, 4], "k-", lw=0.5)
    ax.set_xlim(0, 4); ax.set_ylim(0, 4); ax.set_xlabel("z_true"); ax.set_ylabel("zb_1"); ax.set_title("mock labels vs truth")
    fig.tight_layout()
    p = out / "labels_morphology.png"
    fig.savefig(p, dpi=80)
    plt.close(fig)
    files.append(p)

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.arange(14, 27, 0.25)
    ax.hist(real["F814W"], bins, density=True, histtype="step", color="k", label="real (biased sample)")
    ax.hist(mock["F814W"], bins, density=True, histtype="step", color="r", label="mock")
    ax.set_yscale("log"); ax.set_xlabel("F814W"); ax.legend(fontsize=8)
    fig.tight_layout()
    p = out / "f814w_counts.png"
    fig.savefig(p, dpi=80)
    plt.close(fig)
    files.append(p)
    return files


def run_validation(survey, real_path, n_objects, seed, out_dir, progress=False) -> Path:
    from galaxy_spark.mock.core import generate_table

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"--out {out_dir}: cannot create directory: {e.strerror}") from None
    real = read_vizier(survey, real_path)
    mock = mock_frame(survey, generate_table(survey, n_objects, seed, progress))
    table = compare(survey, real, mock)
    table.to_csv(out / "differences.csv", index=False, float_format="%.4f")
    with open(out / "differences.md", "w") as fh:
        fh.write(f"# Mock vs real ALHAMBRA rows\n\nmock: {n_objects} objects, seed {seed}; real: {real_path} "
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
