"""Learning curves (paper Figure 4): TC-LIF against LIF, PLIF and ALIF over seeds.

  python -m experiments.analyses.learning_curves --size=cpu --data_dir=/path/to/mnist

Trains (or resumes, or reuses) one run per (neuron, seed) under --rundir with the
--size's budget, then reads every run's metrics.jsonl and plots mean +- std bands of
test accuracy and training loss per epoch. --plot_only reads runs without training;
--runs_root=DIR instead plots every run found under DIR (labelled by config.json's
model.neuron), e.g. the paper-size runs made with `python -m experiments.smnist`.
--neurons takes name[:key=value;...] items, e.g. "alif:detach_reset=True". A run whose
loss or gradient becomes NaN/inf stops there and is reported (no curve).

Writes to --outdir (default docs/figures/learning_curves): learning_curves.png and
learning_curves.json (mean, std and n per epoch per neuron; final and best accuracy).
"""

from __future__ import annotations

import argparse
import os
import sys

from experiments.analyses import _common


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_common_flags(parser, outdir="docs/figures/learning_curves")
    parser.add_argument("--neurons", default="tclif,lif,plif,alif,alif:detach_reset=True")
    parser.add_argument("--seeds", default="0,1", help="Comma-separated seeds.")
    parser.add_argument("--plot_only", action="store_true", help="Do not train; plot what exists.")
    parser.add_argument("--runs_root", default=None,
                        help="Plot every run under this folder instead of the (neuron, seed) grid.")
    args = parser.parse_args(argv)

    import numpy as np
    from tclif_jax.analysis import curves

    os.makedirs(args.outdir, exist_ok=True)
    failed = []
    if args.runs_root:
        runs = [curves.read_run(d) for d in curves.find_runs(args.runs_root)]
    else:
        from tclif_jax.train import NonFiniteLossError

        runs = []
        seeds = [int(s) for s in args.seeds.split(",") if s != ""]
        for item in args.neurons.split(","):
            label, neuron, overrides = _common.parse_neuron(item)
            for seed in seeds:
                workdir = _common.run_dir(args, neuron=neuron, seed=seed,
                                          tag=_common.override_tag(overrides))
                if not args.plot_only:
                    config = _common.make_config(args, neuron=neuron, seed=seed, model=overrides)
                    try:
                        s = _common.train(config, workdir)
                        print(f"{label} seed {seed}: best test {100 * s['best_test_acc']:.2f}%")
                    except NonFiniteLossError as err:
                        failed.append({"label": label, "seed": seed, "error": str(err).split(";")[0]})
                        print(f"{label} seed {seed}: stopped, {failed[-1]['error']}")
                if os.path.exists(os.path.join(workdir, "metrics.jsonl")):
                    runs.append(dict(curves.read_run(workdir), label=label))
    if not runs:
        raise SystemExit("No runs with a metrics.jsonl found; train first (drop --plot_only).")
    groups = curves.group_runs(runs)
    numbers = curves.plot_curves(groups, os.path.join(args.outdir, "learning_curves.png"))
    table = {}
    for label, rs in sorted(groups.items()):
        final = [r["history"][-1]["test_acc"] for r in rs]
        best = [max(h["test_acc"] for h in r["history"]) for r in rs]
        table[label] = {"runs": [r["workdir"] for r in rs], "final_test_acc_mean": float(np.mean(final)),
                        "final_test_acc_std": float(np.std(final)),
                        "best_test_acc_mean": float(np.mean(best)), "best_test_acc_std": float(np.std(best))}
        print(f"{label:>8}: n={len(rs)} final test {100 * np.mean(final):.2f} +- "
              f"{100 * np.std(final):.2f}%, best {100 * np.mean(best):.2f} +- {100 * np.std(best):.2f}%")
    for f in failed:
        print(f"{f['label']} seed {f['seed']}: no curve (non-finite loss or gradient: {f['error']})")
    _common.write_json(os.path.join(args.outdir, "learning_curves.json"),
                       {"summary": table, "curves": numbers, "failed": failed})
    print(f"Wrote {args.outdir}/learning_curves.png, learning_curves.json")
    return {"summary": table, "curves": numbers, "failed": failed}


if __name__ == "__main__":
    main(sys.argv[1:])
