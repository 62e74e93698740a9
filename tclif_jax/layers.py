"""Spiking layers: Flax NNX modules that hold parameters, and the pure scans they call.

Array layout inside this module is *time-major*: ``(T, B, features)``. The
public model API (``tclif_jax.models``) is batch-major and transposes once.

Two execution strategies compute the same function (tested to 1e-5):

* ``"layerwise"``: one ``lax.scan`` per layer. The feed-forward projection of a
  layer is hoisted out of the scan as one ``(T*B, in) @ (in, n)`` matmul; the
  recurrent matmul is the only one left inside the time loop.
* ``"fused"``: one ``lax.scan`` over time that steps every layer in turn; no
  ``(T, B, n)`` intermediate is materialised except the optional records.

Both reduce the last layer's spikes to their sum over time (the fused scan in
its carry), so the readout is a single matmul after the loop: ``sum_t (s_t W + b) = (sum_t s_t) W + T b``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from tclif_jax.neurons import _Neuron

__all__ = [
    "torch_uniform_init", "TorchLinear", "SpikingDense", "Readout",
    "LayerSpec", "NetworkSpec", "run_network", "STRATEGIES", "READOUTS",
]

STRATEGIES = ("auto", "layerwise", "fused")
READOUTS = ("sum", "mean", "last")
MATMUL_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def torch_uniform_init(fan_in: int):
    """PyTorch's default nn.Linear init for weight and bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def TorchLinear(in_features: int, out_features: int, *, rngs: nnx.Rngs) -> nnx.Linear:
    """``nnx.Linear`` with PyTorch's default init; kernel is ``(in, out)``."""
    init = torch_uniform_init(in_features)
    return nnx.Linear(in_features, out_features, kernel_init=init, bias_init=init, rngs=rngs)


class SpikingDense(nnx.Module):
    """Linear(in, n) + neuron, optionally recurrent (Linear(n, n) on its own S[t-1]).

    Parameters: ``dense`` (kernel (in, n), bias (n,)), optional ``recurrent``
    (kernel (n, n), bias (n,)), and ``neuron_params`` (e.g. TC-LIF's c, (2,)).
    """

    def __init__(self, in_features: int, out_features: int, neuron: _Neuron, *,
                 recurrent: bool = False, dropout: float = 0.0, rngs: nnx.Rngs):
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        self.in_features, self.out_features = in_features, out_features
        self.neuron = neuron
        self.dropout = dropout
        self.dense = TorchLinear(in_features, out_features, rngs=rngs)
        self.recurrent = TorchLinear(out_features, out_features, rngs=rngs) if recurrent else None
        self.neuron_params = nnx.Dict(
            {k: nnx.Param(v) for k, v in neuron.init_params(out_features).items()})

    @property
    def spec(self) -> "LayerSpec":
        return LayerSpec(self.neuron, self.recurrent is not None, self.dropout)

    def arrays(self) -> dict[str, Any]:
        """The layer's parameters as a plain pytree for ``run_network``."""
        p = {"w_in": self.dense.kernel[...], "b_in": self.dense.bias[...],
             "neuron": {k: v[...] for k, v in self.neuron_params.items()}}
        if self.recurrent is not None:
            p["w_rec"], p["b_rec"] = self.recurrent.kernel[...], self.recurrent.bias[...]
        return p


class Readout(nnx.Module):
    """Linear(H, classes) applied at every step; logits pooled over time by ``mode``."""

    def __init__(self, in_features: int, num_classes: int, *, mode: str = "sum", rngs: nnx.Rngs):
        if mode not in READOUTS:
            raise ValueError(f"Unknown readout {mode!r}; valid: {READOUTS}.")
        self.mode = mode
        self.linear = TorchLinear(in_features, num_classes, rngs=rngs)

    def arrays(self):
        return {"w": self.linear.kernel[...], "b": self.linear.bias[...]}


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    neuron: _Neuron
    recurrent: bool = False
    dropout: float = 0.0


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """Everything static about a network: hashable, so it can be a jit static arg."""

    layers: tuple[LayerSpec, ...]
    readout: str = "sum"
    strategy: str = "layerwise"
    matmul_dtype: str = "float32"
    remat_chunk: int = 0


# ----------------------------------------------------------------------------- pure core


def _matmul(x, w, dtype):
    # bf16 operands with f32 accumulation; spikes (0/1) are exact in bf16.
    if dtype == jnp.float32:
        return x @ w
    return jnp.matmul(x.astype(dtype), w.astype(dtype), preferred_element_type=jnp.float32)


def _scan(body, carry, xs, length: int, remat_chunk: int):
    """``lax.scan``, or with ``remat_chunk > 0`` a scan over chunks whose inner scan is
    rematerialised (``jax.checkpoint``): activation memory ~ T/chunk + chunk steps."""
    if not remat_chunk or remat_chunk >= length:
        return jax.lax.scan(body, carry, xs, length=length)
    if length % remat_chunk:
        divisors = [d for d in range(1, length + 1) if length % d == 0 and d <= 4096]
        raise ValueError(f"remat_chunk={remat_chunk} must divide the sequence length T={length}; "
                         f"valid chunks include {divisors[-8:]}.")
    n_chunks = length // remat_chunk
    xs_c = jax.tree.map(lambda a: a.reshape(n_chunks, remat_chunk, *a.shape[1:]), xs)

    @jax.checkpoint
    def chunk(c, x_chunk):
        return jax.lax.scan(body, c, x_chunk, length=remat_chunk)

    carry, ys = jax.lax.scan(chunk, carry, xs_c, length=n_chunks)
    ys = jax.tree.map(lambda a: a.reshape(length, *a.shape[2:]), ys)
    return carry, ys


def _neuron_input(lp, layer: LayerSpec, state, ff_current, mdt):
    if layer.recurrent:
        return ff_current + _matmul(state.spike, lp["w_rec"], mdt) + lp["b_rec"]
    return ff_current


def run_network(params: dict, x: jax.Array, spec: NetworkSpec, *, dropout_key=None,
                probes: Sequence[jax.Array | None] | None = None, record: bool = False):
    """Run a stack of spiking layers and the readout on time-major input.

    Args:
      params: ``{"layers": [layer arrays...], "readout": {"w", "b"}}``.
      x: input currents ``(T, B, F)``, time-major, float.
      spec: static description (neurons, recurrence, dropout, strategy, ...).
      dropout_key: PRNG key; ``None`` means deterministic (evaluation).
      probes: optional per-layer ``(T, B, n)`` additive offsets to the membrane
        potential; the gradient with respect to them is dL/dU[t].
      record: also return every layer's spikes and potentials, ``(T, B, n)``.

    Returns:
      ``(logits (B, C), aux)`` with ``aux["firing_rates"]`` of shape ``(L,)``
      (mean spikes per neuron per step) and, if ``record``, ``aux["spikes"]``
      and ``aux["potentials"]``, lists of ``(T, B, n)``.
    """
    T, B, _ = x.shape
    mdt = MATMUL_DTYPES[spec.matmul_dtype]
    layers_p = params["layers"]
    widths = [lp["w_in"].shape[1] for lp in layers_p]
    num_layers = len(spec.layers)
    probes = list(probes) if probes is not None else [None] * num_layers
    masks = _masks(dropout_key, spec, (T, B), widths)
    strategy = spec.strategy if spec.strategy != "auto" else "layerwise"
    states = [layer.neuron.init_state((B,), n) for layer, n in zip(spec.layers, widths)]

    if strategy == "layerwise":
        h = x
        rates, spikes_rec, pots_rec = [], [], []
        for i, (layer, lp) in enumerate(zip(spec.layers, layers_p)):
            current = _matmul(h, lp["w_in"], mdt) + lp["b_in"]
            if masks[i] is not None:
                current = current * masks[i]

            def body(state, inp, layer=layer, lp=lp):
                cur_t, probe_t = inp
                cur_t = _neuron_input(lp, layer, state, cur_t, mdt)
                state, s = layer.neuron.step(lp["neuron"], state, cur_t,
                                             0.0 if probe_t is None else probe_t)
                return state, (s, layer.neuron.potential(state) if record else None)

            _, (h, pots) = _scan(body, states[i], (current, probes[i]), T, spec.remat_chunk)
            rates.append(jnp.mean(h))
            spikes_rec.append(h)
            pots_rec.append(pots)
        spike_sum, last_spike = jnp.sum(h, axis=0), h[-1]
    elif strategy == "fused":
        def body(carry, inp):
            states, acc, counts = carry
            x_t, masks_t, probes_t = inp
            h = x_t
            new_states, new_counts, outs = [], [], []
            for i, (layer, lp) in enumerate(zip(spec.layers, layers_p)):
                cur = _matmul(h, lp["w_in"], mdt) + lp["b_in"]
                if masks_t[i] is not None:
                    cur = cur * masks_t[i]
                cur = _neuron_input(lp, layer, states[i], cur, mdt)
                st, h = layer.neuron.step(lp["neuron"], states[i], cur,
                                          0.0 if probes_t[i] is None else probes_t[i])
                new_states.append(st)
                new_counts.append(counts[i] + jnp.sum(h))
                outs.append((h, layer.neuron.potential(st)) if record else None)
            return (new_states, acc + h, new_counts), outs

        counts0 = [jnp.zeros(()) for _ in spec.layers]
        acc0 = jnp.zeros((B, widths[-1]), jnp.float32)
        (states, spike_sum, counts), outs = _scan(body, (states, acc0, counts0),
                                                  (x, masks, probes), T, spec.remat_chunk)
        last_spike = states[-1].spike
        rates = [c / (T * B * n) for c, n in zip(counts, widths)]
        if record:
            spikes_rec = [o[0] for o in outs]
            pots_rec = [o[1] for o in outs]
    else:
        raise ValueError(f"Unknown strategy {spec.strategy!r}; valid: {STRATEGIES}.")

    ro = params["readout"]
    if spec.readout == "sum":
        logits = _matmul(spike_sum, ro["w"], mdt) + T * ro["b"]
    elif spec.readout == "mean":
        logits = _matmul(spike_sum / T, ro["w"], mdt) + ro["b"]
    elif spec.readout == "last":
        logits = _matmul(last_spike, ro["w"], mdt) + ro["b"]
    else:
        raise ValueError(f"Unknown readout {spec.readout!r}; valid: {READOUTS}.")

    aux = {"firing_rates": jnp.stack(rates)}
    if record:
        aux["spikes"], aux["potentials"] = spikes_rec, pots_rec
    return logits, aux


def _masks(key, spec: NetworkSpec, shape_tb, widths):
    """Inverted-dropout masks ``(T, B, n)`` per layer (None where off). Drawn outside the
    scan so that both strategies use identical masks for one key."""
    masks = []
    for i, (layer, n) in enumerate(zip(spec.layers, widths)):
        if key is None or layer.dropout == 0.0:
            masks.append(None)
            continue
        keep = jax.random.bernoulli(jax.random.fold_in(key, i), 1.0 - layer.dropout,
                                    (*shape_tb, n))
        masks.append(keep.astype(jnp.float32) / (1.0 - layer.dropout))
    return masks
