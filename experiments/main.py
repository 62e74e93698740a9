"""Shared entry point: ``python -m experiments.<task> --config=... --workdir=...``.

Every field of the config can be overridden on the command line
(``--config.optimizer.learning_rate=1e-3``), before or after ``--config``; an unknown field
is a one-line error naming the valid ones. Rerunning with the same ``--workdir`` resumes
from its last checkpoint. The process-wide set-up lives here and nowhere in the library:

* logging (orbax's per-save chatter is dropped; processes other than 0 log warnings only);
* multi-process runs (``config.distributed``): ``jax.distributed.initialize()`` before any
  other JAX call, with the gloo collectives on CPU, and a clear error instead of a hang or
  an abort when the processes do not all join in time.
"""

from __future__ import annotations

import importlib.util
import logging as std_logging
import os
import sys
import threading

from absl import app, flags, logging
from ml_collections import config_dict, config_flags


class _QuietOrbax(std_logging.Filter):
    """Orbax logs every save at INFO through absl; keep its warnings, drop the chatter."""

    def filter(self, record):
        return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def setup_logging(process_index: int = 0) -> None:
    """Process-wide logging for the entry points (never done by the library)."""
    logging.get_absl_logger().addFilter(_QuietOrbax())
    if process_index:
        logging.set_verbosity(logging.WARNING)


# ----------------------------------------------------------------------------- flags


def _load_config(spec: str):
    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("_tclif_config", path)
    if module_spec is None or not os.path.isfile(path):
        raise SystemExit(f"error: config file {path!r} not found (from --config={spec}).")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    try:
        return module.get_config(arg) if arg else module.get_config()
    except ValueError as err:
        raise SystemExit(f"error: --config={spec}: {err}") from None


def _check_override(config, dotted: str) -> None:
    node, walked = config, []
    for part in dotted.split("."):
        if not isinstance(node, config_dict.ConfigDict) or part not in node:
            where = ".".join(walked) or "the config"
            valid = (
                ", ".join(sorted(node.keys())) if isinstance(node, config_dict.ConfigDict) else ""
            )
            raise SystemExit(
                f"error: unknown config field {dotted!r} (--config.{dotted}); "
                f"{where} has: {valid or 'no sub-fields'}."
            )
        node, walked = node[part], walked + [part]


def check_argv(default_config: str | None = None) -> None:
    """Put ``--config`` before its overrides in ``sys.argv`` (config_flags reads them there,
    in that order) and check every ``--config.<path>=`` override against the loaded config,
    so an unknown field is one line naming the valid ones. ``default_config`` is the file
    used when ``--config`` is not given. Call before defining the config flag."""
    config_args = [a for a in sys.argv[1:] if a.startswith("--config=")]
    others = [a for a in sys.argv[1:] if not a.startswith("--config=")]
    sys.argv[:] = sys.argv[:1] + config_args + others
    spec = config_args[-1].split("=", 1)[1] if config_args else default_config
    if spec and not any(a in ("--help", "--helpshort", "--helpfull") for a in others):
        config = _load_config(spec)
        for arg in others:
            if arg.startswith("--config."):
                _check_override(config, arg[len("--config.") :].split("=", 1)[0])


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing for ``app.run`` that ends a bad command line with one line."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        raise SystemExit(f"error: {err}\nPass --helpshort for the flags.") from None


# ----------------------------------------------------------------------------- processes


def distributed_settings(config) -> dict | None:
    """The ``jax.distributed.initialize`` arguments ``config.distributed`` asks for, or
    None for a single-process run. A half-set config is a ValueError saying what is missing.
    """
    d = config.get("distributed")
    if d is None or isinstance(d, bool):
        if d:
            raise ValueError(
                "config.distributed is now a section: set --config.distributed.auto=True "
                "(cluster detection) or coordinator_address, num_processes and process_id."
            )
        return None
    explicit = d.coordinator_address or d.num_processes > 1 or d.process_id >= 0
    if not d.auto and not explicit:
        return None
    if d.auto:
        # JAX detects the cluster (Cloud TPU, SLURM, ...); fields set explicitly still apply.
        kwargs = {}
        if d.coordinator_address:
            kwargs["coordinator_address"] = d.coordinator_address
        if d.num_processes > 1:
            kwargs["num_processes"] = int(d.num_processes)
        if d.process_id >= 0:
            kwargs["process_id"] = int(d.process_id)
    else:
        missing = [
            f"distributed.{name}"
            for name, unset in (
                ("coordinator_address", not d.coordinator_address),
                ("num_processes (> 1)", d.num_processes <= 1),
                ("process_id", d.process_id < 0),
            )
            if unset
        ]
        if missing:
            raise ValueError(
                f"A multi-process run needs {', '.join(missing)} too (or "
                "--config.distributed.auto=True on a cluster JAX detects: Cloud TPU, SLURM)."
            )
        if d.process_id >= d.num_processes:
            raise ValueError(
                f"distributed.process_id={d.process_id} must be below "
                f"num_processes={d.num_processes} (ids are 0..{d.num_processes - 1})."
            )
        if ":" not in d.coordinator_address:
            raise ValueError(
                f"distributed.coordinator_address={d.coordinator_address!r} needs host:port, "
                "e.g. 127.0.0.1:12355 (the address of process 0)."
            )
        kwargs = dict(
            coordinator_address=d.coordinator_address,
            num_processes=int(d.num_processes),
            process_id=int(d.process_id),
        )
    kwargs["initialization_timeout"] = int(d.initialization_timeout)
    return kwargs


def initialize_distributed(config) -> None:
    """Join JAX's multi-process runtime when ``config.distributed`` asks for it.

    Must run before any other JAX call. On CPU it selects the gloo collectives. If the
    processes have not all joined after ``initialization_timeout`` seconds, the process
    exits with status 3 and one clear message (JAX itself would abort with a C++ trace).
    """
    try:
        kwargs = distributed_settings(config)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    if kwargs is None:
        return
    import jax

    backends = os.environ.get("JAX_PLATFORMS", "")
    if backends in ("", "cpu") or "cpu" in backends.split(","):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    timeout = kwargs["initialization_timeout"]
    where = kwargs.get("coordinator_address", "the detected coordinator")
    who = (
        f"process {kwargs['process_id']} of {kwargs['num_processes']}"
        if "process_id" in kwargs
        else "this process"
    )
    joined = threading.Event()

    def give_up():
        if not joined.wait(timeout):
            sys.stderr.write(
                f"error: {who} could not join the JAX coordinator at {where} within {timeout} s "
                "(config.distributed.initialization_timeout). Start every process with the same "
                "coordinator_address and num_processes and its own process_id, and check that "
                "process 0's host and port are reachable.\n"
            )
            sys.stderr.flush()
            os._exit(3)

    threading.Thread(target=give_up, daemon=True).start()
    # JAX's own deadline comes later, so the message above is what the user sees.
    jax.distributed.initialize(**dict(kwargs, initialization_timeout=timeout + 60))
    joined.set()


def default_workdir(config) -> str:
    return os.path.join("runs", f"{config.run_name}-{config.model.neuron}")


def run(task: str) -> None:
    """Parse flags and train ``task``; the config must be for the same task."""
    check_argv()
    config_flag = config_flags.DEFINE_config_file(
        "config",
        None,
        "Config file and its argument, e.g. experiments/configs/smnist.py:rec.",
        lock_config=True,
    )
    workdir_flag = flags.DEFINE_string(
        "workdir",
        None,
        "Folder for checkpoints, metrics.jsonl and learning_curve.png "
        "(default: runs/<config.run_name>-<neuron>). The same folder resumes a run.",
    )

    def main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        config = config_flag.value
        if config is None:
            raise app.UsageError(
                f"--config is required, e.g. --config=experiments/configs/{task}.py"
            )
        if config.task != task:
            raise app.UsageError(
                f"experiments.{task} was given a config for task {config.task!r}; "
                f"run experiments.{config.task} or pass configs/{task}.py."
            )
        initialize_distributed(config)
        import jax

        setup_logging(jax.process_index())
        # After flags: keeps --help fast.
        from tclif_jax.checkpoint import CheckpointError
        from tclif_jax.data import DataNotFoundError
        from tclif_jax.train import ConfigError, Preempted, train_and_evaluate
        from tclif_jax.workdir import RunLockedError

        try:
            train_and_evaluate(config, workdir_flag.value or default_workdir(config))
        except Preempted as err:
            logging.warning("%s", err)
            print(err, file=sys.stderr, flush=True)
            sys.exit(143)  # 128 + SIGTERM, as a process killed by it
        except (ConfigError, RunLockedError, CheckpointError, DataNotFoundError) as err:
            sys.exit(f"{type(err).__name__}: {err}")

    app.run(main, flags_parser=parse_flags)
