"""Fields and helpers shared by the analysis configs (not a config itself).

An analysis config's ``get_config(arg)`` takes a big_vision-style argument
(``experiments.configs.base.parse_arg``), e.g. ``"size=cpu"`` or
``"size=smoke,task=digits,variant=rec"``, and returns a ConfigDict of concrete values:

* ``analysis``: the entry point it is for (``python -m experiments.analyses.<analysis>``).
* ``size``: ``smoke`` (seconds; the tests), ``cpu`` (minutes on a laptop; it produced the
  figures of docs/analysis.md) or ``paper`` (the task config's own schedule; a GPU).
  The size is chosen by the argument: its budget is written into ``task_config`` here,
  and ``size`` records it (it names run folders and guards ``docs``).
* ``outdir``: where the PNG, JSON and CSV go, ``runs/analyses/<name>``.
* ``docs``: write them to ``docs_dir`` (``docs/figures/<name>``, relative to the
  repository) instead, to regenerate the documented figures; refused at size smoke.
* ``rundir``: training runs, one folder per (task, variant, neuron, seed, size), shared
  by the analyses (``runs/analyses``).
* ``data_dir``: the dataset folder (e.g. the MNIST IDX files). Empty: for MNIST,
  ``$TCLIF_SHARED_DATA/mnist``, then ``../shared/data/mnist`` next to the repository,
  then ``tclif_jax.data``'s defaults.
* ``task_config``: the task's own config (``experiments/configs/<task>.py``) with the
  size's budget applied: the networks the analysis trains or builds. Override any of
  its fields with ``--config.task_config.<section>.<field>=...`` (an unknown field is an
  error naming it), e.g. ``--config.task_config.model.neuron=lif``.
"""

from __future__ import annotations

import importlib
from typing import Any

from ml_collections import config_dict

from experiments.configs.base import choose, parse_arg

SIZES = ("smoke", "cpu", "paper")

# Training budget per size; a key that is absent leaves the task config's value.
BUDGETS: dict[str, dict[str, Any]] = {
    "smoke": dict(
        batch_size=8, num_epochs=1, max_steps=2, train_limit=32, test_limit=16, progress=False
    ),
    "cpu": dict(
        batch_size=32,
        num_epochs=3,
        max_steps=0,
        train_limit=640,
        test_limit=256,
        learning_rate=1e-3,
        progress=False,
    ),
    "paper": dict(max_steps=0, train_limit=0, test_limit=0, progress=True),
}
# Where each budget key lives in a task config.
_BUDGET_FIELDS = {
    "batch_size": ("train", "batch_size"),
    "num_epochs": ("train", "num_epochs"),
    "max_steps": ("train", "max_steps"),
    "progress": ("train", "progress"),
    "train_limit": ("data", "train_limit"),
    "test_limit": ("data", "test_limit"),
    "learning_rate": ("optimizer", "learning_rate"),
}


def parse(arg: str | None, **defaults: Any) -> config_dict.ConfigDict:
    """``parse_arg`` with a ``size`` argument (default ``cpu``) checked against ``SIZES``."""
    a = parse_arg(arg, **{"size": "cpu", **defaults})
    choose("size", a.size, SIZES)
    return a


def by_size(size: str, smoke: Any, cpu: Any, paper: Any) -> Any:
    """The value for ``size``."""
    return {"smoke": smoke, "cpu": cpu, "paper": paper}[size]


def task_config(task: str, variant: str, size: str, **budget: Any) -> config_dict.ConfigDict:
    """``experiments.configs.<task>.get_config(variant)`` with the budget of ``size``
    (``BUDGETS``, updated with ``budget``) written into its train, data and optimizer
    sections."""
    module = importlib.import_module(f"experiments.configs.{task}")
    config = module.get_config(variant)
    for key, value in {**BUDGETS[size], **budget}.items():
        section, field = _BUDGET_FIELDS[key]
        config[section][field] = value
    return config


def analysis_config(analysis: str, size: str, name: str | None = None) -> config_dict.ConfigDict:
    """The fields every analysis has (module docstring); ``name`` names the output
    folders (default: ``analysis``)."""
    name = name or analysis
    config = config_dict.ConfigDict()
    config.analysis = analysis
    config.size = size
    config.outdir = f"runs/analyses/{name}"
    config.docs = False
    config.docs_dir = f"docs/figures/{name}"
    return config


def training_config(
    analysis: str, a: config_dict.ConfigDict, name: str | None = None, **budget: Any
) -> config_dict.ConfigDict:
    """``analysis_config`` plus ``rundir``, ``data_dir`` and the ``task_config`` of
    ``a.task`` / ``a.variant`` at ``a.size``."""
    config = analysis_config(analysis, a.size, name)
    config.rundir = "runs/analyses"
    config.data_dir = ""
    config.task_config = task_config(a.task, a.variant, a.size, **budget)
    return config
