"""The train step on SHD-like spike input, fed as a dense tensor and as events.

Example::

    python -m benchmarks.event_step --config=benchmarks/configs/event_step.py:preset=shd-rec,batch=256

For each neuron and input density, fabricates ``batch`` clips with SHD-like statistics
(``tclif_jax.testing.shd_like_counts``: lognormal per-clip spike budgets, channels skewed
toward one end, times around mid-clip), and builds one compiled train step
(``make_train_step``, Adam, the default execution) fed the dense ``(B, T, F)`` float32
counts and one fed the same counts as an ``EventBatch`` (``events.from_dense``; K = the
busiest step's active channels, bucketed). Every round runs each configuration once, in an
order shuffled per round. Reported: median seconds, the ratio events / dense (median of the
per-round ratios, bootstrap 95% interval), the first step's loss of both (equal to float32
rounding), the hidden layers' firing rates, K, and which event path ran
(``event_kernel.status()``).
"""

from __future__ import annotations

import json
import time

import numpy as np

from benchmarks import common

NAME = "event_step"


def run(config) -> None:
    import jax
    import jax.numpy as jnp
    import optax

    from benchmarks.configs.event_step import densities
    from tclif_jax import event_kernel, events, from_preset, parameters
    from tclif_jax.testing import shd_like_counts
    from tclif_jax.train_steps import make_train_step

    log = common.log_to(config.json)
    neurons = common.choose_list("neurons", config.neurons, ("lif", "tclif"), ("lif", "tclif"))
    net = common.preset_config(config.preset)
    rng = np.random.default_rng(config.seed)
    y = jnp.asarray(rng.integers(0, net.num_classes, config.batch), jnp.int32)
    key = jax.random.key(config.seed)
    runners, info = {}, {}
    for density in densities(config):
        counts = shd_like_counts(
            config.batch, config.steps, net.in_features, density, seed=config.seed
        )
        inputs = {
            "dense": jnp.asarray(counts, jnp.float32),
            "events": jax.device_put(events.from_dense(counts)),
        }
        for neuron in neurons:
            model = from_preset(config.preset, seed=config.seed, neuron=neuron)
            tx = optax.adam(1e-3)
            for kind, x in inputs.items():
                params = jax.tree.map(jnp.array, parameters(model))
                state = [params, tx.init(params)]
                step = make_train_step(model, tx)
                t0 = time.perf_counter()
                state[0], state[1], metrics = step(state[0], state[1], x, y, key)
                jax.block_until_ready(state[0])
                name = f"{neuron}/{density}/{kind}"
                info[name] = {
                    "compile_and_first_step_s": time.perf_counter() - t0,
                    "first_loss": float(metrics["loss"]),
                    "firing_rates": [round(float(r), 5) for r in metrics["firing_rates"]],
                    "k": inputs["events"].k,
                    "input_density": float((counts > 0).mean()),
                }

                def one(step=step, state=state, x=x):
                    state[0], state[1], _ = step(state[0], state[1], x, y, key)
                    jax.block_until_ready(state[0])

                for _ in range(config.warmup):
                    one()
                runners[name] = one
            log(f"density {density}, {neuron}: compiled; {info[f'{neuron}/{density}/dense']}")
    times = {name: [] for name in runners}
    for _ in range(config.rounds):
        for name in rng.permutation(list(runners)):
            t0 = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - t0)
    results = {}
    for name in runners:
        results[name] = dict(info[name], **common.summarize(times[name]))
    for density in densities(config):
        for neuron in neurons:
            base = f"{neuron}/{density}"
            ratios = np.array(times[f"{base}/events"]) / np.array(times[f"{base}/dense"])
            low, high = common.bootstrap_interval(ratios, seed=config.seed)
            results[f"{base}/ratio"] = {"median": float(np.median(ratios)), "ci95": [low, high]}
            log(
                f"{base}: dense {results[base + '/dense']['median_s']:.3f} s, events "
                f"{results[base + '/events']['median_s']:.3f} s, events/dense "
                f"{np.median(ratios):.2f}x [{low:.2f}, {high:.2f}]; firing "
                f"{info[base + '/dense']['firing_rates']}, K {info[base + '/dense']['k']}"
            )
    record = {
        "command": common.command(NAME),
        "machine": common.machine_info(),
        "event_path": event_kernel.status(),
        "preset": config.preset,
        "batch": config.batch,
        "steps": config.steps,
        "rounds": config.rounds,
        "results": results,
    }
    if config.json:
        print(json.dumps(record))


if __name__ == "__main__":
    common.main(NAME, run)
