"""Import (and export) weights in the official PyTorch code's state_dict layout.

The official models are ``nn.Sequential`` stacks named ``features.<i>``. Two
layouts occur (reference section 3):

* S/PS-MNIST: Linear, neuron, Linear, neuron, ..., readout (stride 2);
* GSC, SHD, SSC: Linear, Dropout, neuron, ... , readout (stride 3).

A recurrent neuron is wrapped: ``features.<k>.hid_weight.{weight,bias}`` and
``features.<k>.sub_module.decay_factor``; otherwise ``features.<k>.decay_factor``.
PyTorch Linear weights are ``(out, in)``; ours are ``(in, out)``. ``decay_factor``
``(1, 2)`` holds TC-LIF's (c1, c2).

Example::

    sd = {k: v.numpy() for k, v in torch.load("ckpt.pth").items()}
    model = from_preset("smnist-ff-64")
    from_official(model, sd)
"""

from __future__ import annotations

from typing import Mapping

import jax.numpy as jnp
import numpy as np

from tclif_jax.models import SpikingNetwork
from tclif_jax.neurons import TCLIF

__all__ = ["official_layout", "from_official", "to_official"]


def _stride(keys) -> int:
    # In the stride-2 layout features.2 is a Linear (it has a weight); in the
    # stride-3 layout it is the first neuron.
    return 2 if "features.2.weight" in keys else 3


def official_layout(model: SpikingNetwork, stride: int) -> dict[str, tuple[tuple[int, ...], tuple]]:
    """Map official key -> (official shape, where it goes in ``model``)."""
    layout = {}
    for i, layer in enumerate(model.layers):
        if not isinstance(layer.neuron, TCLIF):
            raise ValueError("from_official/to_official support TC-LIF models only; layer "
                             f"{i} has {type(layer.neuron).__name__}.")
        lin, neu = stride * i, stride * i + stride - 1
        n_in, n = layer.in_features, layer.out_features
        layout[f"features.{lin}.weight"] = ((n, n_in), (i, "dense", "kernel"))
        layout[f"features.{lin}.bias"] = ((n,), (i, "dense", "bias"))
        c_shape = (n, 2) if layer.neuron.per_neuron else (1, 2)
        if layer.recurrent is not None:
            layout[f"features.{neu}.hid_weight.weight"] = ((n, n), (i, "recurrent", "kernel"))
            layout[f"features.{neu}.hid_weight.bias"] = ((n,), (i, "recurrent", "bias"))
            layout[f"features.{neu}.sub_module.decay_factor"] = (c_shape, (i, "neuron", "c"))
        else:
            layout[f"features.{neu}.decay_factor"] = (c_shape, (i, "neuron", "c"))
    ro = stride * len(model.layers)
    h, c = model.hidden[-1], model.num_classes
    layout[f"features.{ro}.weight"] = ((c, h), (None, "readout", "kernel"))
    layout[f"features.{ro}.bias"] = ((c,), (None, "readout", "bias"))
    return layout


def _variable(model, where):
    i, part, name = where
    if i is None:
        return model.readout.linear.bias if name == "bias" else model.readout.linear.kernel
    layer = model.layers[i]
    if part == "neuron":
        return layer.neuron_params[name]
    return getattr(getattr(layer, part), name)


def from_official(model: SpikingNetwork, state_dict: Mapping[str, object]) -> SpikingNetwork:
    """Load an official state_dict (names -> arrays) into ``model`` in place and return it.

    Raises a ValueError listing every missing, unexpected or mis-shaped key;
    nothing is written unless all keys match.
    """
    sd = {k: np.asarray(v) for k, v in state_dict.items()}
    layout = official_layout(model, _stride(sd))
    missing = sorted(set(layout) - set(sd))
    unexpected = sorted(set(sd) - set(layout))
    misshaped = sorted(f"{k}: expected {layout[k][0]}, got {sd[k].shape}"
                       for k in set(layout) & set(sd) if tuple(sd[k].shape) != layout[k][0])
    if missing or unexpected or misshaped:
        raise ValueError(
            "The state_dict does not fit this model.\n"
            f"  missing keys: {missing or 'none'}\n  unexpected keys: {unexpected or 'none'}\n"
            f"  shape mismatches: {misshaped or 'none'}\n"
            "Check that the preset (ff/rec, width) and per_neuron match the checkpoint.")
    for key, (_, where) in layout.items():
        value = sd[key].astype(np.float32)
        if where[2] == "kernel":
            value = value.T
        elif where[2] == "c":
            value = value.reshape(_variable(model, where)[...].shape)
        _variable(model, where)[...] = jnp.asarray(value)
    return model


def to_official(model: SpikingNetwork, stride: int = 2) -> dict[str, np.ndarray]:
    """Export ``model`` to the official names (stride 2: S-MNIST layout, 3: GSC/SHD/SSC)."""
    out = {}
    for key, (shape, where) in official_layout(model, stride).items():
        value = np.asarray(_variable(model, where)[...])
        out[key] = (value.T if where[2] == "kernel" else value).reshape(shape)
    return out
