"""Multi-process training on JAX's distributed runtime, for real, on this machine.

Two processes of 2 CPU devices each join through a coordinator on 127.0.0.1 (gloo
collectives) and form one 4-device mesh. They must train exactly as one process with 4
devices and the same global batch, resume together after both are killed, and a process
left alone must stop with a clear timeout error rather than hang. Every child process is
killed at the end, even when a test fails.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import strip_times

RUN = [
    "--config=experiments/configs/delayed_cue.py",
    "--config.data.delay=20",
    "--config.data.num_train=512",
    "--config.data.num_test=60",  # not a multiple of the eval batch: padded and masked
    "--config.train.batch_size=32",
    "--config.train.num_epochs=3",
    "--config.train.checkpoint_every_steps=4",
    "--config.model.hidden=(32,32)",
    "--config.train.progress=False",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Processes:
    """Child processes started by a test, all killed when it ends."""

    def __init__(self, root):
        self.root, self.procs = root, []

    def start(self, args, devices: int, log):
        # The suite's compile flags (tests/conftest.py), with this child's device count.
        inherited = [
            f
            for f in os.environ.get("XLA_FLAGS", "").split()
            if not f.startswith("--xla_force_host_platform_device_count")
        ]
        flags = [*inherited, f"--xla_force_host_platform_device_count={devices}"]
        env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=" ".join(flags))
        proc = subprocess.Popen(
            [sys.executable, "-m", "experiments.delayed_cue", *args],
            cwd=self.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def pair(self, workdir, tmp_path, tag, extra=(), timeout=60):
        port = _free_port()
        procs = []
        for i in range(2):
            log = open(tmp_path / f"{tag}-{i}.log", "w")
            procs.append(
                self.start(
                    [
                        *RUN,
                        f"--workdir={workdir}",
                        *extra,
                        f"--config.distributed.coordinator_address=127.0.0.1:{port}",
                        "--config.distributed.num_processes=2",
                        f"--config.distributed.process_id={i}",
                        f"--config.distributed.initialization_timeout={timeout}",
                    ],
                    2,
                    log,
                )
            )
        return procs

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()


@pytest.fixture
def processes(root):
    group = _Processes(root)
    yield group
    group.kill_all()


def _wait(procs, timeout=240):
    deadline = time.time() + timeout
    for p in procs:
        p.wait(timeout=max(1, deadline - time.time()))
    return [p.returncode for p in procs]


def _records(workdir):
    return [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]


def _log(tmp_path, tag, i=0):
    return (tmp_path / f"{tag}-{i}.log").read_text()[-3000:]


@pytest.mark.slow
def test_two_processes_train_as_one_with_four_devices_and_resume_after_a_kill(processes, tmp_path):
    one = tmp_path / "one"
    with open(tmp_path / "one.log", "w") as log:
        ref = processes.start([*RUN, f"--workdir={one}"], 4, log)
    two = tmp_path / "two"
    pair = processes.pair(two, tmp_path, "two")
    assert _wait([ref]) == [0], (tmp_path / "one.log").read_text()[-3000:]
    assert _wait(pair) == [0, 0], _log(tmp_path, "two")
    a, b = _records(one), _records(two)
    assert [r["epoch"] for r in b] == [1, 2, 3] and b[-1]["step"] == 48
    for ra, rb in zip(a, b):
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=1e-5, abs=1e-5)
        assert rb["test_acc"] == pytest.approx(ra["test_acc"], abs=1e-6)
        assert rb["test_loss"] == pytest.approx(ra["test_loss"], rel=1e-5, abs=1e-5)
    # One writer: only process 0 logged results; both took part (process 1 logs warnings only).
    assert "best test accuracy" in _log(tmp_path, "two", 0)
    assert "best test accuracy" not in _log(tmp_path, "two", 1)

    # Kill both mid-run, restart both: the run resumes and ends as the uninterrupted one.
    killed = tmp_path / "killed"
    pair = processes.pair(killed, tmp_path, "k1")
    last = killed / "checkpoints" / "last"
    deadline = time.time() + 240
    while time.time() < deadline and not (
        last.is_dir() and any(s.isdigit() and int(s) >= 8 for s in os.listdir(last))
    ):
        assert all(p.poll() is None for p in pair), _log(tmp_path, "k1")
        time.sleep(0.02)
    for p in pair:
        p.send_signal(signal.SIGKILL)
    _wait(pair)
    steps = sorted(int(s) for s in os.listdir(last) if s.isdigit())
    assert steps and max(steps) < 48, f"the run ended before the kill: {steps}"
    pair = processes.pair(killed, tmp_path, "k2")
    assert _wait(pair) == [0, 0], _log(tmp_path, "k2")
    assert "Resumed from step" in _log(tmp_path, "k2", 0)
    assert strip_times(_records(killed)) == strip_times(b)


def test_a_process_left_alone_stops_with_a_clear_timeout_error(processes, tmp_path):
    port = _free_port()
    with open(tmp_path / "alone.log", "w") as log:
        proc = processes.start(
            [
                *RUN,
                f"--workdir={tmp_path / 'w'}",
                f"--config.distributed.coordinator_address=127.0.0.1:{port}",
                "--config.distributed.num_processes=2",
                "--config.distributed.process_id=1",
                "--config.distributed.initialization_timeout=5",
            ],
            2,
            log,
        )
    assert _wait([proc], timeout=120) == [3]
    out = (tmp_path / "alone.log").read_text()
    assert "process 1 of 2 could not join the JAX coordinator at 127.0.0.1" in out
    assert "within 5 s" in out and "Check failure" not in out


def test_a_half_set_distributed_config_is_a_clear_error(cli, tmp_path):
    res = cli(
        "experiments.delayed_cue",
        *RUN[:1],
        f"--workdir={tmp_path}",
        "--config.distributed.num_processes=2",
    )
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "needs distributed.coordinator_address, distributed.process_id too" in res.stderr
