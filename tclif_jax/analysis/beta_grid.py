"""The beta-grid study (paper Figure 2): generalised two-compartment networks (Eq. 7-9)
initialised at points of the four quadrants of the (b1, b2) plane.

This module holds the grid, the classification of a finished run and the figure; the
runs themselves are ordinary training runs (``experiments/analyses/beta_grid.py``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["QUADRANTS", "grid_points", "run_name", "classify", "plot_beta_grid"]

# Signs of (b1, b2) per quadrant, counter-clockwise from the first.
QUADRANTS = {"I": (1, 1), "II": (-1, 1), "III": (-1, -1), "IV": (1, -1)}


def grid_points(
    magnitudes: Sequence[float] = (0.2, 0.5, 0.8),
    quadrants: Sequence[str] = ("I", "II", "III", "IV"),
) -> list[tuple[float, float]]:
    """``len(magnitudes)**2`` points per quadrant: ``(s1 |b1|, s2 |b2|)`` for every pair of
    magnitudes (nine per quadrant by default, 36 in all)."""
    pts = []
    for q in quadrants:
        s1, s2 = QUADRANTS[q]
        for m1, m2 in itertools.product(magnitudes, magnitudes):
            pts.append((round(s1 * m1, 6), round(s2 * m2, 6)))
    return pts


def run_name(task: str, b1: float, b2: float) -> str:
    """A folder name for one run, e.g. ``smnist/b1=-0.5_b2=+0.2``."""
    return f"{task}/b1={b1:+.3f}_b2={b2:+.3f}"


def classify(
    accuracy: float | None, num_classes: int, *, diverged: bool = False, chance_margin: float = 0.05
) -> str:
    """``"diverged"`` (a NaN/inf loss or gradient stopped training), ``"chance"`` (best
    test accuracy below ``1/num_classes + chance_margin``) or ``"ok"``."""
    if diverged or accuracy is None or not math.isfinite(accuracy):
        return "diverged"
    if accuracy < 1.0 / num_classes + chance_margin:
        return "chance"
    return "ok"


def plot_beta_grid(results: Sequence[dict[str, Any]], path: str) -> None:
    """One scatter per task over the (b1, b2) plane: colour = best test accuracy; crosses
    mark diverged runs, open circles runs at chance. The hyperbola b1 b2 = -4 and the
    axes bound the region where the sub-threshold dynamics is marginally stable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in results})
    fig, axes = plt.subplots(
        1,
        max(len(tasks), 1),
        figsize=(5.2 * max(len(tasks), 1), 5.0),
        squeeze=False,
        constrained_layout=True,
    )
    lim = max([1.0] + [abs(r[k]) * 1.2 for r in results for k in ("b1", "b2")])
    for ax, task in zip(axes[0], tasks):
        rs = [r for r in results if r["task"] == task]
        ok = [r for r in rs if r["status"] != "diverged"]

        def points(status, rs=rs):
            chosen = [r for r in rs if r["status"] == status]
            return [r["b1"] for r in chosen], [r["b2"] for r in chosen]

        sc = ax.scatter(
            [r["b1"] for r in ok],
            [r["b2"] for r in ok],
            c=[100 * r["best_test_acc"] for r in ok],
            cmap="viridis",
            vmin=0,
            vmax=100,
            s=140,
            edgecolors="k",
        )
        ax.scatter(
            *points("chance"),
            s=260,
            facecolors="none",
            edgecolors="r",
            linewidths=1.5,
            label="chance",
        )
        ax.scatter(*points("diverged"), marker="x", c="r", s=120, label="diverged (NaN/inf)")
        for r in ok:
            ax.annotate(
                f"{100 * r['best_test_acc']:.0f}",
                (r["b1"], r["b2"]),
                fontsize=6,
                ha="center",
                va="center",
                color="w",
            )
        if lim > 2.0:  # the hyperbola b1 b2 = -4 bounds the marginal region
            b = np.linspace(-lim, lim, 400)
            with np.errstate(divide="ignore"):
                hyp = -4.0 / b
            ax.plot(b, np.where(np.abs(hyp) <= lim, hyp, np.nan), "c--", lw=1, label="b1 b2 = -4")
        ax.axhline(0, c="gray", lw=0.6)
        ax.axvline(0, c="gray", lw=0.6)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_xlabel("initial b1")
        ax.set_ylabel("initial b2")
        ax.set_title(f"{task}: best test accuracy (%)")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3)
        fig.colorbar(sc, ax=ax)
    fig.savefig(path, dpi=90)
    plt.close(fig)
