"""Shared pieces of the benchmarks: the entry point, environment, machine facts, FLOP
counts, timing, RSS, and the child process that steps a torch runner on request.

Every benchmark is ``python -m benchmarks.<name> --config=benchmarks/configs/<name>.py:ARGS``
with big_vision arguments (``preset=shd-rec,batch=64``) and ``--config.<field>=value``
overrides, as the training entry points take (``experiments/main.py``); ``main`` below is
that boilerplate. Nothing here imports JAX at module level, so ``ensure_malloc_tuning`` can
re-exec the process before JAX (or torch) allocates anything.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# glibc malloc settings for the benchmark processes. XLA allocates the step's large
# buffers (the scan residuals: ~1 GB for S-MNIST) afresh at every call, and on this VM
# every first touch of a 4 KB page faults (~0.1-0.2 s per step). hugetlb=1 backs large
# blocks with transparent huge pages (one fault per 2 MB); with mmap_max=0 and a high
# trim threshold as well, a 200 MB output re-allocated in a loop went from 50,000 page
# faults per call to ~1,000. Both JAX and torch run under the same settings; users get
# the same by exporting GLIBC_TUNABLES before starting Python.
MALLOC_TUNABLES = (
    "glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
)
# How this process image was set up: "tuned" (re-executed with MALLOC_TUNABLES added) or
# "plain" (re-executed again without them). Children inherit it and keep the parent's.
_REEXEC_FLAG = "TCLIF_BENCH_REEXEC"
_SAVED_TUNABLES = "TCLIF_BENCH_GLIBC_TUNABLES"  # GLIBC_TUNABLES before "tuned" added ours


def ensure_malloc_tuning(enabled: bool) -> None:
    """Give this process ``GLIBC_TUNABLES`` = ``MALLOC_TUNABLES`` (``enabled``) or the
    caller's own settings, re-executing Python when that changes anything (glibc reads
    them at start-up). Only on Linux with glibc and only when run as
    ``python -m benchmarks.<tool>``, never inside another program.

    ``main`` calls it twice: before parsing flags with ``True`` (the default, so the usual
    run re-executes once, before anything heavy is imported) and with the config's
    ``malloc_tuning`` after, which re-executes once more only to turn the settings off.
    OpenMP settings are left alone here: ``step_time`` runs torch in its own process with
    its defaults, or sets ``OMP_WAIT_POLICY=PASSIVE`` when it shares this one."""
    if not sys.platform.startswith("linux"):
        return
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if main_spec is None or not main_spec.name.startswith("benchmarks."):
        return
    if "glibc" not in " ".join(platform.libc_ver()):
        return
    state = os.environ.get(_REEXEC_FLAG, "")
    env = dict(os.environ)
    if enabled and not state:
        env[_SAVED_TUNABLES] = env.get("GLIBC_TUNABLES", "")
        env["GLIBC_TUNABLES"] = ":".join(x for x in (env[_SAVED_TUNABLES], MALLOC_TUNABLES) if x)
        env[_REEXEC_FLAG] = "tuned"
    elif not enabled and state == "tuned":
        saved = env.pop(_SAVED_TUNABLES, "")
        if saved:
            env["GLIBC_TUNABLES"] = saved
        else:
            env.pop("GLIBC_TUNABLES", None)
        env[_REEXEC_FLAG] = "plain"
    else:
        return
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


# ----------------------------------------------------------------------------- entry point


def config_file(name: str) -> str:
    """The absolute path of ``benchmarks/configs/<name>.py``."""
    return os.path.join(ROOT, "benchmarks", "configs", f"{name}.py")


def _flag_value(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def config_args(name: str, **fields) -> list[str]:
    """Command-line arguments that give ``benchmarks.<name>`` its default config with
    ``fields`` overridden (``--config.<field>=value``): how one benchmark starts another."""
    return [f"--config={config_file(name)}"] + [
        f"--config.{k}={_flag_value(v)}" for k, v in fields.items()
    ]


def main(name: str, run: Callable[..., Any], **internal) -> None:
    """``python -m benchmarks.<name>``: parse ``--config`` (``benchmarks/configs/<name>.py``
    unless given, locked: an unknown field is an error) and call ``run(config, **flags)``.

    ``internal`` names extra flags with their defaults (a bool makes a boolean flag,
    anything else a string flag): the subprocess modes one benchmark starts another in,
    not meant to be typed by hand.
    """
    from absl import app, flags, logging
    from ml_collections import config_flags

    from experiments.main import check_argv, parse_flags

    ensure_malloc_tuning(True)  # before the config file imports JAX (see the docstring)
    check_argv(config_file(name))
    config = config_flags.DEFINE_config_file(
        "config",
        config_file(name),
        f"Config file and its argument, e.g. benchmarks/configs/{name}.py:preset=shd-rec "
        f"(default: benchmarks/configs/{name}.py); override fields with --config.<field>=.",
        lock_config=True,
    )
    extra = {}
    for flag, default in internal.items():
        define = flags.DEFINE_boolean if isinstance(default, bool) else flags.DEFINE_string
        extra[flag] = define(flag, default, "Internal: used by the benchmarks' own subprocesses.")

    def _main(argv):
        if len(argv) > 1:
            raise app.UsageError(
                f"Unexpected arguments {argv[1:]}: settings go in "
                f"--config=benchmarks/configs/{name}.py:key=value,... or --config.<key>=value."
            )
        if not flags.FLAGS["verbosity"].present:
            # Warnings and errors only (JAX logs its backend search at INFO under absl);
            # --verbosity=0 brings the INFO lines back.
            logging.set_verbosity(logging.WARNING)
        cfg = config.value
        ensure_malloc_tuning(cfg.malloc_tuning)
        run(cfg, **{k: v.value for k, v in extra.items()})

    app.run(_main, flags_parser=parse_flags)


def choose_list(name: str, value: str, valid: Sequence[str], every: Sequence[str]) -> list[str]:
    """``value`` as a list: one of ``valid``, a comma list of them, or ``"all"`` (``every``).

    An unknown item is a ValueError naming the valid ones.
    """
    items = list(every) if value == "all" else [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in valid]
    if bad or not items:
        raise ValueError(
            f"{name}={value!r}: unknown {bad or 'empty list'}; valid: {', '.join(valid)}, a "
            f"comma list of them (--config.{name}=\"a,b\") or 'all'."
        )
    return items


def check_choice(name: str, value, valid) -> None:
    """A ValueError naming the valid values unless ``value`` is one of them."""
    if value not in valid:
        raise ValueError(f"{name}={value!r} is not valid; choose one of: {', '.join(valid)}.")


def check_positive(config, fields: Sequence[str]) -> None:
    """A ValueError naming the first of ``config``'s ``fields`` that is not positive."""
    for field in fields:
        if int(config[field]) <= 0:
            raise ValueError(f"{field}={config[field]} must be positive.")


def preset_config(name: str):
    """``tclif_jax.config.PRESETS[name]``, or a ValueError listing the presets."""
    from tclif_jax.config import PRESETS

    check_choice("preset", name, PRESETS)
    return PRESETS[name]


def log_to(json_output: bool) -> Callable[..., None]:
    """``print`` for progress: to stderr when stdout carries the JSON result."""
    stream = sys.stderr if json_output else sys.stdout
    return lambda *a: print(*a, file=stream, flush=True)


def command(name: str) -> str:
    """The command line this process was started with (for the JSON record)."""
    return f"python -m benchmarks.{name} " + " ".join(sys.argv[1:])


# ----------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine_info(device=None) -> dict[str, Any]:
    """CPU/GPU, core count, library versions, date: what RESULTS.md tables need."""
    import flax
    import jax
    import optax

    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host_cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "bf16_hardware": sorted(cpu_flags() & {"avx512_bf16", "amx_bf16"}),
        "backend": jax.default_backend(),
        "device": str(device or jax.devices()[0].device_kind),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "loadavg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    return info


# ----------------------------------------------------------------------------- FLOPs


def matmul_flops(
    preset_widths: Sequence[int],
    in_features: int,
    num_classes: int,
    recurrent: Sequence[bool],
    batch: int,
    steps: int,
    *,
    readout_per_step: bool = False,
) -> dict[str, float]:
    """Matrix-multiply FLOPs of one train step (2 per multiply-add), counted by hand.

    Forward: every Linear at every step. Backward: the weight gradient of every
    Linear, and the input gradient of every Linear except the first (the data gets no
    gradient). ``readout_per_step`` counts the readout as the official code runs it
    (a Linear at each step); our networks apply it once to the spike sum.
    """
    rows = batch * steps
    widths = (in_features,) + tuple(preset_widths)
    fwd = bwd = 0.0
    for i in range(len(preset_widths)):
        m, n = widths[i], widths[i + 1]
        f = 2.0 * rows * m * n
        fwd += f
        bwd += f * (1 if i == 0 else 2)
        if i < len(recurrent) and recurrent[i]:
            f = 2.0 * rows * n * n
            fwd += f
            bwd += 2 * f
    ro_rows = rows if readout_per_step else batch
    f = 2.0 * ro_rows * widths[-1] * num_classes
    fwd += f
    bwd += 2 * f
    return {"forward": fwd, "backward": bwd, "total": fwd + bwd}


def config_flops(net, batch: int, steps: int, **kwargs) -> dict[str, float]:
    """``matmul_flops`` of a ``tclif_jax.config.NetworkConfig`` (e.g. ``PRESETS[name]``)."""
    return matmul_flops(
        net.hidden, net.in_features, net.num_classes, net.recurrent, batch, steps, **kwargs
    )


def xla_flops(compiled) -> float | None:
    """FLOPs from XLA's cost analysis of a compiled function (None if unavailable).

    On CPU, loops are counted once per body, not once per iteration, so for a scan
    this is far below the executed work; we report it but use the counted FLOPs.
    """
    try:
        ca = compiled.cost_analysis()
        if isinstance(ca, (list, tuple)):
            ca = ca[0]
        return float(ca.get("flops", 0.0)) or None
    except Exception:  # noqa: BLE001 - optional diagnostic only
        return None


# ----------------------------------------------------------------------------- timing


def summarize(times: Sequence[float]) -> dict[str, float]:
    ts = sorted(times)
    q = statistics.quantiles(ts, n=4) if len(ts) >= 2 else [ts[0]] * 3
    return {
        "median_s": statistics.median(ts),
        "min_s": ts[0],
        "max_s": ts[-1],
        "iqr_s": q[2] - q[0],
        "n": len(ts),
    }


def bootstrap_interval(values, rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """The 2.5% and 97.5% quantiles of the median over resamples of ``values``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    v = np.asarray(values, np.float64)
    medians = np.median(rng.choice(v, (rounds, len(v))), axis=1)
    return float(np.quantile(medians, 0.025)), float(np.quantile(medians, 0.975))


def timed(fn: Callable[[], Any], block: Callable[[Any], Any]) -> float:
    t0 = time.perf_counter()
    block(fn())
    return time.perf_counter() - t0


def peak_rss_bytes() -> int:
    """Peak resident set size of this process image.

    Linux: ``VmHWM`` from /proc/self/status (per address space, so it restarts at exec,
    unlike ``ru_maxrss``, which survives exec and would report a parent's peak).
    Elsewhere: ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) * (1 if sys.platform == "darwin" else 1024)


def run_json_subprocess(module: str, args: Sequence[str], timeout: float = 3600) -> dict:
    """Run ``python -m module args`` and parse the last line of its stdout as JSON."""
    return run_json_subprocesses(module, [args], jobs=1, timeout=timeout)[0]


def run_json_subprocesses(
    module: str, arg_lists: Sequence[Sequence[str]], jobs: int = 1, timeout: float = 3600
) -> list[dict]:
    """Run ``python -m module args`` for each args (at most ``jobs`` at a time); parse the
    last JSON line of each stdout. Each run is its own process, so peaks never mix."""
    results: list[dict | None] = [None] * len(arg_lists)
    running: list[tuple[int, subprocess.Popen, float]] = []
    pending = list(enumerate(arg_lists))

    def finish(i, proc):
        stdout, stderr = proc.communicate()
        lines = [ln for ln in stdout.strip().splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            results[i] = {"error": (stderr or stdout)[-2000:], "returncode": proc.returncode}
        else:
            results[i] = json.loads(lines[-1])

    while pending or running:
        while pending and len(running) < max(1, jobs):
            i, args = pending.pop(0)
            proc = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env=dict(os.environ),
            )
            running.append((i, proc, time.time()))
        i, proc, t0 = running.pop(0)
        try:
            proc.wait(timeout=max(1.0, timeout - (time.time() - t0)))
        except subprocess.TimeoutExpired:
            proc.kill()
        finish(i, proc)
    return results  # type: ignore[return-value]


# ----------------------------------------------------------------------------- step workers


def torch_device(choice: str) -> str:
    """The torch device for ``config.torch_device``: "auto" is cuda when JAX runs on a GPU."""
    if choice != "auto":
        return choice
    import jax

    return "cuda" if jax.default_backend() == "gpu" else "cpu"


class StepWorker:
    """A runner in a child process, ``python -m <module> <args>``, that steps on request
    and times each step itself, so the pipe is not timed. The child runs ``serve_steps``.

    Protocol, one line of space-separated fields each way: the child prints ``ready ...``
    once built; for each ``step`` it reads it prints ``<seconds> ...``; any other line
    (``quit``) or the end of its input ends it.
    """

    def __init__(self, name: str, module: str, args: Sequence[str]):
        self.name = name
        self.cmd = [sys.executable, "-m", module, *args]
        self.proc = subprocess.Popen(
            self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )

    def ready_line(self) -> list[str]:
        """Wait for the child's ``ready`` line (it builds while this process compiles) and
        return its fields after ``ready``."""
        ready = self.proc.stdout.readline().split()
        if not ready or ready[0] != "ready":
            self.proc.kill()
            raise SystemExit(
                f"The {self.name} worker did not start; run it alone to see why: "
                + " ".join(self.cmd)
            )
        return ready[1:]

    def step_line(self) -> tuple[float, list[str]]:
        """One step in the child: the seconds it timed, and the line's other fields."""
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().split()
        if not line:
            raise SystemExit(f"The {self.name} worker exited during a step.")
        return float(line[0]), line[1:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)


def serve_steps(ready: Sequence[Any], step: Callable[[], Sequence[Any]]) -> None:
    """Child side of ``StepWorker``: print ``ready *ready``, then ``*step()`` (seconds
    first) for every ``step`` line on stdin."""
    print("ready", *ready, flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        print(*step(), flush=True)
