"""Import (and export) weights in the official PyTorch code's state_dict layout.

One key map, ``official_key_map``, pairs every official name with an NNX parameter path of
our model (``("layers", 0, "dense", "kernel")``) and the official shape; ``from_official``
and ``to_official`` only walk it. The official models are ``nn.Sequential`` stacks named
``features.<i>``, in two layouts (reference section 3):

* S/PS-MNIST: Linear, neuron, Linear, neuron, ..., readout (stride 2);
* GSC, SHD, SSC: Linear, Dropout, neuron, ... , readout (stride 3).

A recurrent neuron is wrapped: ``features.<k>.hid_weight.{weight,bias}`` and
``features.<k>.sub_module.decay_factor``; otherwise ``features.<k>.decay_factor``.
PyTorch Linear weights are ``(out, in)``; our kernels are ``(in, out)``. ``decay_factor``
``(1, 2)`` holds TC-LIF's (c1, c2).

Example::

    sd = {k: v.numpy() for k, v in torch.load("ckpt.pth").items()}
    model = from_official(from_preset("smnist-ff-64"), sd)
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

from tclif_jax.models import SpikingNetwork, parameters

__all__ = ["official_key_map", "from_official", "to_official"]


def _stride(keys) -> int:
    # In the stride-2 layout features.2 is a Linear (it has a weight); in the
    # stride-3 layout it is the first neuron.
    return 2 if "features.2.weight" in keys else 3


def official_key_map(model: SpikingNetwork, stride: int) -> dict[str, tuple[tuple, tuple]]:
    """``{official key: (official shape, NNX path)}`` for ``model`` in layout ``stride``."""
    layout = {}
    for i, layer in enumerate(model.layers):
        if set(layer.neuron_params) != {"c"}:  # the official layout holds TC-LIF's c only
            raise ValueError(
                "from_official/to_official support TC-LIF models only; layer "
                f"{i} has {type(layer.neuron).__name__}."
            )
        lin, neu = stride * i, stride * i + stride - 1
        n_in, n = layer.in_features, layer.out_features
        layout[f"features.{lin}.weight"] = ((n, n_in), ("layers", i, "dense", "kernel"))
        layout[f"features.{lin}.bias"] = ((n,), ("layers", i, "dense", "bias"))
        c_shape = (n, 2) if layer.neuron_params["c"][...].ndim == 2 else (1, 2)
        c_path = ("layers", i, "neuron_params", "c")
        if layer.is_recurrent:
            rec = f"features.{neu}.hid_weight"
            layout[f"{rec}.weight"] = ((n, n), ("layers", i, "recurrent", "kernel"))
            layout[f"{rec}.bias"] = ((n,), ("layers", i, "recurrent", "bias"))
            layout[f"features.{neu}.sub_module.decay_factor"] = (c_shape, c_path)
        else:
            layout[f"features.{neu}.decay_factor"] = (c_shape, c_path)
    ro = stride * len(model.layers)
    h, c = model.hidden[-1], model.num_classes
    layout[f"features.{ro}.weight"] = ((c, h), ("readout", "kernel"))
    layout[f"features.{ro}.bias"] = ((c,), ("readout", "bias"))
    return layout


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def _set(tree, path, value):
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def from_official(model: SpikingNetwork, state_dict: Mapping[str, object]) -> SpikingNetwork:
    """Load an official state_dict (names -> arrays) into ``model`` in place and return it.

    Raises a ValueError listing every missing, unexpected or mis-shaped key; nothing is
    written unless all keys match.
    """
    sd = {k: np.asarray(v) for k, v in state_dict.items()}
    layout = official_key_map(model, _stride(sd))
    missing = sorted(set(layout) - set(sd))
    unexpected = sorted(set(sd) - set(layout))
    misshaped = sorted(
        f"{k}: expected {layout[k][0]}, got {sd[k].shape}"
        for k in set(layout) & set(sd)
        if tuple(sd[k].shape) != layout[k][0]
    )
    if missing or unexpected or misshaped:
        raise ValueError(
            "The state_dict does not fit this model.\n"
            f"  missing keys: {missing or 'none'}\n  unexpected keys: {unexpected or 'none'}\n"
            f"  shape mismatches: {misshaped or 'none'}\n"
            "Check that the preset (ff/rec, width) and per_neuron match the checkpoint."
        )
    params = parameters(model)
    for key, (_, path) in layout.items():
        value = sd[key].astype(np.float32)
        if path[-1] == "kernel":
            value = value.T
        _set(params, path, jnp.asarray(value.reshape(np.shape(_get(params, path)))))
    nnx.update(model, params)
    return model


def to_official(model: SpikingNetwork, stride: int = 2) -> dict[str, np.ndarray]:
    """Export ``model`` to the official names (stride 2: S-MNIST layout, 3: GSC/SHD/SSC)."""
    params = parameters(model)
    out = {}
    for key, (shape, path) in official_key_map(model, stride).items():
        value = np.asarray(_get(params, path))
        out[key] = (value.T if path[-1] == "kernel" else value).reshape(shape)
    return out
