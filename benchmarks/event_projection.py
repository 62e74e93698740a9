"""The first layer's input product on binary spike input: dense XLA against brainevent.

Example::

    python -m benchmarks.event_projection --config=benchmarks/configs/event_projection.py:preset=shd-rec,batch=256

The input projection of a spiking network's first layer is ``x @ W`` on ``rows = batch *
steps`` rows of ``F`` inputs, and its weight gradient ``x^T g``; on SHD-like spike input
most of ``x`` is zero. For each density, ``x`` is Bernoulli(density) spikes (fixed seed)
and four jitted functions are timed: the dense forward and weight gradient, and the same
two through ``brainevent.BinaryArray`` (event-driven kernels; numba on CPU):
``BinaryArray(x) @ W`` and ``(g^T @ BinaryArray(x))^T``. Every round
runs the four once, in an order shuffled per round. Reported per density: the median
seconds of each, the ratio event / dense (median of the per-round ratios) with a
bootstrap 95% interval over rounds, and the largest deviation of brainevent's results from
dense. This is what decides whether ``tclif_jax.events`` can use brainevent
(``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import json
import time

import numpy as np

from benchmarks import common

NAME = "event_projection"


def _functions(jax, jnp, brainevent):
    forward = jax.jit(lambda x, w: jnp.matmul(x, w, precision="highest"))
    weight_grad = jax.jit(lambda x, g: jnp.matmul(x.T, g, precision="highest"))
    be_forward = jax.jit(lambda x, w: brainevent.BinaryArray(x) @ w)
    # g^T x with the events on the right is brainevent's event-driven product;
    # ``BinaryArray(x).T`` would be a plain dense array.
    be_weight_grad = jax.jit(lambda x, g: (g.T @ brainevent.BinaryArray(x)).T)
    return {
        "dense_forward": (forward, "w"),
        "dense_weight_grad": (weight_grad, "g"),
        "event_forward": (be_forward, "w"),
        "event_weight_grad": (be_weight_grad, "g"),
    }


def run(config) -> None:
    import jax
    import jax.numpy as jnp

    from benchmarks.configs.event_projection import densities

    try:
        import brainevent
    except ImportError as err:
        raise SystemExit(
            f"{err}: this benchmark needs brainevent (pip install brainevent)."
        ) from None
    log = common.log_to(config.json)
    net = common.preset_config(config.preset)
    rows, features, width = config.batch * config.steps, net.in_features, net.hidden[0]
    rng = np.random.default_rng(config.seed)
    w = jnp.asarray(rng.normal(0, features**-0.5, (features, width)), jnp.float32)
    g = jnp.asarray(rng.normal(0, 1, (rows, width)), jnp.float32)
    fns = _functions(jax, jnp, brainevent)
    results = {}
    for density in densities(config):
        x = jnp.asarray(rng.random((rows, features)) < density, jnp.float32)
        args = {"w": w, "g": g}
        out = {k: np.asarray(f(x, args[a])) for k, (f, a) in fns.items()}
        deviation = {
            "forward": float(np.abs(out["event_forward"] - out["dense_forward"]).max()),
            "weight_grad": float(np.abs(out["event_weight_grad"] - out["dense_weight_grad"]).max()),
        }
        for _ in range(config.warmup):
            for f, a in fns.values():
                f(x, args[a]).block_until_ready()
        times = {k: [] for k in fns}
        for _ in range(config.rounds):
            for k in rng.permutation(list(fns)):
                f, operand = fns[k][0], args[fns[k][1]]
                t0 = time.perf_counter()
                f(x, operand).block_until_ready()
                times[k].append(time.perf_counter() - t0)
        entry = {k: common.summarize(v) for k, v in times.items()}
        for part in ("forward", "weight_grad"):
            ratios = np.array(times[f"event_{part}"]) / np.array(times[f"dense_{part}"])
            entry[f"ratio_{part}"] = {
                "median": float(np.median(ratios)),
                "ci95": common.bootstrap_interval(ratios, seed=config.seed),
            }
        entry["max_abs_deviation"] = deviation
        results[str(density)] = entry
        log(
            f"density {density:.0%}: event/dense forward "
            f"{entry['ratio_forward']['median']:.2f}x "
            f"[{entry['ratio_forward']['ci95'][0]:.2f}, {entry['ratio_forward']['ci95'][1]:.2f}], "
            f"weight gradient {entry['ratio_weight_grad']['median']:.2f}x "
            f"[{entry['ratio_weight_grad']['ci95'][0]:.2f}, "
            f"{entry['ratio_weight_grad']['ci95'][1]:.2f}]; dense forward "
            f"{entry['dense_forward']['median_s'] * 1e3:.1f} ms, deviation {deviation}"
        )
    record = {
        "command": common.command(NAME),
        "machine": common.machine_info(),
        "brainevent": brainevent.__version__,
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
