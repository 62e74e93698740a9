r"""The beta-grid study (paper Figure 2): generalised two-compartment networks (Eq. 7-9,
fixed a1 = a2 = 1, learnable b1, b2) started at nine (b1, b2) in each quadrant.

  python -m experiments.analyses.beta_grid \
      --config=experiments/configs/analyses/beta_grid.py:size=cpu
  python -m experiments.analyses.beta_grid \
      --config=experiments/configs/analyses/beta_grid.py:size=paper --config.list_runs=True
  CUDA_VISIBLE_DEVICES=3 python -m experiments.analyses.beta_grid \
      --config=experiments/configs/analyses/beta_grid.py:size=paper --config.index=3
  python -m experiments.analyses.beta_grid \
      --config=experiments/configs/analyses/beta_grid.py:size=paper --config.plot_only=True

Each (task, b1, b2) is an independent training run in
<config.rundir>/beta_grid-<size>/<task>/b1=.._b2=..
(default tasks: smnist, psmnist; magnitudes 0.2, 0.5, 0.8 give 9 points per quadrant,
72 runs). A run that finished leaves result.json and is skipped next time; one that was
interrupted resumes from its checkpoint. --config.index=K runs only the K-th run and
--config.shard=I/N every N-th from I, so runs can be spread over devices or jobs.

At size cpu each run is one epoch of 16 steps of 32 images (about half a minute on a
CPU); size paper uses the task config (200 epochs), for GPUs.

A run is "diverged" when a loss or gradient became NaN/inf (training stops there), and
"chance" when its best test accuracy stays below 1/classes + config.chance_margin.

Writes to config.outdir (runs/analyses/beta_grid; docs/figures/beta_grid with
--config.docs=True): beta_grid.png (accuracy scatter per task over the (b1, b2) plane),
beta_grid.json and beta_grid.csv (one row per run).
"""

from __future__ import annotations

import json
import math
import os

from experiments.analyses import _common

CSV_COLUMNS = [
    "task",
    "b1",
    "b2",
    "status",
    "best_test_acc",
    "final_test_acc",
    "final_b1",
    "final_b2",
    "steps",
    "error",
]


def _points(config) -> list[tuple[float, float]]:
    from tclif_jax.analysis import beta_grid as bg

    if config.points:
        return [tuple(float(v) for v in p.split(":")) for p in config.points.split(",")]
    return bg.grid_points(config.magnitudes, config.quadrants)


def main(config) -> dict:
    """Run the analysis of ``config`` (``experiments/configs/analyses/beta_grid.py``)."""
    from tclif_jax.analysis import beta_grid as bg

    outdir = _common.output_dir(config)
    runs = [(task, b1, b2) for task in config.task_configs for b1, b2 in _points(config)]
    if config.list_runs:
        for i, (task, b1, b2) in enumerate(runs):
            print(f"{i:3d}  {bg.run_name(task, b1, b2)}")
        return {"runs": runs}
    selected = list(range(len(runs)))
    if config.index >= 0:
        if config.index >= len(runs):
            raise _common.AnalysisError(
                f"config.index must be in [0, {len(runs)}); see config.list_runs."
            )
        selected = [config.index]
    elif config.shard:
        i, n = (int(v) for v in config.shard.split("/"))
        selected = selected[i::n]

    root = os.path.join(config.rundir, f"beta_grid-{config.size}")
    if not config.plot_only:
        for i in selected:
            task, b1, b2 = runs[i]
            _run_one(config, root, task, b1, b2, i, len(runs))

    results = []
    for task, b1, b2 in runs:
        path = os.path.join(root, bg.run_name(task, b1, b2), "result.json")
        if os.path.exists(path):
            with open(path) as f:
                results.append(json.load(f))
    out = {"runs": results, "complete": len(results) == len(runs), "expected": len(runs)}
    if results:
        _common.publish(
            outdir,
            {
                "beta_grid.png": lambda p: bg.plot_beta_grid(results, p),
                "beta_grid.csv": lambda p: _common.write_csv(p, results, CSV_COLUMNS),
                "beta_grid.json": lambda p: _common.write_json(p, out),
            },
        )
        print(f"{len(results)} of {len(runs)} runs finished")
    return out


def _run_one(config, root, task, b1, b2, i, total):
    import numpy as np

    from tclif_jax.analysis import beta_grid as bg
    from tclif_jax.data import NUM_CLASSES
    from tclif_jax.train import NonFiniteLossError

    workdir = os.path.join(root, bg.run_name(task, b1, b2))
    result_path = os.path.join(workdir, "result.json")
    if os.path.exists(result_path):
        print(f"[{i}/{total}] {bg.run_name(task, b1, b2)}: done before, skipped")
        return
    task_cfg = _common.make_task_config(config, "two_compartment", task=task)
    task_cfg.model.init_b = (b1, b2)
    rec = {"task": task, "b1": b1, "b2": b2, "workdir": workdir, "error": None}
    try:
        s = _common.train(config, task_cfg, workdir)
        net = s["model"].config
        last = s["model"].params().layers[-1].neuron
        final_b1, final_b2 = (float(np.mean(b)) for b in net.neurons[-1].coupling(last))
        finite = math.isfinite(s["history"][-1]["train_loss"])
        rec.update(
            best_test_acc=s["best_test_acc"],
            final_test_acc=s["final_test_acc"],
            final_b1=final_b1,
            final_b2=final_b2,
            steps=s["history"][-1]["step"],
            status=bg.classify(
                s["best_test_acc"],
                NUM_CLASSES.get(task, 10),
                diverged=not finite,
                chance_margin=config.chance_margin,
            ),
        )
    except NonFiniteLossError as err:
        rec.update(
            best_test_acc=None,
            final_test_acc=None,
            final_b1=None,
            final_b2=None,
            steps=None,
            status="diverged",
            error=str(err).split(";")[0],
        )
    os.makedirs(workdir, exist_ok=True)
    _common.write_json(result_path, rec)
    print(
        f"[{i}/{total}] {bg.run_name(task, b1, b2)}: {rec['status']}, best test "
        f"{rec['best_test_acc']}"
    )


if __name__ == "__main__":
    _common.run(main, "beta_grid")
