"""Publish a trained model from a run's work directory: weights, card and model-card page.

  python -m experiments.publish --workdir=runs/smnist-ff-64-tclif --name=smnist-ff-64

Reads ``<workdir>/config.json`` and the run's best checkpoint (``--checkpoint=last`` for
the newest), read-only: nothing in the work directory is written. Evaluates the restored
network on the task's whole test split itself (``tclif_jax.pretrained.count_correct``,
the function the tests repeat), and writes:

* ``tclif_jax/weights/<name>.safetensors`` and ``<name>.json`` (``pretrained.save``;
  ``--outdir`` elsewhere), the card recording what this evaluation measured;
* ``docs/models/<name>.md`` (``--docs_dir``), the model-card page, rendered from the card.

The run's own record of that checkpoint's test accuracy (its ``metrics.jsonl`` entry)
must equal the measured one; a difference is logged as a warning and kept in the card
(``run_test_acc``). The command recorded is the one that trained the run: the task config
and every field of ``config.json`` that differs from the config's defaults (``--command``
sets it instead).
"""

from __future__ import annotations

import importlib
import json
import os
import platform

from absl import app, flags, logging

_WORKDIR = flags.DEFINE_string("workdir", None, "The run's work directory (read-only).")
_NAME = flags.DEFINE_string("name", None, "Published name, e.g. smnist-ff-64.")
_CHECKPOINT = flags.DEFINE_enum("checkpoint", "best", ["best", "last"], "Which checkpoint.")
_OUTDIR = flags.DEFINE_string("outdir", "", "Where the weights go (default: tclif_jax/weights).")
_DOCS_DIR = flags.DEFINE_string("docs_dir", "docs/models", "Where the model-card page goes.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "Override config.data.dir (where the data is).")
_COMMAND = flags.DEFINE_string("command", "", "The training command (default: derived).")


def _value(v) -> str:
    if isinstance(v, (list, tuple)):
        return "(" + ",".join(_value(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return str(v)


def training_command(config: dict, workdir: str) -> str:
    """The command that trains ``config`` (a config.json dict): the task config with its
    variant (from ``run_name``) and one ``--config.<field>=`` per field that differs from
    that config's defaults. Fields the defaults lack are left out (an older config)."""
    from tclif_jax.workdir import flatten

    task = config["task"]
    module = importlib.import_module(f"experiments.configs.{task}")
    variant = config.get("run_name", task).removeprefix(f"{task}-")
    try:
        default = module.get_config(variant)
        spec = f"experiments/configs/{task}.py:{variant}"
    except ValueError:
        default, spec = module.get_config(), f"experiments/configs/{task}.py"
    ran, base = flatten(config), flatten(default)
    overrides = [
        f"--config.{k}={_value(v)}"
        for k, v in sorted(ran.items())
        if k in base and json.dumps(base[k]) != json.dumps(v)
    ]
    workdir = os.path.join("runs", os.path.basename(os.path.normpath(workdir)))
    return " ".join(
        [f"python -m experiments.{task} --config={spec}", f"--workdir={workdir}"] + overrides
    )


def restore_params(workdir: str, which: str):
    """``(params, meta)`` of the run's ``which`` ("best" or "last") checkpoint, read-only;
    ``params`` as saved (a nested dict, layer indices as strings)."""
    import orbax.checkpoint as ocp

    path = os.path.join(os.path.abspath(workdir), "checkpoints", which)
    mngr = ocp.CheckpointManager(
        path, options=ocp.CheckpointManagerOptions(read_only=True, create=False)
    )
    step = mngr.latest_step()
    if step is None:
        raise SystemExit(f"error: no checkpoint in {path}; has the run finished an epoch?")
    args = ocp.args.Composite(state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore())
    restored = mngr.restore(step, args=args)
    return restored["state"][0], restored["meta"]


def render_card(info: dict) -> str:
    """The model-card page (Markdown) of a published model's card ``info``."""
    net = info["network_config"]
    data = info["data"]
    settings = ", ".join(f"{k} {_value(v)}" for k, v in sorted(net["neuron_settings"].items()))
    recurrent = [i for i, r in enumerate(net["recurrent"]) if r]
    opt, tc = info["training"]["optimizer"], info["training"]["train"]
    if opt["schedule"] == "multistep":
        sched = f"x{opt['decay_factor']:g} at epochs {', '.join(map(str, opt['decay_epochs']))}"
    elif opt["schedule"] == "step":
        sched = f"x{opt['decay_factor']:g} every {opt['decay_every']} epochs"
    else:
        sched = "constant"
    if info.get("inside_epoch"):
        when = f"at step {info['step']}, inside epoch {info['epoch'] + 1}"
    else:
        when = f"after epoch {info['epoch']}"
    if info["checkpoint"] == "best":
        when += " (the best test accuracy)"
    runs = info["epochs_run"]
    lines = [
        f"# {info['name']}",
        "",
        "A published TC-LIF network: its parameters are shipped with tclif_jax, and the suite "
        "checks this page's accuracy to the last example (tests/test_pretrained.py). This page "
        f"is generated from `tclif_jax/weights/{info['name']}.json` by `experiments/publish.py`.",
        "",
        f"<!-- example: pretrained-{info['name']} -->",
        "```python",
        "from tclif_jax import pretrained",
        f'model = pretrained.load("{info["name"]}")   # a SpikingNetwork',
        "```",
        "",
        "| | |",
        "|---|---|",
        f"| test accuracy | **{100 * info['accuracy']:.2f}%** ({info['correct']:,} of "
        f"{info['total']:,} test examples) |",
        f"| data | {data['description']}; trained on {data['train_examples']:,} examples, "
        f"tested on {data['test_examples']:,} |",
        f"| network | {net['in_features']}-{'-'.join(map(str, net['hidden']))}-"
        f"{net['num_classes']}, {net['neuron']} ({settings}); recurrent layers: "
        f"{', '.join(map(str, recurrent)) or 'none'}; dropout {net['dropout']:g}; readout "
        f"{net['readout']}; {info['parameters']:,} parameters |",
        f"| training | Adam {opt['learning_rate']:g}, {sched}, batch {tc['batch_size']}, "
        f"seed {info['training']['seed']} |",
        f"| epochs | the checkpoint {when}, of {runs} epoch{'s' if runs != 1 else ''} run |",
        f"| command | `{info['command']}` |",
        f"| measured | {info['date']}, {info['platform']}, tclif_jax {info['versions']['tclif_jax']}, "
        f"jax {info['versions']['jax']} (batches of {info['eval_batch_size']}) |",
        f"| weights | `{info['name']}.safetensors`, sha256 `{info['sha256'][:16]}...` |",
        "",
    ]
    if (
        info.get("run_test_acc") is not None
        and round(info["run_test_acc"] * info["total"]) != info["correct"]
    ):
        lines += [
            f"Note: the training run logged {100 * info['run_test_acc']:.2f}% for this "
            "checkpoint; the accuracy above is what the published weights give.",
            "",
        ]
    return "\n".join(lines)


def epochs_run(workdir: str, history: list[dict]) -> int:
    """Epochs the run completed: its ``metrics.jsonl`` (which goes on past the best
    checkpoint), else the checkpoint's own history."""
    path = os.path.join(workdir, "metrics.jsonl")
    epochs = [h["epoch"] for h in history]
    if os.path.exists(path):
        with open(path) as f:
            epochs += [json.loads(line)["epoch"] for line in f if line.strip()]
    return max(epochs)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not _WORKDIR.value or not _NAME.value:
        raise app.UsageError("--workdir and --name are required.")
    import jax
    from flax import nnx

    import tclif_jax
    from tclif_jax import data as data_lib
    from tclif_jax import pretrained
    from tclif_jax.models import parameters
    from tclif_jax.train import build_model

    workdir = _WORKDIR.value
    with open(os.path.join(workdir, "config.json")) as f:
        config_dict = json.load(f)
    from ml_collections import config_dict as cd

    config = cd.ConfigDict(config_dict)
    data_fields = {k: v for k, v in config.data.items() if k != "on_device"}
    if _DATA_DIR.value:
        data_fields["dir"] = _DATA_DIR.value
    dataset = data_lib.load_dataset(config.task, data_fields)
    model = build_model(config, dataset.num_features, dataset.num_classes)

    saved, meta = restore_params(workdir, _CHECKPOINT.value)
    flat = {pretrained.param_key(p): v for p, v in jax.tree_util.tree_leaves_with_path(saved)}
    restored = jax.tree_util.tree_map_with_path(
        lambda p, like: jax.numpy.asarray(flat[pretrained.param_key(p)], like.dtype),
        parameters(model),
    )
    nnx.update(model, restored)

    x_test, y_test = dataset.splits["test"]
    batch = config.train.eval_batch_size or config.train.batch_size
    correct = pretrained.count_correct(
        model, x_test, y_test, input_scale=dataset.input_scale, batch_size=batch
    )
    total = len(y_test)
    # A checkpoint written inside an epoch (train.checkpoint_every_steps) has no test
    # accuracy of its own in the run's log.
    record = next((h for h in meta["history"] if h["step"] == meta["step"]), None)
    if record is None:
        logging.warning(
            "The %s checkpoint (step %d) was written inside epoch %d: the run logged no test "
            "accuracy for it.",
            _CHECKPOINT.value,
            meta["step"],
            meta["epoch"] + 1,
        )
    elif round(record["test_acc"] * total) != correct:
        logging.warning(
            "Measured %d of %d (%.4f) correct; the run logged test_acc %.4f for step %d.",
            correct,
            total,
            correct / total,
            record["test_acc"],
            meta["step"],
        )
    history = meta["history"]
    info = dict(
        data=dict(
            task=config.task,
            description={
                "smnist": "MNIST, one pixel per step (pixels / 255, row-major, T = 784)",
                "psmnist": "MNIST, one fixed permutation of the 784 pixels, one per step",
            }.get(config.task, config.task),
            train_examples=len(dataset.splits["train"][1]),
            test_examples=total,
            input_scale=dataset.input_scale,
        ),
        checkpoint=_CHECKPOINT.value,
        epoch=meta["epoch"],  # epochs completed by the checkpoint
        inside_epoch=record is None,
        step=meta["step"],
        epochs_run=epochs_run(workdir, history),
        run_test_acc=record["test_acc"] if record else None,
        run_best_test_acc=meta.get("best_test_acc"),
        eval_batch_size=batch,
        command=_COMMAND.value or training_command(config_dict, workdir),
        training={k: config_dict[k] for k in ("optimizer", "train", "seed", "model")},
        platform=f"{jax.default_backend()} ({platform.machine()})",
        versions=dict(tclif_jax=tclif_jax.__version__, jax=jax.__version__),
    )
    outdir = _OUTDIR.value or pretrained.WEIGHTS_DIR
    weights, card_path = pretrained.save(
        model, os.path.join(outdir, _NAME.value), correct=correct, total=total, **info
    )
    os.makedirs(_DOCS_DIR.value, exist_ok=True)
    page = os.path.join(_DOCS_DIR.value, f"{_NAME.value}.md")
    with open(page, "w") as f:
        f.write(render_card(pretrained.card(card_path)))
    print(
        f"{_NAME.value}: {correct} of {total} test examples ({100 * correct / total:.2f}%), "
        f"step {meta['step']}; wrote {weights}, {card_path}, {page}",
        flush=True,
    )


if __name__ == "__main__":
    app.run(main)
