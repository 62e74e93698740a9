"""Render benchmark JSON files (from ``json=True`` runs) as the Markdown tables of RESULTS.md.

Example::

    python -m benchmarks.report benchmarks/results/cpu_*.json

It has no config: its arguments are the JSON files (absl parses the command line, as for
every benchmark).
"""

from __future__ import annotations

import json


def _gb(b):
    return f"{b / 2**30:.2f}" if b else "-"


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def step_time_table(d: dict) -> str:
    m = d["machine"]
    pk = d["matmul_peak_gflops"]
    nan = float("nan")
    header = (
        "configuration",
        "median s",
        "min-max s",
        "GFLOP/s",
        "% of f32 peak",
        "x torch",
        "peak RSS GB",
        "RSS x torch",
        "RSS growth x torch",
    )
    lines = [
        f"**{d['preset']}**, batch {d['batch']}, T {d['steps']} "
        f"({d['flops_counted']['total'] / 1e9:.1f} GFLOP of matmul work per step; "
        f"matmul peak {d.get('matmul_peak_size', 2048)}^3 in the same run: "
        f"f32 {pk['float32']:.0f}, bf16 {pk['bfloat16']:.0f} GFLOP/s; "
        f"load avg {m['loadavg_1min']})",
        "",
        _row(header),
        "|---" * len(header) + "|",
    ]
    for r in d["results"]:
        cells = (
            r["name"],
            f"{r['median_s']:.3f}",
            f"{r['min_s']:.3f}-{r['max_s']:.3f}",
            f"{r['gflops']:.1f}",
            f"{100 * r.get('frac_f32_peak', nan):.1f}%",
            f"{r.get('ratio_vs_torch', nan):.3f}",
            _gb(r.get("peak_rss_bytes")),
            f"{r.get('rss_ratio_vs_torch', nan):.2f}",
            f"{r.get('rss_growth_ratio_vs_torch', nan):.2f}",
        )
        lines.append(_row(cells))
    return "\n".join(lines)


def memory_table(d: dict) -> str:
    lines = [
        f"**{d['preset']}**, batch {d['batch']}: peak RSS of one train step (GB)",
        "",
        "| T | remat_chunk | run | peak RSS GB | note |",
        "|---|---|---|---|---|",
    ]
    for r in d["rows"]:
        val = f"{r['peak_rss_gb']:.2f}" if "peak_rss_gb" in r else "-"
        note = r.get("skipped", "") or ("error" if "error" in r else "")
        run = (
            "torch reference"
            if r["kind"] == "torch"
            else f"jax {r['strategy']} {r['matmul_dtype']}"
        )
        lines.append(f"| {r['steps']} | {r['remat_chunk'] or '-'} | {run} | {val} | {note} |")
    return "\n".join(lines)


def _s(d: dict, key: str, rate: str | None = None) -> str:
    # A time in seconds, with its GFLOP/s when the record has it; "-" when absent (older
    # records have no hoisted products).
    if d.get(key) is None:
        return "-"
    return f"{d[key]:.2f}" + (f" ({d[rate]:.0f})" if rate and d.get(rate) else "")


def breakdown_table(rows: list[dict]) -> str:
    lines = [
        "| preset | neuron | matmul dtype | strategy | counted GFLOP | GEMM peak GFLOP/s | "
        "floor s (counted / peak) | in-loop matmuls s (GFLOP/s) | hoisted matmuls s | "
        "forward s | forward+backward s | rest s | neuron loops s | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in rows:
        cells = (
            d["preset"],
            d.get("neuron", "tclif"),
            d["matmul_dtype"],
            d["strategy"],
            f"{d['counted_gflop']:.1f}",
            f"{d['gemm_peak_gflops']:.0f}",
            f"{d['issue_floor_s']:.2f}",
            _s(d, "loop_matmuls_s", "loop_matmul_gflops"),
            _s(d, "hoisted_matmuls_s"),
            f"{d['forward_s']:.2f}",
            f"{d['forward_backward_s']:.2f}",
            f"{d['rest_s']:.2f}",
            _s(d, "neuron_loop_s"),
            d["machine"]["loadavg_1min"],
        )
        lines.append(_row(cells))
    return "\n".join(lines)


def peers_table(d: dict) -> str:
    """One run of ``benchmarks.peers``: every configuration against the fastest peer."""
    m = d["machine"]
    if d["setting"] == "a":
        shape = f"{'-'.join(map(str, d['widths']))}-{d['classes']} (LIF; ours also TC-LIF), full train step"
    else:
        shape = f"Linear({d['widths'][0]}, {d['widths'][1]}) + LIF (ours also TC-LIF), forward + backward"
    lines = [
        f"**setting {d['setting']}**: {shape}, batch {d['batch']}, T {d['steps']} "
        f"({d['flops_counted']['total'] / 1e9:.1f} GFLOP of matmul work; load avg "
        f"{m['loadavg_1min']})",
        "",
        "| configuration | version | median s | min-max s | GFLOP/s | x spyx | x snnTorch | x norse |",
        "|---|---|---|---|---|---|---|---|",
    ]
    medians = {r["name"]: r["median_s"] for r in d["results"]}

    def ratio(r, peer):
        return f"{r['median_s'] / medians[peer]:.2f}" if peer in medians else "-"

    for r in d["results"]:
        cells = (
            r["name"],
            r["version"] or "-",
            f"{r['median_s']:.3f}",
            f"{r['min_s']:.3f}-{r['max_s']:.3f}",
            f"{r['gflops']:.1f}",
            ratio(r, "spyx"),
            ratio(r, "snntorch"),
            ratio(r, "norse"),
        )
        lines.append(_row(cells))
    lines += [f"skipped {s['library']}: {s['reason']}" for s in d["skipped"]]
    return "\n".join(lines)


def render(paths) -> None:
    """Print the tables of the benchmark JSON files ``paths``, breakdowns as one table."""
    breakdowns = []
    for p in paths:
        with open(p) as f:
            d = json.load(f)
        kind = d.get("benchmark")
        if kind == "breakdown":
            breakdowns.append(d)
            continue
        print(f"<!-- {p} -->")
        if kind == "step_time":
            print(step_time_table(d))
        elif kind == "memory":
            print(memory_table(d))
        elif kind == "peers":
            print(peers_table(d))
        elif kind == "precision_accuracy":
            for r in d["results"]:
                print(
                    f"- {r['matmul_dtype']}: test accuracy {100 * r['test_accuracy']:.2f}% "
                    f"after {d['steps']} steps (train loss {r['final_train_loss_25']:.4f})"
                )
            print(f"- bf16 - f32: {d['bf16_minus_f32_points']:+.2f} points")
        print()
    if breakdowns:
        print(breakdown_table(breakdowns))


def main() -> None:
    from absl import app

    def _main(argv):
        if len(argv) < 2:
            raise app.UsageError(
                "Pass the benchmark JSON files to render, e.g. benchmarks/results/*.json."
            )
        render(argv[1:])

    app.run(_main)


if __name__ == "__main__":
    main()
