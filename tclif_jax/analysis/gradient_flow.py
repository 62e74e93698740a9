"""Gradient flow over time (paper Figure 3): dL/dU for every neuron at every step.

``membrane_gradients`` differentiates the batch-mean cross-entropy with respect to a
zero offset ("probe") added to every neuron's membrane potential before the threshold
(``tclif_jax.neurons``), which is exactly ``dL/dU_i[t]`` including all spike, reset and
surrogate paths.

Normalisation (``flow_map``), per layer: ``M[i, t] = sum_b |dL/dU_i[t]|`` (L1 over the
batch), divided by ``sum_{i, t} M[i, t]``, so each layer's map sums to 1 and
``M[:, t].sum()`` is the share of the gradient mass that reaches step ``t``. The
headline number is the share of the mass in the first half of the sequence,
``sum_{t < T/2} M[:, t]``: a network whose gradient vanishes backwards in time puts
almost nothing there.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tclif_jax.config import NetworkConfig
from tclif_jax.models import apply

__all__ = [
    "membrane_gradients",
    "flow_map",
    "time_profile",
    "first_half_fraction",
    "gradient_flow",
    "plot_gradient_flow",
]


def membrane_gradients(config: NetworkConfig, params: dict, x, y) -> tuple[list[np.ndarray], float]:
    """``([dL/dU per layer, (B, T, n)], loss)`` for batch-major input ``x (B, T, F)`` and
    integer labels ``y (B,)``; L is the batch-mean cross-entropy of the network's logits
    (``config.readout``). ``params`` is the NNX-named parameter dict."""
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.int32)
    B, T = x.shape[:2]
    widths = config.hidden

    @jax.jit
    def grads(probes):
        def loss(probes):
            logits, _ = apply(config, params, x, probes=probes)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        return jax.value_and_grad(loss)(probes)

    loss, g = grads([jnp.zeros((B, T, n), jnp.float32) for n in widths])
    return [np.asarray(a) for a in g], float(loss)


def flow_map(grad: np.ndarray) -> np.ndarray:
    """Normalised gradient map ``(n, T)`` from ``dL/dU (B, T, n)``: L1 over the batch, then
    divided by the total so the whole map sums to 1 (non-finite input gives NaNs)."""
    m = np.abs(np.asarray(grad, np.float64)).sum(0).T
    total = m.sum()
    if not np.isfinite(total) or total == 0:
        return np.full_like(m, np.nan)
    return m / total


def time_profile(fmap: np.ndarray) -> np.ndarray:
    """Share of the gradient mass at each step, ``(T,)`` (sums to 1)."""
    return np.asarray(fmap).sum(0)


def first_half_fraction(fmap: np.ndarray) -> float:
    """Share of the gradient mass in steps ``t < T // 2``."""
    prof = time_profile(fmap)
    return float(prof[: len(prof) // 2].sum())


def gradient_flow(config: NetworkConfig, params: dict, x, y) -> dict[str, Any]:
    """Maps and summary numbers for one network on one batch ``x (B, T, F)``, ``y (B,)``.

    Returns ``{"maps": [(n, T) per layer, each summing to 1], "stacked": the layers'
    maps stacked along the neuron axis and divided by the number of layers (sums to 1),
    "loss", "first_half": [per layer], "first_half_all": of "stacked" (the mean of the
    per-layer shares), "finite": bool, "raw_mass": [sum |dL/dU| per layer],
    "nonfinite_fraction": [per layer]}``.
    """
    grads, loss = membrane_gradients(config, params, x, y)
    maps = [flow_map(g) for g in grads]
    raw = [float(np.abs(np.asarray(g, np.float64)).sum()) for g in grads]
    finite = all(np.isfinite(r) and r > 0 for r in raw)
    stacked = np.concatenate(maps, 0) / len(maps)
    return {
        "maps": maps,
        "stacked": stacked,
        "loss": loss,
        "finite": bool(finite),
        "raw_mass": raw,
        "first_half": [first_half_fraction(m) for m in maps],
        "first_half_all": first_half_fraction(stacked),
        "nonfinite_fraction": [float(np.mean(~np.isfinite(g))) for g in grads],
    }


def _bin_time(fmap: np.ndarray, max_columns: int) -> np.ndarray:
    """Sum consecutive steps so that at most ``max_columns`` remain (keeps the PNG small)."""
    k = -(-fmap.shape[1] // max_columns)
    if k <= 1:
        return fmap
    pad = (-fmap.shape[1]) % k
    padded = np.pad(fmap, ((0, 0), (0, pad)))
    return padded.reshape(fmap.shape[0], -1, k).sum(-1)


def plot_gradient_flow(
    results: dict[str, dict], path: str, *, layer: int | None = None, max_columns: int = 196
) -> None:
    """One heat map per network (rows), neuron index by time, log colour scale, with the
    per-step profile below. ``layer=None`` stacks all layers (white lines between them).
    Long sequences are shown in bins of consecutive steps (at most ``max_columns``); the
    share then is per bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    names = list(results)
    fig, axes = plt.subplots(
        2,
        len(names),
        figsize=(3.6 * len(names), 5.2),
        gridspec_kw={"height_ratios": [3, 1]},
        squeeze=False,
        constrained_layout=True,
    )
    for j, name in enumerate(names):
        r = results[name]
        maps = r["maps"] if layer is None else [r["maps"][layer]]
        fmap = r["stacked"] if layer is None else maps[0]
        fmap = _bin_time(fmap, max_columns)
        ax = axes[0, j]
        if np.isfinite(fmap).all() and fmap.max() > 0:
            pos = fmap[fmap > 0]
            vmin = max(pos.min(), pos.max() * 1e-6) if pos.size else 1e-12
            T = r["stacked"].shape[1]
            im = ax.imshow(
                np.maximum(fmap, vmin),
                aspect="auto",
                origin="lower",
                cmap="viridis",
                norm=LogNorm(vmin=vmin, vmax=fmap.max()),
                interpolation="nearest",
                extent=(0, T, 0, fmap.shape[0]),
            )
            fig.colorbar(im, ax=ax, fraction=0.05)
            edge = 0
            for m in maps[:-1]:
                edge += m.shape[0]
                ax.axhline(edge, c="w", lw=0.8)
            half = r["first_half_all"] if layer is None else r["first_half"][layer]
            ax.set_title(f"{name}\nfirst-half share {half:.3f}", fontsize=9)
            edges = np.linspace(0, T, fmap.shape[1] + 1)
            axes[1, j].semilogy(0.5 * (edges[1:] + edges[:-1]), np.maximum(fmap.sum(0), 1e-12))
        else:
            ax.text(
                0.5,
                0.5,
                "non-finite gradients\n(exploding)",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            ax.set_title(name, fontsize=9)
        ax.set_xlabel("time step")
        ax.set_ylabel("neuron (layers stacked)" if layer is None else "neuron")
        axes[1, j].set_xlabel("time step")
        axes[1, j].set_ylabel(
            "share per bin" if fmap.shape[1] < r["stacked"].shape[1] else "share per step"
        )
    fig.savefig(path, dpi=72)
    plt.close(fig)
