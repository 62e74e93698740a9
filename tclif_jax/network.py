"""The network scan: pure functions that run spiking layers over time on NNX-named params.

Array layout inside this module is *time-major*: ``(T, B, features)``. The public model
API (``tclif_jax.models``) is batch-major and transposes once. Parameters are the model's
``nnx.Param`` state as a pure dict (``tclif_jax.models.parameters``)::

    {"layers": {i: {"dense": {"kernel" (in, n), "bias" (n,)},
                    "recurrent": {"kernel" (n, n), "bias" (n,)},     # recurrent layers only
                    "neuron_params": {...}}},                         # e.g. TC-LIF's c
     "readout": {"kernel" (H, C), "bias" (C,)}}

Two execution strategies compute the same function (tested to 1e-5, loss and gradients):

* ``"layerwise"``: one time loop per layer. The feed-forward projection of a layer is
  hoisted out of the loop as one ``(T*B, in) @ (in, n)`` matmul; the recurrent matmul is
  the only one left inside the loop.
* ``"fused"``: one loop over time that steps every layer; only the first layer's input
  projection is hoisted.
* ``"auto"``: a per-backend choice (``AUTO_STRATEGY``): ``fused`` on CPU; ``layerwise`` on
  GPU/TPU, not yet measured.

``backward="auto"`` (the default) differentiates either loop with the hand-written
adjoints of ``tclif_jax.adjoint``: every neuron declares its step's adjoint
(``Neuron.adjoint``), and one ``custom_vjp`` around the loop stores only the residuals the
adjoints read. ``backward="autodiff"`` differentiates the ``lax.scan`` with JAX's autodiff,
the reference the adjoints are tested against. Probes and records need the state of every
step, so they take the autodiff scan: under ``fused`` any probe or a record does; under
``layerwise`` each layer decides (a layer given a probe, or every layer when recording).

Both strategies step a layer with the same neuron function. Both reduce the last
layer's spikes to their sum over time, so the readout is a single matmul after the loop:
``sum_t (s_t W + b) = (sum_t s_t) W + T b``.

``matmul_dtype="bfloat16"``: matmul operands in bf16 with f32 accumulation (spikes are
exact in bf16), forward and backward, the adjoints' products included; neuron state,
residuals, gradients and master weights stay f32. ``matmul_precision`` sets the precision
of every f32 product. ``remat_chunk > 0``: activation memory ~ T / chunk + chunk steps;
the adjoints keep only each chunk's start state and re-run a chunk's forward before its
backward, the autodiff scan runs over chunks with ``jax.checkpoint`` on each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from tclif_jax import adjoint
from tclif_jax.config import BACKWARDS, MATMUL_DTYPES, NetworkConfig
from tclif_jax.neurons import Neuron

__all__ = [
    "AUTO_STRATEGY",
    "MatmulPolicy",
    "resolve_strategy",
    "feedforward",
    "layer_step",
    "scan_layer",
    "run_network",
    "dropout_masks",
]

# Which concrete strategy "auto" means on each backend. CPU: measured, fused is faster in
# every benchmarks/RESULTS.md table; with the hand-written adjoints too (train step, batch
# 256, one process: layerwise 1.31x fused on smnist-ff-64 TC-LIF, 1.06x on shd-ff LIF,
# 1.07x on shd-rec TC-LIF). GPU/TPU: not measured yet (no device was lent);
# layerwise, whose hoisted input projections are large matmuls, until gpu_suite.sh says.
AUTO_STRATEGY = {"cpu": "fused", "gpu": "layerwise", "tpu": "layerwise"}


def resolve_strategy(config: NetworkConfig, backend: str | None = None) -> str:
    """The strategy ``run_network`` uses for ``config`` on ``backend`` (default: JAX's
    default backend): ``config.strategy`` itself, or for ``"auto"`` the backend's entry of
    ``AUTO_STRATEGY`` (layerwise where a backend is not listed)."""
    if config.strategy != "auto":
        return config.strategy
    return AUTO_STRATEGY.get(backend or jax.default_backend(), "layerwise")


# ----------------------------------------------------------------------------- matmuls


@dataclasses.dataclass(frozen=True)
class MatmulPolicy:
    """How every product of the network is computed: operand dtype and f32 precision."""

    dtype: str = "float32"
    precision: str = "highest"

    @classmethod
    def of(cls, config: NetworkConfig) -> MatmulPolicy:
        return cls(config.matmul_dtype, config.matmul_precision)

    @property
    def lax_precision(self):
        return jax.lax.Precision[self.precision.upper()]

    @property
    def lowp(self) -> bool:
        return MATMUL_DTYPES[self.dtype] != jnp.float32

    def __call__(self, x, w):
        """``x @ w`` under this policy (the result is always f32)."""
        if not self.lowp:
            return jnp.matmul(x, w, precision=self.lax_precision)
        return _lowp_matmul(x, w)

    def grad_x(self, g, w):
        """``g @ w.T``, the adjoint of ``x`` in ``x @ w``, under this policy (f32)."""
        if not self.lowp:
            return jnp.matmul(g, w.T, precision=self.lax_precision)
        return _lowp_dot(g, w.T)

    def grad_w(self, x, g):
        """``x^T g`` summed over every leading axis (``x (..., i)``, ``g (..., o)``): the
        adjoint of ``w`` in ``x @ w``, under this policy (f32)."""
        x2, g2 = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
        if not self.lowp:
            return jnp.matmul(x2.T, g2, precision=self.lax_precision)
        return _lowp_dot(x2.T, g2)


def _lowp_dot(a, b):
    # bf16 operands, f32 accumulation and result.
    return jnp.matmul(
        a.astype(jnp.bfloat16), b.astype(jnp.bfloat16), preferred_element_type=jnp.float32
    )


@jax.custom_vjp
def _lowp_matmul(x, w):
    """``x @ w`` with bf16 operands and an f32 result, differentiable with the same policy.

    Its backward saves the operands as given (f32) and casts again, instead of letting
    autodiff save the bf16 copies: inside a scan those are per-step residuals, and XLA:CPU
    updates a stacked bf16 buffer out of place (a full copy per step). The gradients are
    computed with bf16 operands and f32 accumulation and returned in the operands' dtypes.
    """
    return _lowp_dot(x, w)


def _lowp_matmul_fwd(x, w):
    return _lowp_matmul(x, w), (x, w)


def _lowp_matmul_bwd(res, g):
    x, w = res
    dx = _lowp_dot(g, w.T)
    dw = _lowp_dot(x.reshape(-1, x.shape[-1]).T, g.reshape(-1, g.shape[-1]))
    return dx.astype(x.dtype), dw.astype(w.dtype)


_lowp_matmul.defvjp(_lowp_matmul_fwd, _lowp_matmul_bwd)


# ----------------------------------------------------------------------------- one layer


def feedforward(layer_params: dict, x, matmul: MatmulPolicy):
    """A layer's feed-forward current ``x @ W_in + b_in`` for ``x (..., in)``."""
    dense = layer_params["dense"]
    return matmul(x, dense["kernel"]) + dense["bias"]


def layer_step(neuron: Neuron, layer_params: dict, state, current, matmul: MatmulPolicy, probe=0.0):
    """One time step of one spiking layer: ``(new_state, spike)``.

    ``current (B, n)`` is the feed-forward current; a recurrent layer (one whose params
    hold ``"recurrent"``) adds ``S[t-1] @ W_rec + b_rec`` before the neuron step.
    """
    current = adjoint.layer_input(matmul, layer_params.get("recurrent"), state, current)
    return neuron.step(layer_params.get("neuron_params", {}), state, current, probe)


def _scan(body, carry, xs, length: int, remat_chunk: int):
    """``lax.scan``, or with ``remat_chunk > 0`` a scan over chunks whose inner scan is
    rematerialised (``jax.checkpoint``): activation memory ~ T/chunk + chunk steps."""
    adjoint.check_chunk(length, remat_chunk)
    if not remat_chunk or remat_chunk >= length:
        return jax.lax.scan(body, carry, xs, length=length)
    n_chunks = length // remat_chunk
    xs_c = jax.tree.map(lambda a: a.reshape(n_chunks, remat_chunk, *a.shape[1:]), xs)

    @jax.checkpoint
    def chunk(c, x_chunk):
        return jax.lax.scan(body, c, x_chunk, length=remat_chunk)

    carry, ys = jax.lax.scan(chunk, carry, xs_c, length=n_chunks)
    ys = jax.tree.map(lambda a: a.reshape(length, *a.shape[2:]), ys)
    return carry, ys


def scan_layer(
    neuron: Neuron,
    layer_params: dict,
    current,
    state,
    matmul: MatmulPolicy,
    *,
    mask=None,
    probe=None,
    record: bool = False,
    remat_chunk: int = 0,
    backward: str = "auto",
):
    """Run one layer over time on its feed-forward current ``(T, B, n)``, time-major.

    Returns ``(final_state, spikes (T, B, n), states)``: ``states`` is the neuron state of
    every step (each field ``(T, B, n)``) when ``record``, else None. ``mask`` (dropout,
    ``(T, B, n)``) scales the current; ``probe`` ``(T, B, n)`` is added to the potential.
    ``backward="auto"`` runs the hand-written adjoint (``tclif_jax.adjoint.layer``) unless
    a probe or a record is asked for; those, and ``"autodiff"``, differentiate the scan
    with JAX's autodiff.
    """
    if backward not in BACKWARDS:
        raise ValueError(f"backward={backward!r} is not valid; choose one of: {BACKWARDS}.")
    if mask is not None:
        current = current * mask
    if backward == "auto" and probe is None and not record:
        state, spikes = adjoint.layer(
            neuron,
            layer_params.get("neuron_params", {}),
            current,
            state,
            matmul,
            rec=layer_params.get("recurrent"),
            remat_chunk=remat_chunk,
        )
        return state, spikes, None

    def body(st, inp):
        cur_t, probe_t = inp
        st, s = layer_step(
            neuron, layer_params, st, cur_t, matmul, 0.0 if probe_t is None else probe_t
        )
        return st, (s, st if record else None)

    state, (spikes, states) = _scan(body, state, (current, probe), current.shape[0], remat_chunk)
    return state, spikes, states


# ----------------------------------------------------------------------------- the network


def dropout_masks(key, config: NetworkConfig, shape_tb) -> list[jax.Array | None]:
    """Inverted-dropout masks ``(T, B, n)`` per layer (None where off). Drawn outside the
    scan so that both strategies use identical masks for one key."""
    masks = []
    for i, n in enumerate(config.hidden):
        if key is None or config.dropout == 0.0:
            masks.append(None)
            continue
        keep = jax.random.bernoulli(
            jax.random.fold_in(key, i), 1.0 - config.dropout, (*shape_tb, n)
        )
        masks.append(keep.astype(jnp.float32) / (1.0 - config.dropout))
    return masks


def _uses_adjoint(config: NetworkConfig, probes, record: bool) -> bool:
    # The hand-written adjoints cover every neuron, dropout and remat; probes and records
    # need the per-step states, which only autodiff of the scan keeps.
    return config.backward == "auto" and not record and all(p is None for p in probes)


def _first_current(layer_params: dict, x, matmul: MatmulPolicy, mask):
    """The first layer's feed-forward current ``(T, B, n)`` for time-major ``x (T, B, F)``.

    The product runs on batch-major rows: ``models.apply`` hands ``x`` in as the transpose
    of a batch-major array, so the swap below cancels that one and the large ``(B*T, F)``
    operand is never copied, forward or backward (its weight gradient is then one 2-D
    product); only the ``(T, B, n)`` result and its adjoint are transposed.
    """
    current = jnp.swapaxes(feedforward(layer_params, jnp.swapaxes(x, 0, 1), matmul), 0, 1)
    return current if mask is None else current * mask


def run_network(
    config: NetworkConfig,
    params: dict,
    x,
    *,
    dropout_key=None,
    probes: Sequence[jax.Array | None] | None = None,
    record: bool = False,
):
    """Run the spiking layers and the readout on time-major input.

    Args:
      config: the network (neurons, recurrence, dropout, strategy, ...).
      params: the NNX-named parameter dict (module docstring).
      x: input currents ``(T, B, F)``, time-major, float.
      dropout_key: PRNG key; ``None`` means deterministic (evaluation).
      probes: optional per-layer ``(T, B, n)`` additive offsets to the membrane
        potential; the gradient with respect to them is dL/dU[t].
      record: also return every layer's state at every step.

    Returns:
      ``(logits (B, C), aux)`` with ``aux["firing_rates"]`` of shape ``(L,)`` (mean spikes
      per neuron per step) and, if ``record``, ``aux["states"]``: per layer a dict of
      every state field (``spike`` and each compartment) ``(T, B, n)``.
    """
    T, B, _ = x.shape
    matmul = MatmulPolicy.of(config)
    layers_p = [params["layers"][i] for i in range(len(config.hidden))]
    neurons = config.neurons
    probes = list(probes) if probes is not None else [None] * len(neurons)
    masks = dropout_masks(dropout_key, config, (T, B))
    strategy = resolve_strategy(config)
    states = [nrn.init_state((B,), n) for nrn, n in zip(neurons, config.hidden)]
    records: list[dict[str, Any]] = []

    if strategy == "layerwise":
        h, rates = x, []
        for i, (nrn, lp) in enumerate(zip(neurons, layers_p)):
            current = _first_current(lp, h, matmul, None) if i == 0 else feedforward(lp, h, matmul)
            _, h, st = scan_layer(
                nrn,
                lp,
                current,
                states[i],
                matmul,
                mask=masks[i],
                probe=probes[i],
                record=record,
                remat_chunk=config.remat_chunk,
                backward=config.backward,
            )
            rates.append(jnp.mean(h))
            records.append(st)
        spike_sum, last_spike = adjoint.time_sum(h), h[-1]
    elif strategy == "fused" and _uses_adjoint(config, probes, record):
        finals, spike_sum, counts = adjoint.network(
            neurons,
            [lp.get("neuron_params", {}) for lp in layers_p],
            [None] + [lp["dense"]["kernel"] for lp in layers_p[1:]],
            [None] + [lp["dense"]["bias"] for lp in layers_p[1:]],
            [lp.get("recurrent") for lp in layers_p],
            _first_current(layers_p[0], x, matmul, masks[0]),
            [None] + masks[1:],
            states,
            matmul,
            config.remat_chunk,
        )
        last_spike = finals[-1].spike
        rates = [counts[i] / (T * B * n) for i, n in enumerate(config.hidden)]
    elif strategy == "fused":

        def body(carry, inp):
            states, acc, counts = carry
            h, masks_t, probes_t = inp
            new_states, new_counts, outs = [], [], []
            for i, (nrn, lp) in enumerate(zip(neurons, layers_p)):
                cur = feedforward(lp, h, matmul)
                if masks_t[i] is not None:
                    cur = cur * masks_t[i]
                st, h = layer_step(
                    nrn, lp, states[i], cur, matmul, 0.0 if probes_t[i] is None else probes_t[i]
                )
                new_states.append(st)
                new_counts.append(counts[i] + jnp.sum(h))
                outs.append(st if record else None)
            return (new_states, acc + h, new_counts), outs

        counts0 = [jnp.zeros(()) for _ in neurons]
        acc0 = jnp.zeros((B, config.hidden[-1]), jnp.float32)
        (states, spike_sum, counts), records = _scan(
            body, (states, acc0, counts0), (x, masks, probes), T, config.remat_chunk
        )
        last_spike = states[-1].spike
        rates = [c / (T * B * n) for c, n in zip(counts, config.hidden)]
    else:
        raise ValueError(f"Unknown strategy {strategy!r}; valid: layerwise, fused, auto.")

    ro = params["readout"]
    if config.readout == "sum":
        logits = matmul(spike_sum, ro["kernel"]) + T * ro["bias"]
    elif config.readout == "mean":
        logits = matmul(spike_sum / T, ro["kernel"]) + ro["bias"]
    else:  # "last"; NetworkConfig validated the name
        logits = matmul(last_spike, ro["kernel"]) + ro["bias"]

    aux = {"firing_rates": jnp.stack(rates)}
    if record:
        aux["states"] = [st._asdict() for st in records]
    return logits, aux
