"""Peak memory of one train step against sequence length, with and without remat.

Example::

    python -m benchmarks.memory --preset smnist-ff-64 --batch 256 \\
        --steps 784,1568,3136,6272 --remat-chunk 112 [--against torch] [--json]

Each (T, remat) configuration runs in a fresh subprocess (``benchmarks.step_time
--memory-probe``): build, compile, two train steps, then the process's peak RSS
(``VmHWM``), so peaks of different configurations never mix. It includes the Python,
JAX and XLA runtime (about 0.2-0.3 GB here). ``--max-gb`` skips configurations whose
estimate (linear in T from the smallest run) exceeds it, so a sweep cannot exhaust a
shared machine; skipped rows say so.

``remat_chunk`` must divide every T (112 divides 784 * 2^k). With remat the network
runs the autodiff ``fused`` scan over chunks with ``jax.checkpoint`` on each chunk
(activation memory ~ T / chunk + chunk steps instead of ~ T).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from benchmarks import common


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    p.add_argument("--preset", default="smnist-ff-64")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", default="784,1568,3136,6272", help="comma list of T")
    p.add_argument("--remat-chunk", type=int, default=112, help="chunk for the remat rows (0: none)")
    p.add_argument("--strategy", default="auto")
    p.add_argument("--matmul-dtype", default="float32")
    p.add_argument("--against", choices=["none", "torch"], default="none")
    p.add_argument("--max-gb", type=float, default=16.0)
    p.add_argument("--no-malloc-tuning", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    common.ensure_malloc_tuning(not args.no_malloc_tuning)

    steps = [int(s) for s in args.steps.split(",") if s]
    rows = []
    slope = {}
    configs = [(0, "jax")] + ([(args.remat_chunk, "jax")] if args.remat_chunk else [])
    if args.against == "torch":
        configs.append((0, "torch"))
    for T in steps:
        for remat, kind in configs:
            key = (remat, kind)
            est = slope[key] * T / 2**30 if key in slope else None
            row = {"steps": T, "remat_chunk": remat, "kind": kind,
                   "strategy": args.strategy if kind == "jax" else "python-loop",
                   "matmul_dtype": args.matmul_dtype if kind == "jax" else "float32"}
            if est is not None and est > args.max_gb:
                row.update(skipped=f"estimated {est:.1f} GB > --max-gb {args.max_gb}", estimate_gb=est)
                rows.append(row)
                continue
            probe = "torch::" if kind == "torch" else f"jax:{args.strategy}:{args.matmul_dtype}"
            margs = ["--preset", args.preset, "--batch", str(args.batch), "--steps", str(T),
                     "--remat-chunk", str(remat), "--memory-probe", probe]
            if args.no_malloc_tuning:
                margs.append("--no-malloc-tuning")
            t0 = time.perf_counter()
            m = common.run_json_subprocess("benchmarks.step_time", margs)
            row["wall_s_incl_compile"] = round(time.perf_counter() - t0, 1)
            if "error" in m:
                row["error"] = m["error"][-500:]
            else:
                row["peak_rss_bytes"] = m["peak_rss_bytes"]
                row["peak_rss_gb"] = round(m["peak_rss_bytes"] / 2**30, 3)
                slope.setdefault(key, m["peak_rss_bytes"] / T)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr if args.json else sys.stdout, flush=True)
    out = {"benchmark": "memory", "machine": common.machine_info(), "preset": args.preset,
           "batch": args.batch, "rows": rows,
           "command": "python -m benchmarks.memory " + " ".join(sys.argv[1:])}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"\n{args.preset} batch {args.batch}: peak RSS (GB) of one train step")
        print(f"{'T':>6s} {'remat':>6s} {'kind':>6s} {'peak GB':>8s}")
        for r in rows:
            val = f"{r['peak_rss_gb']:8.2f}" if "peak_rss_gb" in r else (
                "  skipped" if "skipped" in r else "   error")
            print(f"{r['steps']:6d} {r['remat_chunk']:6d} {r['kind']:>6s} {val}")
    return out


if __name__ == "__main__":
    main()
