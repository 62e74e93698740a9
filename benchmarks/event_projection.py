"""The first layer's input product on binary spike input: dense XLA against event kernels.

Example::

    python -m benchmarks.event_projection --config=benchmarks/configs/event_projection.py:preset=shd-rec,batch=256

The input projection of a spiking network's first layer is ``x @ W`` on ``rows = batch *
steps`` rows of ``F`` inputs, and its weight gradient ``x^T g``; on SHD-like spike input
most of ``x`` is zero. For each density, ``x`` is Bernoulli(density) spikes (fixed seed),
and the dense forward and weight gradient are timed against the same two

* on ``tclif_jax.event_kernel`` (``native``: the spikes as padded events,
  ``events.from_dense``; the weight gradient through ``jax.vjp``, which runs only the
  kernel's transpose), and
* through ``brainevent.BinaryArray`` (``brainevent``, when it is installed; numba
  kernels on CPU): ``BinaryArray(x) @ W`` and ``(g^T @ BinaryArray(x))^T``.

Every round runs each function once, in an order shuffled per round. Reported per density:
the median seconds of each, each event path's ratio to dense (median of the per-round
ratios) with a bootstrap 95% interval over rounds, and the largest deviation of its
results from dense. This decided that ``tclif_jax.events`` uses its own kernel rather
than brainevent (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import json
import time

import numpy as np

from benchmarks import common

NAME = "event_projection"


def _functions(jax, jnp, brainevent):
    """name -> (jitted function of (input, operand), which input, which operand)."""
    from tclif_jax.event_kernel import event_matmul

    def native_weight_grad(events, w_and_g):
        w, g = w_and_g  # w: the primal point (the gradient does not depend on it)
        return jax.vjp(lambda k: event_matmul(*events, k), w)[1](g)[0]

    fns = {
        "dense_forward": (jax.jit(lambda x, w: jnp.matmul(x, w, precision="highest")), "x", "w"),
        "dense_weight_grad": (
            jax.jit(lambda x, g: jnp.matmul(x.T, g, precision="highest")),
            "x",
            "g",
        ),
        "native_forward": (jax.jit(lambda e, w: event_matmul(*e, w)), "events", "w"),
        "native_weight_grad": (jax.jit(native_weight_grad), "events", "wg"),
    }
    if brainevent is not None:
        fns["brainevent_forward"] = (
            jax.jit(lambda x, w: brainevent.BinaryArray(x) @ w),
            "x",
            "w",
        )
        # g^T x with the events on the right is brainevent's event-driven product;
        # ``BinaryArray(x).T`` would be a plain dense array.
        fns["brainevent_weight_grad"] = (
            jax.jit(lambda x, g: (g.T @ brainevent.BinaryArray(x)).T),
            "x",
            "g",
        )
    return fns


PATHS = ("native", "brainevent")


def run(config) -> None:
    import jax
    import jax.numpy as jnp

    from benchmarks.configs.event_projection import densities
    from tclif_jax import event_kernel, events

    try:
        import brainevent
    except ImportError:
        brainevent = None
    log = common.log_to(config.json)
    if brainevent is None:
        log("brainevent is not installed (pip install brainevent): timing the native kernel only")
    net = common.preset_config(config.preset)
    rows, features, width = config.batch * config.steps, net.in_features, net.hidden[0]
    rng = np.random.default_rng(config.seed)
    w = jnp.asarray(rng.normal(0, features**-0.5, (features, width)), jnp.float32)
    g = jnp.asarray(rng.normal(0, 1, (rows, width)), jnp.float32)
    fns = _functions(jax, jnp, brainevent)
    paths = [p for p in PATHS if f"{p}_forward" in fns]
    results = {}
    for density in densities(config):
        x_np = (rng.random((rows, features)) < density).astype(np.float32)
        batch = events.from_dense(x_np)
        counts = jnp.where(batch.valid, batch.counts, 0.0)
        inputs = {"x": jnp.asarray(x_np), "events": (jnp.asarray(batch.channels), counts)}
        operands = {"w": w, "g": g, "wg": (w, g)}

        def call(name, inputs=inputs, operands=operands):
            f, i, o = fns[name]
            return f(inputs[i], operands[o])

        out = {k: np.asarray(call(k)) for k in fns}
        deviation = {
            p: {
                part: float(np.abs(out[f"{p}_{part}"] - out[f"dense_{part}"]).max())
                for part in ("forward", "weight_grad")
            }
            for p in paths
        }
        for _ in range(config.warmup):
            for k in fns:
                jax.block_until_ready(call(k))
        times = {k: [] for k in fns}
        for _ in range(config.rounds):
            for k in rng.permutation(list(fns)):
                t0 = time.perf_counter()
                jax.block_until_ready(call(k))
                times[k].append(time.perf_counter() - t0)
        entry = {k: common.summarize(v) for k, v in times.items()}
        for p in paths:
            for part in ("forward", "weight_grad"):
                ratios = np.array(times[f"{p}_{part}"]) / np.array(times[f"dense_{part}"])
                entry[f"ratio_{p}_{part}"] = {
                    "median": float(np.median(ratios)),
                    "ci95": common.bootstrap_interval(ratios, seed=config.seed),
                }
        entry["max_abs_deviation"] = deviation
        entry["k"] = batch.k
        results[str(density)] = entry
        for p in paths:
            fw, wg = entry[f"ratio_{p}_forward"], entry[f"ratio_{p}_weight_grad"]
            log(
                f"density {density:.0%}, {p}/dense: forward {fw['median']:.2f}x "
                f"[{fw['ci95'][0]:.2f}, {fw['ci95'][1]:.2f}], weight gradient "
                f"{wg['median']:.2f}x [{wg['ci95'][0]:.2f}, {wg['ci95'][1]:.2f}]; "
                f"deviation {deviation[p]}"
            )
    record = {
        "command": common.command(NAME),
        "machine": common.machine_info(),
        "event_path": event_kernel.status(),
        "brainevent": None if brainevent is None else brainevent.__version__,
        "rows": rows,
        "features": features,
        "width": width,
        "rounds": config.rounds,
        "results": results,
    }
    if config.json:
        print(json.dumps(record))


if __name__ == "__main__":
    common.main(NAME, run)
