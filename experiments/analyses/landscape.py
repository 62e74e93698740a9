r"""Loss landscape (paper Figure 5): a 2-D slice around trained LIF and TC-LIF networks.

  python -m experiments.analyses.landscape \
      --config=experiments/configs/analyses/landscape.py:size=cpu

For each network, two random directions filter-normalised after Li et al. (2018)
(weights only; biases and neuron parameters fixed), and the training loss (mean
cross-entropy on config.examples training images) at L(theta + a d1 + b d2) on a grid of
[-span, span]^2. Sharpness: the mean and largest rise of the loss on the circle of
config.radius around the trained point (points - 1 angles, at least 4).

The trained networks come from --config.runs=lif=DIR,tclif=DIR or are trained (or
reused) under config.rundir with the size's budget (the same runs as learning_curves'
seed 0).

Writes to config.outdir (runs/analyses/landscape; docs/figures/landscape with
--config.docs=True): landscape.png (surfaces and contours), landscape.json (grids,
losses, sharpness) and sharpness.csv.
"""

from __future__ import annotations

from experiments.analyses import _common


def main(config) -> dict:
    """Run the analysis of ``config`` (``experiments/configs/analyses/landscape.py``)."""
    import jax
    import numpy as np

    from tclif_jax.analysis import landscape as ls

    outdir = _common.output_dir(config)
    runs = _common.parse_mapping(config.runs)
    n, points = config.examples, config.points
    grid = np.linspace(-config.span, config.span, points)
    surfaces, rows = {}, []
    for neuron in config.neurons.split(","):
        if neuron in runs:
            s = _common.load_run(config, runs[neuron])
            task_cfg, workdir = s["config"], runs[neuron]
        else:
            task_cfg = _common.make_task_config(config, neuron)
            workdir = _common.run_dir(config, task_cfg, neuron)
            s = _common.train(config, task_cfg, workdir)
        x, y, _ = _common.load_eval_batch(config, task_cfg, n, split="train", workdir=workdir)
        params = s["params"]
        bs = min(len(y), 64)
        while len(y) % bs:
            bs -= 1
        loss_fn = ls.make_loss_fn(s["model"].config, x, y, batch_size=bs)
        k1, k2 = jax.random.split(jax.random.key(config.direction_seed))
        d1 = ls.filter_normalised_direction(k1, params)
        d2 = ls.filter_normalised_direction(k2, params)
        f = ls.make_evaluator(loss_fn, params, d1, d2)
        Z = ls.loss_surface(loss_fn, params, d1, d2, grid, grid, evaluator=f)
        sharp = ls.radial_sharpness(
            loss_fn, params, d1, d2, config.radius, evaluator=f, num_angles=max(points - 1, 4)
        )
        surfaces[neuron] = {
            "alphas": grid,
            "betas": grid,
            "loss": Z,
            "sharpness": sharp,
            "run": workdir,
            "best_test_acc": s["best_test_acc"],
        }
        rows.append(
            {
                "neuron": neuron,
                **sharp,
                "grid_min": float(np.min(Z)),
                "grid_max": float(np.max(Z)),
                "best_test_acc": s["best_test_acc"],
                "run": workdir,
            }
        )
        print(
            f"{neuron}: loss at origin {sharp['loss_at_origin']:.4f}; rise at "
            f"r={config.radius}: mean {sharp['mean_rise']:.4f}, max {sharp['max_rise']:.4f}; "
            f"grid [{np.min(Z):.3f}, {np.max(Z):.3f}]"
        )
    numbers = {"examples": n, "span": config.span, "points": points, "networks": surfaces}
    _common.publish(
        outdir,
        {
            "landscape.png": lambda p: ls.plot_landscape(surfaces, p),
            "landscape.json": lambda p: _common.write_json(p, numbers),
            "sharpness.csv": lambda p: _common.write_csv(p, rows),
        },
    )
    return {"surfaces": surfaces, "sharpness": rows}


if __name__ == "__main__":
    _common.run(main, "landscape")
