"""Import (and export) weights in the official PyTorch code's state_dict layout.

One function, ``official_arrays``, pairs every official name with its array in typed
parameters (``tclif_jax.params.NetworkParams``); ``to_official`` applies it to a model,
``from_official`` inverts it, and tests apply it to gradients. The official models are
``nn.Sequential`` stacks named ``features.<i>``, in two layouts (reference section 3):

* S/PS-MNIST: Linear, neuron, Linear, neuron, ..., readout (stride 2);
* GSC, SHD, SSC: Linear, Dropout, neuron, ... , readout (stride 3).

A recurrent neuron is wrapped: ``features.<k>.hid_weight.{weight,bias}`` and
``features.<k>.sub_module.decay_factor``; otherwise ``features.<k>.decay_factor``.
PyTorch Linear weights are ``(out, in)``; our kernels are ``(in, out)``. ``decay_factor``
``(1, 2)`` (or ``(n, 2)`` per neuron) holds TC-LIF's (c1, c2). Only TC-LIF networks have
an official layout; the neuron type is read from its registered name.

Example::

    sd = {k: v.numpy() for k, v in torch.load("ckpt.pth").items()}
    model = from_official(from_preset("smnist-ff-64"), sd)
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

from tclif_jax.config import NetworkConfig
from tclif_jax.models import SpikingNetwork, parameters
from tclif_jax.params import Dense, LayerParams, NetworkParams, to_state

__all__ = ["official_arrays", "official_shapes", "from_official", "to_official"]


def _stride(keys) -> int:
    # In the stride-2 layout features.2 is a Linear (it has a weight); in the
    # stride-3 layout it is the first neuron.
    return 2 if "features.2.weight" in keys else 3


def _check_tclif(config: NetworkConfig) -> None:
    for i, neuron in enumerate(config.neurons):
        if neuron.name != "tclif":
            raise ValueError(
                "The official state_dict layout holds TC-LIF networks only; layer "
                f"{i} is {neuron.name!r}. Save other neurons with tclif_jax.pretrained or "
                "orbax instead."
            )


def official_arrays(config: NetworkConfig, params: NetworkParams, stride: int = 2) -> dict:
    """``{official key: array in the official shape}`` for ``params`` of ``config``'s
    network in layout ``stride`` (2: S-MNIST, 3: GSC/SHD/SSC). Also maps gradients."""
    _check_tclif(config)

    def linear(prefix, dense: Dense):
        return {f"{prefix}.weight": np.asarray(dense.kernel).T, f"{prefix}.bias": dense.bias}

    out = {}
    for i, lp in enumerate(params.layers):
        lin, neu = stride * i, stride * i + stride - 1
        out.update(linear(f"features.{lin}", lp.dense))
        c = np.asarray(lp.neuron["c"]).reshape(-1, 2)
        if lp.recurrent is not None:
            out.update(linear(f"features.{neu}.hid_weight", lp.recurrent))
            out[f"features.{neu}.sub_module.decay_factor"] = c
        else:
            out[f"features.{neu}.decay_factor"] = c
    out.update(linear(f"features.{stride * len(params.layers)}", params.readout))
    return {k: np.asarray(v) for k, v in out.items()}


def official_shapes(model: SpikingNetwork, stride: int) -> dict[str, tuple[int, ...]]:
    """``{official key: shape}`` of ``model`` in layout ``stride``."""
    return {k: v.shape for k, v in official_arrays(model.config, model.params(), stride).items()}


def from_official(model: SpikingNetwork, state_dict: Mapping[str, object]) -> SpikingNetwork:
    """Load an official state_dict (names -> arrays) into ``model`` in place and return it.

    Raises a ValueError listing every missing, unexpected or mis-shaped key; nothing is
    written unless all keys match.
    """
    sd = {k: np.asarray(v) for k, v in state_dict.items()}
    stride = _stride(sd)
    layout = official_shapes(model, stride)
    missing = sorted(set(layout) - set(sd))
    unexpected = sorted(set(sd) - set(layout))
    misshaped = sorted(
        f"{k}: expected {layout[k]}, got {sd[k].shape}"
        for k in set(layout) & set(sd)
        if tuple(sd[k].shape) != layout[k]
    )
    if missing or unexpected or misshaped:
        raise ValueError(
            "The state_dict does not fit this model.\n"
            f"  missing keys: {missing or 'none'}\n  unexpected keys: {unexpected or 'none'}\n"
            f"  shape mismatches: {misshaped or 'none'}\n"
            "Check that the preset (ff/rec, width) and per_neuron match the checkpoint."
        )

    def dense(prefix):
        w, b = sd[f"{prefix}.weight"], sd[f"{prefix}.bias"]
        return Dense(jnp.asarray(w.T, jnp.float32), jnp.asarray(b, jnp.float32))

    old, layers = model.params(), []
    for i, lp in enumerate(old.layers):
        lin, neu = stride * i, stride * i + stride - 1
        rec = None if lp.recurrent is None else dense(f"features.{neu}.hid_weight")
        c_key = f"features.{neu}." + ("sub_module." if rec is not None else "") + "decay_factor"
        c = jnp.asarray(sd[c_key], jnp.float32).reshape(lp.neuron["c"].shape)
        layers.append(LayerParams(dense(f"features.{lin}"), rec, {"c": c}))
    new = NetworkParams(tuple(layers), dense(f"features.{stride * len(layers)}"))
    nnx.update(model, to_state(new, parameters(model)))
    return model


def to_official(model: SpikingNetwork, stride: int = 2) -> dict[str, np.ndarray]:
    """Export ``model`` to the official names (stride 2: S-MNIST layout, 3: GSC/SHD/SSC)."""
    return official_arrays(model.config, model.params(), stride)
