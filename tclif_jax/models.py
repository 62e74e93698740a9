"""Networks of the paper (Table 6) as Flax NNX modules, built from a ``NetworkConfig``.

Public inputs are batch-major ``(batch, time, features)`` real-valued currents (no spike
encoding); logits are ``(batch, classes)``. The parameters are the module's ``nnx.Param``
state: ``parameters(model)`` returns it as a pure dict (what optimizers, checkpoints and
``nnx.update`` use), ``model.params()`` as typed ``NetworkParams``
(``tclif_jax.params``), and ``apply(config, params, x, execution)`` is the pure forward
that jitted steps differentiate. The network is a ``NetworkConfig``; how it runs is an
``Execution`` (strategy, backward, remat, products), which the model holds as the default
for its calls.

Example::

    model = from_preset("smnist-ff-64", seed=0)           # 85,136 parameters
    logits = model(jnp.zeros((8, 784, 1)))                # (8, 10)
    lif = from_preset("smnist-ff-64", neuron="lif")       # same net, LIF neurons
    fast = from_preset("smnist-ff-64", strategy="fused")  # an execution setting
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tclif_jax.config import NetworkConfig
from tclif_jax.events import EventBatch, validate
from tclif_jax.execution import DEFAULT_EXECUTION, EXECUTION_FIELDS, Execution
from tclif_jax.layers import Readout, SpikingDense
from tclif_jax.network import run_network
from tclif_jax.params import NetworkParams, from_state

__all__ = [
    "SpikingNetwork",
    "from_preset",
    "from_config",
    "parameters",
    "count_params",
    "apply",
    "check_finite",
]


class SpikingNetwork(nnx.Module):
    """Stack of spiking layers (Linear + neuron, optionally recurrent) and a readout.

    ``config`` (a ``NetworkConfig``) says everything about the network; ``execution``
    how calls run it by default; ``layers`` is the ``nnx.List`` of ``SpikingDense``
    layers (each usable on its own), ``readout`` the ``Readout``.
    """

    def __init__(
        self, config: NetworkConfig, *, execution: Execution | None = None, rngs: nnx.Rngs
    ):
        self.config = config
        self.execution = execution or Execution()
        widths = (config.in_features,) + config.hidden
        self.layers = nnx.List(
            [
                SpikingDense(
                    widths[i],
                    widths[i + 1],
                    config.neurons[i],
                    recurrent=config.recurrent[i],
                    rngs=rngs,
                )
                for i in range(len(config.hidden))
            ]
        )
        self.readout = Readout(config.hidden[-1], config.num_classes, rngs=rngs)

    @property
    def in_features(self) -> int:
        return self.config.in_features

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.config.hidden

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def params(self) -> NetworkParams:
        """The typed parameters (``tclif_jax.params``)."""
        return from_state(parameters(self))

    def check_input(self, x) -> None:
        """Raise a ValueError naming the expected shape unless x is (batch, time, in_features)
        and, outside ``jit``, finite (an ``EventBatch``: well formed, ``events.validate``)."""
        shape = getattr(x, "shape", None)
        if shape is None or len(shape) != 3 or shape[-1] != self.in_features:
            raise ValueError(
                f"Expected input of shape (batch, time, {self.in_features}) (batch-major), "
                f"got {shape}. For one sequence use x[None]; S-MNIST pixels need a trailing "
                f"feature axis: x.reshape(batch, 784, 1)."
            )
        if isinstance(x, EventBatch):
            validate(x)
        else:
            check_finite(x)

    def __call__(
        self,
        x: jax.Array,
        *,
        dropout_key: jax.Array | None = None,
        probes: Sequence[jax.Array | None] | None = None,
        record: bool = False,
        return_aux: bool = False,
        execution: Execution | None = None,
    ):
        """Logits ``(B, C)`` for batch-major input ``(B, T, F)``: an array or an
        ``EventBatch`` (``tclif_jax.events``) with leading axes ``(B, T)``.

        With ``return_aux`` (or ``record``) returns ``(logits, aux)``: ``aux["firing_rates"]``
        ``(L,)`` and, if ``record``, ``aux["states"]`` (per layer a dict of every state field,
        batch-major ``(B, T, n)``) with the shortcuts ``aux["spikes"]`` and
        ``aux["potentials"]`` (the thresholded compartment), lists of ``(B, T, n)``.
        ``probes`` are batch-major ``(B, T, n)`` or None per layer. ``dropout_key=None``
        means no dropout (evaluation). ``execution`` overrides the model's own for this call.
        Non-finite input is a ValueError outside ``jit``.
        """
        self.check_input(x)
        logits, aux = apply(
            self.config,
            self.params(),
            x,
            execution or self.execution,
            dropout_key=dropout_key,
            probes=probes,
            record=record,
        )
        return (logits, aux) if (return_aux or record) else logits


def check_finite(x) -> None:
    """Raise a ValueError if concrete ``x`` holds NaN or inf (no-op on traced values)."""
    if isinstance(x, jax.core.Tracer):
        return
    a = np.asarray(x)
    if a.dtype.kind in "fc":
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        if bad:
            raise ValueError(
                f"The input holds {bad} non-finite value(s) (NaN or inf) of {a.size}; a NaN "
                "membrane never crosses the threshold, so the logits would look plausible. "
                "Clean the data (np.nan_to_num) or find where the NaN comes from."
            )


def parameters(model: nnx.Module) -> dict[str, Any]:
    """The model's ``nnx.Param`` state as a pure dict of arrays (NNX names)."""
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def apply(
    config: NetworkConfig,
    params: NetworkParams | dict[str, Any],
    x: jax.Array,
    execution: Execution = DEFAULT_EXECUTION,
    *,
    dropout_key=None,
    probes=None,
    record: bool = False,
):
    """Pure forward pass on batch-major ``x (B, T, F)``: returns ``(logits (B, C), aux)``.

    ``x`` is a real array or an ``EventBatch`` of spike events with leading axes
    ``(B, T)`` (``tclif_jax.events``); both give the same logits and gradients.

    This is what ``SpikingNetwork.__call__`` runs and what jitted train steps
    differentiate. ``params`` is ``NetworkParams`` or the model's state dict
    (``parameters(model)``, mapped by ``tclif_jax.params.from_state``); records and probes
    are batch-major ``(B, T, n)``.
    """
    if not isinstance(params, NetworkParams):
        params = from_state(params)
    if isinstance(x, EventBatch):
        x_tm = x.time_major()
    else:
        x_tm = jnp.swapaxes(jnp.asarray(x, jnp.float32), 0, 1)
    if probes is not None:
        probes = [None if p is None else jnp.swapaxes(p, 0, 1) for p in probes]
    logits, aux = run_network(
        config, params, x_tm, execution, dropout_key=dropout_key, probes=probes, record=record
    )
    if record:
        states = [{k: jnp.swapaxes(v, 0, 1) for k, v in st.items()} for st in aux["states"]]
        aux["states"] = states
        aux["spikes"] = [st["spike"] for st in states]
        aux["potentials"] = [st[n.threshold_compartment] for st, n in zip(states, config.neurons)]
    return logits, aux


def count_params(model: nnx.Module) -> int:
    """Number of trainable scalars (every ``nnx.Param``) in a model."""
    return int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


def from_config(
    config: NetworkConfig, seed: int = 0, execution: Execution | None = None
) -> SpikingNetwork:
    """The network ``config`` describes, with PyTorch-default init from ``seed``."""
    return SpikingNetwork(config, execution=execution, rngs=nnx.Rngs(params=seed))


def from_preset(name: str, seed: int = 0, neuron: str = "tclif", **overrides) -> SpikingNetwork:
    """Build a network of the paper's Table 6 by name (``PRESETS``), PyTorch-default init.

    ``neuron`` swaps the neuron type (``"tclif"``, ``"lif"``, ``"plif"``, ``"alif"``, ...);
    ``overrides`` may set any ``NetworkConfig`` field or neuron setting (``gamma``,
    ``v_th``, ``init_b``, ``surrogate``, ``hidden``, ...) and any ``Execution`` field
    (``strategy``, ``remat_chunk``, ...: the model's default execution). An unknown name,
    or a setting the neuron does not have, raises a ValueError listing the valid ones.
    """
    execution = Execution.from_dict(
        {k: overrides.pop(k) for k in list(overrides) if k in EXECUTION_FIELDS}
    )
    return from_config(NetworkConfig.from_preset(name, neuron=neuron, **overrides), seed, execution)
