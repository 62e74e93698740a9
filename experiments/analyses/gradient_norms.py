r"""Gradient norms (paper Eq. 14-15, Table 7) against the exact Jacobian, and measured.

  python -m experiments.analyses.gradient_norms \
      --config=experiments/configs/analyses/gradient_norms.py:size=cpu

Writes to config.outdir (runs/analyses/gradient_norms; docs/figures/gradient_norms with
--config.docs=True):
  table7.csv / table7.json  every (b1, b2) of Table 7: the paper's value, Eq. 15, and the
                            exact one-step Jacobian (autodiff) with its inf-norm, 2-norm and
                            spectral radius;
  norm_plane.png            Eq. 15 over the (b1, b2) plane with its norm = 1 curve, next to
                            the exact spectral radius with the marginal region -4 < b1 b2 < 0;
  measured.json             the per-step Jacobian of the last hidden layer in a trained
                            network on a test batch, spikes and surrogate included.

The trained network: --config.run=DIR (a training run's --workdir), else the task config's
network (TC-LIF S-MNIST) trained (or reused) at the size's budget under --config.rundir.
--config.measure=False skips it.
"""

from __future__ import annotations

from experiments.analyses import _common

TABLE7_COLUMNS = [
    "b1",
    "b2",
    "trained",
    "paper_table7",
    "eq15",
    "exact_inf_norm",
    "exact_2_norm",
    "exact_spectral_radius",
    "exact_det",
    "marginal",
]


def main(config) -> dict:
    """Run the analysis of ``config`` (``experiments/configs/analyses/gradient_norms.py``)."""
    from tclif_jax.analysis import gradient_norms as gn

    outdir = _common.output_dir(config)
    rows = gn.table7_rows()
    print("| b1 | b2 | paper | Eq. 15 | exact inf-norm | exact 2-norm | spectral radius |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['b1']:.3f} | {r['b2']:.3f} | {r['paper_table7']:.3f} | {r['eq15']:.4f} | "
            f"{r['exact_inf_norm']:.4f} | {r['exact_2_norm']:.4f} | "
            f"{r['exact_spectral_radius']:.6f} |"
        )

    measured = []
    result = {"table7": rows, "outdir": outdir}
    if config.measure:
        if config.run:
            summary = _common.load_run(config, config.run)
            task_cfg, workdir = summary["config"], config.run
        else:
            task_cfg = _common.make_task_config(config)
            workdir = _common.run_dir(config, task_cfg)
            summary = _common.train(config, task_cfg, workdir)
        x, _, _ = _common.load_eval_batch(config, task_cfg, config.examples, workdir=workdir)
        model = summary["model"]
        row = gn.measured_jacobian_norms(model.config, summary["params"], x, layer=-1)
        row.update(run=workdir, best_test_acc=summary["best_test_acc"], examples=int(len(x)))
        measured.append(row)
        print(
            f"\nMeasured in {workdir} (last hidden layer, {len(x)} test examples, "
            f"best test acc {100 * summary['best_test_acc']:.2f}%):"
        )
        for k, v in row.items():
            print(f"  {k}: {v}")
        result["measured"] = measured

    writers = {
        "table7.csv": lambda p: _common.write_csv(p, rows, TABLE7_COLUMNS),
        "table7.json": lambda p: _common.write_json(p, rows),
        "norm_plane.png": lambda p: gn.plot_norm_plane(p, extent=config.extent, measured=measured),
    }
    if measured:
        writers["measured.json"] = lambda p: _common.write_json(p, measured)
    _common.publish(outdir, writers)
    return result


if __name__ == "__main__":
    _common.run(main, "gradient_norms")
