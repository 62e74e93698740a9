"""Loss landscape (paper Figure 5): a 2-D slice around trained LIF and TC-LIF networks.

  python -m experiments.analyses.landscape --size=cpu --data_dir=/path/to/mnist

For each network, two random directions filter-normalised after Li et al. (2018)
(weights only; biases and neuron parameters fixed), and the training loss (mean
cross-entropy on --examples training images) at L(theta + a d1 + b d2) on a grid of
[-span, span]^2. Sharpness: the mean and largest rise of the loss on the circle of
radius --radius around the trained point (points - 1 angles, at least 4).

The trained networks come from --runs=lif=DIR,tclif=DIR or are trained (or reused)
under --rundir with the --size's budget (the same runs as learning_curves' seed 0).

Writes to --outdir (default docs/figures/landscape): landscape.png (surfaces and
contours), landscape.json (grids, losses, sharpness) and sharpness.csv.
"""

from __future__ import annotations

import argparse
import os
import sys

from experiments.analyses import _common


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_common_flags(parser, outdir="docs/figures/landscape")
    parser.add_argument("--neurons", default="lif,tclif")
    parser.add_argument("--runs", default=None, help="neuron=DIR,... trained runs to use.")
    parser.add_argument("--seed", type=int, default=0, help="Training seed of the runs.")
    parser.add_argument("--direction_seed", type=int, default=0)
    parser.add_argument("--examples", type=int, default=None,
                        help="Training examples for the loss (default 4 smoke, 64 cpu, 1024 paper).")
    parser.add_argument("--points", type=int, default=None,
                        help="Grid points per axis (default 3 smoke, 9 cpu, 21 paper).")
    parser.add_argument("--span", type=float, default=1.0)
    parser.add_argument("--radius", type=float, default=0.5)
    args = parser.parse_args(argv)

    import jax
    import numpy as np
    from tclif_jax.analysis import landscape as ls

    os.makedirs(args.outdir, exist_ok=True)
    runs = _common.parse_mapping(args.runs)
    n = args.examples or {"smoke": 4, "cpu": 64, "paper": 1024}[args.size]
    points = args.points or {"smoke": 3, "cpu": 9, "paper": 21}[args.size]
    grid = np.linspace(-args.span, args.span, points)
    surfaces, rows = {}, []
    for neuron in args.neurons.split(","):
        if neuron in runs:
            s = _common.load_run(runs[neuron])
            config, workdir = s["config"], runs[neuron]
        else:
            config = _common.make_config(args, neuron=neuron, seed=args.seed)
            workdir = _common.run_dir(args, neuron=neuron, seed=args.seed)
            s = _common.train(config, workdir)
        x, y, _ = _common.load_eval_batch(config, n, split="train", workdir=workdir)
        params = s["params"]
        bs = min(len(y), 64)
        while len(y) % bs:
            bs -= 1
        loss_fn = ls.make_loss_fn(s["model"].spec, x, y, batch_size=bs)
        k1, k2 = jax.random.split(jax.random.key(args.direction_seed))
        d1 = ls.filter_normalised_direction(k1, params)
        d2 = ls.filter_normalised_direction(k2, params)
        f = ls.make_evaluator(loss_fn, params, d1, d2)
        Z = ls.loss_surface(loss_fn, params, d1, d2, grid, grid, evaluator=f)
        sharp = ls.radial_sharpness(loss_fn, params, d1, d2, args.radius, evaluator=f,
                                    num_angles=max(points - 1, 4))
        surfaces[neuron] = {"alphas": grid, "betas": grid, "loss": Z, "sharpness": sharp,
                            "run": workdir, "best_test_acc": s["best_test_acc"]}
        rows.append({"neuron": neuron, **sharp, "grid_min": float(np.min(Z)),
                     "grid_max": float(np.max(Z)), "best_test_acc": s["best_test_acc"], "run": workdir})
        print(f"{neuron}: loss at origin {sharp['loss_at_origin']:.4f}; rise at r={args.radius}: "
              f"mean {sharp['mean_rise']:.4f}, max {sharp['max_rise']:.4f}; grid "
              f"[{np.min(Z):.3f}, {np.max(Z):.3f}]")
    ls.plot_landscape(surfaces, os.path.join(args.outdir, "landscape.png"))
    _common.write_json(os.path.join(args.outdir, "landscape.json"),
                       {"examples": n, "span": args.span, "points": points, "networks": surfaces})
    _common.write_csv(os.path.join(args.outdir, "sharpness.csv"), rows)
    print(f"Wrote {args.outdir}/landscape.png, landscape.json, sharpness.csv")
    return {"surfaces": surfaces, "sharpness": rows}


if __name__ == "__main__":
    main(sys.argv[1:])
