"""Failures a user can act on: each probe of the failures issue, reproduced.

A run folder is never stranded by its lock (empty, garbage, or naming a process that is
not the run); operational errors (full disk, read-only or file work directory, corrupt
data, out of memory, bad values) end in at most five lines and an exit status of their
kind, checked before the work directory is touched where no data is needed; a full disk
leaves nothing that blocks the rerun; a resume prints no false orbax warning.
"""

import errno
import gzip
import json
import logging
import os
import struct
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from experiments import main
from experiments.configs import delayed_cue, smnist
from tclif_jax import checkpoint as ckpt_lib
from tclif_jax import train as train_lib
from tclif_jax.data import DataCorruptError, DataNotFoundError
from tclif_jax.workdir import RunLockedError, WorkdirLock

from conftest import strip_times

HOST = os.uname().nodename


def _mount_tmpfs(path, size, *options):
    """Mount a tmpfs of ``size`` bytes at ``path``; False where this process may not."""
    os.makedirs(path, exist_ok=True)
    opts = ",".join([f"size={size}", *options])
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True
    )
    return res.returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size, *options) -> path or None``: a small file system, unmounted after."""
    mounted = []

    def make(size, *options):
        path = tmp_path / f"fs{len(mounted)}"
        if not _mount_tmpfs(path, size, *options):
            return None
        mounted.append(path)
        return path

    yield make
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _lock_of(pid, host=HOST, **extra):
    return json.dumps({"pid": pid, "host": host, "started": time.time(), **extra})


@pytest.fixture
def sleeper():
    """A live process that is not a tclif_jax run."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


# ----------------------------------------------------------------------------- the lock


def _takeover_warnings(caplog):
    return [
        r.getMessage() for r in caplog.records if "Taking over the stale lock" in r.getMessage()
    ]


@pytest.mark.parametrize(
    "content,found",
    [
        (b"", "the lock file is empty (a run stopped while creating it, e.g. on a full disk)"),
        (b"\x00\x17garbage{", "the lock file holds no run's record (found '\\x00\\x17garbage{')"),
        (b'{"pid": "12"}', 'the lock file holds no run\'s record (found \'{"pid": "12"}\')'),
    ],
)
def test_an_empty_or_garbage_lock_is_taken_over_naming_what_was_found(
    tmp_path, caplog, content, found
):
    (tmp_path / ".lock").write_bytes(content)
    with WorkdirLock(str(tmp_path)):
        record = json.loads((tmp_path / ".lock").read_text())
        assert (record["pid"], record["host"]) == (os.getpid(), HOST)
    (warning,) = _takeover_warnings(caplog)
    assert warning == f"Taking over the stale lock {tmp_path / '.lock'}: {found}."
    assert os.listdir(tmp_path) == []  # released, and no temporary file left


def test_a_live_process_that_took_the_lock_is_named_with_the_command_to_check_it(tmp_path, sleeper):
    (tmp_path / ".lock").write_text(_lock_of(sleeper.pid))
    with pytest.raises(RunLockedError) as err:
        WorkdirLock(str(tmp_path)).acquire()
    msg = str(err.value)
    assert f"in use by another run: process {sleeper.pid} on this host ({HOST})" in msg
    assert "now running `" in msg and "time.sleep(120)" in msg
    assert f"Check it with `ps -p {sleeper.pid} -o pid,lstart,args`" in msg
    assert f"If it is not, the lock is stale: delete {tmp_path / '.lock'} and rerun." in msg
    assert len(msg.splitlines()) == 1
    assert os.listdir(tmp_path) == [".lock"]  # untouched, no temporary file left


def test_a_lock_whose_pid_was_reused_by_an_unrelated_process_is_taken_over(
    tmp_path, sleeper, caplog
):
    # The lock records its writer's start tick; a live process with that pid but another
    # start is not the writer.
    (tmp_path / ".lock").write_text(_lock_of(sleeper.pid, pid_start=1))
    with WorkdirLock(str(tmp_path)):
        pass
    (warning,) = _takeover_warnings(caplog)
    assert f"process {sleeper.pid}, which took it at " in warning
    assert "is gone; the pid now belongs to another process" in warning


def test_a_holder_on_another_host_is_named_with_what_to_do(tmp_path):
    (tmp_path / ".lock").write_text(_lock_of(4321, host="node-7"))
    with pytest.raises(RunLockedError) as err:
        WorkdirLock(str(tmp_path)).acquire()
    msg = str(err.value)
    assert "process 4321 on host node-7" in msg
    assert "Check it there with `ps -p 4321 -o pid,lstart,args`" in msg
    assert f"the lock is stale: delete {tmp_path / '.lock'} and rerun" in msg


def test_a_lock_that_cannot_be_written_leaves_no_file(tmp_path, tmpfs, monkeypatch):
    disk = tmpfs(64 * 1024)
    if disk is not None:  # a real full disk
        (disk / "w").mkdir()
        with open(disk / "fill", "wb", buffering=0) as f, pytest.raises(OSError):
            while True:
                f.write(b"\0" * 4096)
        folder = disk / "w"
    else:  # simulated
        folder = tmp_path / "w"

        def full(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as err:
        WorkdirLock(str(folder)).acquire()
    assert err.value.errno == errno.ENOSPC
    assert os.listdir(folder) == []  # neither a 0-byte .lock nor its temporary file
    failure = main.describe_failure(err.value, delayed_cue.get_config(), str(folder))
    assert failure.kind == "disk full" and main.EXIT[failure.kind] == 6


# ----------------------------------------------------------------------------- checks first


def _cue_config(**fields):
    c = delayed_cue.get_config()
    c.data.num_train, c.data.delay, c.train.progress = 128, 20, False
    for dotted, value in fields.items():
        section, name = dotted.split("__")
        c[section][name] = value
    return c


@pytest.mark.parametrize(
    "task,fields,message",
    [
        (
            "delayed_cue",
            {"data__delay": -5},
            "config field data.*: data.delay=-5 is not valid for 'delayed_cue': expected an "
            "integer >= 0.",
        ),
        (
            "delayed_cue",
            {"train__batch_size": 512},
            "config field train.batch_size=512 is larger than the 128 training examples "
            "(data.num_train=128); lower --config.train.batch_size or raise "
            "--config.data.num_train.",
        ),
        (
            "delayed_cue",
            {"train__batch_size": 64, "data__train_limit": 40},
            "config field train.batch_size=64 is larger than the 40 training examples "
            "(data.train_limit=40); lower --config.train.batch_size or raise "
            "--config.data.train_limit.",
        ),
        (
            "smnist",
            {"train__batch_size": 256, "data__train_limit": 100},
            "config field train.batch_size=256 is larger than the 100 training examples "
            "(data.train_limit=100); lower --config.train.batch_size or raise "
            "--config.data.train_limit.",
        ),
        (
            "delayed_cue",
            {"model__gamma": float("nan")},
            "config field model.gamma=nan is not valid",
        ),
        ("delayed_cue", {"model__v_th": float("inf")}, "config field model.v_th=inf is not valid"),
    ],
)
def test_bad_values_are_refused_before_the_work_directory_is_touched(
    tmp_path, task, fields, message
):
    config = smnist.get_config("ff") if task == "smnist" else _cue_config()
    for dotted, value in fields.items():
        section, name = dotted.split("__")
        config[section][name] = value
    with pytest.raises(train_lib.ConfigError) as err:
        main.preflight(config, task, str(tmp_path / "w"))
    assert str(err.value).startswith(message) and len(str(err.value).splitlines()) == 1
    assert not (tmp_path / "w").exists()
    assert main.describe_failure(err.value, config, str(tmp_path / "w")).kind == "config"


def test_a_work_directory_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "f").write_text("")
    for workdir in (tmp_path / "f", tmp_path / "f" / "sub"):
        with pytest.raises(NotADirectoryError) as err:
            main.preflight(_cue_config(), "delayed_cue", str(workdir))
        failure = main.describe_failure(err.value, _cue_config(), str(workdir))
        assert failure.kind == "workdir" and main.EXIT["workdir"] == 5
        assert str(failure) == (
            f"error: {tmp_path / 'f'} is a file, where the work directory {workdir} needs a "
            "folder. Pass a --workdir that is a folder or does not exist yet (it is created), "
            "or move the file away."
        )
    # the same error raised later (by os.makedirs in the lock) reads the same
    try:
        os.makedirs(tmp_path / "f", exist_ok=True)
    except FileExistsError as err:
        assert main.describe_failure(err, _cue_config(), str(tmp_path / "f")).kind == "workdir"


def test_a_read_only_work_directory_is_one_line(tmp_path, tmpfs, monkeypatch):
    disk = tmpfs(1024 * 1024, "ro")
    if disk is None:  # simulated: root ignores permission bits, so deny the access check
        disk = tmp_path
        monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(OSError) as err:
        main.preflight(_cue_config(), "delayed_cue", str(disk / "w"))
    failure = main.describe_failure(err.value, _cue_config(), str(disk / "w"))
    assert failure.kind == "workdir"
    assert str(failure).startswith(f"error: cannot write in {disk}: ")
    assert not (disk / "w").exists()
    # tensorstore's form of the same error, raised while saving a checkpoint
    wrapped = ValueError(
        f'PERMISSION_DENIED: Error writing local file "{disk}/w/x": Read-only file system '
        "[os_error_code='30']"
    )
    failure = main.describe_failure(wrapped, _cue_config(), str(disk / "w"))
    assert str(failure) == (
        f"error: cannot write in {disk}/w/x: the file system is read-only. Pass a --workdir "
        "on a writable disk (or remount it read-write)."
    )


# ----------------------------------------------------------------------------- the messages


@pytest.mark.parametrize(
    "error,kind,line",
    [
        (
            DataCorruptError("/d/train-images-idx3-ubyte.gz: cannot be decompressed."),
            "data corrupt",
            "DataCorruptError: /d/train-images-idx3-ubyte.gz: cannot be decompressed.",
        ),
        (
            DataNotFoundError("No MNIST in /d."),
            "data not found",
            "DataNotFoundError: No MNIST in /d.",
        ),
        (
            jax.errors.JaxRuntimeError(
                "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8589934592 bytes."
            ),
            "out of memory",
            "error: out of device memory with train.batch_size=64: lower "
            "--config.train.batch_size (e.g. 32; a new --workdir, since it changes the result), "
            "or keep the data on the host with --config.data.on_device=False.",
        ),
        (
            MemoryError(),
            "out of memory",
            "error: out of host memory with train.batch_size=64: lower --config.train.batch_size "
            "(e.g. 32; a new --workdir, since it changes the result), or keep the data on the "
            "host with --config.data.on_device=False.",
        ),
        (
            ValueError(
                'RESOURCE_EXHAUSTED: Error writing local file "/w/checkpoints/best/4.orbax-'
                'checkpoint-tmp/x": Failed to write 1807 bytes to file 11: No space left on '
                "device [os_error_code='28']"
            ),
            "disk full",
            "error: the disk holding /w is full (writing /w/checkpoints/best/4.orbax-checkpoint"
            "-tmp/x). Free space there (`df -h /w`) and rerun the same command: a run resumes "
            "from its last complete checkpoint, and what the failed save left is removed.",
        ),
        (RuntimeError("a bug"), None, None),
    ],
)
def test_each_failure_kind_is_one_line_with_its_status(error, kind, line):
    failure = main.describe_failure(error, _cue_config(), "/w")
    if kind is None:
        assert failure is None  # unexpected: shown with its traceback, status 1
        return
    assert (failure.kind, str(failure)) == (kind, line)
    assert main.EXIT[kind] not in (0, 1)


def test_out_of_memory_while_evaluating_names_the_eval_batch():
    def _evaluate():
        raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 1 GiB")

    try:
        _evaluate()
    except RuntimeError as err:
        failure = main.describe_failure(err, _cue_config(train__eval_batch_size=500), "/w")
    assert str(failure) == (
        "error: out of device memory while evaluating with batches of 500: lower "
        "--config.train.eval_batch_size (the same --workdir resumes)."
    )


def test_a_long_message_is_clipped_to_five_lines():
    err = train_lib.ConfigError(
        "head\n" + "\n".join(f"  f{i}: 1 -> 2" for i in range(20)) + "\nfix"
    )
    lines = str(main.describe_failure(err, _cue_config(), "/w")).splitlines()
    assert lines == [
        "ConfigError: head",
        "  f0: 1 -> 2",
        "  f1: 1 -> 2",
        "  ... 18 more lines (--verbose shows all)",
        "fix",
    ]


def test_a_half_set_distributed_config_is_one_line_with_its_status(capsys):
    config = _cue_config()
    config.distributed.num_processes = 2
    with pytest.raises(SystemExit) as err:
        main.initialize_distributed(config)
    assert err.value.code == main.EXIT["distributed"] == 3
    assert capsys.readouterr().err == (
        "error: A multi-process run needs distributed.coordinator_address, "
        "distributed.process_id too (or --config.distributed.auto=True on a cluster JAX "
        "detects: Cloud TPU, SLURM).\n"
    )


def test_the_exit_status_table_is_in_the_docstring_and_has_one_status_per_kind():
    assert main.exit_status_table() in main.__doc__
    statuses = [status for status, _, _ in main.EXIT_STATUS]
    assert len(set(statuses)) == len(statuses) == len(main.EXIT)
    assert main.EXIT["config"] == 2 and main.EXIT["preempted"] == 143


# ----------------------------------------------------------------------------- checkpoints


def _orbax_record(msg):
    return logging.LogRecord(
        "absl", logging.WARNING, "/x/orbax/checkpoint/m.py", 1, msg, None, None
    )


def test_what_a_save_prints_is_kept_when_it_succeeds_and_dropped_when_it_fails(caplog, capsys):
    absl = logging.getLogger("absl")
    with ckpt_lib._save_output_held():
        absl.handle(_orbax_record("a true warning"))
        print("a true note", file=sys.stderr)
        assert "a true warning" not in caplog.text
    assert "a true warning" in caplog.text and capsys.readouterr().err == "a true note\n"
    with pytest.raises(ValueError), ckpt_lib._save_output_held():
        absl.handle(_orbax_record("noise of a failed save"))
        print("Event loop is closed", file=sys.stderr)
        raise ValueError("disk full")
    assert "noise of a failed save" not in caplog.text and capsys.readouterr().err == ""


def test_a_resume_prints_no_false_orbax_warning(toy, tmp_path, caplog):
    train_lib.train_and_evaluate(toy.config(max_steps=4), str(tmp_path))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        train_lib.train_and_evaluate(toy.config(max_steps=12), str(tmp_path))
    assert "Resumed from step 4" in caplog.text
    assert "read only" not in caplog.text
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


class _SmallDisk:
    """A disk that fills during a checkpoint save. ``real``: a 150 KB tmpfs (one checkpoint
    of the toy is ~96 KB; None where none can be mounted). Otherwise simulated: the second
    save leaves its temporary folder under ``best/`` and raises orbax's error for ENOSPC."""

    def __init__(self, tmpfs, tmp_path, monkeypatch, real: bool):
        self.real, self.monkeypatch = real, monkeypatch
        if real:
            self.path = tmpfs(150 * 1024)
            return
        self.path = tmp_path / "disk"
        self.real_save = real_save = ckpt_lib.RunCheckpoints.save
        calls = []

        def save(ckpts, step, *args, **kwargs):
            calls.append(step)
            if len(calls) == 2:
                os.makedirs(os.path.join(ckpts.root, "best", f"{step}.orbax-checkpoint-tmp"))
                raise ValueError(
                    "RESOURCE_EXHAUSTED: Failed to write 1807 bytes to file 11: No space "
                    "left on device [os_error_code='28']"
                )
            return real_save(ckpts, step, *args, **kwargs)

        monkeypatch.setattr(ckpt_lib.RunCheckpoints, "save", save)

    def grow(self):
        if self.real:
            subprocess.run(["mount", "-o", "remount,size=4m", str(self.path)], check=True)
        else:  # not monkeypatch.undo(): that would undo the toy task too
            self.monkeypatch.setattr(ckpt_lib.RunCheckpoints, "save", self.real_save)


@pytest.mark.parametrize("disk_kind", ["real", "simulated"])
def test_a_full_disk_is_one_line_and_the_rerun_removes_the_unfinished_save_and_resumes(
    toy, tmp_path, tmpfs, monkeypatch, caplog, disk_kind
):
    full = train_lib.train_and_evaluate(toy.config(), str(tmp_path / "full"))
    disk = _SmallDisk(tmpfs, tmp_path, monkeypatch, real=disk_kind == "real")
    if disk.path is None:
        pytest.skip("cannot mount a tmpfs here (needs root); the simulated disk still runs")
    wd = disk.path / "w"
    caplog.clear()
    with pytest.raises(Exception) as err:
        train_lib.train_and_evaluate(toy.config(), str(wd))
    failure = main.describe_failure(err.value, toy.config(), str(wd))
    assert failure.kind == "disk full" and len(str(failure).splitlines()) == 1
    assert not [r for r in caplog.records if "orbax" in r.pathname]  # no orbax noise
    assert not (wd / ".lock").exists()
    saves = [wd / "checkpoints" / sub for sub in ("last", "best")]
    unfinished = [p for d in saves if d.is_dir() for p in d.iterdir() if "tmp" in p.name]
    # A real disk fills wherever the bytes run out first: inside a checkpoint save (which
    # leaves its temporary folder) or in another write, depending on when orbax deletes old
    # checkpoints. The simulated disk always leaves one, so removal is always checked there.
    assert len(unfinished) == (1 if disk_kind == "simulated" else len(unfinished)) <= 1
    disk.grow()
    caplog.clear()
    rest = train_lib.train_and_evaluate(toy.config(), str(wd))
    for path in unfinished:
        assert f"Removed {path}, the remains of a checkpoint save" in caplog.text
        assert not path.exists()
    assert strip_times(rest["history"]) == strip_times(full["history"])


# ----------------------------------------------------------------------------- the CLI


def _write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _corrupt_mnist(folder):
    """A tiny MNIST IDX folder whose training images are truncated mid-stream."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 10)):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    images = folder / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:200])
    return folder


SMALL = [
    "--config.data.delay=20",
    "--config.data.num_train=128",
    "--config.data.num_test=64",
    "--config.train.batch_size=32",
    "--config.train.num_epochs=2",
    "--config.model.hidden=(16,16)",
    "--config.train.progress=False",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "probe",
    ["file", "data", "batch", "gamma", "corrupt", "locked", "read-only", "disk-full"],
)
def test_each_cli_probe_prints_at_most_five_lines(probe, tmp_path, tmpfs, cli, sleeper):
    task, wd, extra = "delayed_cue", tmp_path / "w", []
    if probe == "file":
        wd.write_text("")
    elif probe == "data":
        extra = ["--config.data.delay=-5"]
    elif probe == "batch":
        extra = ["--config.train.batch_size=512"]
    elif probe == "gamma":
        extra = ["--config.model.gamma=nan"]
    elif probe == "corrupt":
        task = "smnist"
        extra = [
            f"--config.data.dir={_corrupt_mnist(tmp_path / 'mnist')}",
            "--config.data.source=idx",
        ]
    elif probe == "locked":
        wd.mkdir()
        (wd / ".lock").write_text(_lock_of(sleeper.pid))
    else:
        disk = tmpfs(1024 * 1024, "ro") if probe == "read-only" else tmpfs(200 * 1024)
        if disk is None:
            pytest.skip("cannot mount a tmpfs here (the in-process tests simulate this probe)")
        wd = disk / "w"
    args = [f"--config=experiments/configs/{task}.py", f"--workdir={wd}"]
    res = cli(f"experiments.{task}", *args, *(SMALL if task == "delayed_cue" else []), *extra)
    kind = {
        "file": "workdir",
        "data": "config",
        "batch": "config",
        "gamma": "config",
        "corrupt": "data corrupt",
        "locked": "locked",
        "read-only": "workdir",
        "disk-full": "disk full",
    }[probe]
    output = (res.stdout + res.stderr).strip().splitlines()
    assert res.returncode == main.EXIT[kind], res.stderr[-3000:]
    assert len(output) <= 5, "\n".join(output)
    assert "Traceback" not in res.stderr
    if probe == "disk-full":
        assert output[-1].startswith(f"error: the disk holding {wd} is full")
        verbose = cli(f"experiments.{task}", *args, *SMALL, env={"TCLIF_VERBOSE": "1"})
        assert "Traceback" in verbose.stderr and verbose.returncode == main.EXIT[kind]
    if probe != "locked":
        assert not (wd / ".lock").exists()
    if probe in ("data", "batch", "gamma"):
        assert not wd.exists()


@pytest.mark.slow
def test_verbose_shows_the_traceback(tmp_path, cli):
    (tmp_path / "f").write_text("")
    base = ["experiments.delayed_cue", "--config=experiments/configs/delayed_cue.py"]
    res = cli(*base, f"--workdir={tmp_path / 'f'}", "--verbose")
    assert res.returncode == main.EXIT["workdir"]
    assert "Traceback" in res.stderr and "NotADirectoryError" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'f'} is a file")
