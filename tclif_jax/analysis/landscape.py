"""Loss landscape (paper Figure 5): a 2-D slice around trained parameters along two
filter-normalised random directions (Li, Xu, Taylor, Studer and Goldstein, NeurIPS 2018).

Directions: a Gaussian draw with the shape of every parameter (one key per leaf; see
``draw_order``), then, for each weight matrix (every
``kernel``, ``(in, out)``), each *filter* (the incoming weights of one output unit, a
column) is rescaled to the norm of the same filter of the trained weights. Biases and
the neurons' own parameters (``neuron_params``: TC-LIF's c, PLIF's w) get a zero
direction, as Li et al. do for biases (``include_neuron=True`` gives them a direction
too, scaled to their own magnitude).

``loss_surface`` evaluates ``L(theta + a d1 + b d2)`` on a grid; ``radial_sharpness``
gives the mean and largest rise of the loss on a circle of radius ``r``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tclif_jax.config import NetworkConfig
from tclif_jax.models import apply

__all__ = [
    "filter_normalised_direction",
    "draw_order",
    "make_loss_fn",
    "loss_surface",
    "radial_sharpness",
    "plot_landscape",
    "make_evaluator",
]

_WEIGHT_KEY = "kernel"  # dense, recurrent and readout weights, (in, out)
_NEURON_KEY = "neuron_params"


# The names the parameters had before the NNX layout; draw_order sorts by them.
_LEGACY_NAMES = {
    ("dense", "kernel"): "w_in",
    ("dense", "bias"): "b_in",
    ("recurrent", "kernel"): "w_rec",
    ("recurrent", "bias"): "b_rec",
    ("readout", "kernel"): "w",
    ("readout", "bias"): "b",
}


def _path_keys(path) -> list[str]:
    return [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]


def draw_order(paths: list[list[str]]) -> list[int]:
    """For each leaf (its path of names in ``params``' flattening order), the index of the
    PRNG key it draws with: the leaves' order in the parameter dict's layout before NNX
    names (per layer ``b_in, b_rec, neuron/..., w_in, w_rec``, then the readout's
    ``b, w``), so a seed gives the same directions as before and the figures in
    docs/figures/landscape stay reproducible. Paths outside that layout keep their order."""

    def legacy(names):
        if names[0] == "layers" and len(names) >= 4 and names[2] == _NEURON_KEY:
            return (0, int(names[1]), "neuron", *names[3:])
        if names[0] == "layers" and len(names) == 4 and tuple(names[2:]) in _LEGACY_NAMES:
            return (0, int(names[1]), _LEGACY_NAMES[tuple(names[2:])])
        if tuple(names) in _LEGACY_NAMES:
            return (1, 0, _LEGACY_NAMES[tuple(names)])
        return None

    keys = [legacy(n) for n in paths]
    if any(k is None for k in keys):
        return list(range(len(paths)))
    ranked = sorted(range(len(paths)), key=lambda i: keys[i])
    order = [0] * len(paths)
    for rank, i in enumerate(ranked):
        order[i] = rank
    return order


def filter_normalised_direction(
    key: jax.Array, params: dict, *, include_neuron: bool = False
) -> dict:
    """A random direction shaped like ``params`` (the NNX-named parameter dict),
    filter-normalised (see module doc)."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    split = jax.random.split(key, len(leaves))
    order = draw_order([_path_keys(path) for path, _ in leaves])
    keys = [split[i] for i in order]
    out = []
    for k, (path, p) in zip(keys, leaves):
        names = _path_keys(path)
        p = jnp.asarray(p, jnp.float32)
        d = jax.random.normal(k, p.shape, jnp.float32)
        if names[-1] == _WEIGHT_KEY and p.ndim == 2:
            d = d * (
                jnp.linalg.norm(p, axis=0, keepdims=True)
                / (jnp.linalg.norm(d, axis=0, keepdims=True) + 1e-10)
            )
        elif _NEURON_KEY in names and include_neuron:
            d = d * (jnp.linalg.norm(p) / (jnp.linalg.norm(d) + 1e-10))
        else:
            d = jnp.zeros_like(p)
        out.append(d)
    return jax.tree_util.tree_unflatten(treedef, out)


def make_loss_fn(
    config: NetworkConfig, x, y, *, input_scale: float = 1.0, batch_size: int = 0
) -> Callable[[dict], jax.Array]:
    """``params -> mean cross-entropy`` over the fixed examples ``x (N, T, F)``, ``y (N,)``
    (evaluation mode), in chunks of ``batch_size`` (0: all at once)."""
    x = jnp.asarray(x, jnp.float32) * input_scale
    y = jnp.asarray(y, jnp.int32)
    n = len(y)
    bs = batch_size or n
    if n % bs:
        raise ValueError(f"batch_size {bs} must divide the number of examples {n}.")
    xs, ys = x.reshape(n // bs, bs, *x.shape[1:]), y.reshape(n // bs, bs)

    def loss(params):
        def one(carry, xy):
            logits, _ = apply(config, params, xy[0])
            return carry + optax.softmax_cross_entropy_with_integer_labels(
                logits, xy[1]
            ).sum(), None

        total, _ = jax.lax.scan(one, jnp.zeros(()), (xs, ys))
        return total / n

    return loss


def _shift(params, d1, d2, a, b):
    return jax.tree.map(lambda p, u, v: p + a * u + b * v, params, d1, d2)


def make_evaluator(loss_fn: Callable, params: dict, d1: dict, d2: dict) -> Callable:
    """Jitted ``(a (K,), b (K,)) -> (K,)`` losses at ``params + a d1 + b d2``."""
    return jax.jit(jax.vmap(lambda a, b: loss_fn(_shift(params, d1, d2, a, b))))


def loss_surface(
    loss_fn: Callable,
    params: dict,
    d1: dict,
    d2: dict,
    alphas,
    betas,
    evaluator: Callable | None = None,
) -> np.ndarray:
    """``Z[j, i] = L(params + alphas[i] d1 + betas[j] d2)``, shape ``(len(betas), len(alphas))``.
    One jitted, ``vmap``-ed evaluation per grid row."""
    f = evaluator or make_evaluator(loss_fn, params, d1, d2)
    alphas = jnp.asarray(alphas, jnp.float32)
    return np.stack([np.asarray(f(alphas, jnp.full_like(alphas, b))) for b in np.asarray(betas)], 0)


def radial_sharpness(
    loss_fn: Callable,
    params: dict,
    d1: dict,
    d2: dict,
    radius: float,
    num_angles: int = 16,
    evaluator: Callable | None = None,
) -> dict[str, float]:
    """Loss rise on the circle of ``radius`` in the (d1, d2) plane: mean and max of
    ``L(theta + r cos(phi) d1 + r sin(phi) d2) - L(theta)`` over ``num_angles`` angles.
    (Pass the ``evaluator`` of a ``loss_surface`` call with ``num_angles + 1`` grid
    points per row to reuse its compilation.)"""
    f = evaluator or make_evaluator(loss_fn, params, d1, d2)
    phis = np.linspace(0.0, 2 * np.pi, num_angles, endpoint=False)
    a = jnp.asarray(np.concatenate([[0.0], radius * np.cos(phis)]), jnp.float32)
    b = jnp.asarray(np.concatenate([[0.0], radius * np.sin(phis)]), jnp.float32)
    vals = np.asarray(f(a, b))
    base, rise = float(vals[0]), vals[1:] - vals[0]
    return {
        "radius": float(radius),
        "loss_at_origin": base,
        "mean_rise": float(np.mean(rise)),
        "max_rise": float(np.max(rise)),
        "num_angles": int(num_angles),
    }


def plot_landscape(surfaces: dict[str, dict[str, Any]], path: str) -> None:
    """For each network (column): a 3-D surface (top) and a contour plot (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(surfaces)
    fig = plt.figure(figsize=(4.2 * len(names), 7.6))
    zmax = max(float(np.nanmax(s["loss"])) for s in surfaces.values())
    zmin = min(float(np.nanmin(s["loss"])) for s in surfaces.values())
    for j, name in enumerate(names):
        s = surfaces[name]
        A, B = np.meshgrid(s["alphas"], s["betas"])
        Z = np.asarray(s["loss"])
        ax = fig.add_subplot(2, len(names), j + 1, projection="3d")
        ax.plot_surface(A, B, Z, cmap="viridis", vmin=zmin, vmax=zmax, linewidth=0)
        ax.set_zlim(zmin, zmax)
        ax.set_title(f"{name}: loss surface")
        ax.set_xlabel("d1")
        ax.set_ylabel("d2")
        ax = fig.add_subplot(2, len(names), len(names) + j + 1)
        levels = (
            np.geomspace(zmin, zmax, 15)
            if zmin > 0 and zmax > zmin
            else np.linspace(zmin, zmax + 1e-9, 15)
        )
        cs = ax.contour(A, B, Z, levels=levels, cmap="viridis")
        ax.clabel(cs, fontsize=6, fmt="%.2f")
        ax.plot([0], [0], "r*")
        sh = s.get("sharpness")
        ttl = f"{name}: contours (log-spaced)"
        if sh:
            ttl += f"\nmean rise at r={sh['radius']:g}: {sh['mean_rise']:.3f}"
        ax.set_title(ttl, fontsize=9)
        ax.set_xlabel("d1")
        ax.set_ylabel("d2")
        ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=64)
    plt.close(fig)
