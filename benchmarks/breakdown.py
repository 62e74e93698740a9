"""Where a train step's time goes: matmuls the recurrence forces to be small, and the rest.

    python -m benchmarks.breakdown --preset smnist-ff-64 --batch 256 --json

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
* ``forward`` and ``forward_backward``: the network's loss and its gradient (the
  strategy of ``--strategy``; no optimizer update, which is <1% of the step).

The difference ``forward_backward - loop_matmuls`` is the neuron updates, masks, stacked
residual writes and loop overhead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from benchmarks import common


def _time(fn, args, repeats):
    import jax
    jax.block_until_ready(fn(*args))
    return statistics.median(common.timed(lambda: fn(*args), jax.block_until_ready)
                             for _ in range(repeats))


def loop_products(preset: dict) -> list[tuple[int, int]]:
    """(n_in, n_out) of every weight product inside the time loop, one step, forward."""
    widths = list(preset["hidden"])
    rec = tuple(preset.get("recurrent", ())) + (False,) * len(widths)
    prods = [(widths[i - 1], widths[i]) for i in range(1, len(widths))]
    prods += [(n, n) for n, r in zip(widths, rec) if r]
    return prods


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="smnist-ff-64")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=0, help="T (0: the preset's)")
    p.add_argument("--strategy", default="auto")
    p.add_argument("--matmul-dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--peak-size", type=int, default=2048)
    p.add_argument("--no-malloc-tuning", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    common.ensure_malloc_tuning(not args.no_malloc_tuning)

    import jax
    import jax.numpy as jnp

    from benchmarks.step_time import matmul_peak
    from tclif_jax.layers import resolve_strategy
    from tclif_jax.models import PRESETS, apply, from_preset

    if args.preset not in PRESETS:
        raise SystemExit(f"Unknown preset {args.preset!r}; valid: {', '.join(PRESETS)}.")
    preset = PRESETS[args.preset]
    T = args.steps or preset["time_steps"]
    B = args.batch
    dt = jnp.dtype(args.matmul_dtype)
    key = jax.random.key(0)

    def mm(a, b):
        return jnp.matmul(a.astype(dt), b.astype(dt), preferred_element_type=jnp.float32)

    # 1) the big-GEMM peak, in the dtype under test (best of 3, as in step_time)
    peak = matmul_peak(args.matmul_dtype, args.peak_size) * 1e9

    # 2) exactly the in-loop products of one fused train step, T times
    prods = loop_products(preset)
    ws = [jax.random.normal(key, (a, b)) * 0.05 for a, b in prods]

    def loop(ws, xs):
        # Each product accumulates into a carry, so none can be simplified away.
        def body(accs, x):
            new = []
            for w, (f, bx, bw) in zip(ws, accs):
                s, d = x[:, :w.shape[0]], x[:, :w.shape[1]]
                new.append((f + mm(s, w), bx + mm(d, w.T), bw + mm(s.T, d)))
            return new, None
        zeros = [(jnp.zeros((B, w.shape[1])), jnp.zeros((B, w.shape[0])), jnp.zeros(w.shape))
                 for w in ws]
        return jax.lax.scan(body, zeros, xs)[0]

    widest = max(max(a, b) for a, b in prods) if prods else 1
    xs = jax.random.normal(key, (T, B, widest))
    loop_s = _time(jax.jit(loop), (ws, xs), args.repeats) if prods else 0.0
    loop_flops = sum(2.0 * B * a * b * 3 for a, b in prods) * T

    # 3) the network itself
    model = from_preset(args.preset, strategy=args.strategy, matmul_dtype=args.matmul_dtype)
    spec, params = model.spec, model.arrays()
    x = jax.random.uniform(key, (B, T, preset["in_features"]))

    def loss(params, x):
        logits, _ = apply(spec, params, x)
        return jnp.mean(jax.nn.logsumexp(logits, -1) - logits[:, 0])

    fwd_s = _time(jax.jit(loss), (params, x), args.repeats)
    grad_s = _time(jax.jit(jax.grad(loss)), (params, x), args.repeats)
    counted = common.matmul_flops(preset["hidden"], preset["in_features"], preset["num_classes"],
                                  preset.get("recurrent", ()), B, T)["total"]
    out = {
        "benchmark": "breakdown", "machine": common.machine_info(), "preset": args.preset,
        "batch": B, "steps": T, "strategy": resolve_strategy(spec),
        "matmul_dtype": args.matmul_dtype,
        "gemm_peak_gflops": peak / 1e9,
        "counted_gflop": counted / 1e9,
        "issue_floor_s": counted / peak,
        "loop_products": prods,
        "loop_matmul_gflop": loop_flops / 1e9,
        "loop_matmuls_s": loop_s,
        "loop_matmul_gflops": loop_flops / loop_s / 1e9 if loop_s else None,
        "forward_s": fwd_s,
        "forward_backward_s": grad_s,
        "rest_s": grad_s - loop_s,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.preset} batch {B} T {T} {out['strategy']} {args.matmul_dtype}")
        print(f"  big-GEMM peak {out['gemm_peak_gflops']:.0f} GFLOP/s -> floor "
              f"{out['issue_floor_s']:.2f} s for {out['counted_gflop']:.1f} GFLOP")
        if loop_s:
            print(f"  in-loop products {prods}: {loop_s:.2f} s "
                  f"({out['loop_matmul_gflops']:.0f} GFLOP/s)")
        print(f"  forward {fwd_s:.2f} s, forward+backward {grad_s:.2f} s, "
              f"rest {out['rest_s']:.2f} s")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
