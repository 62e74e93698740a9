"""Shared pieces of the benchmarks: environment, machine facts, FLOP counts, timing, RSS.

Nothing here imports JAX at module level, so ``ensure_malloc_tuning`` can re-exec the
process before JAX (or torch) allocates anything.
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
from typing import Any, Callable, Sequence

# glibc malloc settings for the benchmark processes. XLA allocates the step's large
# buffers (the scan residuals: ~1 GB for S-MNIST) afresh at every call, and on this VM
# every first touch of a 4 KB page faults (~0.1-0.2 s per step). hugetlb=1 backs large
# blocks with transparent huge pages (one fault per 2 MB); with mmap_max=0 and a high
# trim threshold as well, a 200 MB output re-allocated in a loop went from 50,000 page
# faults per call to ~1,000. Both JAX and torch run under the same settings; users get
# the same by exporting GLIBC_TUNABLES before starting Python.
MALLOC_TUNABLES = ("glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:"
                   "glibc.malloc.trim_threshold=68719476736")
_REEXEC_FLAG = "TCLIF_BENCH_REEXEC"


def ensure_malloc_tuning(enabled: bool) -> None:
    """Re-exec this Python process once with ``GLIBC_TUNABLES`` = ``MALLOC_TUNABLES``
    (Linux with glibc, if ``enabled``), only when run as ``python -m benchmarks.<tool>``.

    OpenMP settings are left alone here: ``step_time`` runs torch in its own process with
    its defaults, or sets ``OMP_WAIT_POLICY=PASSIVE`` when it shares this one."""
    if not sys.platform.startswith("linux") or os.environ.get(_REEXEC_FLAG):
        return
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if main_spec is None or not main_spec.name.startswith("benchmarks."):
        return  # only when run as ``python -m benchmarks.<tool>``, never inside another program
    env = dict(os.environ)
    env[_REEXEC_FLAG] = "1"
    if not enabled or "glibc" not in " ".join(platform.libc_ver()):
        return
    env["GLIBC_TUNABLES"] = ":".join(x for x in (env.get("GLIBC_TUNABLES", ""), MALLOC_TUNABLES) if x)
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


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
    import jax
    import flax
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


def matmul_flops(preset_widths: Sequence[int], in_features: int, num_classes: int,
                 recurrent: Sequence[bool], batch: int, steps: int, *,
                 readout_per_step: bool = False) -> dict[str, float]:
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
    return {"median_s": statistics.median(ts), "min_s": ts[0], "max_s": ts[-1],
            "iqr_s": q[2] - q[0], "n": len(ts)}


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


def run_json_subprocesses(module: str, arg_lists: Sequence[Sequence[str]], jobs: int = 1,
                          timeout: float = 3600) -> list[dict]:
    """Run ``python -m module args`` for each args (at most ``jobs`` at a time); parse the
    last JSON line of each stdout. Each run is its own process, so peaks never mix."""
    cwd = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
            proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, cwd=cwd, env=dict(os.environ))
            running.append((i, proc, time.time()))
        i, proc, t0 = running.pop(0)
        try:
            proc.wait(timeout=max(1.0, timeout - (time.time() - t0)))
        except subprocess.TimeoutExpired:
            proc.kill()
        finish(i, proc)
    return results  # type: ignore[return-value]
