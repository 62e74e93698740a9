"""Two processes x 2 CPU devices against one process x 4 devices: the cost of JAX's
multi-process runtime on one machine (see benchmarks/configs/multihost.py)."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile

from benchmarks import common


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(config, workdir: str, processes: int) -> list[float]:
    """Seconds per step of each epoch after the first, from the run's metrics.jsonl."""
    args = [
        "--config=experiments/configs/delayed_cue.py",
        f"--workdir={workdir}",
        f"--config.data.num_train={config.num_train}",
        f"--config.data.delay={config.delay}",
        f"--config.train.batch_size={config.batch}",
        f"--config.train.num_epochs={config.epochs}",
        f"--config.model.hidden=({config.hidden},{config.hidden})",
        "--config.train.progress=False",
    ]
    devices = 4 // processes
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
    )
    cmd = [sys.executable, "-m", "experiments.delayed_cue", *args]
    if processes > 1:
        port = _free_port()
        cmd += [
            f"--config.distributed.coordinator_address=127.0.0.1:{port}",
            f"--config.distributed.num_processes={processes}",
        ]
        procs = [
            subprocess.Popen(
                cmd + [f"--config.distributed.process_id={i}"],
                cwd=common.ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i in range(processes)
        ]
    else:
        procs = [
            subprocess.Popen(
                cmd, cwd=common.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        ]
    try:
        codes = [p.wait(timeout=3600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    if any(codes):
        raise RuntimeError(f"{processes}-process run failed: exit codes {codes} ({workdir})")
    steps = config.num_train // config.batch
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    return [r["epoch_time"] / steps for r in records[1:]]


def run(config) -> None:
    log = common.log_to(config.json)
    times = {"1 process x 4 devices": [], "2 processes x 2 devices": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(config.rounds):
            for name, processes in (("1 process x 4 devices", 1), ("2 processes x 2 devices", 2)):
                t = _run(config, os.path.join(tmp, f"{processes}-{r}"), processes)
                times[name] += t
                log(f"round {r + 1}: {name}: {[round(x, 4) for x in t]} s per step")
    result = {name: common.summarize(t) for name, t in times.items()}
    one = statistics.median(times["1 process x 4 devices"])
    two = statistics.median(times["2 processes x 2 devices"])
    out = {
        "command": common.command("multihost"),
        "machine": common.machine_info(),
        "config": config.to_dict(),
        "seconds_per_step": result,
        "ratio_two_over_one": two / one,
    }
    if config.json:
        print(json.dumps(out, indent=1))
    else:
        for name, s in result.items():
            print(
                f"{name:>26}: median {s['median_s']:.4f} s per step (min {s['min_s']:.4f}, "
                f"max {s['max_s']:.4f})"
            )
        print(f"two processes / one process: {two / one:.2f}x")


if __name__ == "__main__":
    common.main("multihost", run)
