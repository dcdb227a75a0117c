"""Plots people would rather look at than read. Matplotlib with the Agg backend (no screen)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curves(history: dict, keys: list[tuple[str, str]], title: str, ylabel: str, path: Path) -> Path:
    """Per-epoch curves, e.g. keys = [("train_loss", "train"), ("val_loss", "validation")]."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for key, label in keys:
        if key in history and len(history[key]):
            ax.plot(np.arange(1, len(history[key]) + 1), history[key], marker=".", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def pred_vs_true(true: np.ndarray, preds: dict[str, np.ndarray], label: str, path: Path,
                 lims: tuple[float, float] | None = None) -> Path:
    """2-D density of predicted vs true, one panel per prediction (e.g. before/after correction)."""
    ok_all = np.isfinite(true)
    fig, axes = plt.subplots(1, len(preds), figsize=(4.6 * len(preds), 4.2), squeeze=False)
    if lims is None:
        lo, hi = np.nanpercentile(true[ok_all], [0.5, 99.5]) if ok_all.any() else (0, 1)
        lims = (float(lo), float(hi))
    for ax, (name, pred) in zip(axes[0], preds.items()):
        ok = ok_all & np.isfinite(pred)
        inside = ok & (pred >= lims[0]) & (pred <= lims[1]) & (true >= lims[0]) & (true <= lims[1])
        if inside.sum() > 1:
            hb = ax.hexbin(true[inside], pred[inside], gridsize=60, extent=(*lims, *lims), bins="log", mincnt=1,
                           cmap="viridis")
            fig.colorbar(hb, ax=ax, label="objects")
        if ok.sum() > 0:
            slope = np.polyfit(true[ok], pred[ok], 1)[0] if ok.sum() > 2 else np.nan
            ax.set_title(f"{name}  (slope {slope:.3f})")
        ax.plot(lims, lims, "r--", lw=1)
        ax.set_xlim(lims)
        ax.set_ylim(lims)
        ax.set_xlabel(f"true {label}")
        ax.set_ylabel(f"predicted {label}")
    return _save(fig, path)
