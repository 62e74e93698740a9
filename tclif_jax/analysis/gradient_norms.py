"""Gradient norms of the two-compartment neuron: the paper's Eq. 14-15 (Table 7) against
the exact one-step Jacobian, over the (b1, b2) plane, and measured in a trained network.

Three quantities, all per neuron and per time step, for the state ``U = (U_D, U_S)``:

* ``paper_inf_norm(b1, b2)``: Eq. 15, ``b1 b2^2 + b1 b2 + 2 b2 + 1``. It reproduces
  every entry of the paper's Table 7.
* the exact sub-threshold Jacobian ``dU[t]/dU[t-1] = [[1, b1], [b2, 1 + b1 b2]]``
  (autodiff of the implemented step, ``transition_jacobian``): determinant 1, so its
  eigenvalues are a complex pair on the unit circle for ``-4 < b1 b2 < 0`` (marginal
  stability: no vanishing, no exploding) and a real pair ``lambda, 1/lambda`` otherwise.
* ``measured_jacobian_norms``: the same Jacobian inside a network on real input, with
  the spike and surrogate terms (the reset by ``S[t-1] = H(U_S[t-1] - V_th)``, whose
  surrogate derivative is non-zero near the threshold) included, averaged over a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tclif_jax.analysis.jacobian import paper_inf_norm, transition_jacobian
from tclif_jax.config import NetworkConfig
from tclif_jax.execution import Execution
from tclif_jax.network import scan_layer
from tclif_jax.neurons import Neuron
from tclif_jax.params import NetworkParams, from_state
from tclif_jax.steps import feedforward

__all__ = [
    "TABLE7",
    "TABLE7_TRAINED",
    "exact_jacobian",
    "eigen_moduli",
    "inf_norm",
    "table7_rows",
    "norm_plane",
    "marginal_region",
    "paper_unit_norm_curve",
    "layer_states",
    "step_jacobians",
    "measured_jacobian_norms",
    "plot_norm_plane",
]

# Paper Table 7 (supplement): Eq. 15 at the initial (b1, b2) grid ...
TABLE7 = {
    (-0.2, 0.2): 1.352,
    (-0.2, 0.4): 1.688,
    (-0.2, 0.6): 2.008,
    (-0.2, 0.8): 2.312,
    (-0.4, 0.2): 1.304,
    (-0.4, 0.4): 1.576,
    (-0.4, 0.6): 1.816,
    (-0.4, 0.8): 2.024,
    (-0.6, 0.2): 1.256,
    (-0.6, 0.4): 1.464,
    (-0.6, 0.6): 1.624,
    (-0.6, 0.8): 1.736,
    (-0.8, 0.2): 1.208,
    (-0.8, 0.4): 1.352,
    (-0.8, 0.6): 1.432,
    (-0.8, 0.8): 1.448,
}
# ... and at the (b1, b2) the paper's networks reached after training.
TABLE7_TRAINED = {
    (-0.184, 0.146): 1.262,
    (-0.188, 0.307): 1.539,
    (-0.203, 0.563): 1.948,
    (-0.202, 0.835): 2.360,
    (-0.379, 0.159): 1.248,
    (-0.370, 0.318): 1.480,
    (-0.383, 0.532): 1.751,
    (-0.380, 0.700): 1.949,
    (-0.621, 0.172): 1.219,
    (-0.621, 0.342): 1.399,
    (-0.634, 0.594): 1.587,
    (-0.612, 0.761): 1.704,
    (-0.812, 0.187): 1.194,
    (-0.815, 0.360): 1.321,
    (-0.812, 0.580): 1.416,
    (-0.821, 0.801): 1.418,
}


# ----------------------------------------------------------------------------- closed forms


def exact_jacobian(b1, b2) -> np.ndarray:
    """Closed form of the sub-threshold TC-LIF Jacobian, ``[[1, b1], [b2, 1 + b1 b2]]``,
    broadcast over ``b1, b2``: shape ``(*broadcast, 2, 2)``, float64."""
    b1, b2 = np.broadcast_arrays(np.asarray(b1, np.float64), np.asarray(b2, np.float64))
    return np.stack([np.stack([np.ones_like(b1), b1], -1), np.stack([b2, 1.0 + b1 * b2], -1)], -2)


def eigen_moduli(jac) -> np.ndarray:
    """Moduli of the eigenvalues of a stack of 2x2 matrices ``(..., 2, 2)``, sorted
    descending, ``(..., 2)``. Closed form (trace and determinant), float64, any backend."""
    j = np.asarray(jac, np.float64)
    tr = j[..., 0, 0] + j[..., 1, 1]
    det = j[..., 0, 0] * j[..., 1, 1] - j[..., 0, 1] * j[..., 1, 0]
    disc = (tr / 2.0) ** 2 - det
    root = np.sqrt(np.abs(disc))
    real = np.stack([np.abs(tr / 2.0 + root), np.abs(tr / 2.0 - root)], -1)
    cplx = np.sqrt(np.abs(det))[..., None] * np.ones(2)
    out = np.where((disc >= 0)[..., None], real, cplx)
    return -np.sort(-out, axis=-1)


def inf_norm(jac) -> np.ndarray:
    """Induced infinity norm (largest absolute row sum) of ``(..., k, k)`` matrices."""
    return np.abs(np.asarray(jac, np.float64)).sum(-1).max(-1)


def marginal_region(b1, b2) -> np.ndarray:
    """True where the exact sub-threshold Jacobian has both eigenvalues on the unit
    circle without growth: ``-4 < b1 b2 < 0`` (complex pair of modulus 1)."""
    p = np.asarray(b1, np.float64) * np.asarray(b2, np.float64)
    return (p > -4.0) & (p < 0.0)


def paper_unit_norm_curve(b2) -> np.ndarray:
    """Where Eq. 15 equals 1 (besides b2 = 0): ``b1 = -2 / (1 + b2)``."""
    return -2.0 / (1.0 + np.asarray(b2, np.float64))


# ----------------------------------------------------------------------------- tables


def table7_rows(
    points: Sequence[tuple[float, float]] | None = None, paper_values: dict | None = None
) -> list[dict[str, Any]]:
    """One row per (b1, b2): the paper's printed value, Eq. 15, and the exact Jacobian
    (by autodiff of the implemented step) with its spectral radius and norms.

    Default points: both halves of Table 7 (initial grid, then trained values).
    """
    if points is None:
        paper_values = {**TABLE7, **TABLE7_TRAINED}
        points = list(TABLE7) + list(TABLE7_TRAINED)
    paper_values = paper_values or {}
    rows = []
    for b1, b2 in points:
        jac = np.asarray(transition_jacobian(b1, b2), np.float64)
        moduli = np.abs(np.linalg.eigvals(jac))
        rows.append(
            {
                "b1": float(b1),
                "b2": float(b2),
                "paper_table7": paper_values.get((b1, b2)),
                "eq15": float(paper_inf_norm(b1, b2)),
                "exact_jacobian": jac.round(6).tolist(),
                "exact_inf_norm": float(inf_norm(jac)),
                "exact_2_norm": float(np.linalg.norm(jac, 2)),
                "exact_spectral_radius": float(moduli.max()),
                "exact_det": float(np.linalg.det(jac)),
                "marginal": bool(marginal_region(b1, b2)),
                "trained": (b1, b2) in TABLE7_TRAINED,
            }
        )
    return rows


def norm_plane(b1_values, b2_values) -> dict[str, np.ndarray]:
    """Maps over the (b1, b2) plane, each ``(len(b2_values), len(b1_values))`` (rows: b2):
    Eq. 15, and the exact Jacobian's spectral radius, infinity norm and 2-norm."""
    B1, B2 = np.meshgrid(np.asarray(b1_values, np.float64), np.asarray(b2_values, np.float64))
    jac = exact_jacobian(B1, B2)
    return {
        "b1": B1,
        "b2": B2,
        "eq15": paper_inf_norm(B1, B2),
        "spectral_radius": eigen_moduli(jac)[..., 0],
        "inf_norm": inf_norm(jac),
        "two_norm": np.linalg.norm(jac, 2, axis=(-2, -1)),
        "marginal": marginal_region(B1, B2),
    }


# ----------------------------------------------------------------------------- measured


def _typed(params) -> NetworkParams:
    return params if isinstance(params, NetworkParams) else from_state(params)


def layer_states(config: NetworkConfig, params, x_batch_major, layer: int = -1):
    """Run the network (evaluation mode, full-f32 products) up to ``layer`` and return
    that layer's feed-forward input current ``(T, B, n)`` and its neuron state at every
    step (each field ``(T, B, n)``), both time-major. The state is taken before the reset
    of ``S[t]`` (the library's layout). ``params``: ``NetworkParams`` or the model's state
    dict; ``x_batch_major`` is ``(B, T, F)``."""
    x = jnp.swapaxes(jnp.asarray(x_batch_major, jnp.float32), 0, 1)
    layer = layer % len(config.hidden)
    layers = _typed(params).layers
    execution = Execution()
    batch = x.shape[1]
    h = x
    for i in range(layer + 1):
        neuron = config.neurons[i]
        current = feedforward(layers[i].dense, h, execution.matmul)
        state0 = neuron.init_state((batch,), config.hidden[i])
        _, h, states = scan_layer(neuron, layers[i], current, state0, execution, record=i == layer)
    return current, states


def step_jacobians(neuron: Neuron, neuron_params, prev_potentials, current) -> jax.Array:
    """Per-neuron one-step Jacobians ``dU[t]/dU[t-1]`` including spike and surrogate terms.

    ``prev_potentials`` ``(..., k)`` (``neuron.state_vector`` of the state at t-1; the spike
    is recomputed from it through the surrogate by ``neuron.state_from_vector``) and the
    input ``current`` ``(...)`` at t, for a feed-forward layer (neurons independent given
    their input). Returns ``(..., k, k)``.
    """

    def one(u, cur):
        state, _ = neuron.step(neuron_params, neuron.state_from_vector(u, neuron_params), cur)
        return neuron.state_vector(state)

    flat_u = prev_potentials.reshape(-1, prev_potentials.shape[-1])
    jac = jax.vmap(jax.jacrev(one))(flat_u, current.reshape(-1))  # custom_vjp: reverse mode
    k = prev_potentials.shape[-1]
    return jac.reshape(*prev_potentials.shape[:-1], k, k)


def measured_jacobian_norms(
    config: NetworkConfig,
    params,
    x_batch_major,
    *,
    layer: int = -1,
    near_threshold: float = 1.0,
) -> dict[str, Any]:
    """The per-step Jacobian of ``layer``'s neuron state in the network on input
    ``x (B, T, F)``, with spike and surrogate terms, averaged over batch, time (t >= 1)
    and neurons.

    Reports the mean infinity norm (the quantity of Eq. 15), mean spectral radius and the
    same split into steps where the surrogate is active at t-1 (``|U - V_th| <
    near_threshold`` for the thresholded potential U) and where it is not; for
    two-compartment neurons also the layer's mean (b1, b2) with Eq. 15 and the exact
    sub-threshold norm there. Feed-forward layers only (recurrent layers couple neurons
    through W_rec, so the per-neuron Jacobian is not the whole story).
    """
    index = layer % len(config.hidden)
    if config.recurrent[index]:
        raise ValueError(
            "measured_jacobian_norms handles feed-forward layers; this layer is "
            "recurrent (its Jacobian couples neurons through W_rec)."
        )
    neuron = config.neurons[index]
    neuron_params = _typed(params).layers[index].neuron
    current, states = layer_states(config, params, x_batch_major, index)
    pots = neuron.state_vector(states)  # (T, B, n, k)
    jac = np.asarray(
        step_jacobians(neuron, neuron_params, pots[:-1], current[1:]), np.float64
    )  # (T-1, B, n, k, k)
    thr_var = np.asarray(neuron.potential(states))[:-1]
    # The threshold of each step (learned for GLIF, adaptive for the ALIFs).
    threshold = np.asarray(neuron.threshold(pots, neuron_params))[:-1]
    active = np.abs(thr_var - threshold) < near_threshold
    norms = inf_norm(jac)
    if jac.shape[-1] == 2:
        radii = eigen_moduli(jac)[..., 0]
    elif jac.shape[-1] == 1:
        radii = np.abs(jac[..., 0, 0])
    else:
        radii = np.abs(np.linalg.eigvals(jac)).max(-1)
    out = {
        "layer": int(index),
        "neuron": neuron.name,
        "mean_inf_norm": float(norms.mean()),
        "mean_spectral_radius": float(radii.mean()),
        "median_inf_norm": float(np.median(norms)),
        "fraction_near_threshold": float(active.mean()),
        "mean_inf_norm_subthreshold": float(norms[~active].mean()) if (~active).any() else None,
        "mean_inf_norm_near_threshold": float(norms[active].mean()) if active.any() else None,
        "mean_jacobian": jac.mean((0, 1, 2)).round(6).tolist(),
        "firing_rate": float(np.asarray(states.spike).mean()),
    }
    coupling = neuron.coupling(neuron_params)
    if coupling is not None:
        b1, b2 = (float(jnp.mean(b)) for b in coupling)
        out.update(
            b1=b1,
            b2=b2,
            eq15=float(paper_inf_norm(b1, b2)),
            exact_subthreshold_inf_norm=float(inf_norm(exact_jacobian(b1, b2))),
        )
    return out


# ----------------------------------------------------------------------------- figure


def plot_norm_plane(
    path: str,
    *,
    extent: float = 2.5,
    resolution: int = 301,
    points: Sequence[tuple[float, float]] | None = None,
    measured: Sequence[dict] = (),
) -> None:
    """Two panels over the (b1, b2) plane: Eq. 15 with its dark-blue norm = 1 curve, and
    the exact Jacobian's spectral radius with the true marginal region -4 < b1 b2 < 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    v = np.linspace(-extent, extent, resolution)
    m = norm_plane(v, v)
    points = list(TABLE7) + list(TABLE7_TRAINED) if points is None else list(points)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), constrained_layout=True)
    ax = axes[0]
    im = ax.pcolormesh(
        m["b1"],
        m["b2"],
        np.clip(m["eq15"], -4, 6),
        cmap="RdYlBu_r",
        vmin=-4,
        vmax=6,
        shading="auto",
    )
    fig.colorbar(im, ax=ax, label="Eq. 15 (clipped to [-4, 6])")
    ax.contour(m["b1"], m["b2"], m["eq15"], levels=[1.0], colors="darkblue", linewidths=2)
    ax.contour(
        m["b1"],
        m["b2"],
        np.abs(m["eq15"]),
        levels=[1.0],
        colors="darkblue",
        linewidths=1,
        linestyles=":",
    )
    ax.set_title("Paper Eq. 15: b1 b2² + b1 b2 + 2 b2 + 1\n(dark blue: = 1; dotted: |.| = 1)")
    ax = axes[1]
    im = ax.pcolormesh(
        m["b1"],
        m["b2"],
        np.log10(m["spectral_radius"]),
        cmap="Reds",
        vmin=0,
        vmax=1.0,
        shading="auto",
    )
    fig.colorbar(im, ax=ax, label="log10 spectral radius of exact Jacobian")
    ax.contourf(
        m["b1"],
        m["b2"],
        m["marginal"].astype(float),
        levels=[0.5, 1.5],
        colors="none",
        hatches=["//"],
    )
    ax.contour(
        m["b1"],
        m["b2"],
        m["b1"] * m["b2"],
        levels=[-4.0],
        colors="darkgreen",
        linewidths=1.5,
        linestyles="--",
    )
    ax.set_title(
        "Exact Jacobian [[1, b1], [b2, 1 + b1 b2]]\n(hatched: |eigenvalues| = 1, "
        "-4 < b1 b2 < 0; dashed: b1 b2 = -4)"
    )
    for ax in axes:
        ax.scatter(
            [p[0] for p in points], [p[1] for p in points], s=10, c="k", label="Table 7 (b1, b2)"
        )
        for row in measured:
            if row.get("b1") is not None:
                ax.scatter(
                    [row["b1"]],
                    [row["b2"]],
                    s=60,
                    marker="*",
                    c="lime",
                    edgecolors="k",
                    label="trained network",
                )
        ax.axhline(0, c="gray", lw=0.5)
        ax.axvline(0, c="gray", lw=0.5)
        ax.set_xlabel("b1")
        ax.set_ylabel("b2")
        ax.set_xlim(-extent, extent)
        ax.set_ylim(-extent, extent)
    axes[0].legend(loc="lower left", fontsize=7)
    fig.savefig(path, dpi=90)
    plt.close(fig)
