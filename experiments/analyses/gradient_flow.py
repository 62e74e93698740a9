r"""Gradient flow over time (paper Figure 3): dL/dU of every neuron at every step.

  python -m experiments.analyses.gradient_flow \
      --config=experiments/configs/analyses/gradient_flow.py:size=cpu
  python -m experiments.analyses.gradient_flow \
      --config=experiments/configs/analyses/gradient_flow.py:size=cpu,readout=last

For each network of config.neurons (default: LIF, ALIF, ALIF with a detached reset,
TC-LIF; all the S-MNIST 64-256-256 feed-forward preset) on one batch of test images, the
gradient of the batch-mean cross-entropy with respect to every neuron's membrane
potential at every step. Normalisation: per layer, M[i, t] = sum over the batch of
|dL/dU_i[t]|, divided by the map's total (each layer's map sums to 1); the figure stacks
the layers (divided by their number, so it sums to 1).

Writes to config.outdir (runs/analyses/gradient_flow[_last]; docs/figures/... with
--config.docs=True): gradient_flow.png (heat maps, log scale, with the share per step
below), gradient_flow.json (first-half shares per layer and pooled, loss, finiteness) and
profiles.csv (share per step, per network).

config.neurons takes name[:setting=value;...] items, e.g. "alif:detach_reset=True";
--config.trained=True trains each network first (the size's budget, shared with the other
analyses), and --config.runs=tclif=DIR,... takes trained parameters from training runs
instead. With the presets' summed readout every step feeds the loss directly; the config
argument readout=last makes all gradient reach early steps through time alone.
"""

from __future__ import annotations

from experiments.analyses import _common


def main(config) -> dict:
    """Run the analysis of ``config`` (``experiments/configs/analyses/gradient_flow.py``)."""
    from tclif_jax.analysis import gradient_flow as gf
    from tclif_jax.models import parameters
    from tclif_jax.train import build_model

    outdir = _common.output_dir(config)
    runs = _common.parse_mapping(config.runs)
    base = _common.make_task_config(config)
    x, y, ds = _common.load_eval_batch(config, base, config.examples)
    results, summary = {}, {}
    for item in config.neurons.split(","):
        label, name, _ = _common.parse_neuron(item)
        if label in runs or name in runs:
            s = _common.load_run(config, runs.get(label, runs.get(name)))
            net, params = s["model"].config, s["params"]
        elif config.trained:
            task_cfg = _common.make_task_config(config, item)
            s = _common.train(config, task_cfg, _common.run_dir(config, task_cfg, item))
            net, params = s["model"].config, s["params"]
        else:
            model = build_model(
                _common.make_task_config(config, item), ds.num_features, ds.num_classes
            )
            net, params = model.config, parameters(model)
        r = gf.gradient_flow(net, params, x, y)
        results[label] = r
        summary[label] = {
            k: r[k]
            for k in (
                "loss",
                "finite",
                "first_half",
                "first_half_all",
                "raw_mass",
                "nonfinite_fraction",
            )
        }
        print(
            f"{label:>28}: loss {r['loss']:.4f}, finite {r['finite']}, first-half share per "
            f"layer {[round(v, 4) for v in r['first_half']]}, pooled {r['first_half_all']:.4f}"
        )
    T = x.shape[1]
    rows = [
        {"t": t, **{label: float(r["stacked"][:, t].sum()) for label, r in results.items()}}
        for t in range(T)
    ]
    meta = {
        "task": base.task,
        "preset": base.model.preset,
        "readout": base.model.readout or "preset default",
        "examples": int(len(y)),
        "time_steps": int(T),
        "trained": bool(config.trained or runs),
        "normalisation": "per layer: M[i,t] = sum_b |dL/dU_i[t]| / sum over (i,t); "
        "stacked = layers / L",
        "networks": summary,
    }
    _common.publish(
        outdir,
        {
            "gradient_flow.png": lambda p: gf.plot_gradient_flow(results, p),
            "profiles.csv": lambda p: _common.write_csv(p, rows),
            "gradient_flow.json": lambda p: _common.write_json(p, meta),
        },
    )
    return {"results": results, "summary": meta}


if __name__ == "__main__":
    _common.run(main, "gradient_flow")
