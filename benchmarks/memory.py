"""Peak memory of one train step against sequence length, with and without remat.

Example::

    python -m benchmarks.memory \\
        --config=benchmarks/configs/memory.py:preset=smnist-ff-64,batch=256,remat_chunk=112 \\
        --config.steps=784,1568,3136,6272 [--config.against=torch] [--config.json=True]

Each (T, remat) configuration runs in a fresh subprocess (``benchmarks.step_time`` in its
memory-probe mode): build, compile, two train steps, then the process's peak RSS
(``VmHWM``), so peaks of different configurations never mix. It includes the Python,
JAX and XLA runtime (about 0.2-0.3 GB here). ``max_gb`` skips configurations whose
estimate (linear in T from the smallest run) exceeds it, so a sweep cannot exhaust a
shared machine; skipped rows say so.

``remat_chunk`` must divide every T (112 divides 784 * 2^k). With remat the network
runs the autodiff ``fused`` scan over chunks with ``jax.checkpoint`` on each chunk
(activation memory ~ T / chunk + chunk steps instead of ~ T).
"""

from __future__ import annotations

import json
import sys
import time

from benchmarks import common


def run(config) -> dict:
    """Run the sweep ``config`` describes (``benchmarks/configs/memory.py``) and print its
    table, or with ``config.json`` one JSON object; returns that object."""
    from benchmarks.configs.memory import check, sequence_lengths
    from benchmarks.step_time import memory_probe_args

    check(config)
    rows = []
    slope = {}
    configs = [(0, "jax")] + ([(config.remat_chunk, "jax")] if config.remat_chunk else [])
    if config.against == "torch":
        configs.append((0, "torch"))
    for T in sequence_lengths(config):
        for remat, kind in configs:
            key = (remat, kind)
            est = slope[key] * T / 2**30 if key in slope else None
            row = {
                "steps": T,
                "remat_chunk": remat,
                "kind": kind,
                "strategy": config.strategy if kind == "jax" else "python-loop",
                "matmul_dtype": config.matmul_dtype if kind == "jax" else "float32",
            }
            if est is not None and est > config.max_gb:
                row.update(
                    skipped=f"estimated {est:.1f} GB > max_gb {config.max_gb}",
                    estimate_gb=est,
                )
                rows.append(row)
                continue
            probe = "torch::" if kind == "torch" else f"jax:{config.strategy}:{config.matmul_dtype}"
            args = memory_probe_args(
                probe,
                preset=config.preset,
                batch=config.batch,
                steps=T,
                remat_chunk=remat,
                malloc_tuning=config.malloc_tuning,
            )
            t0 = time.perf_counter()
            m = common.run_json_subprocess("benchmarks.step_time", args)
            row["wall_s_incl_compile"] = round(time.perf_counter() - t0, 1)
            if "error" in m:
                row["error"] = m["error"][-500:]
            else:
                row["peak_rss_bytes"] = m["peak_rss_bytes"]
                row["peak_rss_gb"] = round(m["peak_rss_bytes"] / 2**30, 3)
                slope.setdefault(key, m["peak_rss_bytes"] / T)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr if config.json else sys.stdout, flush=True)
    out = {
        "benchmark": "memory",
        "machine": common.machine_info(),
        "preset": config.preset,
        "batch": config.batch,
        "rows": rows,
        "config": config.to_dict(),
        "command": common.command("memory"),
    }
    if config.json:
        print(json.dumps(out))
    else:
        print(f"\n{config.preset} batch {config.batch}: peak RSS (GB) of one train step")
        print(f"{'T':>6s} {'remat':>6s} {'kind':>6s} {'peak GB':>8s}")
        for r in rows:
            if "peak_rss_gb" in r:
                val = f"{r['peak_rss_gb']:8.2f}"
            else:
                val = "  skipped" if "skipped" in r else "   error"
            print(f"{r['steps']:6d} {r['remat_chunk']:6d} {r['kind']:>6s} {val}")
    return out


def main() -> None:
    common.main("memory", run)


if __name__ == "__main__":
    main()
