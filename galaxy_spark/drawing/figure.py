"""What every figure module shares: Matplotlib on the Agg backend (no screen), saving a figure to a
PNG, the empty-panel note, the estimator colours. Imports nothing from galaxy_spark, so any layer
may draw with the report's figure modules."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402,F401 - re-used by the figure modules

COLORS = {"network": "C0", "BPZ": "C3", "bpz": "C3", "template_fit": "C1", "truth": "k", "catalogue": "C2"}


def save(fig, path: Path, dpi: int = 110) -> Path:
    """Lay out ``fig``, write it as a PNG at ``path`` (parents created), close it; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def empty(ax, text: str = "no data") -> None:
    """Write ``text`` in the middle of a panel that has nothing to draw."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
