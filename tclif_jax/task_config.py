"""What a task config names, checked and built: the network, its execution, the optimizer.

A task config (``experiments/configs/<task>.py``) is an ``ml_collections.ConfigDict``
with sections ``model`` (a preset and overrides), ``execution`` (``Execution`` fields),
``data``, ``train`` and ``optimizer``. ``validate_config`` checks every field before any
work and raises ``ConfigError`` naming the first bad one, its value and what is valid;
the builders below trust a validated config.
"""

from __future__ import annotations

import math

import jax
import ml_collections
import numpy as np
import optax

from tclif_jax import data as data_lib
from tclif_jax.config import PRESETS, NetworkConfig
from tclif_jax.execution import Execution
from tclif_jax.models import SpikingNetwork, from_config

__all__ = [
    "ConfigError",
    "SCHEDULES",
    "validate_config",
    "network_config",
    "execution",
    "build_model",
    "check_optimizer",
    "make_optimizer",
    "train_size",
]

SCHEDULES = ("multistep", "step", "constant")


class ConfigError(ValueError):
    """A config field holds a value that cannot run; the message names field, value, fix."""


def network_config(
    config: ml_collections.ConfigDict, in_features: int, num_classes: int
) -> NetworkConfig:
    """The ``NetworkConfig`` that ``config.model`` names: a preset (or ``"custom"`` with
    ``hidden``) with every non-None field of ``config.model`` as an override."""
    mc = config.model
    overrides = {k: v for k, v in mc.items() if k not in ("preset", "neuron") and v is not None}
    if mc.preset == "custom":
        if not overrides.get("hidden"):
            raise ConfigError("model.preset='custom' needs model.hidden, e.g. (64, 64).")
        base = NetworkConfig(in_features, overrides.pop("hidden"), num_classes)
        return base.replace(neuron=mc.neuron, neuron_settings={}, **overrides)
    net = NetworkConfig.from_preset(mc.preset, neuron=mc.neuron, **overrides)
    if net.in_features != in_features or net.num_classes != num_classes:
        raise ConfigError(
            f"Preset {mc.preset!r} expects {net.in_features} input features and "
            f"{net.num_classes} classes, but the {config.task} data has {in_features} and "
            f"{num_classes}. Pick the task's preset or use model.preset='custom'."
        )
    return net


def execution(config: ml_collections.ConfigDict) -> Execution:
    """The ``Execution`` of ``config.execution`` (defaults where the section is absent)."""
    section = config.get("execution")
    return Execution.from_dict(section.to_dict() if section is not None else None)


def build_model(
    config: ml_collections.ConfigDict, in_features: int, num_classes: int
) -> SpikingNetwork:
    """The network named by ``config.model``, initialised from ``config.seed``, running
    under ``config.execution``."""
    net = network_config(config, in_features, num_classes)
    return from_config(net, seed=config.seed, execution=execution(config))


def _bad(field: str, value, valid: str) -> ConfigError:
    return ConfigError(f"config field {field}={value!r} is not valid: {valid}.")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_optimizer(opt: ml_collections.ConfigDict) -> None:
    """Every ``optimizer.*`` field; a ``ConfigError`` naming the first bad one."""
    if opt.name != "adam":
        raise _bad("optimizer.name", opt.name, "adam")
    if not _finite(opt.learning_rate) or opt.learning_rate <= 0:
        raise _bad("optimizer.learning_rate", opt.learning_rate, "a finite number > 0")
    if opt.schedule not in SCHEDULES:
        raise _bad("optimizer.schedule", opt.schedule, f"{', '.join(SCHEDULES[:-1])} or constant")
    if opt.schedule == "step" and (not _is_int(opt.decay_every) or opt.decay_every < 1):
        raise _bad("optimizer.decay_every", opt.decay_every, "an integer >= 1 with schedule=step")
    if any(not _is_int(e) or e < 0 for e in opt.decay_epochs):
        raise _bad("optimizer.decay_epochs", tuple(opt.decay_epochs), "epochs (integers >= 0)")
    if not _finite(opt.decay_factor) or opt.decay_factor <= 0:
        raise _bad("optimizer.decay_factor", opt.decay_factor, "a finite number > 0")
    for name in ("b1", "b2"):
        if not _finite(opt[name]) or not 0 <= opt[name] < 1:
            raise _bad(f"optimizer.{name}", opt[name], "a number in [0, 1)")
    if not _finite(opt.eps) or opt.eps <= 0:
        raise _bad("optimizer.eps", opt.eps, "a finite number > 0")
    if not _finite(opt.grad_clip) or opt.grad_clip < 0:
        raise _bad("optimizer.grad_clip", opt.grad_clip, "a finite number >= 0 (0 = off)")


def make_optimizer(opt: ml_collections.ConfigDict, steps_per_epoch: int, num_epochs: int):
    """Adam with a step-wise learning-rate schedule and optional global-norm clipping.

    ``opt.schedule``: ``"multistep"`` (x ``decay_factor`` at each epoch in
    ``decay_epochs``), ``"step"`` (x ``decay_factor`` every ``decay_every`` epochs) or
    ``"constant"``. Returns ``(tx, schedule_fn)``; the schedule is per step.
    """
    check_optimizer(opt)
    epochs = {
        "multistep": list(opt.decay_epochs),
        "step": list(range(opt.decay_every or 1, num_epochs, opt.decay_every or 1)),
        "constant": [],
    }[opt.schedule]
    boundaries = {int(e * steps_per_epoch): float(opt.decay_factor) for e in epochs}
    schedule = optax.piecewise_constant_schedule(float(opt.learning_rate), boundaries)
    parts = [optax.clip_by_global_norm(opt.grad_clip)] if opt.grad_clip else []
    tx = optax.chain(*parts, optax.adam(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps))
    return tx, schedule


def train_size(task: str, data) -> tuple[int, str] | None:
    """``(n, field)``: at most how many training examples the ``data`` section gives, known
    without loading it, and the field that sets that number (``data.num_train`` for the
    generated delayed-cue task, else ``data.train_limit``); None when only the data knows."""
    limit = int(data.get("train_limit") or 0)
    if task == "delayed_cue":
        n, field = int(data["num_train"]), "data.num_train"
        return (limit, "data.train_limit") if 0 < limit < n else (n, field)
    return (limit, "data.train_limit") if limit else None


def _check_finite(config: ml_collections.ConfigDict) -> None:
    # A NaN neuron setting would run and give NaN membranes, no spikes and plausible logits.
    def walk(node, prefix):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, (ml_collections.ConfigDict, dict)):
                walk(value, name + ".")
                continue
            values = value if isinstance(value, (list, tuple)) else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise _bad(name, value, "a finite number")

    walk(config, "")


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Check every field before any work; raise ``ConfigError`` naming the first bad one."""
    if config.task not in data_lib.DATASETS:
        raise _bad("task", config.task, f"one of {', '.join(data_lib.DATASETS)}")
    _check_finite(config)
    if not _is_int(config.seed) or config.seed < 0:
        raise _bad("seed", config.seed, "an integer >= 0")
    n_dev = jax.device_count()
    tc = config.train
    hints = {
        "keep_checkpoints": " (at least 1: resuming needs a checkpoint)",
        "max_steps": " (0 = no limit)",
        "eval_batch_size": " (0 = batch_size)",
        "checkpoint_every_steps": " (0 = at epoch ends only)",
    }
    for name, low in (
        ("batch_size", 1),
        ("num_epochs", 1),
        ("keep_checkpoints", 1),
        ("eval_batch_size", 0),
        ("max_steps", 0),
        ("checkpoint_every_steps", 0),
    ):
        value = tc[name]
        if not _is_int(value) or value < low:
            raise _bad(f"train.{name}", value, f"an integer >= {low}{hints.get(name, '')}")
    for name in ("batch_size", "eval_batch_size"):
        if tc[name] % n_dev:
            fix = max(n_dev, tc[name] - tc[name] % n_dev)
            raise _bad(
                f"train.{name}",
                tc[name],
                f"a multiple of the {n_dev} devices (data-parallel), e.g. {fix}",
            )
    if not isinstance(tc.get("drop_last", False), bool):
        raise _bad("train.drop_last", tc.drop_last, "True or False")
    check_optimizer(config.optimizer)
    try:  # every data.* field, without loading any data
        data_lib.check_config(config.task, config.data)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"config field data.*: {err}") from None
    try:
        execution(config)
    except ValueError as err:
        raise ConfigError(f"config field execution.*: {err}") from None
    if config.model.preset != "custom" and config.model.preset not in PRESETS:
        raise _bad("model.preset", config.model.preset, f"custom or one of {', '.join(PRESETS)}")
    try:  # the network fields, against the preset's sizes (the data's come later)
        preset = PRESETS.get(config.model.preset)
        network_config(
            config, preset.in_features if preset else 1, preset.num_classes if preset else 1
        )
    except ValueError as err:
        raise ConfigError(f"config field model.*: {err}") from None
