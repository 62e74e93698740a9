"""Published models: trained parameters in a portable file, and one call to load them.

A published model is two files side by side:

* ``<name>.safetensors``: every parameter, keyed by its NNX path joined with ``/``
  (``layers/0/dense/kernel``; ``param_key``), float32, kernels ``(in, out)``. Readable
  from PyTorch, JAX or numpy; its header also holds the ``NetworkConfig``.
* ``<name>.json``, the card: ``network_config`` (``NetworkConfig.to_dict()``), the
  recorded test result (``correct`` of ``total`` examples, ``accuracy``), ``data``,
  ``epoch``, ``command``, ``date`` and the versions that measured it.

``load("smnist-ff-64")`` reads a model shipped in ``tclif_jax/weights/``; ``load(path)``
reads any pair (``path`` with or without the extension). ``experiments/publish.py``
writes them from a training run. Example::

    model = load("smnist-ff-64")              # a SpikingNetwork
    card("smnist-ff-64")["accuracy"]          # the recorded test accuracy
    logits = model(x)                         # x (B, 784, 1) pixels / 255 -> (B, 10)
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tclif_jax.config import NetworkConfig
from tclif_jax.models import SpikingNetwork, from_config, parameters

__all__ = [
    "WEIGHTS_DIR",
    "available",
    "card",
    "count_correct",
    "load",
    "param_key",
    "save",
]

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
FORMAT = 1  # the card's layout version


def param_key(path) -> str:
    """A parameter's path in a pytree (``jax.tree_util`` keys, ints or strings) as one
    safetensors key, ``"layers/0/dense/kernel"``."""
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _flat(params) -> dict[str, Any]:
    return {param_key(p): v for p, v in jax.tree_util.tree_leaves_with_path(params)}


def available() -> list[str]:
    """Names of the models shipped in ``WEIGHTS_DIR``."""
    if not os.path.isdir(WEIGHTS_DIR):
        return []
    return sorted(
        f[: -len(".safetensors")] for f in os.listdir(WEIGHTS_DIR) if f.endswith(".safetensors")
    )


def _paths(name_or_path: str) -> tuple[str, str]:
    """``(weights, card)`` paths of a shipped name or a path (extension optional)."""
    base = str(name_or_path)
    for ext in (".safetensors", ".json"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    if os.sep not in base and not os.path.exists(base + ".safetensors"):
        base = os.path.join(WEIGHTS_DIR, base)
    return base + ".safetensors", base + ".json"


def _config_from_dict(d: dict) -> NetworkConfig:
    # Keys the current NetworkConfig lacks are execution settings of an older version
    # (they never change the parameters); everything that builds the network is required.
    fields = {f.name for f in dataclasses.fields(NetworkConfig)}
    return NetworkConfig(**{k: v for k, v in d.items() if k in fields})


def _config_json(config: NetworkConfig) -> str:
    return json.dumps(config.to_dict(), sort_keys=True, default=str)


def save(
    model: SpikingNetwork,
    path: str,
    *,
    correct: int,
    total: int,
    **metadata: Any,
) -> tuple[str, str]:
    """Write ``model``'s parameters to ``<path>.safetensors`` and its card to ``<path>.json``.

    ``correct`` of ``total`` test examples is the recorded result (``accuracy`` =
    correct / total); ``metadata`` (JSON values: ``data``, ``epoch``, ``command``, ...)
    goes into the card as is; ``date`` defaults to today (UTC). Returns both paths.
    """
    from safetensors.numpy import save_file

    if not isinstance(model.config.neuron, str):
        raise ValueError(
            "save: model.config.neuron must be a registered neuron name (a network built "
            "from a NetworkConfig); per-layer built neurons cannot be written to a card."
        )
    if not 0 <= correct <= total or total <= 0:
        raise ValueError(f"save: correct={correct} must lie in 0..total ({total}), total > 0.")
    weights, card_path = _paths(path if os.sep in str(path) else os.path.join(".", path))
    os.makedirs(os.path.dirname(os.path.abspath(weights)), exist_ok=True)
    tensors = {k: np.ascontiguousarray(np.asarray(v)) for k, v in _flat(parameters(model)).items()}
    config_json = _config_json(model.config)
    save_file(tensors, weights, metadata={"network_config": config_json, "format": str(FORMAT)})
    os.chmod(weights, 0o644)  # safetensors writes 0o600; the file is package data
    with open(weights, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    info = {
        "name": os.path.basename(weights)[: -len(".safetensors")],
        "format": FORMAT,
        "network_config": json.loads(config_json),
        "parameters": int(sum(v.size for v in tensors.values())),
        "correct": int(correct),
        "total": int(total),
        "accuracy": correct / total,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        **metadata,
        "sha256": digest,
    }
    with open(card_path, "w") as f:
        json.dump(info, f, indent=1, default=str)
        f.write("\n")
    return weights, card_path


def card(name_or_path: str) -> dict[str, Any]:
    """The card (JSON sidecar) of a published model."""
    weights, path = _paths(name_or_path)
    if not os.path.exists(path):
        raise FileNotFoundError(_missing(name_or_path, path))
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"The model card {path} cannot be read ({err}); restore it from the repository "
            "or publish the model again (experiments/publish.py)."
        ) from None


def _missing(name_or_path, path: str) -> str:
    return (
        f"No published model {str(name_or_path)!r}: {path} does not exist. Shipped models: "
        f"{', '.join(available()) or 'none'}; or pass the path of a .safetensors file."
    )


def load(name_or_path: str) -> SpikingNetwork:
    """The ``SpikingNetwork`` of a published model, its parameters restored exactly.

    ``name_or_path``: a shipped name (``available()``, e.g. ``"smnist-ff-64"``) or the
    path of a ``.safetensors`` file with its ``.json`` card beside it. A missing file is
    a FileNotFoundError; a damaged file, or weights that do not fit the card's network
    (a missing, extra or misshapen parameter, or another config in the weights' header),
    a ValueError saying which.
    """
    from safetensors import SafetensorError, safe_open

    weights, card_path = _paths(name_or_path)
    if not os.path.exists(weights):
        raise FileNotFoundError(_missing(name_or_path, weights))
    info = card(name_or_path)
    try:
        with safe_open(weights, framework="numpy") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(
            f"The weights file {weights} is damaged ({err}); restore it from the repository "
            "or publish the model again (experiments/publish.py)."
        ) from None
    stored = header.get("network_config")
    if stored is None or json.loads(stored) != info.get("network_config"):
        raise ValueError(
            f"The network in {weights}'s header differs from its card {card_path}: the two "
            "files belong to different models. Use the pair that publish.py wrote together."
        )
    model = from_config(_config_from_dict(info["network_config"]))
    want = _flat(parameters(model))
    problems = sorted(set(want) ^ set(tensors))
    problems += [
        f"{k}: {tensors[k].shape} {tensors[k].dtype}, the network needs {v.shape} {v.dtype}"
        for k, v in want.items()
        if k in tensors and (tensors[k].shape != v.shape or tensors[k].dtype != v.dtype)
    ]
    if problems:
        raise ValueError(
            f"The weights in {weights} do not fit the network of {card_path} "
            f"(missing, extra or misshapen: {'; '.join(problems[:6])}). Use the pair that "
            "publish.py wrote together."
        )
    restored = jax.tree_util.tree_map_with_path(
        lambda p, _: jnp.asarray(tensors[param_key(p)]), parameters(model)
    )
    nnx.update(model, restored)
    return model


def count_correct(
    model: SpikingNetwork,
    inputs,
    labels,
    *,
    input_scale: float = 1.0,
    batch_size: int = 256,
) -> int:
    """How many of ``inputs`` (N, T, F) the model classifies as ``labels`` (N,).

    One jitted forward per batch of ``batch_size`` (inputs ``astype(float32) *
    input_scale``); the last batch is padded with copies of the last example (one compiled
    shape) and the padding is not counted. Deterministic on one platform: the number a
    card records is what this returns there.
    """
    graphdef, state = nnx.split(model)

    @jax.jit
    def predict(state, x):
        x = x.astype(jnp.float32) * input_scale
        return jnp.argmax(nnx.merge(graphdef, state)(x), -1)

    n, correct = len(labels), 0
    for start in range(0, n, batch_size):
        idx = np.minimum(np.arange(start, start + batch_size), n - 1)
        pred = np.asarray(predict(state, jnp.asarray(np.asarray(inputs[idx]))))
        keep = np.arange(start, start + batch_size) < n
        correct += int(np.sum((pred == np.asarray(labels)[idx]) & keep))
    return correct
