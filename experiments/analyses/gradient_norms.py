"""Gradient norms (paper Eq. 14-15, Table 7) against the exact Jacobian, and measured.

  python -m experiments.analyses.gradient_norms --size=cpu --data_dir=/path/to/mnist

Writes to --outdir (default docs/figures/gradient_norms):
  table7.csv / table7.json  every (b1, b2) of Table 7: the paper's value, Eq. 15, and the
                            exact one-step Jacobian (autodiff) with its inf-norm, 2-norm and
                            spectral radius;
  norm_plane.png            Eq. 15 over the (b1, b2) plane with its norm = 1 curve, next to
                            the exact spectral radius with the marginal region -4 < b1 b2 < 0;
  measured.json             the per-step Jacobian of the last hidden layer in a trained
                            network on a test batch, spikes and surrogate included.

The trained network: --run=DIR (a training run's --workdir), else a TC-LIF S-MNIST run of
the --size's budget is trained (or reused) under --rundir. --no_measure skips it.
"""

from __future__ import annotations

import argparse
import os
import sys

from experiments.analyses import _common


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_common_flags(parser, outdir="docs/figures/gradient_norms")
    parser.add_argument("--run", default=None, help="A trained run's workdir to measure.")
    parser.add_argument("--neuron", default="tclif", help="Neuron to train when --run is unset.")
    parser.add_argument("--examples", type=int, default=None,
                        help="Test examples for the measurement (default: 4 smoke, 32 cpu, 256 paper).")
    parser.add_argument("--no_measure", action="store_true", help="Only the closed-form parts.")
    parser.add_argument("--extent", type=float, default=2.5, help="Half-width of the plotted plane.")
    args = parser.parse_args(argv)

    from tclif_jax.analysis import gradient_norms as gn

    os.makedirs(args.outdir, exist_ok=True)
    rows = gn.table7_rows()
    cols = ["b1", "b2", "trained", "paper_table7", "eq15", "exact_inf_norm", "exact_2_norm",
            "exact_spectral_radius", "exact_det", "marginal"]
    _common.write_csv(os.path.join(args.outdir, "table7.csv"), rows, cols)
    _common.write_json(os.path.join(args.outdir, "table7.json"), rows)
    print("| b1 | b2 | paper | Eq. 15 | exact inf-norm | exact 2-norm | spectral radius |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['b1']:.3f} | {r['b2']:.3f} | {r['paper_table7']:.3f} | {r['eq15']:.4f} | "
              f"{r['exact_inf_norm']:.4f} | {r['exact_2_norm']:.4f} | "
              f"{r['exact_spectral_radius']:.6f} |")

    measured = []
    result = {"table7": rows, "outdir": args.outdir}
    if not args.no_measure:
        if args.run:
            summary = _common.load_run(args.run)
            config = summary["config"]
            workdir = args.run
        else:
            config = _common.make_config(args, neuron=args.neuron)
            workdir = _common.run_dir(args, neuron=args.neuron)
            summary = _common.train(config, workdir)
        n = args.examples or {"smoke": 4, "cpu": 32, "paper": 256}[args.size]
        x, _, _ = _common.load_eval_batch(config, n, workdir=workdir)
        model = summary["model"]
        row = gn.measured_jacobian_norms(model.spec, summary["params"], x, layer=-1)
        row.update(run=workdir, best_test_acc=summary["best_test_acc"], examples=int(len(x)))
        measured.append(row)
        _common.write_json(os.path.join(args.outdir, "measured.json"), measured)
        print(f"\nMeasured in {workdir} (last hidden layer, {len(x)} test examples, "
              f"best test acc {100 * summary['best_test_acc']:.2f}%):")
        for k, v in row.items():
            print(f"  {k}: {v}")
        result["measured"] = measured
    gn.plot_norm_plane(os.path.join(args.outdir, "norm_plane.png"), extent=args.extent,
                       measured=measured)
    print(f"\nWrote {args.outdir}/table7.csv, table7.json, norm_plane.png"
          + (", measured.json" if measured else ""))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
