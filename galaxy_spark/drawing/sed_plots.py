"""The figures of the report's spectra section (evaluate/sed.py computes what they draw): a dozen
galaxies with their photometry, true and predicted SEDs; rest-frame colour distributions and
colour–magnitude diagrams; the reconstruction error by magnitude and the χ² per band."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from galaxy_spark.drawing.figure import COLORS, empty, plt, save


def sed_examples(examples: list[dict], path: Path, detection_band: str) -> Path:
    """One panel per galaxy: measured magnitudes (± error; detected bands), the true SED at the
    true redshift and the predicted SED at z_phot, both in the observed frame (AB per unit frequency)."""
    n = max(len(examples), 1)
    ncols = 4
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax in axes.ravel()[len(examples):]:
        ax.axis("off")
    if not examples:
        empty(axes[0, 0], "no galaxy to show")
    for ax, e in zip(axes.ravel(), examples):
        det = e["detected"] & np.isfinite(e["obs"])
        lo, hi = e["pivots"].min() * 0.8, e["pivots"].max() * 1.25
        for key, label, colour in (("true", f"true SED, z={e['z_true']:.3f}", COLORS["truth"]),
                                   ("pred", f"predicted, z_phot={e['z_phot']:.3f}", COLORS["network"])):
            w, mag = e[key]
            inside = (w >= lo) & (w <= hi)
            ax.plot(w[inside], mag[inside], color=colour, lw=1.0, label=label)
        ax.errorbar(e["pivots"][det], e["obs"][det], yerr=e["err"][det], fmt="o", ms=3, color=COLORS["BPZ"],
                    label="measured")
        ax.set_xscale("log")
        ticks = [t for t in (3000, 5000, 10000, 20000, 40000) if lo <= t <= hi]
        ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
        ax.minorticks_off()
        if det.any():
            y = e["obs"][det]
            ax.set_ylim(np.nanmax(y) + 1.0, np.nanmin(y) - 1.0)
        ax.set_title(f"ID {e['id']}  {detection_band}={e['mag']:.2f}  type {e['type_true']:.1f}  "
                     f"|Δf/f| {e['frac_error']:.3f}", fontsize=8)
        ax.set_xlabel("observed wavelength (Å)", fontsize=8)
        ax.set_ylabel("AB mag", fontsize=8)
        ax.legend(fontsize=6, loc="lower right")
    return save(fig, path)


def sed_colours(a: dict, path: Path, detection_band: str) -> Path:
    """Rest-frame colour histograms (true, predicted, catalogue label) for bright and all galaxies,
    and the colour–magnitude diagrams (true and predicted), where the red sequence and blue cloud
    show."""
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.0))
    bright = a["mag"] < a["bright_mag"]
    for ax, sel, title in ((axes[0], bright, f"{detection_band} < {a['bright_mag']}"),
                           (axes[1], np.ones_like(bright), "all galaxies")):
        vals = [v[sel] for v in (a["colour_true"], a["colour_pred"], a["colour_label"])]
        fin = np.concatenate([v[np.isfinite(v)] for v in vals]) if any(np.isfinite(v).any() for v in vals) else np.zeros(0)
        if fin.size < 2:
            empty(ax)
            continue
        bins = np.linspace(*np.percentile(fin, [0.5, 99.5]), 50)
        for v, label, c in zip(vals, ("truth", "network", "catalogue label"),
                               (COLORS["truth"], COLORS["network"], COLORS["catalogue"])):
            v = v[np.isfinite(v)]
            if v.size:
                ax.hist(v, bins=bins, histtype="step", color=c, lw=1.3, label=f"{label} (n={v.size})")
        ax.set_xlabel(f"rest-frame {a['colour_filters']} (AB)")
        ax.set_ylabel("galaxies")
        ax.set_title(title)
        ax.legend(fontsize=7)
    for ax, key_c, key_m, title in ((axes[2], "colour_true", "abs_true", "truth"),
                                    (axes[3], "colour_pred", "abs_pred", "network")):
        c, mabs = a[key_c], a.get(key_m)
        ok = np.isfinite(c) & (np.isfinite(mabs) if mabs is not None else False)
        if mabs is None or ok.sum() < 2:
            empty(ax, "no absolute magnitudes")
            continue
        ax.hexbin(mabs[ok], c[ok], gridsize=45, bins="log", mincnt=1, cmap="viridis",
                  extent=(-24.5, -14.0, -0.5, 3.0))
        ax.set_xlim(-14.0, -24.5)
        ax.set_ylim(-0.5, 3.0)
        ax.set_xlabel(a["abs_name"])
        ax.set_ylabel(f"rest-frame {a['colour_filters']}")
        ax.set_title(f"colour–magnitude: {title} (n={int(ok.sum())})")
    return save(fig, path)


def sed_errors(a: dict, path: Path, detection_band: str) -> Path:
    """Median |Δf/f| (rest 3,000–9,000 Å) vs detection-band magnitude (network and the catalogue
    label's own SED, against the truth), and the median χ² per band of the predicted and the true
    SED against the measured photometry."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    ax = axes[0]
    m = a["mag"]
    edges = np.arange(np.floor(np.nanmin(m)) if np.isfinite(m).any() else 18, 25.51, 0.5)
    for key, label, c in (("frac_error_network", "network", COLORS["network"]),
                          ("frac_error_label", "catalogue label", COLORS["catalogue"])):
        v = a[key]
        xs, ys = [], []
        for lo, hi in zip(edges[:-1], edges[1:]):
            sel = (m >= lo) & (m < hi) & np.isfinite(v)
            if sel.sum() >= 5:
                xs.append(0.5 * (lo + hi))
                ys.append(np.median(v[sel]))
        ax.plot(xs, ys, "o-", color=c, label=label)
    ax.axvline(a["bright_mag"], color="0.6", ls=":")
    ax.set_xlabel(detection_band)
    ax.set_ylabel("median |f_pred/f_true − 1|, rest 3000–9000 Å")
    ax.set_title("SED reconstruction error (test galaxies)")
    ax.legend()
    ax = axes[1]
    rows = a["chi2_bands"]
    if rows:
        x = np.arange(len(rows))
        ax.plot(x, [r["median χ² network SED"] for r in rows], "o-", color=COLORS["network"], label="predicted SED at z_phot")
        ax.plot(x, [r["median χ² true SED"] for r in rows], "s--", color=COLORS["truth"], label="true SED at z_true")
        ax.axhline(0.455, color="0.6", ls=":", label="median of χ²(1): noise only")
        ax.set_xticks(x)
        ax.set_xticklabels([r["band"] for r in rows], rotation=90, fontsize=7)
        ax.set_ylabel("median χ² per detected band")
        ax.legend(fontsize=8)
    else:
        empty(ax)
    ax.set_title("SED vs measured photometry")
    return save(fig, path)
