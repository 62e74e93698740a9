"""The beta-grid study (paper Figure 2): generalised two-compartment networks (Eq. 7-9,
fixed a1 = a2 = 1, learnable b1, b2) started at nine (b1, b2) in each quadrant.

  python -m experiments.analyses.beta_grid --size=cpu --data_dir=/path/to/mnist
  python -m experiments.analyses.beta_grid --list                 # the runs and their index
  CUDA_VISIBLE_DEVICES=3 python -m experiments.analyses.beta_grid --size=paper --index=3
  python -m experiments.analyses.beta_grid --size=paper --plot_only

Each (task, b1, b2) is an independent training run in
--rundir/beta_grid-<size>/<task>/b1=.._b2=..
(default tasks: smnist, psmnist; --magnitudes 0.2,0.5,0.8 give 9 points per quadrant,
72 runs). A run that finished leaves result.json and is skipped next time; one that was
interrupted resumes from its checkpoint. --index=K runs only the K-th run and --shard=I/N
every N-th from I, so runs can be spread over devices or jobs.

At --size=cpu each run is one epoch of 16 steps of 32 images (about half a minute on a
CPU); --size=paper uses the task config (200 epochs), for GPUs.

A run is "diverged" when a loss or gradient became NaN/inf (training stops there), and
"chance" when its best test accuracy stays below 1/classes + --chance_margin.

Writes to --outdir (default docs/figures/beta_grid): beta_grid.png (accuracy scatter per
task over the (b1, b2) plane), beta_grid.json and beta_grid.csv (one row per run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from experiments.analyses import _common

# At --size=cpu each run is one epoch of 16 steps (batch 32) unless flags say otherwise.
CPU_BUDGET = {"train_limit": 512, "test_limit": 256, "num_epochs": 1}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_common_flags(parser, outdir="docs/figures/beta_grid")
    parser.add_argument("--tasks", default="smnist,psmnist")
    parser.add_argument("--magnitudes", default="0.2,0.5,0.8",
                        help="|b| values; every pair gives one point per quadrant.")
    parser.add_argument("--quadrants", default="I,II,III,IV")
    parser.add_argument("--points", default=None,
                        help="Explicit points instead of the grid: 'b1:b2,b1:b2,...'.")
    parser.add_argument("--index", type=int, default=None, help="Run only this run index.")
    parser.add_argument("--shard", default=None, help="I/N: run indices I, I+N, I+2N, ...")
    parser.add_argument("--list", action="store_true", help="Print the runs and exit.")
    parser.add_argument("--plot_only", action="store_true", help="Collect and plot, train nothing.")
    parser.add_argument("--chance_margin", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from tclif_jax.analysis import beta_grid as bg

    if args.size == "cpu":  # 72 runs: one short epoch each unless the flags say otherwise
        for key, value in CPU_BUDGET.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    if args.points:
        points = [tuple(float(v) for v in p.split(":")) for p in args.points.split(",")]
    else:
        points = bg.grid_points([float(m) for m in args.magnitudes.split(",")],
                                args.quadrants.split(","))
    runs = [(task, b1, b2) for task in args.tasks.split(",") for b1, b2 in points]
    if args.list:
        for i, (task, b1, b2) in enumerate(runs):
            print(f"{i:3d}  {bg.run_name(task, b1, b2)}")
        return {"runs": runs}
    selected = list(range(len(runs)))
    if args.index is not None:
        if not 0 <= args.index < len(runs):
            raise SystemExit(f"--index must be in [0, {len(runs)}); see --list.")
        selected = [args.index]
    elif args.shard:
        i, n = (int(v) for v in args.shard.split("/"))
        selected = selected[i::n]

    root = os.path.join(args.rundir, f"beta_grid-{args.size}")
    if not args.plot_only:
        for i in selected:
            task, b1, b2 = runs[i]
            _run_one(args, root, task, b1, b2, i, len(runs))

    results = []
    for task, b1, b2 in runs:
        path = os.path.join(root, bg.run_name(task, b1, b2), "result.json")
        if os.path.exists(path):
            with open(path) as f:
                results.append(json.load(f))
    out = {"runs": results, "complete": len(results) == len(runs), "expected": len(runs)}
    if results:
        os.makedirs(args.outdir, exist_ok=True)
        bg.plot_beta_grid(results, os.path.join(args.outdir, "beta_grid.png"))
        _common.write_csv(os.path.join(args.outdir, "beta_grid.csv"), results,
                          ["task", "b1", "b2", "status", "best_test_acc", "final_test_acc",
                           "final_b1", "final_b2", "steps", "error"])
        _common.write_json(os.path.join(args.outdir, "beta_grid.json"), out)
        print(f"Wrote {args.outdir}/beta_grid.png, beta_grid.json, beta_grid.csv "
              f"({len(results)} of {len(runs)} runs finished)")
    return out


def _run_one(args, root, task, b1, b2, i, total):
    import numpy as np
    from tclif_jax.analysis import beta_grid as bg
    from tclif_jax.train import NonFiniteLossError

    workdir = os.path.join(root, bg.run_name(task, b1, b2))
    result_path = os.path.join(workdir, "result.json")
    if os.path.exists(result_path):
        print(f"[{i}/{total}] {bg.run_name(task, b1, b2)}: done before, skipped")
        return
    config = _common.make_config(args, neuron="two_compartment", seed=args.seed, task=task,
                                 variant=args.variant, model={"init_b": (b1, b2)})
    from tclif_jax.data import NUM_CLASSES
    num_classes = NUM_CLASSES.get(task, 10)
    rec = {"task": task, "b1": b1, "b2": b2, "workdir": workdir, "error": None}
    try:
        s = _common.train(config, workdir)
        b = np.asarray(s["params"]["layers"][-1]["neuron"]["b"]).reshape(-1, 2).mean(0)
        finite = math.isfinite(s["history"][-1]["train_loss"])
        rec.update(best_test_acc=s["best_test_acc"], final_test_acc=s["final_test_acc"],
                   final_b1=float(b[0]), final_b2=float(b[1]), steps=s["history"][-1]["step"],
                   status=bg.classify(s["best_test_acc"], num_classes, diverged=not finite,
                                      chance_margin=args.chance_margin))
    except NonFiniteLossError as err:
        rec.update(best_test_acc=None, final_test_acc=None, final_b1=None, final_b2=None,
                   steps=None, status="diverged", error=str(err).split(";")[0])
    _common.write_json(result_path, rec)
    print(f"[{i}/{total}] {bg.run_name(task, b1, b2)}: {rec['status']}, best test "
          f"{rec['best_test_acc']}")


if __name__ == "__main__":
    main(sys.argv[1:])
