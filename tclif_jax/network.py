"""The forward: pure functions that run spiking layers over time on typed parameters.

Array layout inside this module is *time-major*: ``(T, B, features)``. The public model
API (``tclif_jax.models``) is batch-major and transposes once. Parameters are
``tclif_jax.params.NetworkParams``; the network is a ``NetworkConfig`` and how it runs an
``Execution`` (``tclif_jax.execution``).

Two strategies compute the same function (tested to 1e-5, loss and gradients):

* ``"layerwise"``: one time loop per layer. A layer's feed-forward projection is hoisted
  out of its loop as one ``(T*B, in) @ (in, n)`` product; only the recurrent product is
  left inside.
* ``"fused"``: one loop over time that steps every layer (``steps.network_step``); only
  the first layer's projection is hoisted.

``backward="auto"`` differentiates either loop with the hand-written adjoints of
``tclif_jax.adjoint`` (one ``custom_vjp`` around the loop storing only what the
adjoints read); ``"autodiff"`` differentiates the ``lax.scan`` with JAX's autodiff, the
reference the adjoints are tested against. Probes and records need the state of every
step, so they take the autodiff scan: under ``fused`` any probe or a record does; under
``layerwise`` each layer decides.

Both strategies step a layer with the same functions (``tclif_jax.steps``) and reduce the
last layer's spikes to their sum over time, so the readout is one product after the loop:
``sum_t (s_t W + b) = (sum_t s_t) W + T b``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from tclif_jax import adjoint
from tclif_jax.config import NetworkConfig
from tclif_jax.events import EventBatch, project
from tclif_jax.execution import DEFAULT_EXECUTION, Execution, MatmulPolicy
from tclif_jax.neurons import Neuron
from tclif_jax.params import LayerParams, NetworkParams
from tclif_jax.steps import (
    dropout_mask,
    feedforward,
    layer_step,
    network_step,
    spike_feedforward,
)

__all__ = ["scan_layer", "run_network", "dropout_masks"]


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
    params: LayerParams,
    current,
    state,
    execution: Execution = DEFAULT_EXECUTION,
    *,
    probe=None,
    record: bool = False,
):
    """Run one layer over time on its feed-forward current ``(T, B, n)``, time-major
    (dropout already applied).

    Returns ``(final_state, spikes (T, B, n), states)``: ``states`` is the neuron state of
    every step (each field ``(T, B, n)``) when ``record``, else None. ``probe (T, B, n)``
    is added to the potential. The hand-written adjoint runs unless ``execution.backward``
    is ``"autodiff"`` or a probe or a record is asked for.
    """
    matmul = execution.matmul
    if execution.backward == "auto" and probe is None and not record:
        state, spikes = adjoint.layer(neuron, params, current, state, matmul, execution.remat_chunk)
        return state, spikes, None

    def body(st, inp):
        cur_t, probe_t = inp
        st, s, _ = layer_step(
            neuron, params, st, cur_t, matmul, 0.0 if probe_t is None else probe_t
        )
        return st, (s, st if record else None)

    state, (spikes, states) = _scan(
        body, state, (current, probe), current.shape[0], execution.remat_chunk
    )
    return state, spikes, states


def dropout_masks(key, rate: float, shape_tb, widths) -> list[jax.Array | None]:
    """Per layer an inverted-dropout mask ``(*shape_tb, n)`` (None where off), drawn
    outside the loops so that both strategies use identical masks for one key."""
    return [
        dropout_mask(None if key is None else jax.random.fold_in(key, i), rate, (*shape_tb, n))
        for i, n in enumerate(widths)
    ]


def _first_current(dense, x, matmul: MatmulPolicy, mask):
    """The first layer's feed-forward current ``(T, B, n)`` for time-major ``x (T, B, F)``.

    The product runs on batch-major rows: ``models.apply`` hands ``x`` in as the transpose
    of a batch-major array, so the swap below cancels that one and the large ``(B*T, F)``
    operand is never copied, forward or backward; only the ``(T, B, n)`` result and its
    adjoint are transposed. Events (an ``EventBatch`` with leading axes ``(T, B)``) are
    projected by ``events.project`` in time-major order: the kernels read each (compact)
    event row once, so the events are transposed rather than the ``(T, B, n)`` result.
    """
    if isinstance(x, EventBatch):
        current = project(x, dense.kernel, matmul, dense.bias)
        return current if mask is None else current * mask
    current = jnp.swapaxes(feedforward(dense, jnp.swapaxes(x, 0, 1), matmul), 0, 1)
    return current if mask is None else current * mask


def _layerwise(neurons, layers, x, masks, probes, states, execution, record):
    h, rates, records = x, [], []
    for i, (nrn, lp) in enumerate(zip(neurons, layers)):
        if i == 0:
            current = _first_current(lp.dense, h, execution.matmul, masks[0])
        else:
            current = spike_feedforward(lp.dense, h, execution.matmul)
            current = current if masks[i] is None else current * masks[i]
        _, h, st = scan_layer(
            nrn, lp, current, states[i], execution, probe=probes[i], record=record
        )
        rates.append(jnp.mean(h))
        records.append(st)
    return adjoint.time_sum(h), h[-1], rates, records


def _fused(neurons, layers, x, masks, probes, states, execution, record):
    matmul = execution.matmul
    T, B = x.shape[:2]
    widths = [s.spike.shape[-1] for s in states]
    first = _first_current(layers[0].dense, x, matmul, masks[0])
    if execution.backward == "auto" and not record and all(p is None for p in probes):
        finals, spike_sum, counts = adjoint.network(
            neurons, layers, first, masks, states, matmul, execution.remat_chunk
        )
        rates = [counts[i] / (T * B * n) for i, n in enumerate(widths)]
        return spike_sum, finals[-1].spike, rates, []

    def body(carry, inp):
        states, acc, counts = carry
        first_t, masks_t, probes_t = inp
        states, spikes, _ = network_step(
            neurons, layers, states, first_t, masks_t, matmul, probes_t
        )
        counts = [c + jnp.sum(s) for c, s in zip(counts, spikes)]
        return (states, acc + spikes[-1], counts), (states if record else None)

    carry0 = (states, jnp.zeros((B, widths[-1]), jnp.float32), [jnp.zeros(()) for _ in neurons])
    (states, spike_sum, counts), records = _scan(
        body, carry0, (first, [None, *masks[1:]], probes), T, execution.remat_chunk
    )
    rates = [c / (T * B * n) for c, n in zip(counts, widths)]
    records = [] if records is None else records
    return spike_sum, states[-1].spike, rates, records


def run_network(
    config: NetworkConfig,
    params: NetworkParams,
    x,
    execution: Execution = DEFAULT_EXECUTION,
    *,
    dropout_key=None,
    probes: Sequence[jax.Array | None] | None = None,
    record: bool = False,
):
    """Run the spiking layers and the readout on time-major input.

    Args:
      config: the network (neurons, recurrence, dropout rate, readout).
      params: its ``NetworkParams``.
      x: input currents ``(T, B, F)``, time-major, float; or an ``EventBatch`` with
        leading axes ``(T, B)``.
      execution: how to run it (strategy, backward, remat, products).
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
    if T == 0:
        raise ValueError("The input has 0 time steps; a spiking network needs T >= 1.")
    neurons = config.neurons
    probes = list(probes) if probes is not None else [None] * len(neurons)
    masks = dropout_masks(dropout_key, config.dropout, (T, B), config.hidden)
    states = [nrn.init_state((B,), n) for nrn, n in zip(neurons, config.hidden)]
    run = _layerwise if execution.resolved_strategy() == "layerwise" else _fused
    spike_sum, last_spike, rates, records = run(
        neurons, params.layers, x, masks, probes, states, execution, record
    )

    ro, matmul = params.readout, execution.matmul
    if config.readout == "sum":
        logits = matmul(spike_sum, ro.kernel) + T * ro.bias
    elif config.readout == "mean":
        logits = matmul(spike_sum / T, ro.kernel) + ro.bias
    else:  # "last"; NetworkConfig validated the name
        logits = matmul(last_spike, ro.kernel) + ro.bias

    aux: dict[str, Any] = {"firing_rates": jnp.stack(rates)}
    if record:
        aux["states"] = [st._asdict() for st in records]
    return logits, aux
