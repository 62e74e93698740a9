"""Shared entry point: ``python -m experiments.<task> --config=... --workdir=...``.

Every field of the config can be overridden on the command line
(``--config.optimizer.learning_rate=1e-3``), before or after ``--config``; an unknown field
is a one-line error naming the valid ones. Rerunning with the same ``--workdir`` resumes
from its last checkpoint. The process-wide set-up lives here and nowhere in the library:

* logging (orbax's per-save chatter is dropped; processes other than 0 log warnings only);
* multi-process runs (``config.distributed``): ``jax.distributed.initialize()`` before any
  other JAX call, with the gloo collectives on CPU, and a clear error instead of a hang or
  an abort when the processes do not all join in time;
* checks before any work (``preflight``): every config field, the data fields, the neuron
  settings, the batch against the dataset's size and the work directory itself, before the
  work directory is created or touched;
* failures a user can act on (``describe_failure``): one line (at most five) on stderr
  saying what happened and what to do, an exit status per kind (below), and no traceback
  unless ``--verbose`` or ``TCLIF_VERBOSE=1`` asks for it. Output of orbax's worker
  threads after the error is silenced.

Exit status:

"""

from __future__ import annotations

import errno
import importlib.util
import logging as std_logging
import os
import re
import sys
import threading
import traceback

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


# ----------------------------------------------------------------------------- exit status

# (status, kind, when): the one table of exit statuses; the module docstring shows it.
EXIT_STATUS = (
    (0, "finished", "the run finished (or was already finished)"),
    (1, "bug", "an unexpected error; its traceback is printed (please report it)"),
    (
        2,
        "config",
        "a bad command line or config value, a batch larger than the data, or a "
        "resume under settings that change the result",
    ),
    (
        3,
        "distributed",
        "a half-set multi-process configuration, or processes that did not all join in time",
    ),
    (4, "locked", "another run holds the work directory (the message says how to check it)"),
    (5, "workdir", "the work directory is a file, read-only or not writable"),
    (6, "disk full", "no space left on the work directory's disk; rerun to resume"),
    (7, "data not found", "the dataset's files are missing or could not be downloaded"),
    (8, "data corrupt", "a data file cannot be read or holds non-finite values"),
    (9, "out of memory", "out of device or host memory; the message names the batch size"),
    (10, "checkpoint", "no checkpoint of the run can be read"),
    (11, "non-finite", "the loss, a gradient or an update became NaN/inf"),
    (143, "preempted", "stopped by SIGTERM after writing a checkpoint; rerun to resume"),
)
EXIT = {kind: status for status, kind, _ in EXIT_STATUS}


def exit_status_table() -> str:
    """``EXIT_STATUS`` as a Markdown table (the docs copy this)."""
    rows = [f"| {status} | {kind} | {when} |" for status, kind, when in EXIT_STATUS]
    return "\n".join(["| status | kind | when |", "|---|---|---|", *rows])


__doc__ += exit_status_table() + "\n"


class Failure(Exception):
    """A failure the entry point reports in one line: ``kind`` (a key of ``EXIT``) and the
    message."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _fail(kind: str, message: str):
    """Print ``message`` and exit with ``kind``'s status (command-line errors, before JAX)."""
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(EXIT[kind])


# ----------------------------------------------------------------------------- flags


def _load_config(spec: str):
    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("_tclif_config", path)
    if module_spec is None or not os.path.isfile(path):
        _fail("config", f"error: config file {path!r} not found (from --config={spec}).")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    try:
        return module.get_config(arg) if arg else module.get_config()
    except ValueError as err:
        _fail("config", f"error: --config={spec}: {err}")


def _check_override(config, dotted: str) -> None:
    node, walked = config, []
    for part in dotted.split("."):
        if not isinstance(node, config_dict.ConfigDict) or part not in node:
            where = ".".join(walked) or "the config"
            valid = (
                ", ".join(sorted(node.keys())) if isinstance(node, config_dict.ConfigDict) else ""
            )
            _fail(
                "config",
                f"error: unknown config field {dotted!r} (--config.{dotted}); "
                f"{where} has: {valid or 'no sub-fields'}.",
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
        _fail("config", f"error: {err}\nPass --helpshort for the flags.")


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

    Must run before any other JAX call. On CPU it selects the gloo collectives. A half-set
    configuration, or processes that have not all joined after ``initialization_timeout``
    seconds, end the process with the "distributed" exit status and one clear message
    (JAX itself would abort with a C++ trace).
    """
    try:
        kwargs = distributed_settings(config)
    except ValueError as err:
        _fail("distributed", f"error: {err}")
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
            os._exit(EXIT["distributed"])

    threading.Thread(target=give_up, daemon=True).start()
    # JAX's own deadline comes later, so the message above is what the user sees.
    jax.distributed.initialize(**dict(kwargs, initialization_timeout=timeout + 60))
    joined.set()


def default_workdir(config) -> str:
    return os.path.join("runs", f"{config.run_name}-{config.model.neuron}")


# ----------------------------------------------------------------------------- checks first


def _check_workdir(workdir: str) -> None:
    """``workdir`` is a folder, or can be created as one, and is writable: else the
    ``OSError`` that creating or writing it would raise, raised now."""
    path = os.path.abspath(workdir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", path)
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):  # a file where a parent folder should be
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        code = errno.EROFS if read_only else errno.EACCES
        raise OSError(code, os.strerror(code), existing)


def preflight(config, task: str, workdir: str) -> None:
    """Every check that needs no data and writes nothing, before the work directory is
    created: the config's fields (``tclif_jax.train.validate_config``: finite numbers
    everywhere, the data fields, and the network, so the neuron settings), the batch
    against the training examples, and the work directory. Raises
    ``ConfigError`` naming the field, or the ``OSError`` the work directory would give."""
    from tclif_jax.task_config import train_size
    from tclif_jax.train import ConfigError, validate_config

    validate_config(config)  # every field, data.* and neuron settings included
    bound = train_size(task, config.data)
    batch = config.train.batch_size
    if bound is not None and bound[0] < batch:
        n, field = bound
        raise ConfigError(
            f"config field train.batch_size={batch} is larger than the {n} training examples "
            f"({field}={n}); lower --config.train.batch_size or raise --config.{field}."
        )
    _check_workdir(workdir)


# ----------------------------------------------------------------------------- failures


def _chain(err: BaseException):
    """``err`` and the errors it was raised from or during."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


_OS_CODE = re.compile(r"os_error_code='?(\d+)|\[Errno (\d+)\]")


def _os_error(err: BaseException) -> tuple[int, str] | None:
    """``(errno, path)`` of the OS error behind ``err``: an ``OSError``, or one that orbax
    or tensorstore wrapped into its message (``os_error_code='28'``)."""
    for e in _chain(err):
        if isinstance(e, OSError) and e.errno:
            return e.errno, e.filename or ""
        m = _OS_CODE.search(str(e))
        if m:
            path = re.search(r'(?:local file|Failed writing:) "([^"]+)"', str(e))
            return int(m.group(1) or m.group(2)), path.group(1) if path else ""
    return None


def _out_of_memory(err: BaseException) -> str | None:
    """Which memory ran out, ``"host"`` or ``"device"``, when ``err`` says so; else None."""
    for e in _chain(err):
        if isinstance(e, MemoryError):
            return "host"
        if "RESOURCE_EXHAUSTED" in str(e) and "memory" in str(e).lower():
            return "device"
    return None


def _clip(message: str, lines: int = 5) -> str:
    """At most ``lines`` lines: the first ones, a count of those left out, and the last."""
    parts = message.splitlines()
    if len(parts) <= lines:
        return message
    dropped = len(parts) - (lines - 1)
    return "\n".join(
        parts[: lines - 2] + [f"  ... {dropped} more lines (--verbose shows all)", parts[-1]]
    )


def describe_failure(err: BaseException, config, workdir: str) -> Failure | None:
    """The one-line ``Failure`` (kind and message saying what to do) for an error of a run
    in ``workdir``; None for an unexpected one (a bug, to be shown with its traceback)."""
    from tclif_jax.checkpoint import CheckpointError
    from tclif_jax.data import DataCorruptError, DataNotFoundError
    from tclif_jax.train import ConfigError, NonFiniteLossError
    from tclif_jax.workdir import RunLockedError

    named = (
        (ConfigError, "config"),
        (RunLockedError, "locked"),
        (CheckpointError, "checkpoint"),
        (DataNotFoundError, "data not found"),
        (DataCorruptError, "data corrupt"),
        (NonFiniteLossError, "non-finite"),
    )
    for cls, kind in named:
        if isinstance(err, cls):
            return Failure(kind, _clip(f"{type(err).__name__}: {err}"))
    workdir = os.path.abspath(workdir)
    found = _os_error(err)
    if found is not None:
        code, path = found
        where = path or workdir
        if code in (errno.ENOSPC, errno.EDQUOT):
            what = "full" if code == errno.ENOSPC else "over your quota"
            return Failure(
                "disk full",
                f"error: the disk holding {workdir} is {what} (writing {where}). Free space "
                f"there (`df -h {workdir}`) and rerun the same command: a run resumes from its "
                "last complete checkpoint, and what the failed save left is removed.",
            )
        if code in (errno.ENOTDIR, errno.EEXIST) and not os.path.isdir(where):
            return Failure(
                "workdir",
                f"error: {where} is a file, where the work directory {workdir} needs a "
                "folder. Pass a --workdir that is a folder or does not exist yet (it is "
                "created), or move the file away.",
            )
        if code == errno.EROFS:
            return Failure(
                "workdir",
                f"error: cannot write in {where}: the file system is read-only. Pass a "
                "--workdir on a writable disk (or remount it read-write).",
            )
        if code in (errno.EACCES, errno.EPERM):
            return Failure(
                "workdir",
                f"error: cannot write in {where}: permission denied. Make it writable for "
                "this user, or pass a --workdir you can write to.",
            )
    memory = _out_of_memory(err)
    if memory is not None:
        tc = config.train
        in_eval = any(f.name == "_evaluate" for f in traceback.extract_tb(err.__traceback__))
        if in_eval:
            advice = (
                f"while evaluating with batches of {tc.eval_batch_size or tc.batch_size}: "
                "lower --config.train.eval_batch_size (the same --workdir resumes)"
            )
        else:
            advice = (
                f"with train.batch_size={tc.batch_size}: lower --config.train.batch_size "
                f"(e.g. {max(1, tc.batch_size // 2)}; a new --workdir, since it changes the "
                "result), or keep the data on the host with --config.data.on_device=False"
            )
        return Failure("out of memory", f"error: out of {memory} memory {advice}.")
    return None


def _verbose_env() -> bool:
    return os.environ.get("TCLIF_VERBOSE", "").lower() not in ("", "0", "false", "no")


def _exit_quietly(status: int) -> None:
    """Exit with ``status`` after the failure line, dropping what orbax's and asyncio's
    threads print while the interpreter shuts down ("Event loop is closed", "sys.meta_path
    is None"): the line above says what happened."""
    sys.stdout.flush()
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process
    std_logging.disable(std_logging.CRITICAL)
    sys.exit(status)


# ----------------------------------------------------------------------------- the entry point


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
    verbose_flag = flags.DEFINE_boolean(
        "verbose",
        False,
        "On a failure, print the traceback above the one-line message (also TCLIF_VERBOSE=1).",
    )

    def main(argv):
        if len(argv) > 1:
            _fail("config", f"error: unexpected arguments {argv[1:]}; pass --helpshort.")
        config = config_flag.value
        if config is None:
            _fail(
                "config",
                f"error: --config is required, e.g. --config=experiments/configs/{task}.py",
            )
        if config.task != task:
            _fail(
                "config",
                f"error: experiments.{task} was given a config for task {config.task!r}; "
                f"run experiments.{config.task} or pass configs/{task}.py.",
            )
        initialize_distributed(config)
        import jax

        setup_logging(jax.process_index())
        # After flags: keeps --help fast.
        from tclif_jax.train import Preempted, train_and_evaluate

        workdir = workdir_flag.value or default_workdir(config)
        verbose = verbose_flag.value or _verbose_env()
        try:
            preflight(config, task, workdir)
            train_and_evaluate(config, workdir)
        except Preempted as err:
            logging.warning("%s", err)
            print(err, file=sys.stderr, flush=True)
            sys.exit(EXIT["preempted"])
        except Exception as err:  # noqa: BLE001 - each kind gets its line, the rest a traceback
            failure = describe_failure(err, config, workdir)
            if failure is None:
                raise
            if verbose:
                traceback.print_exception(err)
            print(failure, file=sys.stderr, flush=True)
            if verbose:
                sys.exit(EXIT[failure.kind])
            _exit_quietly(EXIT[failure.kind])

    app.run(main, flags_parser=parse_flags)
