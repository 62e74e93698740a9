"""Flax NNX modules: spiking layers that hold parameters and call the pure scan.

``SpikingDense`` is a stateful layer in the contract of spyx 1.0 (``spyx.nn.run``,
``spyx.nn.Sequential``): ``initial_state(batch_size)`` and ``__call__(x_t, state) ->
(spikes, new_state)`` for one step on ``(batch, in)``, so it can be scanned by hand, put in
any NNX model, or run under spyx. ``scan`` runs it over a batch-major sequence
``(B, T, in)``. ``Readout`` is the paper's per-step Linear readout. Both use PyTorch's
default Linear init, so runs compare with the official code.

Example (a user-built model; docs/getting-started.md shows a trained one)::

    layer = SpikingDense(40, 128, "tclif", v_th=1.2, rngs=nnx.Rngs(0))
    state = layer.initial_state(batch_size=8)
    for t in range(T):
        spikes, state = layer(x[:, t], state)        # (8, 128)
    spikes, record = layer.scan(x, record=True)      # (8, T, 128); record["dendrite"], ...
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from tclif_jax.execution import DEFAULT_EXECUTION, Execution
from tclif_jax.network import scan_layer
from tclif_jax.neurons import Neuron, make_neuron
from tclif_jax.params import LayerParams, from_state
from tclif_jax.steps import dropout_mask, feedforward, layer_step

__all__ = ["torch_uniform_init", "torch_linear", "SpikingDense", "Readout"]


def torch_uniform_init(fan_in: int):
    """PyTorch's default nn.Linear init for weight and bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def torch_linear(in_features: int, out_features: int, *, rngs: nnx.Rngs) -> nnx.Linear:
    """``nnx.Linear`` with PyTorch's default init; kernel is ``(in, out)``."""
    init = torch_uniform_init(in_features)
    return nnx.Linear(in_features, out_features, kernel_init=init, bias_init=init, rngs=rngs)


class SpikingDense(nnx.Module):
    """Linear(in, n) + neuron, optionally recurrent (Linear(n, n) on its own S[t-1]).

    Args:
      in_features, out_features: input and neuron counts.
      neuron: a ``NEURONS`` name (with ``**neuron_settings``) or a built ``Neuron``.
      recurrent: add Linear(n, n) on the layer's previous spikes.

    Parameters (NNX names, read through ``params()``): ``dense`` (kernel (in, n), bias
    (n,)), optional ``recurrent`` (kernel (n, n), bias (n,)) and ``neuron_params`` (e.g.
    TC-LIF's ``c``, (2,)). How it runs (``Execution``) and the dropout rate are given to
    each call: a layer inside a ``SpikingNetwork`` takes them from the network's config.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        neuron: str | Neuron = "tclif",
        *,
        recurrent: bool = False,
        rngs: nnx.Rngs,
        **neuron_settings,
    ):
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.neuron = make_neuron(neuron, **neuron_settings)
        self.dense = torch_linear(in_features, out_features, rngs=rngs)
        self.recurrent = torch_linear(out_features, out_features, rngs=rngs) if recurrent else None
        self.neuron_params = nnx.Dict(
            {k: nnx.Param(v) for k, v in self.neuron.init_params(out_features).items()}
        )

    @property
    def is_recurrent(self) -> bool:
        return self.recurrent is not None

    def params(self) -> LayerParams:
        """This layer's typed parameters."""
        return from_state(nnx.to_pure_dict(nnx.state(self, nnx.Param)))

    def initial_state(self, batch_size: int):
        """The neuron state before the first step: zeros, each field ``(batch_size, n)``."""
        return self.neuron.init_state((batch_size,), self.out_features)

    def __call__(
        self,
        x_t: jax.Array,
        state,
        *,
        execution: Execution = DEFAULT_EXECUTION,
        dropout: float = 0.0,
        dropout_key=None,
    ):
        """One step on ``x_t (B, in)``: returns ``(spikes (B, n), new_state)``. With a
        ``dropout_key``, inverted dropout at rate ``dropout`` on the feed-forward current."""
        p, matmul = self.params(), execution.matmul
        current = feedforward(p.dense, x_t, matmul)
        mask = dropout_mask(dropout_key, dropout, current.shape)
        current = current if mask is None else current * mask
        new_state, spikes, _ = layer_step(self.neuron, p, state, current, matmul)
        return spikes, new_state

    def scan(
        self,
        x: jax.Array,
        state=None,
        *,
        record: bool = False,
        execution: Execution = DEFAULT_EXECUTION,
        dropout: float = 0.0,
        dropout_key=None,
    ):
        """Run over a batch-major sequence ``x (B, T, in)``.

        Returns spikes ``(B, T, n)``, or with ``record`` ``(spikes, states)``, ``states`` a
        dict of every state field (each compartment, and ``spike``) ``(B, T, n)``.
        ``state`` defaults to ``initial_state``.
        """
        p, matmul = self.params(), execution.matmul
        x_tm = jnp.swapaxes(jnp.asarray(x, jnp.float32), 0, 1)
        if state is None:
            state = self.initial_state(x.shape[0])
        current = feedforward(p.dense, x_tm, matmul)
        mask = dropout_mask(dropout_key, dropout, current.shape)
        current = current if mask is None else current * mask
        _, spikes, states = scan_layer(self.neuron, p, current, state, execution, record=record)
        spikes = jnp.swapaxes(spikes, 0, 1)
        if not record:
            return spikes
        return spikes, {k: jnp.swapaxes(v, 0, 1) for k, v in states._asdict().items()}


class Readout(nnx.Linear):
    """Linear(H, classes) applied at every step, with PyTorch's init. How the per-step
    logits are pooled over time is the network's ``NetworkConfig.readout``."""

    def __init__(self, in_features: int, num_classes: int, *, rngs: nnx.Rngs):
        init = torch_uniform_init(in_features)
        super().__init__(in_features, num_classes, kernel_init=init, bias_init=init, rngs=rngs)
