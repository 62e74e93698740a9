"""Small matplotlib helpers: spike rasters, compartment traces and learning curves.

Both take batch-major records as returned by ``SpikingDense.scan(x, record=True)`` or
``model(x, record=True)`` (``aux["states"][layer]``): arrays ``(B, T, n)``, one sample
``b`` drawn. They return the matplotlib ``Axes`` (or ``Figure``) and never call ``show``.
``learning_curves_png`` draws a run's ``metrics.jsonl`` records (loss and accuracy per
epoch) as PNG bytes, without a display.

Example::

    spikes, states = layer.scan(x, record=True)
    plot_raster(spikes, sample=0)
    plot_traces(states, neurons=[0, 3], threshold=layer.neuron.v_th)
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["plot_raster", "plot_traces", "learning_curves_png"]


def _axes(ax):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(8, 3))[1]


def plot_raster(
    spikes, *, sample: int = 0, ax=None, max_neurons: int | None = None, title: str | None = None
):
    """Raster of one sample's spikes: ``spikes (B, T, n)`` 0/1; a dot per spike at
    (time step, neuron). Returns the Axes."""
    s = np.asarray(spikes)[sample]
    if max_neurons is not None:
        s = s[:, :max_neurons]
    ax = _axes(ax)
    t, i = np.nonzero(s)
    ax.scatter(t, i, s=2, c="k", marker="|")
    ax.set_xlim(-0.5, s.shape[0] - 0.5)
    ax.set_ylim(-0.5, s.shape[1] - 0.5)
    ax.set_xlabel("time step")
    ax.set_ylabel("neuron")
    rate = float(s.mean()) if s.size else 0.0
    ax.set_title(title or f"spikes of sample {sample} (rate {rate:.3f} per neuron per step)")
    return ax


def plot_traces(
    states: Mapping[str, object],
    *,
    neurons: Sequence[int] = (0,),
    sample: int = 0,
    threshold: float | None = None,
    fields: Sequence[str] | None = None,
):
    """Compartment traces of a few neurons: one panel per state field (``dendrite``,
    ``soma``, ``potential``, ...; the spike as ticks), each ``(B, T, n)``; ``threshold``
    draws v_th on the panel of the thresholded compartment. Returns the Figure."""
    import matplotlib.pyplot as plt

    names = [f for f in (fields or states) if f != "spike"]
    fig, axes = plt.subplots(
        len(names), 1, figsize=(8, 1.8 * len(names) + 0.6), sharex=True, squeeze=False
    )
    spikes = np.asarray(states["spike"])[sample] if "spike" in states else None
    for ax, name in zip(axes[:, 0], names):
        trace = np.asarray(states[name])[sample]
        for n in neurons:
            line = ax.plot(trace[:, n], lw=1, label=f"neuron {n}")[0]
            if spikes is not None:
                t = np.nonzero(spikes[:, n])[0]
                ax.plot(t, np.full(len(t), trace.max()), "|", c=line.get_color(), ms=8)
        if threshold is not None and name in ("soma", "potential"):
            ax.axhline(threshold, c="gray", ls="--", lw=0.8, label="v_th")
        ax.set_ylabel(name)
    axes[-1, 0].set_xlabel("time step (spikes as ticks)")
    axes[0, 0].legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    return fig


def learning_curves_png(history: Sequence[Mapping]) -> bytes:
    """PNG bytes of loss and accuracy (%) per epoch for every split that ``history`` (the
    records of a run's ``metrics.jsonl``) holds: train, val, test."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    for split in ("train", "val", "test"):
        if f"{split}_loss" in history[0]:
            ax_loss.plot(epochs, [h[f"{split}_loss"] for h in history], "o-", label=split)
        if f"{split}_acc" in history[0]:
            ax_acc.plot(epochs, [100 * h[f"{split}_acc"] for h in history], "o-", label=split)
    ax_loss.set_xlabel("epoch"), ax_loss.set_ylabel("cross-entropy"), ax_loss.legend()
    ax_acc.set_xlabel("epoch"), ax_acc.set_ylabel("accuracy (%)"), ax_acc.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
