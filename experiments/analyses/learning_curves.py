r"""Learning curves (paper Figure 4): TC-LIF against LIF, PLIF and ALIF over seeds.

  python -m experiments.analyses.learning_curves \
      --config=experiments/configs/analyses/learning_curves.py:size=cpu

Trains (or resumes, or reuses) one run per (neuron, seed) under config.rundir with the
size's budget, then reads every run's metrics.jsonl and plots mean +- std bands of test
accuracy and training loss per epoch. --config.plot_only=True reads runs without
training; --config.runs_root=DIR instead plots every run found under DIR (labelled by
config.json's model.neuron), e.g. the paper-size runs made with `python -m
experiments.smnist`. config.neurons takes name[:setting=value;...] items, e.g.
"alif:detach_reset=True". A run whose loss or gradient becomes NaN/inf stops there and is
reported (no curve).

Writes to config.outdir (runs/analyses/learning_curves; docs/figures/learning_curves with
--config.docs=True): learning_curves.png and learning_curves.json (mean, std and n per
epoch per neuron; final and best accuracy).
"""

from __future__ import annotations

import os

from experiments.analyses import _common


def main(config) -> dict:
    """Run the analysis of ``config`` (``experiments/configs/analyses/learning_curves.py``)."""
    import numpy as np

    from tclif_jax.analysis import curves
    from tclif_jax.train import NonFiniteLossError

    outdir = _common.output_dir(config)
    failed = []
    if config.runs_root:
        runs = [curves.read_run(d) for d in curves.find_runs(config.runs_root)]
    else:
        runs = []
        for item in config.neurons.split(","):
            label = _common.parse_neuron(item)[0]
            for seed in config.seeds:
                task_cfg = _common.make_task_config(config, item, seed=seed)
                workdir = _common.run_dir(config, task_cfg, item)
                if not config.plot_only:
                    try:
                        s = _common.train(config, task_cfg, workdir)
                        print(f"{label} seed {seed}: best test {100 * s['best_test_acc']:.2f}%")
                    except NonFiniteLossError as err:
                        error = str(err).split(";")[0]
                        failed.append({"label": label, "seed": seed, "error": error})
                        print(f"{label} seed {seed}: stopped, {error}")
                if os.path.exists(os.path.join(workdir, "metrics.jsonl")):
                    runs.append(dict(curves.read_run(workdir), label=label))
    if not runs:
        raise _common.AnalysisError(
            "No runs with a metrics.jsonl found; train first (config.plot_only=False) or "
            "point config.runs_root at finished runs."
        )
    groups = curves.group_runs(runs)
    table = {}
    for label, rs in sorted(groups.items()):
        final = [r["history"][-1]["test_acc"] for r in rs]
        best = [max(h["test_acc"] for h in r["history"]) for r in rs]
        table[label] = {
            "runs": [r["workdir"] for r in rs],
            "final_test_acc_mean": float(np.mean(final)),
            "final_test_acc_std": float(np.std(final)),
            "best_test_acc_mean": float(np.mean(best)),
            "best_test_acc_std": float(np.std(best)),
        }
        print(
            f"{label:>8}: n={len(rs)} final test {100 * np.mean(final):.2f} +- "
            f"{100 * np.std(final):.2f}%, best {100 * np.mean(best):.2f} +- "
            f"{100 * np.std(best):.2f}%"
        )
    for f in failed:
        print(
            f"{f['label']} seed {f['seed']}: no curve (non-finite loss or gradient: {f['error']})"
        )
    numbers = {}  # filled by the plot, which the JSON written after it holds

    def plot(path):
        numbers.update(curves.plot_curves(groups, path))

    _common.publish(
        outdir,
        {
            "learning_curves.png": plot,
            "learning_curves.json": lambda p: _common.write_json(
                p, {"summary": table, "curves": numbers, "failed": failed}
            ),
        },
    )
    return {"summary": table, "curves": numbers, "failed": failed}


if __name__ == "__main__":
    _common.run(main, "learning_curves")
