"""Shared flags and helpers of the analysis entry points: run sizes, config building,
and training runs that several analyses reuse (trained once, found again by folder).

Sizes (``--size``):

* ``smoke``: seconds; what the test suite runs (a few examples, 2 steps).
* ``cpu``: minutes on a laptop CPU; what produced the figures in docs/analysis.md.
* ``paper``: the paper's settings (the task config untouched: e.g. S-MNIST 200 epochs,
  batch 256); for a GPU.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
from typing import Any

import ml_collections

SIZES = ("smoke", "cpu", "paper")

# Training budgets per size; None leaves the task config's value.
BUDGETS = {
    "smoke": dict(batch_size=8, num_epochs=1, max_steps=2, train_limit=32, test_limit=16,
                  learning_rate=None),
    "cpu": dict(batch_size=32, num_epochs=3, max_steps=0, train_limit=640, test_limit=256,
                learning_rate=1e-3),
    "paper": dict(batch_size=None, num_epochs=None, max_steps=0, train_limit=0, test_limit=0,
                  learning_rate=None),
}
_CONFIG_MODULES = {"delayed_cue": "synthetic"}


def add_common_flags(parser: argparse.ArgumentParser, *, task: str = "smnist",
                     variant: str = "ff", outdir: str) -> argparse.ArgumentParser:
    """Flags every training-backed analysis shares."""
    g = parser.add_argument_group("runs")
    g.add_argument("--size", choices=SIZES, default="cpu",
                   help="smoke (tests), cpu (minutes; docs figures) or paper (GPU).")
    g.add_argument("--outdir", default=outdir, help="Where the PNG, JSON and CSV go.")
    g.add_argument("--rundir", default="runs/analyses",
                   help="Training runs live here, one folder per (task, variant, neuron, seed, "
                        "size); analyses share them and rerunning resumes or reuses them.")
    g.add_argument("--task", default=task, help="Task name (a tclif_jax.data dataset).")
    g.add_argument("--variant", default=variant, help="Task config variant (ff, rec, ...).")
    g.add_argument("--data_dir", default=None, help="config.data.dir (e.g. the MNIST IDX folder).")
    g.add_argument("--batch_size", type=int, default=None)
    g.add_argument("--num_epochs", type=int, default=None)
    g.add_argument("--max_steps", type=int, default=None)
    g.add_argument("--train_limit", type=int, default=None)
    g.add_argument("--test_limit", type=int, default=None)
    g.add_argument("--learning_rate", type=float, default=None)
    g.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="Any config override, e.g. --set model.v_th=1.2 (repeatable).")
    return parser


def parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def base_task_config(task: str, variant: str) -> ml_collections.ConfigDict:
    """The task's config (``experiments/configs/<task>.py``) for ``variant``."""
    name = _CONFIG_MODULES.get(task, task)
    module = importlib.import_module(f"experiments.configs.{name}")
    return module.get_config(variant) if variant else module.get_config()


def set_field(config: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = config
    for p in parents:
        node = node[p]
    if leaf not in node:
        raise ValueError(f"Unknown config field {dotted!r}.")
    node[leaf] = value


def make_config(args, *, neuron: str, seed: int = 0, task: str | None = None,
                variant: str | None = None, model: dict | None = None) -> ml_collections.ConfigDict:
    """The task config with the size's budget, the command-line overrides, ``neuron``,
    ``seed`` and ``model`` fields (e.g. ``init_b``) applied."""
    task = task or args.task
    config = base_task_config(task, variant if variant is not None else args.variant)
    budget = dict(BUDGETS[args.size])
    for key in ("batch_size", "num_epochs", "max_steps", "train_limit", "test_limit",
                "learning_rate"):
        if getattr(args, key, None) is not None:
            budget[key] = getattr(args, key)
    config.seed = int(seed)
    config.model.neuron = neuron
    for k, v in (model or {}).items():
        config.model[k] = v
    if args.data_dir is not None:
        config.data.dir = args.data_dir
    if budget["train_limit"] is not None:
        config.data.train_limit = budget["train_limit"]
    if budget["test_limit"] is not None:
        config.data.test_limit = budget["test_limit"]
    for key in ("batch_size", "num_epochs", "max_steps"):
        if budget[key] is not None:
            config.train[key] = budget[key]
    if budget["learning_rate"] is not None:
        config.optimizer.learning_rate = budget["learning_rate"]
    config.train.progress = args.size == "paper"
    for item in args.set:
        key, _, value = item.partition("=")
        set_field(config, key.strip(), parse_value(value.strip()))
    return config


def run_dir(args, *, neuron: str, seed: int = 0, task: str | None = None,
            variant: str | None = None, tag: str = "") -> str:
    task = task or args.task
    variant = variant if variant is not None else args.variant
    return os.path.join(args.rundir, f"{task}-{variant}-{neuron}{tag}-seed{seed}-{args.size}")


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Train (or resume, or just reload a finished run) and return the summary."""
    from tclif_jax.train import train_and_evaluate

    return train_and_evaluate(config, workdir)


def load_run(workdir: str) -> dict[str, Any]:
    """Reload a finished training run from its ``config.json`` and last checkpoint
    (``train_and_evaluate`` on a finished run trains nothing and returns its summary)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{workdir} has no config.json: is it a training run's --workdir?")
    with open(path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    return train(config, workdir) | {"config": config}


def load_eval_batch(config: ml_collections.ConfigDict, n: int, split: str = "test",
                    workdir: str | None = None):
    """``(x float32 scaled, y int32, dataset)``: the first ``n`` examples of a split."""
    import numpy as np
    from tclif_jax import data as data_lib

    dcfg = ml_collections.ConfigDict(config.data.to_dict())
    dcfg.train_limit = n if split == "train" else 1
    dcfg.test_limit = n if split != "train" else 1
    if "on_device" in dcfg:
        del dcfg["on_device"]
    ds = data_lib.load_dataset(config.task, dcfg, workdir=workdir)
    x, y = ds.splits[split]
    return x[:n].astype(np.float32) * ds.input_scale, y[:n].astype(np.int32), ds


def parse_neuron(item: str) -> tuple[str, str, dict]:
    """``"alif:detach_reset=True;beta_adapt=1.0"`` -> (label, neuron name, model overrides)."""
    name, _, rest = item.partition(":")
    overrides = {}
    for kv in filter(None, rest.split(";")):
        k, _, v = kv.partition("=")
        overrides[k.strip()] = parse_value(v.strip())
    return item, name.strip(), overrides


def override_tag(overrides: dict) -> str:
    """A run-folder suffix for model overrides, e.g. ``-detach_resetTrue``."""
    return "".join(f"-{k}{v}" for k, v in sorted(overrides.items()))


def parse_mapping(items: list[str] | str | None) -> dict[str, str]:
    """``["tclif=DIR", "lif=DIR"]`` or ``"tclif=DIR,lif=DIR"`` -> dict."""
    if not items:
        return {}
    if isinstance(items, str):
        items = items.split(",")
    out = {}
    for item in items:
        for part in item.split(","):
            if part:
                k, _, v = part.partition("=")
                out[k.strip()] = v.strip()
    return out


def write_json(path: str, obj: Any) -> str:
    import numpy as np

    def default(o):
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, (np.floating, np.integer, np.bool_)):
            return o.item()
        return str(o)

    def clean(o):  # NaN and inf are not JSON: write null
        if isinstance(o, (float, np.floating)):
            return float(o) if np.isfinite(o) else None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, np.ndarray):
            return clean(o.tolist())
        return o

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(clean(obj), f, indent=1, default=default, allow_nan=False)
    return path


def write_csv(path: str, rows: list[dict], columns: list[str] | None = None) -> str:
    import csv

    if columns is None:
        columns = list(rows[0]) if rows else []
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in columns})
    return path
