"""Products of spikes inside the time loop: dense XLA against the native spike kernel.

Example::

    python -m benchmarks.spike_products --config=benchmarks/configs/spike_products.py

A hidden layer's input and a recurrent term are products of a layer's spikes; the fused
strategy computes them one step at a time, ``(B, n_in) @ (n_in, n)`` forward and ``dW +=
s^T g`` in the backward. For each density, the spikes are Bernoulli(density) ``(T, B,
n_in)`` (fixed seed), and a ``lax.scan`` over the T steps runs each product both ways:

* ``forward``: ``jnp.matmul(s_t, W)`` (highest precision) against
  ``event_kernel.spike_matmul``, each followed by one elementwise op (as a neuron step);
* ``weight_grad``: ``acc + s_t^T g_t`` against ``event_kernel.spike_matmul_transpose``.

Every round runs each function once, in an order shuffled per round. Reported per density
and product: the median seconds of each, and the kernel's ratio to dense (median of the
per-round ratios) with a bootstrap 95% interval. ``tclif_jax.execution.
SPIKE_DENSITY_LIMITS`` (up to where ``spike_products="auto"`` takes the kernel)
comes from these ratios (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import json

import numpy as np

from benchmarks import common
from benchmarks.configs.event_projection import densities as parse_densities

NAME = "spike_products"


def _loops(jax, jnp, event_kernel):
    """name -> jitted function of (spikes (T, B, F), operand) running T steps."""

    def forward(product):
        def run(s, w):
            def body(acc, s_t):
                return acc + jnp.tanh(product(s_t, w)), None

            return jax.lax.scan(body, jnp.zeros((s.shape[1], w.shape[1])), s)[0]

        return jax.jit(run)

    def weight_grad(accumulate):
        def run(s, g):
            def body(acc, sg):
                return accumulate(acc, *sg), None

            return jax.lax.scan(body, jnp.zeros((s.shape[2], g.shape[2])), (s, g))[0]

        return jax.jit(run)

    return {
        "dense_forward": forward(lambda s, w: jnp.matmul(s, w, precision="highest")),
        "kernel_forward": forward(event_kernel.spike_matmul),
        "dense_weight_grad": weight_grad(
            lambda acc, s, g: acc + jnp.matmul(s.T, g, precision="highest")
        ),
        "kernel_weight_grad": weight_grad(
            lambda acc, s, g: event_kernel.spike_matmul_transpose(s, g, acc)
        ),
    }


def run(config) -> None:
    import jax
    import jax.numpy as jnp

    from tclif_jax import event_kernel
    from tclif_jax.execution import SPIKE_DENSITY_LIMITS

    log = common.log_to(config.json)
    if not event_kernel.available():
        raise SystemExit(f"The native kernel is not in use ({event_kernel.status()}).")
    rng = np.random.default_rng(config.seed)
    shape = (config.steps, config.batch, config.width)
    w = jnp.asarray(rng.normal(size=(config.width, config.out)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(*shape[:2], config.out)), jnp.float32)
    loops = _loops(jax, jnp, event_kernel)
    runners = {}
    for density in parse_densities(config):
        s = jnp.asarray((rng.random(shape) < density).astype(np.float32))
        for name, fn in loops.items():
            operand = w if name.endswith("forward") else g
            runners[(density, name)] = lambda fn=fn, s=s, operand=operand: fn(s, operand)
    for fn in runners.values():
        for _ in range(config.warmup):
            jax.block_until_ready(fn())
    times = {key: [] for key in runners}
    order = list(runners)
    for _ in range(config.rounds):
        for i in rng.permutation(len(order)):
            times[order[i]].append(common.timed(runners[order[i]], jax.block_until_ready))
    results = []
    for density in parse_densities(config):
        for product in ("forward", "weight_grad"):
            dense = np.array(times[(density, f"dense_{product}")])
            kernel = np.array(times[(density, f"kernel_{product}")])
            ratios = kernel / dense
            low, high = common.bootstrap_interval(ratios, seed=config.seed)
            entry = {
                "density": density,
                "product": product,
                "dense": common.summarize(dense),
                "kernel": common.summarize(kernel),
                "kernel_over_dense": {"median": float(np.median(ratios)), "ci95": [low, high]},
            }
            results.append(entry)
            log(
                f"density {density:.2f} {product}: dense {np.median(dense) * 1e3:.1f} ms, "
                f"kernel {np.median(kernel) * 1e3:.1f} ms, ratio {np.median(ratios):.2f} "
                f"[{low:.2f}, {high:.2f}]"
            )
    record = {
        "command": common.command(NAME),
        "machine": common.machine_info(),
        "kernel": event_kernel.status(),
        "limits_in_use": SPIKE_DENSITY_LIMITS,
        "shape": {
            "steps": config.steps,
            "batch": config.batch,
            "width": config.width,
            "out": config.out,
        },
        "rounds": config.rounds,
        "results": results,
    }
    if config.json:
        print(json.dumps(record))


if __name__ == "__main__":
    common.main(NAME, run)
