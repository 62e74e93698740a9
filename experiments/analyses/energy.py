"""Energy per sample (paper Table 2): LIF, TC-LIF and an LSTM of the same size.

  python -m experiments.analyses.energy --config=experiments/configs/analyses/energy.py:size=cpu

Three tables (also in energy.json / energy.csv under config.outdir, runs/analyses/energy
or docs/figures/energy with --config.docs=True, with a bar chart energy.png):

1. The paper's rates (LIF [0.219, 0.145, 0.004], TC-LIF [0.294, 0.146, 0.030]) through
   the reference formulas under every combination of assumptions (network ff or rec,
   per step or per 784-step sample, input-layer Fr_in, readout counted or not), sorted
   by the distance to the paper's 23.8 / 28.2 nJ; and the LSTM's 2,834.7 nJ against
   variants of its formula.
2. Our measured layer-wise firing rates (test set, from trained networks:
   --config.runs=lif=DIR,tclif=DIR, or trained under config.rundir with the size's
   budget) through the formulas with config.input_rate (default 1: real-valued pixels
   drive every synapse every step).
3. LIF, TC-LIF and LSTM side by side in nJ per step and per sample, with the paper's.

The paper's figures match the recurrent S-MNIST network per time step; the config
argument variant=rec trains and measures that network (the default, ff, is the
feed-forward one).
"""

from __future__ import annotations

from experiments.analyses import _common


def main(config) -> dict:
    """Run the analysis of ``config`` (``experiments/configs/analyses/energy.py``)."""
    from tclif_jax.analysis import energy as en

    outdir = _common.output_dir(config)
    check = en.paper_table2_check()
    lstm = en.lstm_check()
    print("Paper rates through the formulas (nJ), closest assumptions first:")
    print("| network | per | input Fr_in | readout | LIF | TC-LIF | LSTM |")
    print("|---|---|---|---|---|---|---|")
    for r in check[:6]:
        per = "step" if r["time_steps"] == 1 else f"sample (T={r['time_steps']})"
        print(
            f"| {r['network']} | {per} | {r['input_rate']} | {r['readout']} | "
            f"{r['lif']:.2f} | {r['tclif']:.2f} | {r['lstm']:.1f} |"
        )
    print(
        f"Paper: LIF {en.PAPER_TABLE2['lif']}, TC-LIF {en.PAPER_TABLE2['tclif']}, "
        f"LSTM {en.PAPER_TABLE2['lstm']} nJ"
    )
    print(
        "LSTM 1-64-256-256 variants (nJ per step):",
        "; ".join(
            f"17n={r['gate_term']}, readout={r['readout']}, E_MAC={r['e_mac_pJ']}: "
            f"{r['nJ_per_step']:.1f} ({100 * r['rel_err']:+.1f}%)"
            for r in lstm[:4]
        ),
    )
    result = {"paper_rates_check": check, "lstm_check": lstm}
    writers = {}

    if not config.paper_only:
        result.update(_measured(config, en))
        writers["energy.csv"] = lambda p: _common.write_csv(
            p, result["table"], ["model", "rates", "nJ_per_step", "nJ_per_sample", "paper_nJ"]
        )
        writers["energy.png"] = lambda p: _plot(result["table"], result["paper_rates_rec"], p)
    writers["energy.json"] = lambda p: _common.write_json(p, result)
    _common.publish(outdir, writers)
    return result


def _measured(config, en) -> dict:
    """Rates of the trained networks through the formulas, next to the paper's rates."""
    runs = _common.parse_mapping(config.runs)
    measured, arch, task_cfg = {}, None, None
    for neuron in config.neurons.split(","):
        if neuron in runs:
            s = _common.load_run(config, runs[neuron])
            task_cfg = s["config"]
        else:
            task_cfg = _common.make_task_config(config, neuron)
            s = _common.train(config, task_cfg, _common.run_dir(config, task_cfg, neuron))
        net = s["model"].config
        arch = (net.in_features, net.hidden, net.num_classes, net.recurrent)
        measured[neuron] = {
            "rates": s["history"][-1]["firing_rates"],
            "best_test_acc": s["best_test_acc"],
            "run": s.get("workdir"),
        }
    in_f, hidden, classes, rec = arch
    # T of the task (784 for S-MNIST), from one example of the last network's data.
    T = int(_common.load_eval_batch(config, task_cfg, 1)[2].time_steps)
    kw = dict(input_rate=config.input_rate, readout=config.count_readout)
    table = en.energy_table(
        in_f,
        hidden,
        {k: v["rates"] for k, v in measured.items()},
        recurrent=rec,
        num_classes=classes,
        time_steps=T,
        **kw,
    )
    paper_ff = en.energy_table(1, (64, 256, 256), dict(en.PAPER_RATES), time_steps=784, **kw)
    paper_rec = en.energy_table(
        1, (64, 256, 256), dict(en.PAPER_RATES), recurrent=(True, True), time_steps=784, **kw
    )
    print(
        f"\nOur networks ({'-'.join(map(str, (in_f,) + tuple(hidden)))}, "
        f"{'rec' if any(rec) else 'ff'}, measured test-set rates), nJ:"
    )
    print(
        "| model | rates | nJ per step | nJ per sample | paper rates, same net, per step "
        "| paper rates, rec net, per step | paper |"
    )
    print("|---|---|---|---|---|---|---|")
    pf_by = {r["model"]: r for r in paper_ff}
    pr_by = {r["model"]: r for r in paper_rec}
    nan = {"nJ_per_step": float("nan")}
    for ours in table:
        pf, pr = pf_by.get(ours["model"], nan), pr_by.get(ours["model"], nan)
        rates = "-" if ours["rates"] is None else ", ".join(f"{v:.3f}" for v in ours["rates"])
        print(
            f"| {ours['model']} | {rates} | {ours['nJ_per_step']:.2f} | "
            f"{ours['nJ_per_sample']:.1f} | {pf['nJ_per_step']:.2f} | "
            f"{pr['nJ_per_step']:.2f} | {ours['paper_nJ']} |"
        )
    return {
        "measured": measured,
        "table": table,
        "paper_rates_ff": paper_ff,
        "paper_rates_rec": paper_rec,
        "time_steps": T,
    }


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
    _common.run(main, "energy")
