"""Where the train step's time goes with event input, at the peers' setting a.

Example::

    python -m benchmarks.event_breakdown --config=benchmarks/configs/event_breakdown.py

Setting a of ``benchmarks/peers.py`` (700-128-128-20, T 250, Bernoulli(0.05) input
spikes, spiking weights x4 so that the hidden layers fire, one Adam step, the default
execution). Timed, every round in an order shuffled per round:

* the first layer's products alone on that input: dense ``x @ W`` and ``x^T g``, and
  the native event kernel's forward and transpose (``tclif_jax.event_kernel``);
* per neuron, the whole train step with dense input, with the spikes as an
  ``EventBatch``, and the same network fed one input channel (``floor``: the step
  without the cost of the input product, everything else equal).

The step with events minus the floor is what the event input costs in the step; the
floor is what no input format can remove. Reported: median seconds of each, and per
neuron the ratios events / dense and floor / dense (median of per-round ratios,
bootstrap 95% interval).
"""

from __future__ import annotations

import json
import time

import numpy as np

from benchmarks import common

NAME = "event_breakdown"


def run(config) -> None:
    import jax
    import jax.numpy as jnp

    from benchmarks.configs.peers import get_config as peers_config
    from benchmarks.peers import OursRunner, Problem
    from tclif_jax import event_kernel, events
    from tclif_jax.event_kernel import event_matmul

    log = common.log_to(config.json)
    neurons = common.choose_list("neurons", config.neurons, ("lif", "tclif"), ("lif", "tclif"))
    problem = Problem.from_config(
        peers_config(f"setting=a,batch={config.batch},steps={config.steps},seed={config.seed}")
    )
    x, y = problem.data()
    weights = problem.weights()
    batch = events.from_dense(x)
    rows, features = x.shape[0] * x.shape[1], x.shape[2]
    w = jnp.asarray(weights[0][0])
    g = jnp.asarray(np.random.default_rng(config.seed).normal(size=(rows, w.shape[1])), jnp.float32)
    flat = jnp.asarray(x.reshape(rows, features))
    channels = jnp.asarray(batch.channels).reshape(rows, -1)
    counts = jnp.where(batch.valid, batch.counts, 0.0).reshape(rows, -1)
    highest = dict(precision="highest")
    dense_fwd = jax.jit(lambda a, b: jnp.matmul(a, b, **highest))
    dense_wgrad = jax.jit(lambda a, b: jnp.matmul(a.T, b, **highest))
    native_fwd = jax.jit(event_matmul)
    native_wgrad = jax.jit(lambda c, v, k, d: jax.vjp(lambda k: event_matmul(c, v, k), k)[1](d)[0])
    runners = {
        "product/dense_forward": lambda: dense_fwd(flat, w),
        "product/dense_weight_grad": lambda: dense_wgrad(flat, g),
        "product/native_forward": lambda: native_fwd(channels, counts, w),
        "product/native_weight_grad": lambda: native_wgrad(channels, counts, w, g),
    }
    floor = Problem(
        "a",
        problem.batch,
        problem.steps,
        (1, *problem.hidden),
        problem.classes,
        problem.decay,
        problem.learning_rate,
        problem.seed,
        problem.weight_scale,
    )
    x1 = (np.random.default_rng(config.seed).random((*x.shape[:2], 1)) < 0.5).astype(np.float32)
    info = {}
    for neuron in neurons:
        built = {
            "dense": OursRunner(problem, neuron, "auto", weights, x, y),
            "events": OursRunner(problem, neuron, "auto", weights, x, y, inputs="events"),
            "floor": OursRunner(floor, neuron, "auto", floor.weights(), x1, y),
        }
        for kind, r in built.items():
            runners[f"{neuron}/{kind}"] = lambda r=r: r.step()
        info[neuron] = {"firing_rates": built["dense"].firing_rates}
    for fn in runners.values():
        for _ in range(config.warmup):
            jax.block_until_ready(fn())
    times = {name: [] for name in runners}
    rng = np.random.default_rng(config.seed)
    for _ in range(config.rounds):
        for name in rng.permutation(list(runners)):
            t0 = time.perf_counter()
            jax.block_until_ready(runners[name]())
            times[name].append(time.perf_counter() - t0)
    results = {name: common.summarize(t) for name, t in times.items()}
    for neuron in neurons:
        dense = np.array(times[f"{neuron}/dense"])
        for kind in ("events", "floor"):
            ratios = np.array(times[f"{neuron}/{kind}"]) / dense
            low, high = common.bootstrap_interval(ratios, seed=config.seed)
            results[f"{neuron}/{kind}_over_dense"] = {
                "median": float(np.median(ratios)),
                "ci95": [low, high],
            }
        m = {k: results[f"{neuron}/{k}"]["median_s"] for k in ("dense", "events", "floor")}
        log(
            f"{neuron}: dense {m['dense']:.3f} s, events {m['events']:.3f} s, floor "
            f"{m['floor']:.3f} s; firing {info[neuron]['firing_rates']}"
        )
    for part in ("forward", "weight_grad"):
        log(
            f"{part}: dense {results[f'product/dense_{part}']['median_s'] * 1e3:.1f} ms, "
            f"native {results[f'product/native_{part}']['median_s'] * 1e3:.1f} ms"
        )
    record = {
        "command": common.command(NAME),
        "machine": common.machine_info(),
        "event_path": event_kernel.status(),
        "batch": problem.batch,
        "steps": problem.steps,
        "k": batch.k,
        "rounds": config.rounds,
        "info": info,
        "results": results,
    }
    if config.json:
        print(json.dumps(record))


if __name__ == "__main__":
    common.main(NAME, run)
