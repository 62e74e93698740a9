"""Fields and helpers shared by every task config (not a config itself).

A task config's ``get_config(arg)`` takes a big_vision-style argument: ``"rec"`` or
``"variant=rec,schedule=paper"`` (``parse_arg``), and returns a ConfigDict with concrete
values, so ``config.json`` records exactly what ran. The ``model`` section's fields come
from ``tclif_jax.config.config_fields()`` (every ``NetworkConfig`` field and every neuron
setting); ``None`` there means "the preset's value".
"""

from __future__ import annotations

import math
from typing import Any

from ml_collections import config_dict

from tclif_jax import data as data_lib
from tclif_jax.config import config_fields
from tclif_jax.execution import Execution


def parse_arg(arg: str | None, **defaults: Any) -> config_dict.ConfigDict:
    """``"rec"`` or ``"variant=rec,schedule=paper"`` -> ConfigDict over ``defaults``.

    A bare first token sets ``variant``; values are parsed as the default's type. A key
    not in ``defaults`` is a ValueError listing the valid ones.
    """
    out = dict(defaults)
    for i, token in enumerate(t.strip() for t in (arg or "").split(",")):
        if not token:
            continue
        key, sep, value = token.partition("=")
        if not sep:
            if i or "variant" not in defaults:
                raise ValueError(
                    f"Config argument {token!r} needs key=value; valid keys: {', '.join(defaults)}."
                )
            key, value = "variant", token
        if key not in defaults:
            raise ValueError(f"Unknown config argument {key!r}; valid: {', '.join(defaults)}.")
        kind = type(defaults[key])
        if kind is bool:
            out[key] = value.lower() in ("1", "true", "yes")
        elif defaults[key] is None:
            out[key] = value
        else:
            out[key] = kind(value)
    return config_dict.ConfigDict(out)


def choose(name: str, value: str, valid) -> str:
    """``value`` if it is one of ``valid``, else a ValueError naming the valid ones."""
    if value not in valid:
        raise ValueError(f"Unknown {name} {value!r}; valid: {', '.join(valid)}.")
    return value


def model_config(preset: str, neuron: str = "tclif") -> config_dict.ConfigDict:
    """``config.model``: the preset (or ``"custom"``), the neuron type, and a placeholder
    (None = the preset's value) for every network field and neuron setting."""
    model = config_dict.ConfigDict()
    model.preset = preset
    model.neuron = neuron
    for name, kind in config_fields().items():
        model[name] = config_dict.placeholder(kind)
    return model


def schedule(
    batch_size,
    num_epochs,
    learning_rate,
    kind="multistep",
    decay_epochs=(),
    decay_every=0,
    decay_factor=0.1,
) -> dict[str, dict[str, Any]]:
    """One training schedule: the ``train`` and ``optimizer`` values it sets."""
    return {
        "train": {"batch_size": batch_size, "num_epochs": num_epochs},
        "optimizer": {
            "learning_rate": learning_rate,
            "schedule": kind,
            "decay_epochs": tuple(decay_epochs),
            "decay_every": decay_every,
            "decay_factor": decay_factor,
        },
    }


def paper_settings(model: config_dict.ConfigDict, **settings: Any) -> None:
    """Write the paper's neuron settings into a config's ``model`` section.

    ``init_b`` (the paper's (b1, b2)) also sets ``init_c = (logit(-b1), logit(b2))``:
    a preset's ``init_c`` (an official command's c) would otherwise win over it.
    """
    for name, value in settings.items():
        model[name] = value
    if "init_b" in settings:
        b1, b2 = settings["init_b"]
        model.init_c = (math.log(-b1 / (1 + b1)), math.log(b2 / (1 - b2)))


def base_config(
    task: str, preset: str, run_name: str, sched: dict, *, neuron: str = "tclif"
) -> config_dict.ConfigDict:
    """Every field a task has, with ``sched`` (from ``schedule``) filled in.

    ``run_name`` names the default work directory (``runs/<run_name>-<neuron>``).
    """
    config = config_dict.ConfigDict()
    config.task = task
    config.run_name = run_name
    config.seed = 0
    config.model = model_config(preset, neuron)

    # How the network runs (tclif_jax.execution.Execution); may change when a run resumes.
    config.execution = config_dict.ConfigDict(Execution().to_dict())

    config.data = data_lib.default_config(task)
    config.data.on_device = "auto"  # place whole splits on device when they fit

    config.train = config_dict.ConfigDict()
    config.train.batch_size = 0
    config.train.eval_batch_size = 0  # 0: same as batch_size
    config.train.num_epochs = 0
    config.train.max_steps = 0  # stop after this many steps (0: no limit); still evaluates
    config.train.checkpoint_every_steps = 0  # also checkpoint inside epochs (0: epoch ends only)
    config.train.keep_checkpoints = 3
    config.train.skip_nonfinite = False
    # Keep each epoch's last partial batch, as every official loader does (MNIST and GSC:
    # torch DataLoader without drop_last; SHD/SSC: SpikeIterator's ceil(N / batch) batches).
    config.train.drop_last = False
    config.train.progress = True

    config.optimizer = config_dict.ConfigDict()
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 0.0
    config.optimizer.schedule = "constant"  # multistep | step | constant
    config.optimizer.decay_epochs = ()
    config.optimizer.decay_every = 0
    config.optimizer.decay_factor = 1.0
    config.optimizer.b1 = 0.9
    config.optimizer.b2 = 0.999
    config.optimizer.eps = 1e-8
    config.optimizer.grad_clip = 0.0  # global-norm clip; 0 = off

    config.mesh = config_dict.ConfigDict()
    config.mesh.shard_params = False  # replicate params (False) or shard dim 0 over devices
    # Multi-process runs (experiments/main.py): num_processes > 1 or auto=True turns it on.
    config.distributed = config_dict.ConfigDict()
    config.distributed.coordinator_address = ""  # host:port of process 0
    config.distributed.num_processes = 1
    config.distributed.process_id = -1  # this process, 0..num_processes-1
    config.distributed.auto = False  # let JAX detect a Cloud TPU / SLURM cluster
    config.distributed.initialization_timeout = 300  # seconds to wait for every process
    for section, values in sched.items():
        for key, value in values.items():
            config[section][key] = value
    return config
