"""The figures of the mock validation (mock vs real survey rows, ``galaxy_spark.studies.mock_validation``).

Pure drawing: the statistics (binned fractions, medians) are computed by the caller and passed in,
so this module imports nothing of the pipeline but ``drawing.figure`` and the mock layer may call it.
Real rows are drawn in black, the mock in red.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_spark.drawing.figure import plt, save

STYLES = {"real": "ko-", "mock": "r.-"}
DPI = 80


def band_grid(centres: np.ndarray, curves: dict[str, dict[str, np.ndarray]], title: str, xlabel: str,
              ylabel: str, path: Path, logy: bool = False, ylim: tuple[float, float] | None = None) -> Path:
    """One small panel per band ({band: {"real": y, "mock": y}}, y per magnitude bin at ``centres``),
    six panels a row, e.g. detection fraction vs F814W or median error vs magnitude."""
    bands = list(curves)
    nc = 6
    nr = int(np.ceil(len(bands) / nc))
    fig, axs = plt.subplots(nr, nc, figsize=(3 * nc, 2.4 * nr), sharex=True, squeeze=False)
    for ax, b in zip(axs.ravel(), bands):
        for who, y in curves[b].items():
            (ax.semilogy if logy else ax.plot)(centres, y, STYLES[who], label=who, ms=3)
        if ylim:
            ax.set_ylim(*ylim)
        ax.set_title(b, fontsize=9)
    for ax in axs.ravel()[len(bands):]:
        ax.axis("off")
    axs.ravel()[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.supxlabel(xlabel)
    fig.supylabel(ylabel)
    return save(fig, path, dpi=DPI)


def colour_histograms(colours: dict[str, dict[str, np.ndarray]], title: str, path: Path) -> Path:
    """Normalised histograms of colours (mag), real vs mock, one panel per colour
    ({"a - c": {"real": values, "mock": values}})."""
    fig, axs = plt.subplots(1, len(colours), figsize=(3.3 * len(colours), 3), squeeze=False)
    bins = np.linspace(-1.5, 3.5, 41)
    for ax, (name, values) in zip(axs[0], colours.items()):
        for who, v in values.items():
            ax.hist(v, bins, density=True, histtype="step", color=STYLES[who][0], label=who)
        ax.set_xlabel(name)
    axs[0, 0].legend(fontsize=8)
    fig.suptitle(title)
    return save(fig, path, dpi=DPI)


def labels_morphology(real: pd.DataFrame, mock: pd.DataFrame, centres: np.ndarray,
                      binned: dict[str, dict[str, np.ndarray]], path: Path) -> Path:
    """Six panels of catalogue labels and morphology: zb_1 vs F814W; stell median and fraction > 0.9
    vs F814W; median Odds_1 vs F814W (``binned``: {"real"|"mock": {"stell median", "stell frac>0.9",
    "odds median"}: values per bin at ``centres``}); n(z | detection-band limit); Stell_Mass_1 vs M_Abs_1;
    the mock's zb_1 vs its z_true. Mock scatter panels show 8,000 random objects."""
    fig, axs = plt.subplots(2, 3, figsize=(14, 7.5))
    sub = mock.sample(min(len(mock), 8000), random_state=0)
    ax = axs[0, 0]
    ax.scatter(sub["detection"], sub["redshift"], s=1, c="r", alpha=0.3, label="mock")
    ax.scatter(real["detection"], real["redshift"], s=3, c="k", label="real")
    ax.set_xlabel("detection"); ax.set_ylabel("redshift"); ax.set_ylim(0, 4); ax.legend(fontsize=8)
    ax = axs[0, 1]
    for who, b in binned.items():
        sty = STYLES[who]
        ax.plot(centres, b["stell median"], sty, label=f"{who} median")
        ax.plot(centres, b["stell frac>0.9"], sty.replace("-", "--"), label=f"{who} frac>0.9", alpha=0.6)
    ax.set_xlabel("detection"); ax.set_ylabel("stell"); ax.legend(fontsize=7)
    ax = axs[0, 2]
    for who, b in binned.items():
        ax.plot(centres, b["odds median"], STYLES[who], label=who)
    ax.set_xlabel("detection"); ax.set_ylabel("median odds"); ax.legend(fontsize=8)
    ax = axs[1, 0]
    zb = np.linspace(0, 4, 41)
    for lim in (22.5, 24.5):
        ls = "-" if lim == 22.5 else "--"
        ax.hist(real.loc[real["detection"] < lim, "redshift"], zb, density=True, histtype="step", color="k", ls=ls,
                label=f"real zb, <{lim}")
        g = mock[(mock["is_star"] == 0) & (mock["detection"] < lim)]
        ax.hist(g["z_true"], zb, density=True, histtype="step", color="r", ls=ls,
                label=f"mock z_true, <{lim} (mean {g['z_true'].mean():.2f})")
    ax.set_xlabel("z"); ax.legend(fontsize=7); ax.set_title("n(z | detection-band limit)")
    ax = axs[1, 1]
    ax.scatter(sub["absolute_magnitude"], sub["stellar_mass"], s=1, c=sub["spectral_type"], cmap="coolwarm_r")
    ax.scatter(real["absolute_magnitude"], real["stellar_mass"], s=4, facecolors="none", edgecolors="k")
    ax.set_xlabel("absolute_magnitude"); ax.set_ylabel("stellar_mass"); ax.set_title("mass vs M_B (mock colour = Tb)")
    ax = axs[1, 2]
    g = sub[sub["is_star"] == 0]
    ax.scatter(g["z_true"], g["redshift"], s=1, c="r", alpha=0.3)
    ax.plot([0, 4], [0, 4], "k-", lw=0.5)
    ax.set_xlim(0, 4); ax.set_ylim(0, 4); ax.set_xlabel("z_true"); ax.set_ylabel("redshift")
    ax.set_title("mock labels vs truth")
    return save(fig, path, dpi=DPI)


def magnitude_counts(real_mag: np.ndarray, mock_mag: np.ndarray, xlabel: str, path: Path) -> Path:
    """Normalised magnitude distributions (log scale), real (a biased sample) vs mock."""
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.arange(14, 27, 0.25)
    ax.hist(real_mag, bins, density=True, histtype="step", color="k", label="real (biased sample)")
    ax.hist(mock_mag, bins, density=True, histtype="step", color="r", label="mock")
    ax.set_yscale("log"); ax.set_xlabel(xlabel); ax.legend(fontsize=8)
    return save(fig, path, dpi=DPI)
