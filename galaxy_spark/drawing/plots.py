"""The figures of the evaluation report, the real-data check and training (Matplotlib, Agg
backend): each public function draws one PNG and returns its path; each kind of figure is drawn by
one function (predicted vs true: ``density_panels``; per-epoch curves: ``epoch_curves``).

Every function copes with empty or all-NaN inputs (it draws an empty panel saying so).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_spark.metrics import nmad
from galaxy_spark.drawing.figure import COLORS, empty, plt, save

LOSS_KEYS = (("train_loss", "train"), ("val_loss", "validation"))


def density_panels(panels: list[dict], path: Path, ncols: int = 3, gridsize: int = 50) -> Path:
    """Predicted vs true 2-D density (hexbin, log counts), one panel per dict
    ``{true, pred, label, title, lims (optional)}`` (values in the quantity's units); the 1:1 line,
    and the object count and the least-squares slope of pred on true in each panel's title (a slope
    below 1 is the regression to the mean that slope correction removes)."""
    n = max(len(panels), 1)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 4.0 * nrows), squeeze=False)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    for ax, p in zip(axes.ravel(), panels):
        t, y = np.asarray(p["true"], float), np.asarray(p["pred"], float)
        ok = np.isfinite(t) & np.isfinite(y)
        if ok.sum() < 2:
            empty(ax)
            ax.set_title(p.get("title", ""))
            continue
        lims = p.get("lims") or tuple(np.percentile(np.r_[t[ok], y[ok]], [0.5, 99.5]))
        if lims[1] <= lims[0]:
            lims = (lims[0] - 0.5, lims[1] + 0.5)
        inside = ok & (t >= lims[0]) & (t <= lims[1]) & (y >= lims[0]) & (y <= lims[1])
        if inside.sum() > 1:
            hb = ax.hexbin(t[inside], y[inside], gridsize=gridsize, extent=(*lims, *lims), bins="log", mincnt=1,
                           cmap="viridis")
            fig.colorbar(hb, ax=ax, label="objects")
        else:
            empty(ax, "predictions outside the axes")
        ax.plot(lims, lims, "r--", lw=1)
        ax.set_xlim(lims)
        ax.set_ylim(lims)
        ax.set_xlabel(f"true {p['label']}")
        ax.set_ylabel(f"predicted {p['label']}")
        slope = np.polyfit(t[ok], y[ok], 1)[0] if ok.sum() > 2 and np.ptp(t[ok]) > 0 else np.nan
        ax.set_title(f"{p.get('title', '')} (n={int(ok.sum())}, slope {slope:.3f})", fontsize=10)
    return save(fig, path)


def pred_vs_true(true: np.ndarray, preds: dict[str, np.ndarray], label: str, path: Path,
                 lims: tuple[float, float] | None = None) -> Path:
    """Predicted vs true for several predictions of the same targets (e.g. before/after slope
    correction), side by side on common axes (default: the 0.5–99.5 percentiles of ``true``)."""
    true = np.asarray(true, float)
    if lims is None:
        ok = np.isfinite(true)
        lo, hi = np.percentile(true[ok], [0.5, 99.5]) if ok.any() else (0.0, 1.0)
        lims = (float(lo), float(hi))
    panels = [{"true": true, "pred": p, "label": label, "title": name, "lims": lims} for name, p in preds.items()]
    return density_panels(panels, path, ncols=len(panels), gridsize=60)


def _running(x, y, edges):
    centres, med, lo, hi = [], [], [], []
    for a, b in zip(edges[:-1], edges[1:]):
        s = (x >= a) & (x < b) & np.isfinite(y)
        if s.sum() >= 5:
            centres.append(0.5 * (a + b))
            m = np.median(y[s])
            d = nmad(y[s])
            med.append(m)
            lo.append(m - d)
            hi.append(m + d)
    return np.array(centres), np.array(med), np.array(lo), np.array(hi)


def residuals(x: np.ndarray, series: dict[str, np.ndarray], xlabel: str, path: Path,
              xlims: tuple[float, float] | None = None, ylim: float = 0.5) -> Path:
    """Δz/(1+z) vs x (magnitude or redshift): density of the first series, running median ± NMAD of
    every series, the ±0.15 outlier lines."""
    x = np.asarray(x, float)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ok_x = np.isfinite(x)
    if not ok_x.any() or not series:
        empty(ax)
        return save(fig, path)
    lo, hi = xlims or tuple(np.percentile(x[ok_x], [0.5, 99.5]))
    if hi <= lo:
        hi = lo + 1
    edges = np.linspace(lo, hi, 16)
    first = True
    for name, e in series.items():
        e = np.asarray(e, float)
        ok = ok_x & np.isfinite(e)
        if first and ok.sum() > 1:
            ax.hexbin(x[ok], np.clip(e[ok], -ylim, ylim), gridsize=50, extent=(lo, hi, -ylim, ylim), bins="log",
                      mincnt=1, cmap="Greys")
            first = False
        c, m, l, h = _running(x[ok], e[ok], edges)
        if c.size:
            col = COLORS.get(name, None)
            ax.plot(c, m, "-o", ms=3, color=col, label=f"{name} median")
            ax.fill_between(c, l, h, color=col, alpha=0.2, label=f"{name} ±NMAD")
    for v in (-0.15, 0.15):
        ax.axhline(v, color="r", ls=":", lw=1)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlim(lo, hi)
    ax.set_ylim(-ylim, ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("(z_pred − z_true)/(1 + z_true)")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return save(fig, path)


def nz(true: np.ndarray, preds: dict[str, np.ndarray], path: Path, zmax: float | None = None,
       true_label: str = "true") -> Path:
    """n(z): histogram of the true redshifts (filled) and of each estimator's (steps)."""
    t = np.asarray(true, float)
    t = t[np.isfinite(t)]
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    if t.size == 0:
        empty(ax)
        return save(fig, path)
    zmax = zmax or float(np.percentile(t, 99.5)) * 1.1 + 0.05
    bins = np.linspace(0, zmax, 60)
    ax.hist(t, bins=bins, color="0.8", label=f"{true_label} (n={t.size})")
    for name, p in preds.items():
        p = np.asarray(p, float)
        p = p[np.isfinite(p)]
        ax.hist(p, bins=bins, histtype="step", lw=1.5, color=COLORS.get(name), label=name)
    ax.set_xlabel("redshift")
    ax.set_ylabel("objects")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, path)


def pit(hists: dict[str, dict], path: Path) -> Path:
    """PIT histograms (density; 1 = calibrated), one bar set per estimator with its KS distance."""
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    if not hists:
        empty(ax)
        return save(fig, path)
    k = len(hists)
    for i, (name, h) in enumerate(hists.items()):
        edges = np.asarray(h["edges"], float)
        dens = np.asarray([np.nan if v is None else v for v in h["density"]], float)
        w = np.diff(edges) / k
        ks = h.get("ks")
        ax.bar(edges[:-1] + i * w, dens, width=w, align="edge", color=COLORS.get(name, f"C{i}"), alpha=0.75,
               label=f"{name} (KS {ks:.3f})" if ks is not None and np.isfinite(ks) else name)
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ax.set_xlim(0, 1)
    ax.set_xlabel("PIT")
    ax.set_ylabel("density (1 = calibrated)")
    ax.legend(fontsize=8)
    return save(fig, path)


def star_galaxy(roc: dict[str, tuple[np.ndarray, np.ndarray, float]], by_mag: pd.DataFrame, path: Path,
                mag_label: str = "detection-band magnitude") -> Path:
    """Left: ROC curves {label: (fpr, tpr, auc)}. Right: purity, completeness and balanced accuracy
    of the star class vs the detection-band magnitude (``metrics.binned(classification_metrics, …)``)."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.5, 4.0))
    for i, (name, (fpr, tpr, auc)) in enumerate(roc.items()):
        a1.plot(fpr, tpr, color=f"C{i}", label=f"{name} (AUC {auc:.3f})" if np.isfinite(auc) else name)
    a1.plot([0, 1], [0, 1], "k:", lw=1)
    a1.set_xlabel("false positive rate (galaxies called stars)")
    a1.set_ylabel("true positive rate (star completeness)")
    a1.set_title("ROC, star = positive")
    a1.legend(fontsize=8, loc="lower right")
    a1.grid(alpha=0.3)
    if by_mag is not None and len(by_mag):
        c = by_mag["center"].to_numpy(float)
        for key, style in (("purity", "-o"), ("completeness", "-s"), ("balanced_accuracy", "-^")):
            if key in by_mag:
                a2.plot(c, by_mag[key].to_numpy(float), style, ms=4, label=key.replace("_", " "))
        a2.set_ylim(-0.02, 1.02)
        a2.legend(fontsize=8, loc="lower left")
    else:
        empty(a2)
    a2.set_xlabel(mag_label)
    a2.set_title("stars: purity / completeness vs magnitude")
    a2.grid(alpha=0.3)
    return save(fig, path)


def binned_compare(tables: dict[str, pd.DataFrame], xlabel: str, path: Path,
                   keys=("sigma_nmad", "bias", "outlier_frac")) -> Path:
    """σ_NMAD, bias, outlier fraction per bin for each estimator (``metrics.binned`` outputs)."""
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, t in tables.items():
            if t is None or not len(t) or key not in t:
                continue
            ax.plot(t["center"].to_numpy(float), t[key].to_numpy(float), "-o", ms=4, color=COLORS.get(name),
                    label=name)
        ax.set_xlabel(xlabel)
        ax.set_title(key.replace("_", " "))
        ax.grid(alpha=0.3)
        if key == "bias":
            ax.axhline(0, color="k", lw=0.6)
        ax.legend(fontsize=8)
    return save(fig, path)


def epoch_curves(histories: dict[str, dict], path: Path, keys=LOSS_KEYS, ylabel: str = "loss",
                 panel_size: tuple[float, float] = (3.8, 3.4)) -> Path:
    """Per-epoch curves, one panel per entry of ``histories`` ({panel title: {metric key: values per
    epoch}}), one line per ``(key, label)`` of ``keys`` (default: train and validation loss)."""
    names = list(histories) or ["(none)"]
    w, h = panel_size
    fig, axes = plt.subplots(1, len(names), figsize=(w * len(names), h), squeeze=False)
    for ax, name in zip(axes[0], names):
        hist = histories.get(name, {})
        drawn = False
        for key, label in keys:
            v = hist.get(key)
            if v is not None and len(v):
                ax.plot(np.arange(1, len(v) + 1), v, marker=".", label=label)
                drawn = True
        if not drawn:
            empty(ax, "no metric history")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=8)
    return save(fig, path)


def curves(history: dict, keys: list[tuple[str, str]], title: str, ylabel: str, path: Path) -> Path:
    """One network's per-epoch curves in one panel, e.g. keys = [("train_loss", "train"),
    ("val_loss", "validation")] (training's loss and metric plots)."""
    return epoch_curves({title: history}, path, keys, ylabel, panel_size=(5.5, 3.8))


def realdata_scatter(z_ref: np.ndarray, z_phot: np.ndarray, odds: np.ndarray, selected: np.ndarray,
                     path: Path, ref_label: str = "survey template-fit redshift", title: str = "",
                     odds_label: str = "odds") -> Path:
    """z_phot vs the survey's own redshift: all galaxies coloured by Odds, the selected sample ringed,
    the 1:1 line and the |Δz|/(1+z) = 0.15 outlier boundaries."""
    zr, zp, od = (np.asarray(a, float) for a in (z_ref, z_phot, odds))
    sel = np.asarray(selected, bool)
    ok = np.isfinite(zr) & np.isfinite(zp)
    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    if not ok.any():
        empty(ax)
        return save(fig, path)
    top = float(max(np.nanpercentile(np.r_[zr[ok], zp[ok]], 99.5) * 1.05, 0.5))
    sc = ax.scatter(zr[ok], zp[ok], c=od[ok], s=9, cmap="viridis", vmin=0, vmax=1, alpha=0.8)
    fig.colorbar(sc, ax=ax, label=odds_label)
    s = ok & sel
    ax.scatter(zr[s], zp[s], s=40, facecolors="none", edgecolors="r", lw=0.8, label=f"selected (n={int(s.sum())})")
    g = np.linspace(0, top, 50)
    ax.plot(g, g, "k--", lw=1)
    ax.plot(g, g + 0.15 * (1 + g), "r:", lw=1)
    ax.plot(g, g - 0.15 * (1 + g), "r:", lw=1)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel(ref_label)
    ax.set_ylabel("z_phot (network)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    return save(fig, path)


def accuracy_vs_bands(result: dict, path: Path) -> Path:
    """σ_NMAD and outlier fraction against the number of bands (one point per survey, network and
    template fit), and σ_NMAD by magnitude per survey: the band-count study on the same objects."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.0))
    surveys = result.get("surveys", {})
    if not surveys:
        for ax in axes:
            empty(ax)
        return save(fig, path)
    names = sorted(surveys, key=lambda s: surveys[s]["bands"])
    nb = [surveys[s]["bands"] for s in names]
    for est, style in (("network", "-o"), ("template_fit", "--s"), ("bpz", ":^")):
        for ax, key in zip(axes[:2], ("sigma_nmad", "outlier_frac")):
            ax.plot(nb, [surveys[s][est]["all"][key] for s in names], style, color=COLORS.get(est), label=est)
    for ax, key in zip(axes[:2], ("σ_NMAD", "outlier fraction (|Δz|/(1+z) > 0.15)")):
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(nb, [f"{n}\n{s}" for n, s in zip(nb, names)])
        ax.set_xlabel("bands")
        ax.set_title(f"{key}, {result['same_objects']:,} same galaxies")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[2]
    for i, s in enumerate(names):        # one colour per survey, one line style per estimator
        for est, ls in (("network", "-"), ("template_fit", "--"), ("bpz", ":")):
            t = pd.DataFrame(surveys[s][est]["by_mag"])
            ax.plot(t["center"], t["sigma_nmad"], ls, marker="o", ms=3, label=f"{s} {est}", color=f"C{i}")
    ax.set_xlabel(f"{result['magnitude_band']} (true, AB)")
    ax.set_ylabel("σ_NMAD")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, path)
