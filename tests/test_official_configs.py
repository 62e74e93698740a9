"""Every task config's default runs what the official command runs; its options, the paper.

The record is ``experiments/configs/official.py`` (``OFFICIAL``: the official scripts'
values, file and line cited; ``PAPER``: the paper's text). The configs do not import it,
so each comparison below checks two independent writings of one fact. Values are read
from what a config builds (the ``NetworkConfig``, the model's initial c, the surrogate's
forward and derivative), not from its fields, so a preset that drifts is caught too.
"""

import importlib
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import official
from experiments.configs.official import NOT_PAPER_TASKS, OFFICIAL, PAPER
from tclif_jax import NEURONS
from tclif_jax.models import from_config
from tclif_jax.train import build_model, network_config

CONFIG_DIR = pathlib.Path(official.__file__).parent
NOT_CONFIGS = {"__init__", "base", "official"}
# The argument that turns on every option of the paper's text, per task.
PAPER_ARG = {task: "schedule=paper,settings=paper" for task in PAPER}
PAPER_ARG["ssc"] += ",network=table6"


def _module(task):
    return importlib.import_module(f"experiments.configs.{task}")


def _cases(table):
    return [(t, v) for t in sorted(table) for v in sorted(table[t])]


def _schedule(config) -> dict:
    opt, tc = config.optimizer, config.train
    return {
        "batch_size": tc.batch_size,
        "num_epochs": tc.num_epochs,
        "learning_rate": opt.learning_rate,
        "schedule": opt.schedule,
        "decay_epochs": tuple(opt.decay_epochs),
        "decay_every": opt.decay_every,
        "decay_factor": opt.decay_factor,
    }


def _built(config, row):
    """What ``config`` builds: its NetworkConfig, first neuron and every layer's initial c."""
    net = network_config(config, row.in_features, row.num_classes)
    model = from_config(net, seed=0)
    c = [np.asarray(layer.neuron_params["c"][...]) for layer in model.layers]
    return net, net.neurons[0], c


def test_the_record_covers_every_task_config():
    tasks = {p.stem for p in CONFIG_DIR.glob("*.py")} - NOT_CONFIGS
    assert tasks == set(OFFICIAL) | set(NOT_PAPER_TASKS)
    assert not set(OFFICIAL) & set(NOT_PAPER_TASKS)
    assert set(PAPER) == set(OFFICIAL)
    for task in OFFICIAL:
        assert set(OFFICIAL[task]) == set(PAPER[task]) == set(_module(task).PRESETS), task


@pytest.mark.parametrize("task,variant", _cases(OFFICIAL))
def test_default_config_runs_the_official_command(task, variant):
    row = OFFICIAL[task][variant]
    config = _module(task).get_config(variant)
    assert config.task == task and config.model.neuron == "tclif"
    want = {k: getattr(row, k) for k in _schedule(config)}
    assert _schedule(config) == want
    assert config.train.drop_last is row.drop_last
    assert (config.optimizer.name, config.optimizer.grad_clip) == ("adam", 0.0)
    net, neuron, c = _built(config, row)
    assert (net.in_features, net.hidden, net.num_classes) == (
        row.in_features,
        row.hidden,
        row.num_classes,
    )
    assert (net.recurrent, net.dropout, net.readout) == (row.recurrent, row.dropout, "sum")
    assert (neuron.gamma, neuron.v_th, neuron.reset_order) == (row.gamma, row.v_th, "official")
    assert all(n == neuron for n in net.neurons)
    for layer_c in c:  # exactly the command's c, not a c rounded through (b1, b2)
        np.testing.assert_array_equal(layer_c, np.float32(row.init_c))


@pytest.mark.parametrize("task,variant", _cases(OFFICIAL))
def test_default_surrogate_is_the_official_triangle(task, variant):
    # Triangle (each surrogate.py): forward x >= 0, backward max(0, 1 - |x|).
    assert OFFICIAL[task][variant].surrogate == "triangle"
    _, neuron, _ = _built(_module(task).get_config(variant), OFFICIAL[task][variant])
    x = jnp.array([-1.5, -1.0, -0.5, 0.0, 0.25, 1.0, 2.0])
    np.testing.assert_array_equal(neuron.surrogate(x), [0, 0, 0, 1, 1, 1, 1])
    grad = jax.vmap(jax.grad(lambda v: neuron.surrogate(v)))(x)
    np.testing.assert_allclose(grad, [0, 0, 0.5, 1, 0.75, 0, 0], atol=1e-7)


@pytest.mark.parametrize("task,variant", _cases(PAPER))
def test_paper_options_give_the_papers_values(task, variant):
    row, off = PAPER[task][variant], OFFICIAL[task][variant]
    config = _module(task).get_config(f"variant={variant},{PAPER_ARG[task]}")
    assert _schedule(config) == {
        "batch_size": off.batch_size if row.batch_size is None else row.batch_size,
        "num_epochs": row.num_epochs,
        "learning_rate": row.learning_rate,
        "schedule": row.schedule,
        "decay_epochs": row.decay_epochs,
        "decay_every": row.decay_every,
        "decay_factor": row.decay_factor,
    }
    net, neuron, c = _built(config, off)
    assert (net.hidden, net.recurrent) == (row.hidden, row.recurrent)
    assert (neuron.gamma, neuron.v_th) == (row.gamma, row.v_th)
    for layer_c in c:
        b = (-1 / (1 + math.exp(-layer_c[0])), 1 / (1 + math.exp(-layer_c[1])))
        np.testing.assert_allclose(b, row.init_b, atol=1e-6)


@pytest.mark.parametrize(
    "task,arg,changed",
    [
        ("gsc", "schedule=paper", {"num_epochs": 100, "decay_epochs": (60, 90, 120)}),
        (
            "shd",
            "variant=rec,schedule=paper",
            {"learning_rate": 5e-3, "schedule": "step", "decay_epochs": (), "decay_every": 10}
            | {"decay_factor": 0.8},
        ),
        (
            "ssc",
            "schedule=paper",
            {"learning_rate": 1e-4, "schedule": "step", "decay_epochs": (), "decay_every": 10}
            | {"decay_factor": 0.8},
        ),
    ],
)
def test_each_option_changes_only_its_own_values(task, arg, changed):
    default = _module(task).get_config(arg.split(",")[0] if "variant" in arg else "ff")
    paper = _module(task).get_config(arg)
    assert paper.model == default.model
    got = {k: v for k, v in _schedule(paper).items() if v != _schedule(default)[k]}
    assert got == changed


def test_ssc_network_option_alone():
    # Table 6's network with the official schedule, in its own run folder.
    table6 = _module("ssc").get_config("variant=rec,network=table6")
    assert table6.model.preset == "ssc-rec" and table6.run_name == "ssc-rec-table6"
    assert _schedule(table6) == _schedule(_module("ssc").get_config("rec"))


def test_paper_settings_leave_the_others_as_the_command_runs_them():
    rec = _module("psmnist").get_config("variant=rec,settings=paper")
    net, neuron, _ = _built(rec, OFFICIAL["psmnist"]["rec"])
    assert (neuron.v_th, neuron.gamma, rec.optimizer.learning_rate) == (1.8, 0.5, 5e-4)
    ff = _module("smnist").get_config("variant=ff,settings=paper")
    assert ff.model == _module("smnist").get_config("ff").model  # the paper agrees for ff


@pytest.mark.parametrize("task,variant", _cases(OFFICIAL))
def test_glif_keeps_its_own_default_surrogate(task, variant):
    # Neither a config nor a preset sets GLIF's surrogate: it stays the one GLIF declares.
    config = _module(task).get_config(variant)
    config.model.neuron = "glif"
    row = OFFICIAL[task][variant]
    model = build_model(config, row.in_features, row.num_classes)
    own = NEURONS["glif"]().surrogate
    assert all(layer.neuron.surrogate == own for layer in model.layers)


def test_bad_option_is_one_clear_error():
    with pytest.raises(ValueError, match="Unknown network 'paper'; valid: official, table6"):
        _module("ssc").get_config("network=paper")
    with pytest.raises(ValueError, match="Unknown settings 'table6'; valid: official, paper"):
        _module("gsc").get_config("settings=table6")
    with pytest.raises(ValueError, match="Unknown schedule 'cosine'; valid: official, paper"):
        _module("shd").get_config("schedule=cosine")


@pytest.mark.parametrize(
    "task,variant", [c for c in _cases(OFFICIAL) if OFFICIAL[c[0]][c[1]].command]
)
def test_the_record_agrees_with_its_readme_command(task, variant):
    row = OFFICIAL[task][variant]
    words = row.command.split()
    args = dict(zip(words[2::2], words[3::2]))
    c = ("--beta_init1", "--beta_init2") if task == "gsc" else ("--beta1", "--beta2")
    assert (float(args[c[0]]), float(args[c[1]])) == row.init_c
    assert float(args["--gamma"]) == row.gamma and args["--sg"] == row.surrogate
    assert (args["--network"] == "fb") == any(row.recurrent)
    assert float(args.get("--drop", 0.0)) == row.dropout
    # MNIST's fbMnist builds every neuron with v_threshold=1.0, whatever --threshold says.
    forced = task in ("smnist", "psmnist") and args["--network"] == "fb"
    assert row.v_th == (1.0 if forced else float(args["--threshold"]))
