"""One time step: of a layer's input, of a layer, and of every layer of a network.

These are the loop bodies. The autodiff scans (``tclif_jax.network``) and the
hand-written adjoint loops (``tclif_jax.adjoint``) both run them, so the forward each
strategy computes is written once. Dropout masks are made here too, once for every
caller. Arrays are ``(B, n)`` per step; masks ``(..., n)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from tclif_jax.execution import MatmulPolicy
from tclif_jax.params import Dense, LayerParams

__all__ = [
    "feedforward",
    "spike_feedforward",
    "layer_input",
    "layer_step",
    "network_step",
    "dropout_mask",
]


def feedforward(dense: Dense, x, matmul: MatmulPolicy):
    """The feed-forward current ``x @ kernel + bias`` for ``x (..., in)``."""
    return matmul(x, dense.kernel) + dense.bias


def spike_feedforward(dense: Dense, spikes, matmul: MatmulPolicy):
    """``spikes @ kernel + bias`` for a layer's spikes ``(..., in)``, mostly zeros: the
    product as ``matmul.spike_products`` says (``MatmulPolicy.spikes``)."""
    return matmul.spikes(spikes, dense.kernel) + dense.bias


def layer_input(matmul: MatmulPolicy, recurrent: Dense | None, state, current):
    """A layer's input at one step: its feed-forward ``current (B, n)`` plus, for a
    recurrent layer, ``S[t-1] @ W_rec + b_rec`` on the layer's own previous spikes."""
    if recurrent is None:
        return current
    return current + spike_feedforward(recurrent, state.spike, matmul)


def layer_step(neuron, layer: LayerParams, state, current, matmul: MatmulPolicy, probe=0.0):
    """One step of one spiking layer on its feed-forward ``current (B, n)``:
    ``(new_state, spike (B, n), input (B, n))``; ``input`` is what the neuron received
    (the current plus the recurrent term), which the adjoints store."""
    inp = layer_input(matmul, layer.recurrent, state, current)
    new_state, spike = neuron.step(layer.neuron, state, inp, probe)
    return new_state, spike, inp


def network_step(
    neurons: Sequence,
    layers: Sequence[LayerParams],
    states: Sequence,
    first,
    masks: Sequence,
    matmul: MatmulPolicy,
    probes: Sequence | None = None,
):
    """One step of every layer, bottom to top.

    ``first (B, n_0)`` is layer 0's feed-forward current (its product and mask applied
    outside the loop); layer l >= 1 gets ``S_{l-1} W_l + b_l``, times ``masks[l]``
    (``(B, n_l)`` or None). ``probes``: per layer None or an offset added to the
    potential. Returns ``(new_states, spikes, inputs)``, each a list over layers.
    """
    h, new_states, spikes, inputs = first, [], [], []
    for l, (neuron, layer) in enumerate(zip(neurons, layers)):
        if l:
            h = spike_feedforward(layer.dense, h, matmul)
            if masks[l] is not None:
                h = h * masks[l]
        probe = 0.0 if probes is None or probes[l] is None else probes[l]
        state, h, inp = layer_step(neuron, layer, states[l], h, matmul, probe)
        new_states.append(state)
        spikes.append(h)
        inputs.append(inp)
    return new_states, spikes, inputs


def dropout_mask(key, rate: float, shape) -> jax.Array | None:
    """An inverted-dropout mask of ``shape`` (keep with probability ``1 - rate``, scaled
    by ``1 / (1 - rate)``); None when ``key`` is None or ``rate`` is 0 (no dropout)."""
    if key is None or not rate:
        return None
    keep = jax.random.bernoulli(key, 1.0 - rate, shape)
    return keep.astype(jnp.float32) / (1.0 - rate)
