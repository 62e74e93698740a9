"""Time one full train step (forward, backward, Adam update) of a preset on random data.

Examples (the config file's docstring lists every field)::

    python -m benchmarks.step_time --config=benchmarks/configs/step_time.py:preset=smnist-ff-64,batch=256
    python -m benchmarks.step_time \\
        --config=benchmarks/configs/step_time.py:preset=smnist-rec-64,batch=256,strategy=all \\
        --config.matmul_dtype=all --config.against=torch --config.json=True

What it does:

* builds each requested JAX configuration (strategy x matmul dtype) with
  ``tclif_jax.train.make_train_step`` and, with ``against=torch``, our PyTorch
  reference (``benchmarks/torch_reference.py``) with the same weights, by default in a
  worker process of its own (``torch_process=separate``) that steps when told to;
* compiles (timed separately), runs ``warmup`` steps, then ``repeats`` rounds in
  which every configuration runs in turn (interleaved, so that load from other
  processes hits all of them alike): ``settle`` untimed steps, then one step timed
  with ``block_until_ready``. The settle step matters on a small machine: whichever
  step runs first after the other framework's was 0.3-0.4 s slower on smnist-ff-64
  (measured with either JAX dtype in that position), so without it the timing depends
  on the order of the configurations rather than on the configuration;
* measures the f32 and bf16 matmul peak (a 2048^3 matmul, best of 3) once per round;
* reports the median and spread per configuration, the counted matmul FLOPs of the
  step, GFLOP/s, the fraction of the f32 peak, ratios against torch, and the peak RSS
  of each configuration measured alone in a fresh subprocess (``memory=False`` skips).

Threads: torch uses ``torch.set_num_threads(threads)`` (default: all cores); XLA's
CPU client uses all cores (its default). Both therefore use the same cores.

Why a separate torch process: in one process, torch's OpenMP threads (which spin for a
while after each parallel region) compete with XLA's for the 2 cores. Measured on
smnist-ff-64: the JAX f32 step that followed a torch step took 2.2-2.7 s under the
default OpenMP policy against 1.9 s with ``OMP_WAIT_POLICY=PASSIVE``, and PASSIVE in
turn slowed torch from ~3.4 s to ~4.8 s. In its own process torch keeps its default
OpenMP settings and idles while JAX runs. ``torch_process=same`` runs it in this process
under ``OMP_WAIT_POLICY=PASSIVE`` instead (the default on GPUs, where one process owns the
device). Both processes use glibc malloc settings that cut the page faults of
re-allocating the step's large buffers (``benchmarks.common.MALLOC_TUNABLES``;
``malloc_tuning=False`` turns them off), and torch flushes denormals to zero as XLA does.
"""

from __future__ import annotations

import json
import os
import time

from benchmarks import common

DTYPES = ("float32", "bfloat16")
STRATS = ("layerwise", "fused")


def make_data(preset: str, batch: int, steps: int, seed: int):
    """Random inputs of the preset's shape: pixels in [0, 1] for S-MNIST, spike counts
    (Bernoulli 0.05) for the audio sets; random labels."""
    import numpy as np

    net = common.preset_config(preset)
    rng = np.random.default_rng(seed)
    shape = (batch, steps, net.in_features)
    if net.in_features == 1:
        x = rng.random(shape, dtype=np.float32)
    else:
        x = (rng.random(shape, dtype=np.float32) < 0.05).astype(np.float32)
    y = rng.integers(0, net.num_classes, size=(batch,)).astype(np.int32)
    return x, y


class JaxRunner:
    """One JAX configuration: its model, compiled train step, and the step's state."""

    def __init__(self, preset, batch, steps, strategy, mdt, remat_chunk, seed, x, y):
        import jax
        import jax.numpy as jnp
        import optax

        from tclif_jax.models import from_preset, parameters
        from tclif_jax.train import make_train_step

        self.model = from_preset(
            preset, seed=seed, strategy=strategy, matmul_dtype=mdt, remat_chunk=remat_chunk
        )
        self.strategy, self.mdt = strategy, mdt
        self.resolved = self.model.execution.resolved_strategy()
        auto = f"({self.resolved})" if strategy == "auto" else ""
        self.name = f"jax-{strategy}{auto}-{mdt}"
        tx = optax.adam(5e-4)
        # A copy: the step donates its params, which must not be the module's own buffers
        # (the torch reference in this process copies its weights from the module).
        params = jax.tree.map(jnp.array, parameters(self.model))
        opt = tx.init(params)
        self.x, self.y = jax.device_put(x), jax.device_put(y)
        self.key = jax.random.key(seed)
        step = make_train_step(self.model, tx)
        t0 = time.perf_counter()
        self.compiled = step.lower(params, opt, self.x, self.y, self.key).compile()
        self.compile_s = time.perf_counter() - t0
        self.xla_flops = common.xla_flops(self.compiled)
        self.state = [params, opt]
        self.metrics = None

    def step(self):
        self.state[0], self.state[1], self.metrics = self.compiled(
            self.state[0], self.state[1], self.x, self.y, self.key
        )
        return self.state[0]

    @staticmethod
    def block(out):
        import jax

        jax.block_until_ready(out)


class TorchRunner:
    """Our PyTorch reference in this process, with the weights of ``model``."""

    def __init__(self, model, preset, x, y, threads, device="cpu"):
        import numpy as np
        import torch

        from benchmarks.torch_reference import (
            build_from_model,
            make_torch_train_step,
            official_stride,
        )

        torch.set_num_threads(threads)
        # XLA's CPU runtime flushes denormals to zero; without the same setting, torch
        # slows down several-fold once the backward's adjoints decay into denormals.
        torch.set_flush_denormal(True)
        self.device = torch.device(device)
        self.net = build_from_model(model, official_stride(preset)).to(self.device)
        self._step = make_torch_train_step(self.net)
        self.x = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        self.y = torch.from_numpy(y.astype(np.int64)).to(self.device)
        self.name = "torch-reference" + ("-cuda" if self.device.type == "cuda" else "")
        self.compile_s = 0.0
        self.xla_flops = None

    def step(self):
        return self._step(self.x, self.y)

    def block(self, out):
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        return out


class TorchWorker(common.StepWorker):
    """The torch reference in a child process, stepping on request (``--torch_worker``).

    The child builds the same weights (``from_preset(preset, seed)``) and data
    (``make_data``) and times each step itself, so the pipe is not timed."""

    def __init__(self, config, steps, threads):
        fields = dict(preset=config.preset, batch=config.batch, steps=steps, seed=config.seed)
        fields.update(threads=threads, torch_device=config.torch_device)
        fields.update(malloc_tuning=config.malloc_tuning)
        args = ["--torch_worker", *common.config_args("step_time", **fields)]
        super().__init__("torch", "benchmarks.step_time", args)
        (self.device,) = self.ready_line()
        self.name = "torch-reference" + ("-cuda" if self.device.startswith("cuda") else "")
        self.compile_s = 0.0
        self.xla_flops = None

    def timed_step(self) -> float:
        return self.step_line()[0]


def serve_torch_steps(config) -> None:
    """Child side of ``TorchWorker``: announce readiness, then time one step per request."""
    from tclif_jax.models import from_preset

    steps = config.steps or common.preset_config(config.preset).time_steps
    x, y = make_data(config.preset, config.batch, steps, config.seed)
    r = TorchRunner(
        from_preset(config.preset, seed=config.seed),
        config.preset,
        x,
        y,
        config.threads or os.cpu_count(),
        common.torch_device(config.torch_device),
    )
    common.serve_steps((r.device,), lambda: (common.timed(r.step, r.block),))


def matmul_peak(dtype: str, n: int = 2048, reps: int = 3) -> float:
    """Best GFLOP/s of an n^3 matmul (bf16: bf16 operands, f32 accumulation)."""
    import jax
    import jax.numpy as jnp

    dt = jnp.dtype(dtype)
    a = jnp.ones((n, n), dt)
    b = jnp.ones((n, n), dt)
    f = _peak_fn()
    f(a, b).block_until_ready()
    best = min(common.timed(lambda: f(a, b), jax.block_until_ready) for _ in range(reps))
    return 2.0 * n**3 / best / 1e9


_PEAK = None


def _peak_fn():
    global _PEAK
    if _PEAK is None:
        import jax
        import jax.numpy as jnp

        _PEAK = jax.jit(lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32))
    return _PEAK


def probe_memory(config, probe: str) -> dict:
    """Peak RSS of one configuration (``probe``: ``jax:<strategy>:<matmul dtype>`` or
    ``torch::``): build, compile, run 2 steps, read the process's peak RSS."""
    kind, strategy, mdt = probe.split(":")
    steps = config.steps or common.preset_config(config.preset).time_steps
    x, y = make_data(config.preset, config.batch, steps, config.seed)
    base = common.peak_rss_bytes()
    out = {}
    if kind == "torch":
        from tclif_jax.models import from_preset

        model = from_preset(config.preset, seed=config.seed)
        r = TorchRunner(
            model,
            config.preset,
            x,
            y,
            config.threads or os.cpu_count(),
            common.torch_device(config.torch_device),
        )
        for _ in range(2):
            r.block(r.step())
        if r.device.type == "cuda":
            import torch

            out["device_peak_bytes"] = int(torch.cuda.max_memory_allocated())
    elif kind == "jax":
        import jax

        r = JaxRunner(
            config.preset,
            config.batch,
            steps,
            strategy,
            mdt,
            config.remat_chunk,
            config.seed,
            x,
            y,
        )
        # XLA's compiler is part of the peak; this separates it from the step's own buffers.
        out["rss_after_compile_bytes"] = common.peak_rss_bytes()
        for _ in range(2):
            r.block(r.step())
        stats = jax.devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
        if stats and "peak_bytes_in_use" in stats:
            out["device_peak_bytes"] = int(stats["peak_bytes_in_use"])
    else:
        raise ValueError(f"memory_probe={probe!r}: expected jax:<strategy>:<dtype> or torch::.")
    out.update(peak_rss_bytes=common.peak_rss_bytes(), rss_before_build_bytes=base)
    return out


def memory_probe_args(probe: str, **fields) -> list[str]:
    """Arguments of ``benchmarks.step_time`` that measure one configuration's peak RSS in a
    fresh process (``probe_memory``; ``probe`` as there), with the step_time config
    ``fields`` (``preset``, ``batch``, ``steps``, ``remat_chunk``, ...) overridden."""
    return [f"--memory_probe={probe}", *common.config_args("step_time", **fields)]


def run(config, memory_probe: str = "", torch_worker: bool = False) -> dict:
    """Run the benchmark ``config`` describes (``benchmarks/configs/step_time.py``) and
    print its table, or with ``config.json`` one JSON object; returns that object.

    ``memory_probe`` and ``torch_worker`` are the subprocess modes (internal flags).
    """
    from benchmarks.configs.step_time import check

    check(config)
    if memory_probe:
        out = probe_memory(config, memory_probe)
        print(json.dumps(out))
        return out
    if torch_worker:
        serve_torch_steps(config)
        return {}

    import jax

    from tclif_jax.execution import STRATEGIES

    strategies = common.choose_list("strategy", config.strategy, STRATEGIES, STRATS)
    dtypes = common.choose_list("matmul_dtype", config.matmul_dtype, DTYPES, DTYPES)
    net = common.preset_config(config.preset)
    steps = config.steps or net.time_steps
    threads = config.threads or os.cpu_count()
    log = common.log_to(config.json)

    x, y = make_data(config.preset, config.batch, steps, config.seed)
    runners = []
    for st in strategies:
        for dt in dtypes:
            r = JaxRunner(
                config.preset, config.batch, steps, st, dt, config.remat_chunk, config.seed, x, y
            )
            log(f"compiled {r.name} in {r.compile_s:.1f} s")
            runners.append(r)
    if config.against == "torch":
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            raise SystemExit(
                "against=torch needs PyTorch; pip install -e '.[bench]' "
                "(on the CPU machines here: pip install torch==2.13.0)."
            )
        separate = config.torch_process == "separate" or (
            config.torch_process == "auto" and jax.default_backend() == "cpu"
        )
        if separate:
            runners.append(TorchWorker(config, steps, threads))
        else:
            # Spinning OpenMP workers would compete with XLA's threads in this process.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            runners.append(
                TorchRunner(
                    runners[0].model,
                    config.preset,
                    x,
                    y,
                    threads,
                    common.torch_device(config.torch_device),
                )
            )
        log(f"torch reference: {'own process' if separate else 'this process'}")

    def time_one(r):
        return r.timed_step() if isinstance(r, TorchWorker) else common.timed(r.step, r.block)

    for r in runners:
        for _ in range(config.warmup):
            time_one(r)
    times = {r.name: [] for r in runners}
    peaks = {"float32": [], "bfloat16": []}
    for i in range(config.repeats):
        if config.peak:
            for dt in peaks:
                peaks[dt].append(matmul_peak(dt, config.peak_size))
        for r in runners:
            for _ in range(config.settle):
                time_one(r)
            times[r.name].append(time_one(r))
        rounds = ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items())
        log(f"round {i + 1}/{config.repeats}: {rounds}")

    for r in runners:
        if isinstance(r, TorchWorker):
            r.close()
    flops = common.config_flops(net, config.batch, steps)
    peak = {dt: (sorted(v)[len(v) // 2] if v else None) for dt, v in peaks.items()}
    peak_best = {dt: (max(v) if v else None) for dt, v in peaks.items()}
    results = []
    torch_med = None
    for r in runners:
        s = common.summarize(times[r.name])
        rec = {
            "name": r.name,
            **s,
            "total_s": sum(times[r.name]),
            "compile_s": round(r.compile_s, 2),
        }
        if isinstance(r, JaxRunner):
            rec.update(
                strategy=r.strategy,
                resolved_strategy=r.resolved,
                matmul_dtype=r.mdt,
                xla_cost_analysis_flops=r.xla_flops,
            )
            rec["loss_finite"] = bool(r.metrics["finite"])
        else:
            torch_med = s["median_s"]
            rec.update(
                strategy="python-loop",
                matmul_dtype="float32",
                device=str(r.device),
                process="separate" if isinstance(r, TorchWorker) else "same",
            )
        rec["gflops"] = flops["total"] / s["median_s"] / 1e9
        if peak["float32"]:
            rec["frac_f32_peak"] = rec["gflops"] / peak["float32"]
        results.append(rec)
    if torch_med:
        for rec in results:
            rec["ratio_vs_torch"] = rec["median_s"] / torch_med

    if config.memory:
        fields = dict(
            preset=config.preset,
            batch=config.batch,
            steps=steps,
            remat_chunk=config.remat_chunk,
            seed=config.seed,
            threads=threads,
            torch_device=config.torch_device,
            malloc_tuning=config.malloc_tuning,
        )
        arg_lists = [
            memory_probe_args(
                f"jax:{r.strategy}:{r.mdt}" if isinstance(r, JaxRunner) else "torch::", **fields
            )
            for r in runners
        ]
        probes = common.run_json_subprocesses(
            "benchmarks.step_time", arg_lists, jobs=config.memory_jobs
        )
        _add_memory(results, probes)

    out = {
        "benchmark": "step_time",
        "machine": common.machine_info(),
        "preset": config.preset,
        "batch": config.batch,
        "steps": steps,
        "remat_chunk": config.remat_chunk,
        "repeats": config.repeats,
        "torch_threads": threads if config.against == "torch" else None,
        "flops_counted": flops,
        "matmul_peak_size": config.peak_size,
        "matmul_peak_gflops": peak,
        "matmul_peak_best_gflops": peak_best,
        "results": results,
        "config": config.to_dict(),
        "command": common.command("step_time"),
    }
    if config.json:
        print(json.dumps(out))
    else:
        _print_table(out)
    return out


def _add_memory(results: list[dict], probes: list[dict]) -> None:
    """Put each configuration's probed peak RSS (and ratios against torch's) in its row."""
    for m, rec in zip(probes, results):
        rec["peak_rss_bytes"] = m.get("peak_rss_bytes")
        rec["rss_before_build_bytes"] = m.get("rss_before_build_bytes")
        if "device_peak_bytes" in m:
            rec["device_peak_bytes"] = m["device_peak_bytes"]
        if "error" in m:
            rec["memory_error"] = m["error"][-300:]
    torch_rec = next((rec for rec in results if rec["name"].startswith("torch")), {})
    t_mem, t_base = torch_rec.get("peak_rss_bytes"), torch_rec.get("rss_before_build_bytes")
    if not t_mem:
        return
    for rec in results:
        if rec.get("peak_rss_bytes"):
            rec["rss_ratio_vs_torch"] = rec["peak_rss_bytes"] / t_mem
            # the same, counting only what the step adds above the imported runtime
            if rec.get("rss_before_build_bytes") and t_base and t_mem > t_base:
                rec["rss_growth_ratio_vs_torch"] = (
                    rec["peak_rss_bytes"] - rec["rss_before_build_bytes"]
                ) / (t_mem - t_base)


def _print_table(out):
    m = out["machine"]
    print(
        f"\n{out['preset']}  batch {out['batch']}  T {out['steps']}  | {m['host_cpu']} "
        f"x{m['cpu_count']} | jax {m['jax']} torch {m['torch']} | load {m['loadavg_1min']}"
    )
    pk = out["matmul_peak_gflops"]
    if pk["float32"]:
        print(
            f"matmul peak ({out['matmul_peak_size']}^3, median of rounds): f32 "
            f"{pk['float32']:.0f} GFLOP/s, bf16 {pk['bfloat16']:.0f} GFLOP/s; counted step "
            f"matmul work {out['flops_counted']['total'] / 1e9:.1f} GFLOP"
        )
    print(
        f"{'config':34s} {'median s':>9s} {'min-max s':>15s} {'GFLOP/s':>8s} {'%f32pk':>7s} "
        f"{'x torch':>8s} {'RSS GB':>7s}"
    )
    for r in out["results"]:
        rss = r.get("peak_rss_bytes")
        print(
            f"{r['name']:34s} {r['median_s']:9.3f} {r['min_s']:7.3f}-{r['max_s']:<7.3f} "
            f"{r['gflops']:8.1f} {100 * r.get('frac_f32_peak', float('nan')):6.1f}% "
            f"{r.get('ratio_vs_torch', float('nan')):8.3f} "
            f"{(rss / 2**30) if rss else float('nan'):7.2f}"
        )


def main() -> None:
    common.main("step_time", run, memory_probe="", torch_worker=False)


if __name__ == "__main__":
    main()
