"""Gradient flow over time (paper Figure 3): dL/dU of every neuron at every step.

  python -m experiments.analyses.gradient_flow --size=cpu --data_dir=/path/to/mnist

For each network (default: LIF, ALIF, ALIF with a detached reset, TC-LIF; all the
S-MNIST 64-256-256 feed-forward preset) on one batch of S-MNIST test images, the
gradient of the batch-mean cross-entropy with respect to every neuron's membrane
potential at every step. Normalisation: per layer, M[i, t] = sum over the batch of
|dL/dU_i[t]|, divided by the map's total (each layer's map sums to 1); the figure stacks
the layers (divided by their number, so it sums to 1).

Writes to --outdir (default docs/figures/gradient_flow): gradient_flow.png (heat maps,
log scale, with the share per step below), gradient_flow.json (first-half shares per
layer and pooled, loss, finiteness) and profiles.csv (share per step, per network).

--neurons takes name[:key=value;...] items, e.g. "alif:detach_reset=True"; --trained
trains each network first (the --size budget, shared with the other analyses), and
--runs=tclif=DIR,... takes trained parameters from training runs instead. With the
presets' summed readout every step feeds the loss directly; --readout=last (untrained
networks only) makes all gradient reach early steps through time alone.
"""

from __future__ import annotations

import argparse
import os
import sys

from experiments.analyses import _common

DEFAULT_NEURONS = "lif,alif,alif:detach_reset=True,tclif"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_common_flags(parser, outdir="docs/figures/gradient_flow")
    parser.add_argument("--neurons", default=DEFAULT_NEURONS,
                        help="Comma-separated name[:key=value;...] items.")
    parser.add_argument("--preset", default=None,
                        help="Network preset for untrained networks (default: the task config's).")
    parser.add_argument("--examples", type=int, default=None,
                        help="Batch size of the one batch (default: 4 smoke, 16 cpu, 256 paper).")
    parser.add_argument("--readout", default=None, choices=("sum", "mean", "last"),
                        help="Readout of the untrained networks (default: the preset's, 'sum', "
                             "which feeds the loss from every step; 'last' makes every gradient "
                             "travel back through time).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trained", action="store_true", help="Train each network first.")
    parser.add_argument("--runs", default=None, help="neuron=DIR,... trained runs to use.")
    args = parser.parse_args(argv)

    from tclif_jax.analysis import gradient_flow as gf
    from tclif_jax.train import build_model

    os.makedirs(args.outdir, exist_ok=True)
    runs = _common.parse_mapping(args.runs)
    base = _common.make_config(args, neuron="tclif", seed=args.seed)
    preset = args.preset or base.model.preset
    n = args.examples or {"smoke": 4, "cpu": 16, "paper": 256}[args.size]
    x, y, ds = _common.load_eval_batch(base, n)
    results, summary = {}, {}
    for item in args.neurons.split(","):
        label, name, overrides = _common.parse_neuron(item)
        if label in runs or name in runs:
            s = _common.load_run(runs.get(label, runs.get(name)))
            spec, params = s["model"].spec, s["params"]
        elif args.trained:
            config = _common.make_config(args, neuron=name, seed=args.seed, model=overrides)
            s = _common.train(config, _common.run_dir(args, neuron=name, seed=args.seed,
                                                      tag=_common.override_tag(overrides)))
            spec, params = s["model"].spec, s["params"]
        else:
            arch = {"readout": args.readout} if args.readout else {}
            config = _common.make_config(args, neuron=name, seed=args.seed,
                                         model={**overrides, **arch})
            if args.preset:
                config.model.preset = args.preset
            model = build_model(config, ds.num_features, ds.num_classes)
            spec, params = model.spec, model.arrays()
        r = gf.gradient_flow(spec, params, x, y)
        results[label] = r
        summary[label] = {k: r[k] for k in ("loss", "finite", "first_half", "first_half_all",
                                            "raw_mass", "nonfinite_fraction")}
        print(f"{label:>28}: loss {r['loss']:.4f}, finite {r['finite']}, first-half share per "
              f"layer {[round(v, 4) for v in r['first_half']]}, pooled {r['first_half_all']:.4f}")
    gf.plot_gradient_flow(results, os.path.join(args.outdir, "gradient_flow.png"))
    T = x.shape[1]
    rows = [{"t": t, **{label: float(r["stacked"][:, t].sum()) for label, r in results.items()}}
            for t in range(T)]
    _common.write_csv(os.path.join(args.outdir, "profiles.csv"), rows)
    meta = {"task": base.task, "preset": preset, "readout": args.readout or "preset default",
            "examples": int(len(y)), "time_steps": int(T),
            "trained": bool(args.trained or runs), "normalisation":
            "per layer: M[i,t] = sum_b |dL/dU_i[t]| / sum over (i,t); stacked = layers / L",
            "networks": summary}
    _common.write_json(os.path.join(args.outdir, "gradient_flow.json"), meta)
    print(f"Wrote {args.outdir}/gradient_flow.png, gradient_flow.json, profiles.csv")
    return {"results": results, "summary": meta}


if __name__ == "__main__":
    main(sys.argv[1:])
