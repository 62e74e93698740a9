"""The network scan: pure functions that run spiking layers over time on NNX-named params.

Array layout inside this module is *time-major*: ``(T, B, features)``. The public model
API (``tclif_jax.models``) is batch-major and transposes once. Parameters are the model's
``nnx.Param`` state as a pure dict (``tclif_jax.models.parameters``)::

    {"layers": {i: {"dense": {"kernel" (in, n), "bias" (n,)},
                    "recurrent": {"kernel" (n, n), "bias" (n,)},     # recurrent layers only
                    "neuron_params": {...}}},                         # e.g. TC-LIF's c
     "readout": {"kernel" (H, C), "bias" (C,)}}

Two execution strategies compute the same function (tested to 1e-5, loss and gradients):

* ``"layerwise"``: one ``lax.scan`` per layer. The feed-forward projection of a layer is
  hoisted out of the scan as one ``(T*B, in) @ (in, n)`` matmul; the recurrent matmul is
  the only one left inside the time loop.
* ``"fused"``: one scan over time that steps every layer. For stacks of neurons whose
  ``wavefront`` property holds (TC-LIF, official reset order) and no probes, records,
  dropout or remat, it runs the hand-differentiated kernel of ``tclif_jax.wavefront``
  unless ``backward="autodiff"``; anything else runs the autodiff scan that steps the
  layers in turn.
* ``"auto"``: a per-backend choice (``AUTO_STRATEGY``): ``fused`` on CPU, the faster in
  every ``benchmarks/RESULTS.md`` table; ``layerwise`` on GPU/TPU, not yet measured.

Both strategies step a layer with the same function, ``layer_step``. Both reduce the last
layer's spikes to their sum over time, so the readout is a single matmul after the loop:
``sum_t (s_t W + b) = (sum_t s_t) W + T b``.

``matmul_dtype="bfloat16"``: matmul operands in bf16 with f32 accumulation (spikes are
exact in bf16); neuron state, residuals, gradients and master weights stay f32.
``matmul_precision`` sets the precision of every f32 product. ``remat_chunk > 0``: the
scan runs over chunks of that many steps with ``jax.checkpoint`` on each chunk
(activation memory ~ T / chunk + chunk steps).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from tclif_jax import wavefront
from tclif_jax.config import MATMUL_DTYPES, NetworkConfig
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
# every benchmarks/RESULTS.md table. GPU/TPU: not measured yet (no device was lent);
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

    def __call__(self, x, w):
        """``x @ w`` under this policy (the result is always f32)."""
        if MATMUL_DTYPES[self.dtype] == jnp.float32:
            return jnp.matmul(x, w, precision=self.lax_precision)
        return _lowp_matmul(x, w)


@jax.custom_vjp
def _lowp_matmul(x, w):
    """``x @ w`` with bf16 operands and an f32 result, differentiable with the same policy.

    Its backward saves the operands as given (f32) and casts again, instead of letting
    autodiff save the bf16 copies: inside a scan those are per-step residuals, and XLA:CPU
    updates a stacked bf16 buffer out of place (a full copy per step). The gradients are
    computed with bf16 operands and f32 accumulation and returned in the operands' dtypes.
    """
    return jnp.matmul(
        x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), preferred_element_type=jnp.float32
    )


def _lowp_matmul_fwd(x, w):
    return _lowp_matmul(x, w), (x, w)


def _lowp_matmul_bwd(res, g):
    x, w = res
    gq = g.astype(jnp.bfloat16)
    dx = jnp.matmul(gq, w.astype(jnp.bfloat16).T, preferred_element_type=jnp.float32)
    x2 = x.reshape(-1, x.shape[-1]).astype(jnp.bfloat16)
    dw = jnp.matmul(x2.T, gq.reshape(-1, gq.shape[-1]), preferred_element_type=jnp.float32)
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
    rec = layer_params.get("recurrent")
    if rec is not None:
        current = current + matmul(state.spike, rec["kernel"]) + rec["bias"]
    return neuron.step(layer_params.get("neuron_params", {}), state, current, probe)


def _scan(body, carry, xs, length: int, remat_chunk: int):
    """``lax.scan``, or with ``remat_chunk > 0`` a scan over chunks whose inner scan is
    rematerialised (``jax.checkpoint``): activation memory ~ T/chunk + chunk steps."""
    if not remat_chunk or remat_chunk >= length:
        return jax.lax.scan(body, carry, xs, length=length)
    if length % remat_chunk:
        divisors = [d for d in range(1, length + 1) if length % d == 0 and d <= 4096]
        raise ValueError(
            f"remat_chunk={remat_chunk} must divide the sequence length T={length}; "
            f"valid chunks include {divisors[-8:]}."
        )
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
):
    """Run one layer over time on its feed-forward current ``(T, B, n)``, time-major.

    Returns ``(final_state, spikes (T, B, n), states)``: ``states`` is the neuron state of
    every step (each field ``(T, B, n)``) when ``record``, else None. ``mask`` (dropout,
    ``(T, B, n)``) scales the current; ``probe`` ``(T, B, n)`` is added to the potential.
    """
    if mask is not None:
        current = current * mask

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


def _uses_wavefront(config: NetworkConfig, masks, probes, record: bool) -> bool:
    neurons = config.neurons
    return (
        config.backward == "auto"
        and not config.remat_chunk
        and not record
        and all(p is None for p in probes)
        and all(m is None for m in masks)
        and all(n.wavefront for n in neurons)
        and len({n.surrogate for n in neurons}) == 1
        and len({n.detach_reset for n in neurons}) == 1
    )


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
            _, h, st = scan_layer(
                nrn,
                lp,
                feedforward(lp, h, matmul),
                states[i],
                matmul,
                mask=masks[i],
                probe=probes[i],
                record=record,
                remat_chunk=config.remat_chunk,
            )
            rates.append(jnp.mean(h))
            records.append(st)
        spike_sum, last_spike = jnp.sum(h, axis=0), h[-1]
    elif strategy == "fused" and _uses_wavefront(config, masks, probes, record):
        spike_sum, last_spike, rates = wavefront.run(config, layers_p, x, matmul)
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
