"""Where a train step's time goes: matmuls the recurrence forces to be small, and the rest.

    python -m benchmarks.breakdown \\
        --config=benchmarks/configs/breakdown.py:preset=smnist-ff-64,batch=256,json=True

The issue's floor (counted FLOPs / big-matmul peak) assumes all matrix work runs as large
GEMMs. In a spiking net it cannot: layer l at step t needs layer l-1's spikes at step t,
so every product except the first layer's input projection is a (batch x n_in) @
(n_in x n_out) product inside a T-step loop, forward and backward. This tool times, in
one process, with the same threads:

* ``gemm_peak``: an n^3 matmul in the dtype under test, best of 3 (the issue's "matmul
  peak"; ``benchmarks.step_time.matmul_peak``);
* ``loop_matmuls``: a ``lax.scan`` over T doing exactly the per-step products of the
  fused step (forward s @ W; backward dI @ W^T and s^T @ dI for every layer but the
  first, plus the recurrent ones) and nothing else. This is the floor for the step's
  matrix work at the shapes the recurrence allows;
* ``hoisted_matmuls``: the products outside the time loop, as large GEMMs on the rows of
  all steps at once (``B*T`` rows) in the layout the network uses: the first layer's
  input projection and its weight gradient (its input is data: no input gradient) and,
  under ``layerwise``, every later layer's feed-forward product forward, input gradient and
  weight gradient (``loop_matmuls`` then holds only the recurrent products);
* ``forward`` and ``forward_backward``: the network's loss and its gradient (the
  config's ``strategy`` and ``neuron``; no optimizer update, which is <1% of the step).

``rest = forward_backward - loop_matmuls``; ``neuron_loop = rest - hoisted_matmuls`` is
what is neither kind of product: the neuron updates and their adjoints, masks, residual
stores, transposes and loop overhead. ``neuron`` (config) replaces every layer's neuron
(default: the preset's TC-LIF).
"""

from __future__ import annotations

import json
import statistics

from benchmarks import common


def _time(fn, args, repeats):
    import jax

    jax.block_until_ready(fn(*args))
    return statistics.median(
        common.timed(lambda: fn(*args), jax.block_until_ready) for _ in range(repeats)
    )


def loop_products(net, strategy: str = "fused") -> list[tuple[int, int]]:
    """(n_in, n_out) of every weight product inside the time loop, one step, forward, for a
    ``tclif_jax.config.NetworkConfig`` (e.g. ``PRESETS[name]``): under ``fused`` every
    layer's but the first's feed-forward product and the recurrent ones; under
    ``layerwise`` the recurrent ones only."""
    widths = list(net.hidden)
    prods = []
    if strategy == "fused":
        prods = [(widths[i - 1], widths[i]) for i in range(1, len(widths))]
    prods += [(n, n) for n, r in zip(widths, net.recurrent) if r]
    return prods


def hoisted_products(net, strategy: str = "fused") -> list[tuple[int, int, bool]]:
    """(n_in, n_out, needs_input_grad) of every weight product hoisted out of the time
    loop: the first layer's input projection (no input gradient: its input is data) and,
    under ``layerwise``, every later feed-forward product."""
    widths = [net.in_features, *net.hidden]
    last = 2 if strategy == "fused" else len(widths)
    return [(widths[i - 1], widths[i], i > 1) for i in range(1, last)]


def run(config) -> dict:
    """Run the breakdown ``config`` describes (``benchmarks/configs/breakdown.py``) and
    print it, or with ``config.json`` one JSON object; returns that object."""
    from benchmarks.configs.breakdown import check

    check(config)

    import jax
    import jax.numpy as jnp

    from benchmarks.step_time import matmul_peak
    from tclif_jax.models import apply, from_preset, parameters

    net = common.preset_config(config.preset)
    T = config.steps or net.time_steps
    B = config.batch
    dt = jnp.dtype(config.matmul_dtype)
    key = jax.random.key(0)

    def mm(a, b):
        return jnp.matmul(a.astype(dt), b.astype(dt), preferred_element_type=jnp.float32)

    # 1) the big-GEMM peak, in the dtype under test (best of 3, as in step_time)
    peak = matmul_peak(config.matmul_dtype, config.peak_size) * 1e9

    neuron = config.neuron
    model = from_preset(
        config.preset,
        neuron=neuron,
        strategy=config.strategy,
        matmul_dtype=config.matmul_dtype,
    )
    net_config, params = model.config, parameters(model)
    strategy = model.execution.resolved_strategy()

    # 2) exactly the in-loop products of one train step, T times
    prods = loop_products(net, strategy)
    ws = [jax.random.normal(key, (a, b)) * 0.05 for a, b in prods]

    def loop(ws, xs):
        # Each product accumulates into a carry, so none can be simplified away.
        def body(accs, x):
            new = []
            for w, (f, bx, bw) in zip(ws, accs):
                s, d = x[:, : w.shape[0]], x[:, : w.shape[1]]
                new.append((f + mm(s, w), bx + mm(d, w.T), bw + mm(s.T, d)))
            return new, None

        zeros = [
            (jnp.zeros((B, w.shape[1])), jnp.zeros((B, w.shape[0])), jnp.zeros(w.shape)) for w in ws
        ]
        return jax.lax.scan(body, zeros, xs)[0]

    widest = max(max(a, b) for a, b in prods) if prods else 1
    xs = jax.random.normal(key, (T, B, widest))
    loop_s = _time(jax.jit(loop), (ws, xs), config.repeats) if prods else 0.0
    loop_flops = sum(2.0 * B * a * b * 3 for a, b in prods) * T

    # 3) the products hoisted out of the loop, on all B*T rows, batch-major as the network
    # runs the first one (forward x W, weight gradient x^T g, input gradient g W^T)
    hoisted = hoisted_products(net, strategy)

    def hoisted_fn(xs, ws, gs):
        out = []
        for x2, w, g2, (_, _, needs_dx) in zip(xs, ws, gs, hoisted):
            out += [mm(x2, w), mm(x2.T, g2)] + ([mm(g2, w.T)] if needs_dx else [])
        return out

    hx = [jax.random.normal(key, (B * T, a)) for a, _, _ in hoisted]
    hw = [jax.random.normal(key, (a, b)) * 0.05 for a, b, _ in hoisted]
    hg = [jax.random.normal(key, (B * T, b)) for _, b, _ in hoisted]
    hoisted_s = _time(jax.jit(hoisted_fn), (hx, hw, hg), config.repeats)
    hoisted_flops = sum(2.0 * B * T * a * b * (3 if dx else 2) for a, b, dx in hoisted)
    del hx, hg

    # 4) the network itself
    x = jax.random.uniform(key, (B, T, net.in_features))

    def loss(params, x):
        logits, _ = apply(net_config, params, x)
        return jnp.mean(jax.nn.logsumexp(logits, -1) - logits[:, 0])

    fwd_s = _time(jax.jit(loss), (params, x), config.repeats)
    grad_s = _time(jax.jit(jax.grad(loss)), (params, x), config.repeats)
    counted = common.config_flops(net, B, T)["total"]
    out = {
        "benchmark": "breakdown",
        "machine": common.machine_info(),
        "preset": config.preset,
        "batch": B,
        "steps": T,
        "strategy": strategy,
        "neuron": neuron,
        "backward": model.execution.backward,
        "matmul_dtype": config.matmul_dtype,
        "gemm_peak_gflops": peak / 1e9,
        "counted_gflop": counted / 1e9,
        "issue_floor_s": counted / peak,
        "loop_products": prods,
        "loop_matmul_gflop": loop_flops / 1e9,
        "loop_matmuls_s": loop_s,
        "loop_matmul_gflops": loop_flops / loop_s / 1e9 if loop_s else None,
        "hoisted_products": hoisted,
        "hoisted_matmul_gflop": hoisted_flops / 1e9,
        "hoisted_matmuls_s": hoisted_s,
        "forward_s": fwd_s,
        "forward_backward_s": grad_s,
        "rest_s": grad_s - loop_s,
        "neuron_loop_s": grad_s - loop_s - hoisted_s,
        "config": config.to_dict(),
        "command": common.command("breakdown"),
    }
    if config.json:
        print(json.dumps(out))
    else:
        print(f"{config.preset} ({neuron}) batch {B} T {T} {strategy} {config.matmul_dtype}")
        print(
            f"  big-GEMM peak {out['gemm_peak_gflops']:.0f} GFLOP/s -> floor "
            f"{out['issue_floor_s']:.2f} s for {out['counted_gflop']:.1f} GFLOP"
        )
        if loop_s:
            print(
                f"  in-loop products {prods}: {loop_s:.2f} s "
                f"({out['loop_matmul_gflops']:.0f} GFLOP/s)"
            )
        print(
            f"  hoisted products {[p[:2] for p in hoisted]}: {hoisted_s:.2f} s "
            f"({hoisted_flops / hoisted_s / 1e9:.0f} GFLOP/s)"
        )
        print(
            f"  forward {fwd_s:.2f} s, forward+backward {grad_s:.2f} s, rest {out['rest_s']:.2f} s"
            f" (neuron loops and the rest: {out['neuron_loop_s']:.2f} s)"
        )
    return out


def main() -> None:
    common.main("breakdown", run)


if __name__ == "__main__":
    main()
