"""Energy per sample (paper Table 2): LIF, TC-LIF and an LSTM of the same size.

  python -m experiments.analyses.energy --size=cpu --data_dir=/path/to/mnist

Three tables (also in energy.json / energy.csv under --outdir, default
docs/figures/energy, with a bar chart energy.png):

1. The paper's rates (LIF [0.219, 0.145, 0.004], TC-LIF [0.294, 0.146, 0.030]) through
   the reference formulas under every combination of assumptions (network ff or rec,
   per step or per 784-step sample, input-layer Fr_in, readout counted or not), sorted
   by the distance to the paper's 23.8 / 28.2 nJ; and the LSTM's 2,834.7 nJ against
   variants of its formula.
2. Our measured layer-wise firing rates (test set, from trained networks: --runs=lif=DIR,
   tclif=DIR, or trained under --rundir with the --size's budget) through the formulas
   with --input_rate (default 1: real-valued pixels drive every synapse every step).
3. LIF, TC-LIF and LSTM side by side in nJ per step and per sample, with the paper's.

The paper's figures match the recurrent S-MNIST network per time step; --variant=rec
trains and measures that network (the default, ff, is the feed-forward one).
"""

from __future__ import annotations

import argparse
import os
import sys

from experiments.analyses import _common


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_common_flags(parser, outdir="docs/figures/energy")
    parser.add_argument("--neurons", default="lif,tclif")
    parser.add_argument("--runs", default=None, help="neuron=DIR,... trained runs to use.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--input_rate", type=float, default=1.0,
                        help="Fr_in of the first layer (1 for real-valued input currents).")
    parser.add_argument("--readout", action="store_true", help="Count the readout's accumulates.")
    parser.add_argument("--paper_only", action="store_true", help="Only the paper-rate tables.")
    args = parser.parse_args(argv)

    import numpy as np
    from tclif_jax.analysis import energy as en

    os.makedirs(args.outdir, exist_ok=True)
    check = en.paper_table2_check()
    lstm = en.lstm_check()
    print("Paper rates through the formulas (nJ), closest assumptions first:")
    print("| network | per | input Fr_in | readout | LIF | TC-LIF | LSTM |")
    print("|---|---|---|---|---|---|---|")
    for r in check[:6]:
        per = "step" if r["time_steps"] == 1 else f"sample (T={r['time_steps']})"
        print(f"| {r['network']} | {per} | {r['input_rate']} | {r['readout']} | {r['lif']:.2f} | "
              f"{r['tclif']:.2f} | {r['lstm']:.1f} |")
    print(f"Paper: LIF {en.PAPER_TABLE2['lif']}, TC-LIF {en.PAPER_TABLE2['tclif']}, "
          f"LSTM {en.PAPER_TABLE2['lstm']} nJ")
    print("LSTM 1-64-256-256 variants (nJ per step):",
          "; ".join(f"17n={r['gate_term']}, readout={r['readout']}, E_MAC={r['e_mac_pJ']}: "
                    f"{r['nJ_per_step']:.1f} ({100 * r['rel_err']:+.1f}%)" for r in lstm[:4]))
    result = {"paper_rates_check": check, "lstm_check": lstm}

    measured = {}
    if not args.paper_only:
        runs = _common.parse_mapping(args.runs)
        arch = None
        for neuron in args.neurons.split(","):
            if neuron in runs:
                s = _common.load_run(runs[neuron])
            else:
                config = _common.make_config(args, neuron=neuron, seed=args.seed)
                s = _common.train(config, _common.run_dir(args, neuron=neuron, seed=args.seed))
            model = s["model"]
            rates = s["history"][-1]["firing_rates"]
            arch = (model.in_features, model.hidden, model.num_classes,
                    tuple(layer.recurrent is not None for layer in model.layers))
            measured[neuron] = {"rates": rates, "best_test_acc": s["best_test_acc"],
                                "run": s.get("workdir")}
        in_f, hidden, classes, rec = arch
        T = _time_steps(args, s)
        table = en.energy_table(in_f, hidden, {k: v["rates"] for k, v in measured.items()},
                                recurrent=rec, num_classes=classes, time_steps=T,
                                input_rate=args.input_rate, readout=args.readout)
        paper_ff = en.energy_table(1, (64, 256, 256), dict(en.PAPER_RATES), time_steps=784,
                                   input_rate=args.input_rate, readout=args.readout)
        paper_rec = en.energy_table(1, (64, 256, 256), dict(en.PAPER_RATES), recurrent=(True, True),
                                    time_steps=784, input_rate=args.input_rate, readout=args.readout)
        print(f"\nOur networks ({'-'.join(map(str, (in_f,) + tuple(hidden)))}, "
              f"{'rec' if any(rec) else 'ff'}, measured test-set rates), nJ:")
        print("| model | rates | nJ per step | nJ per sample | paper rates, same net, per step "
              "| paper rates, rec net, per step | paper |")
        print("|---|---|---|---|---|---|---|")
        pf_by = {r["model"]: r for r in paper_ff}
        pr_by = {r["model"]: r for r in paper_rec}
        for ours in table:
            pf = pf_by.get(ours["model"], {"nJ_per_step": float("nan")})
            pr = pr_by.get(ours["model"], {"nJ_per_step": float("nan")})
            rates = "-" if ours["rates"] is None else ", ".join(f"{v:.3f}" for v in ours["rates"])
            print(f"| {ours['model']} | {rates} | {ours['nJ_per_step']:.2f} | "
                  f"{ours['nJ_per_sample']:.1f} | {pf['nJ_per_step']:.2f} | {pr['nJ_per_step']:.2f} | "
                  f"{ours['paper_nJ']} |")
        result.update(measured=measured, table=table, paper_rates_ff=paper_ff,
                      paper_rates_rec=paper_rec, time_steps=T)
        _common.write_csv(os.path.join(args.outdir, "energy.csv"), table,
                          ["model", "rates", "nJ_per_step", "nJ_per_sample", "paper_nJ"])
        _plot(table, paper_rec, os.path.join(args.outdir, "energy.png"))
    _common.write_json(os.path.join(args.outdir, "energy.json"), result)
    print(f"Wrote {args.outdir}/energy.json" + ("" if args.paper_only else ", energy.csv, energy.png"))
    return result


def _time_steps(args, summary) -> int:
    """T of the task (784 for S-MNIST), from the run's data when it can be read cheaply."""
    config = summary.get("config")
    if config is None:
        config = _common.make_config(args, neuron="tclif")
    _, _, ds = _common.load_eval_batch(config, 1)
    return int(ds.time_steps)


def _plot(table, paper_rec, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [r["model"] for r in table]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    xs = np.arange(len(names))
    ax.bar(xs - 0.27, [r["nJ_per_step"] for r in table], 0.27, label="ours (measured rates)")
    pr_by = {r["model"]: r["nJ_per_step"] for r in paper_rec}
    ax.bar(xs, [pr_by.get(n, 0) for n in names], 0.27, label="paper rates, rec net")
    ax.bar(xs + 0.27, [r["paper_nJ"] or 0 for r in table], 0.27, label="paper Table 2")
    ax.set_yscale("log")
    ax.set_xticks(xs, names)
    ax.set_ylabel("nJ per time step")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main(sys.argv[1:])
