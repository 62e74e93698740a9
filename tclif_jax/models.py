"""Networks of the paper (Table 6) as Flax NNX modules, built from named presets.

Public inputs are batch-major ``(batch, time, features)`` real-valued currents
(no spike encoding); logits are ``(batch, classes)``.

Example::

    model = from_preset("smnist-ff-64", seed=0)           # 85,136 parameters
    logits = model(jnp.zeros((8, 784, 1)))                # (8, 10)
    lif = from_preset("smnist-ff-64", neuron="lif")       # same net, LIF neurons
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from tclif_jax.layers import (MATMUL_DTYPES, READOUTS, STRATEGIES, LayerSpec, NetworkSpec,
                              Readout, SpikingDense, run_network)
from tclif_jax.neurons import NEURONS, _Neuron, make_neuron

__all__ = ["SpikingNetwork", "PRESETS", "from_preset", "count_params", "apply", "NEURON_SETTINGS"]


class SpikingNetwork(nnx.Module):
    """Stack of spiking layers (Linear + neuron, optionally recurrent) and a readout.

    Args:
      in_features: input features per time step (1 for S-MNIST, 700 for SHD).
      hidden: widths of the spiking layers, e.g. ``(64, 256, 256)``.
      num_classes: readout size.
      neuron: a neuron spec for every layer, or one per layer.
      recurrent: per-layer flags (a recurrent layer adds Linear(n, n) on S[t-1]).
      dropout: rate on the feed-forward currents of every layer (training only).
      readout: ``"sum"`` (official: logits summed over steps), ``"mean"`` or ``"last"``.
      strategy: ``"layerwise"``, ``"fused"`` or ``"auto"`` (see ``tclif_jax.layers``).
      matmul_dtype: ``"float32"`` or ``"bfloat16"`` (bf16 operands, f32 accumulation;
        neuron state and master weights stay f32).
      remat_chunk: if > 0, rematerialise the scan in chunks of this many steps.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int,
                 neuron: _Neuron | Sequence[_Neuron], *, recurrent: Sequence[bool] = (),
                 dropout: float = 0.0, readout: str = "sum", strategy: str = "auto",
                 matmul_dtype: str = "float32", remat_chunk: int = 0, rngs: nnx.Rngs):
        hidden = tuple(int(h) for h in hidden)
        neurons = list(neuron) if isinstance(neuron, (list, tuple)) else [neuron] * len(hidden)
        recurrent = tuple(bool(r) for r in recurrent) + (False,) * (len(hidden) - len(recurrent))
        if len(neurons) != len(hidden) or len(recurrent) != len(hidden):
            raise ValueError(f"Need one neuron and one recurrent flag per layer ({len(hidden)}); "
                             f"got {len(neurons)} neurons and {len(recurrent)} flags.")
        for name, value, valid in (("readout", readout, READOUTS), ("strategy", strategy, STRATEGIES),
                                   ("matmul_dtype", matmul_dtype, tuple(MATMUL_DTYPES))):
            if value not in valid:
                raise ValueError(f"Unknown {name} {value!r}; valid: {', '.join(valid)}.")
        self.in_features, self.hidden, self.num_classes = in_features, hidden, num_classes
        self.strategy, self.matmul_dtype, self.remat_chunk = strategy, matmul_dtype, int(remat_chunk)
        widths = (in_features,) + hidden
        self.layers = nnx.List([
            SpikingDense(widths[i], widths[i + 1], neurons[i], recurrent=recurrent[i],
                         dropout=dropout, rngs=rngs)
            for i in range(len(hidden))
        ])
        self.readout = Readout(hidden[-1], num_classes, mode=readout, rngs=rngs)

    @property
    def spec(self) -> NetworkSpec:
        return NetworkSpec(tuple(layer.spec for layer in self.layers), self.readout.mode,
                           self.strategy, self.matmul_dtype, self.remat_chunk)

    def arrays(self) -> dict[str, Any]:
        """All parameters as the plain pytree ``run_network`` takes."""
        return {"layers": [layer.arrays() for layer in self.layers],
                "readout": self.readout.arrays()}

    def check_input(self, x) -> None:
        """Raise a ValueError naming the expected shape unless x is (batch, time, in_features)."""
        shape = getattr(x, "shape", None)
        if shape is None or len(shape) != 3 or shape[-1] != self.in_features:
            raise ValueError(
                f"Expected input of shape (batch, time, {self.in_features}) (batch-major), "
                f"got {shape}. For one sequence use x[None]; S-MNIST pixels need a trailing "
                f"feature axis: x.reshape(batch, 784, 1).")

    def __call__(self, x: jax.Array, *, dropout_key: jax.Array | None = None,
                 probes: Sequence[jax.Array | None] | None = None, record: bool = False,
                 return_aux: bool = False):
        """Logits ``(B, C)`` for batch-major input ``(B, T, F)``.

        Non-finite inputs are propagated, not checked: they are the caller's business.
        With ``return_aux`` (or ``record``) returns ``(logits, aux)``: ``aux["firing_rates"]``
        ``(L,)`` and, if ``record``, ``aux["spikes"]``/``aux["potentials"]``, lists of
        batch-major ``(B, T, n)``. ``probes`` are batch-major ``(B, T, n)`` or None per layer.
        ``dropout_key=None`` means no dropout (evaluation).
        """
        self.check_input(x)
        logits, aux = apply(self.spec, self.arrays(), x, dropout_key=dropout_key, probes=probes,
                            record=record)
        return (logits, aux) if (return_aux or record) else logits

    def set_arrays(self, params: dict[str, Any]) -> None:
        """Write a ``arrays()``-shaped pytree (e.g. trained parameters) back into the module."""
        for layer, lp in zip(self.layers, params["layers"]):
            layer.dense.kernel[...], layer.dense.bias[...] = lp["w_in"], lp["b_in"]
            if layer.recurrent is not None:
                layer.recurrent.kernel[...], layer.recurrent.bias[...] = lp["w_rec"], lp["b_rec"]
            for k, v in lp["neuron"].items():
                layer.neuron_params[k][...] = v
        self.readout.linear.kernel[...] = params["readout"]["w"]
        self.readout.linear.bias[...] = params["readout"]["b"]


def apply(spec: NetworkSpec, params: dict[str, Any], x: jax.Array, *, dropout_key=None,
          probes=None, record: bool = False):
    """Pure forward pass on batch-major ``x (B, T, F)``: returns ``(logits (B, C), aux)``.

    This is what ``SpikingNetwork.__call__`` runs and what jitted train steps call with
    the ``arrays()`` pytree; records and probes are batch-major ``(B, T, n)``.
    """
    x_tm = jnp.swapaxes(jnp.asarray(x, jnp.float32), 0, 1)
    if probes is not None:
        probes = [None if p is None else jnp.swapaxes(p, 0, 1) for p in probes]
    logits, aux = run_network(params, x_tm, spec, dropout_key=dropout_key, probes=probes,
                              record=record)
    if record:
        aux["spikes"] = [jnp.swapaxes(s, 0, 1) for s in aux["spikes"]]
        aux["potentials"] = [jnp.swapaxes(v, 0, 1) for v in aux["potentials"]]
    return logits, aux


def count_params(model: nnx.Module) -> int:
    """Number of trainable scalars (every ``nnx.Param``) in a model."""
    return int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


# ----------------------------------------------------------------------------- presets

# Paper Table 6 architectures with each task's neuron settings (reference sections 3-4).
_SMNIST_FF = dict(gamma=0.5, init_b=(-0.5, 0.5), v_th=1.0)
_SMNIST_REC = dict(gamma=0.5, init_b=(-0.8, 0.4), init_c=(1.5, -0.5), v_th=1.0)
_PSMNIST_FF = dict(gamma=0.7, init_b=(-0.5, 0.5), v_th=1.5)
_PSMNIST_REC = dict(gamma=0.5, init_b=(-0.2, 0.8), v_th=1.0)  # paper: v_th 1.8; code forces 1.0
_AUDIO = dict(gamma=0.5, init_b=(-0.5, 0.5), v_th=1.5)

PRESETS: dict[str, dict[str, Any]] = {
    "smnist-ff-64": dict(in_features=1, hidden=(64, 256, 256), num_classes=10, recurrent=(),
                         neuron_settings=_SMNIST_FF, time_steps=784, params=85_136),
    "smnist-rec-64": dict(in_features=1, hidden=(64, 256, 256), num_classes=10,
                          recurrent=(True, True), neuron_settings=_SMNIST_REC, time_steps=784,
                          params=155_088),
    "smnist-ff-40": dict(in_features=1, hidden=(40, 256, 128), num_classes=10, recurrent=(),
                         neuron_settings=_SMNIST_FF, time_steps=784, params=44_768),
    "smnist-rec-40": dict(in_features=1, hidden=(40, 200, 64), num_classes=10,
                          recurrent=(True, True), neuron_settings=_SMNIST_REC, time_steps=784,
                          params=63_640),
    "gsc-ff": dict(in_features=40, hidden=(300, 300), num_classes=12, recurrent=(), dropout=0.3,
                   neuron_settings=dict(gamma=0.6, init_b=(-0.5, 0.5), v_th=1.2), time_steps=101,
                   params=106_216),
    "gsc-rec": dict(in_features=40, hidden=(300, 300), num_classes=12, recurrent=(True,),
                    dropout=0.3, neuron_settings=dict(gamma=0.7, init_b=(-0.8, 0.8), v_th=1.25),
                    time_steps=101, params=196_516),
    "shd-ff": dict(in_features=700, hidden=(128, 128), num_classes=20, recurrent=(),
                   neuron_settings=_AUDIO, time_steps=250, params=108_824),
    "shd-rec": dict(in_features=700, hidden=(128, 128), num_classes=20, recurrent=(True, True),
                    neuron_settings=_AUDIO, time_steps=250, params=141_848),
    "ssc-ff": dict(in_features=700, hidden=(128, 128), num_classes=35, recurrent=(),
                   neuron_settings=_AUDIO, time_steps=250, params=110_759),
    "ssc-rec": dict(in_features=700, hidden=(128,), num_classes=35, recurrent=(True,),
                    neuron_settings=_AUDIO, time_steps=250, params=110_757),
}
# PS-MNIST uses the S-MNIST networks with its own neuron settings.
for _size in ("64", "40"):
    PRESETS[f"psmnist-ff-{_size}"] = {**PRESETS[f"smnist-ff-{_size}"], "neuron_settings": _PSMNIST_FF}
    PRESETS[f"psmnist-rec-{_size}"] = {**PRESETS[f"smnist-rec-{_size}"],
                                       "neuron_settings": _PSMNIST_REC}

NEURON_SETTINGS = sorted({f.name for cls in NEURONS.values() for f in dataclasses.fields(cls)
                          if f.init} | {"surrogate_width"})
_ARCH_OVERRIDES = ("hidden", "recurrent", "dropout", "readout", "strategy", "matmul_dtype",
                   "remat_chunk", "in_features", "num_classes")
# Preset neuron settings that carry over when another neuron type is swapped in.
_CARRY = {"tclif": None, "two_compartment": {"v_th", "init_b"}, "lif": {"v_th"},
          "plif": {"v_th"}, "alif": {"v_th"}}


def from_preset(name: str, seed: int = 0, neuron: str = "tclif", **overrides) -> SpikingNetwork:
    """Build a network of the paper's Table 6 by name, with PyTorch-default init from ``seed``.

    ``neuron`` swaps the neuron type (``"tclif"``, ``"lif"``, ``"plif"``, ``"alif"``,
    ``"two_compartment"``); ``overrides`` may set any neuron setting (``gamma``, ``v_th``,
    ``init_b``, ``surrogate``, ``reset_order``, ``per_neuron``, ...) or architecture field
    (``hidden``, ``recurrent``, ``dropout``, ``readout``, ``strategy``, ``matmul_dtype``,
    ``remat_chunk``). An unknown name or key raises a ValueError listing the valid ones.
    """
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; valid presets are: {', '.join(PRESETS)}.")
    if neuron not in NEURONS:
        raise ValueError(f"Unknown neuron {neuron!r}; valid names are: {', '.join(NEURONS)}.")
    preset = PRESETS[name]
    unknown = sorted(set(overrides) - set(NEURON_SETTINGS) - set(_ARCH_OVERRIDES))
    if unknown:
        raise ValueError(f"Unknown override(s) {unknown} for from_preset; valid keys: "
                         f"{', '.join(list(_ARCH_OVERRIDES) + NEURON_SETTINGS)}.")
    neuron_fields = {f.name for f in dataclasses.fields(NEURONS[neuron]) if f.init}
    user_settings = {k: v for k, v in overrides.items() if k in NEURON_SETTINGS}
    foreign = sorted(set(user_settings) - neuron_fields - {"surrogate_width"})
    if foreign:
        raise ValueError(f"Setting(s) {foreign} do not apply to neuron {neuron!r}; "
                         f"it accepts: {', '.join(sorted(neuron_fields))}.")
    carry = _CARRY[neuron]
    settings = {k: v for k, v in preset["neuron_settings"].items() if carry is None or k in carry}
    settings.update(user_settings)
    arch = {k: overrides.get(k, preset.get(k)) for k in _ARCH_OVERRIDES if k in overrides or k in preset}
    return SpikingNetwork(
        arch.pop("in_features"), arch.pop("hidden"), arch.pop("num_classes"),
        make_neuron(neuron, **settings), rngs=nnx.Rngs(params=seed), **arch)
