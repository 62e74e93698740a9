"""What the analysis entry points share: the absl entry point, where outputs go, finding
the data, and the training runs several analyses reuse (trained once, found again by
folder).

Each analysis module has ``main(config) -> dict`` (the analysis, callable from Python
with a config of ``experiments/configs/analyses/<name>.py``) and ends with
``_common.run(main, "<name>")``. Outputs are written only once the analysis has
succeeded (``publish``): a failure, e.g. for lack of data, leaves every output file as
it was. The fields of the configs are described in ``experiments/configs/analyses/base.py``.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import ml_collections

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(REPO, "experiments", "configs", "analyses")
MNIST_TASKS = ("smnist", "psmnist")


class AnalysisError(ValueError):
    """A config the analysis refuses, or nothing to analyse; the message says what to do."""


# ----------------------------------------------------------------------------- entry point


def run(analysis: Callable[[ml_collections.ConfigDict], Any], name: str) -> None:
    """Parse ``--config`` (default: ``experiments/configs/analyses/<name>.py``, size cpu)
    with absl and ``config_flags`` and run ``analysis(config)``. A refused config (one
    line) or missing data ends the process with its message and status 1, no traceback."""
    from absl import app
    from ml_collections import config_flags

    from experiments.main import check_argv, parse_flags, setup_logging

    default = os.path.join(CONFIGS, f"{name}.py")
    check_argv(default)
    flag = config_flags.DEFINE_config_file(
        "config",
        default,
        f"Config file and its argument, e.g. experiments/configs/analyses/{name}.py:size=cpu.",
        lock_config=True,
    )

    def main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        config = flag.value
        if config.get("analysis") != name:
            raise app.UsageError(
                f"experiments.analyses.{name} was given a config for {config.get('analysis')!r}; "
                f"pass --config=experiments/configs/analyses/{name}.py."
            )
        setup_logging()
        from tclif_jax.data import DataNotFoundError

        try:
            analysis(config)
        except (AnalysisError, DataNotFoundError) as err:
            sys.exit(f"{type(err).__name__}: {err}")

    app.run(main, flags_parser=parse_flags)


# ----------------------------------------------------------------------------- outputs


def output_dir(config: ml_collections.ConfigDict) -> str:
    """Where the analysis writes: ``config.outdir``, or with ``config.docs`` the
    repository's ``config.docs_dir``, which smoke-size results must never replace."""
    if not config.docs:
        return config.outdir
    if config.size == "smoke":
        raise AnalysisError(
            f"config.docs=True refuses size=smoke: it would replace the documented figures "
            f"in {config.docs_dir} with smoke-size results; use size=cpu or size=paper."
        )
    return os.path.join(REPO, config.docs_dir)


def publish(outdir: str, writers: dict[str, Callable[[str], Any]]) -> list[str]:
    """Write every file of ``writers`` (file name -> function writing to a path) into a
    scratch folder beside ``outdir``, then move them all into ``outdir``: a writer that
    fails leaves ``outdir`` untouched. Returns the written paths."""
    outdir = os.path.abspath(outdir)
    parent = os.path.dirname(outdir)
    os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=f".{os.path.basename(outdir)}-partial-", dir=parent)
    try:
        for fname, write in writers.items():
            write(os.path.join(scratch, fname))
        os.makedirs(outdir, exist_ok=True)
        paths = []
        for fname in writers:
            paths.append(os.path.join(outdir, fname))
            os.replace(os.path.join(scratch, fname), paths[-1])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"Wrote {', '.join(writers)} to {outdir}")
    return paths


def _plain(o):
    import numpy as np

    if isinstance(o, float | np.floating):
        return float(o) if np.isfinite(o) else None  # NaN and inf are not JSON: null
    if isinstance(o, np.integer | np.bool_):
        return o.item()
    if isinstance(o, dict):
        return {k: _plain(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_plain(v) for v in o]
    if isinstance(o, np.ndarray):
        return _plain(o.tolist())
    return o


def write_json(path: str, obj: Any) -> str:
    """``obj`` as JSON (arrays as lists, NaN/inf as null, anything else by ``str``)."""
    with open(path, "w") as f:
        json.dump(_plain(obj), f, indent=1, default=str, allow_nan=False)
    return path


def write_csv(path: str, rows: list[dict], columns: list[str] | None = None) -> str:
    """``rows`` as CSV with ``columns`` (default: the first row's keys)."""
    if columns is None:
        columns = list(rows[0]) if rows else []
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in columns})
    return path


# ----------------------------------------------------------------------------- data


def mnist_search(config: ml_collections.ConfigDict) -> list[tuple[str, str]]:
    """``(where, folder)`` pairs in the order the analyses look for MNIST's IDX files:
    ``config.data_dir`` alone if set, else ``$TCLIF_SHARED_DATA/mnist`` and
    ``../shared/data/mnist`` next to the repository (as the tests do)."""
    if config.data_dir:
        return [("config.data_dir", config.data_dir)]
    out = []
    shared = os.environ.get("TCLIF_SHARED_DATA")
    if shared:
        out.append(("$TCLIF_SHARED_DATA/mnist", os.path.join(shared, "mnist")))
    out.append(
        ("../shared/data/mnist", os.path.join(os.path.dirname(REPO), "shared", "data", "mnist"))
    )
    return out


def data_dir(config: ml_collections.ConfigDict, task_cfg: ml_collections.ConfigDict) -> str:
    """The ``data.dir`` a task config gets: ``config.data_dir`` if set; else its own
    ``data.dir`` if set or not MNIST; else the first ``mnist_search`` folder that holds
    the IDX files; else "" (``tclif_jax.data``'s defaults: ``$TCLIF_DATA_DIR``, TFDS)."""
    if config.data_dir:
        return config.data_dir
    if task_cfg.data.dir or task_cfg.task not in MNIST_TASKS:
        return task_cfg.data.dir
    from tclif_jax.data.mnist import find_idx_dir

    for _, folder in mnist_search(config):
        if find_idx_dir(folder):
            return folder
    return ""


@contextlib.contextmanager
def data_errors(config: ml_collections.ConfigDict, task: str) -> Iterator[None]:
    """Re-raise a missing-MNIST ``DataNotFoundError`` with every place the analysis
    looked and how to provide the files."""
    from tclif_jax.data import DataNotFoundError

    try:
        yield
    except DataNotFoundError as err:
        if task not in MNIST_TASKS:
            raise
        looked = "; ".join(f"{where} = {folder}" for where, folder in mnist_search(config))
        also = "" if config.data_dir else ", nor in tclif_jax.data's default places"
        raise DataNotFoundError(
            f"{task}: no MNIST IDX files where the analyses look ({looked}){also}. {err}\n"
            "Fix: --config.data_dir=/path/to/mnist (a folder with the four IDX files), or "
            "set TCLIF_SHARED_DATA to the folder that holds mnist/."
        ) from err


def load_eval_batch(
    config: ml_collections.ConfigDict,
    task_cfg: ml_collections.ConfigDict,
    n: int,
    split: str = "test",
    workdir: str | None = None,
):
    """``(x, y, dataset)``: the first ``n`` examples of ``split``, ``x (n, T, F)`` float32
    already multiplied by the input scale, ``y (n,)`` int32."""
    import numpy as np

    from tclif_jax import data as data_lib

    dcfg = ml_collections.ConfigDict(task_cfg.data.to_dict())
    dcfg.train_limit = n if split == "train" else 1
    dcfg.test_limit = n if split != "train" else 1
    if "on_device" in dcfg:
        del dcfg["on_device"]
    with data_errors(config, task_cfg.task):
        ds = data_lib.load_dataset(task_cfg.task, dcfg, workdir=workdir)
    x, y = ds.splits[split]
    return x[:n].astype(np.float32) * ds.input_scale, y[:n].astype(np.int32), ds


# ----------------------------------------------------------------------------- networks


def _setting(key: str, text: str, kind: type, item: str) -> Any:
    """A neuron item's value as its ``config_fields()`` type (no tuples: ',' separates items)."""
    if kind is bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"Neuron item {item!r}: {key}={text!r} is not a bool (True/False).")
    if kind in (int, float, str):
        return kind(text)
    if kind is object:  # the neuron types disagree (e.g. decay): a number where it is one
        try:
            return float(text)
        except ValueError:
            return text
    raise ValueError(
        f"Neuron item {item!r}: {key} takes a tuple, which a neuron item cannot hold; set "
        f"it for every network with --config.task_config.model.{key}=(...)."
    )


def parse_neuron(item: str) -> tuple[str, str, dict[str, Any]]:
    """``"alif:detach_reset=True;beta_adapt=1.0"`` -> ``(label, neuron name, settings)``,
    each value parsed as the type ``tclif_jax.config.config_fields()`` gives its name."""
    from tclif_jax.config import config_fields

    kinds = config_fields()
    name, _, rest = item.partition(":")
    settings = {}
    for kv in filter(None, (s.strip() for s in rest.split(";"))):
        key, sep, text = (s.strip() for s in kv.partition("="))
        if not sep or key not in kinds:
            raise ValueError(
                f"Neuron item {item!r}: {kv!r} is not setting=value with a model setting; "
                f"valid settings: {', '.join(kinds)}."
            )
        settings[key] = _setting(key, text, kinds[key], item)
    return item, name.strip(), settings


def override_tag(settings: dict) -> str:
    """A run-folder suffix for a neuron item's settings, e.g. ``-detach_resetTrue``."""
    return "".join(f"-{k}{v}" for k, v in sorted(settings.items()))


def make_task_config(
    config: ml_collections.ConfigDict,
    item: str | None = None,
    *,
    seed: int | None = None,
    task: str | None = None,
) -> ml_collections.ConfigDict:
    """A locked copy of ``config.task_config`` (or ``config.task_configs[task]``) with the
    data folder (``data_dir``), the neuron and settings of ``item`` (``parse_neuron``;
    None keeps the task config's) and ``seed`` (None keeps it)."""
    source = config.task_config if task is None else config.task_configs[task]
    task_cfg = copy.deepcopy(source)
    task_cfg.lock()
    task_cfg.data.dir = data_dir(config, task_cfg)
    if seed is not None:
        task_cfg.seed = int(seed)
    if item is not None:
        _, name, settings = parse_neuron(item)
        task_cfg.model.neuron = name
        for key, value in settings.items():
            task_cfg.model[key] = value
    return task_cfg


def run_dir(
    config: ml_collections.ConfigDict, task_cfg: ml_collections.ConfigDict, item: str = ""
) -> str:
    """The training run's folder,
    ``<rundir>/<task>-<variant>-<neuron><settings>-seed<seed>-<size>``."""
    tag = override_tag(parse_neuron(item)[2]) if item else ""
    name = f"{task_cfg.run_name}-{task_cfg.model.neuron}{tag}-seed{task_cfg.seed}-{config.size}"
    return os.path.join(config.rundir, name)


def train(
    config: ml_collections.ConfigDict, task_cfg: ml_collections.ConfigDict, workdir: str
) -> dict[str, Any]:
    """Train ``task_cfg`` in ``workdir`` (or resume it, or reload it when finished) and
    return ``train_and_evaluate``'s summary (``params``, ``model``, ``history``, ...)."""
    from tclif_jax.train import train_and_evaluate

    with data_errors(config, task_cfg.task):
        return train_and_evaluate(task_cfg, workdir)


def load_run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Reload a finished training run from its ``config.json`` and last checkpoint: its
    summary plus ``config`` (the run's task config)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise AnalysisError(f"{workdir} has no config.json: is it a training run's --workdir?")
    with open(path) as f:
        task_cfg = ml_collections.ConfigDict(json.load(f))
    return train(config, task_cfg, workdir) | {"config": task_cfg}


def parse_mapping(text: str) -> dict[str, str]:
    """``"tclif=DIR,lif=DIR"`` -> ``{"tclif": "DIR", "lif": "DIR"}``."""
    out = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise AnalysisError(f"{part!r} is not label=DIR (e.g. tclif=runs/smnist-ff-tclif).")
        out[key.strip()] = value.strip()
    return out
