"""Shared entry point: ``python -m experiments.<task> --config=... --workdir=...``.

Every field of the config can be overridden on the command line
(``--config.optimizer.learning_rate=1e-3``); an unknown field is an error.
Rerunning with the same ``--workdir`` resumes from its last checkpoint.
"""

import os

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file and variant, e.g. experiments/configs/smnist.py:rec.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Folder for checkpoints, metrics.jsonl and learning_curve.png "
    "(default: runs/<task>-<preset>-<neuron>). The same folder resumes a run.")


def run(task: str) -> None:
    """Parse flags and train ``task``; the config must be for the same task."""

    def main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        config = _CONFIG.value
        if config is None:
            raise app.UsageError(f"--config is required, e.g. --config=experiments/configs/{task}.py")
        if config.task != task:
            raise app.UsageError(f"experiments.{task} was given a config for task {config.task!r}; "
                                 f"run experiments.{config.task} or pass configs/{task}.py.")
        from tclif_jax.train import train_and_evaluate  # after flags: keeps --help fast

        workdir = _WORKDIR.value or os.path.join(
            "runs", f"{task}-{config.model.preset}-{config.model.neuron}")
        train_and_evaluate(config, workdir)

    app.run(main)
