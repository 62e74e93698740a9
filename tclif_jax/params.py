"""Typed parameters: what the forward, the adjoints, the analyses and the converters read.

A model's trainable values live in its ``nnx.Param`` state (``models.parameters(model)``,
a pure dict keyed by the attribute names of ``layers.SpikingDense`` and
``models.SpikingNetwork``). Exactly one function, ``from_state``, maps that state to the
types below; nothing else in the library reads a module attribute by a string key.
``to_state`` writes typed values back into a state of the same model, derived from
``from_state`` itself (so the two cannot disagree).

Shapes: ``Dense.kernel (in, out)``, ``Dense.bias (out,)``; ``LayerParams.neuron`` holds
the neuron's own trainable values by the neuron's names (TC-LIF: ``c`` of shape ``(2,)``
or ``(n, 2)``; LIF: none). All are pytrees (NamedTuples), so ``jax.grad`` of a function
of ``NetworkParams`` returns ``NetworkParams``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax

__all__ = ["Dense", "LayerParams", "NetworkParams", "from_state", "to_state"]


class Dense(NamedTuple):
    """An affine map ``x @ kernel + bias``: kernel ``(in, out)``, bias ``(out,)``."""

    kernel: jax.Array
    bias: jax.Array


class LayerParams(NamedTuple):
    """One spiking layer: feed-forward ``dense``, optional ``recurrent`` (on the layer's
    own S[t-1]; None for a feed-forward layer) and the neuron's parameters."""

    dense: Dense | None
    recurrent: Dense | None
    neuron: Mapping[str, jax.Array]


class NetworkParams(NamedTuple):
    """A stack of spiking layers and the readout ``Dense (H, classes)``."""

    layers: tuple[LayerParams, ...]
    readout: Dense


def from_state(state: Mapping[str, Any]) -> NetworkParams | LayerParams:
    """The typed parameters of an ``nnx.Param`` state given as a pure dict.

    ``state`` is a network's (``models.parameters(model)``) or one layer's
    (``nnx.to_pure_dict(nnx.state(layer, nnx.Param))``); returns ``NetworkParams`` or
    ``LayerParams``. Only restructures (no array is copied), so it runs inside ``jit``.
    """

    def layer(s):
        rec = s.get("recurrent")
        return LayerParams(
            Dense(**s["dense"]),
            None if rec is None else Dense(**rec),
            {k: s["neuron_params"][k] for k in sorted(s.get("neuron_params", {}))},
        )

    if "layers" not in state:
        return layer(state)
    layers = state["layers"]
    return NetworkParams(tuple(layer(layers[i]) for i in sorted(layers)), Dense(**state["readout"]))


class _Path:
    """A leaf that remembers where it sits in a state dict (opaque to ``jax.tree``)."""

    def __init__(self, keys):
        self.keys = keys


def to_state(params: NetworkParams | LayerParams, like: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the state dict ``like`` holding ``params``'s arrays: the inverse of
    ``from_state`` (``from_state(to_state(p, s)) == p``). A ValueError if ``params`` does
    not have ``like``'s structure (another architecture or neuron)."""
    where = from_state(
        jax.tree_util.tree_map_with_path(
            lambda path, _: _Path(tuple(getattr(k, "key", getattr(k, "idx", None)) for k in path)),
            like,
        )
    )
    if jax.tree.structure(where) != jax.tree.structure(params):
        raise ValueError(
            "The parameters do not fit this model: expected the structure "
            f"{jax.tree.structure(where)}, got {jax.tree.structure(params)}. Build the model "
            "from the same NetworkConfig."
        )
    out = _copy(like)
    for path, value in zip(jax.tree.leaves(where), jax.tree.leaves(params)):
        node = out
        for key in path.keys[:-1]:
            node = node[key]
        node[path.keys[-1]] = value
    return out


def _copy(tree):
    if isinstance(tree, Mapping):
        return {k: _copy(v) for k, v in tree.items()}
    return tree
