"""Learning curves (paper Figure 4): mean +- std over seeds, read from training runs.

A run directory is what ``tclif_jax.train.train_and_evaluate`` writes: ``metrics.jsonl``
(one JSON record per epoch: epoch, step, train_loss, train_acc, test_acc, ...) and
``config.json`` (the resolved config; ``model.neuron`` and ``seed`` label the run).
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["read_run", "find_runs", "group_runs", "mean_std", "plot_curves"]


def read_run(workdir: str) -> dict[str, Any]:
    """``{"workdir", "history": [records], "config": dict or {}}`` of one run."""
    path = os.path.join(workdir, "metrics.jsonl")
    with open(path) as f:
        history = [json.loads(line) for line in f if line.strip()]
    cfg_path = os.path.join(workdir, "config.json")
    config = json.load(open(cfg_path)) if os.path.exists(cfg_path) else {}
    return {"workdir": workdir, "history": history, "config": config}


def find_runs(root: str) -> list[str]:
    """Every folder under ``root`` (itself included) that holds a metrics.jsonl."""
    hits = glob.glob(os.path.join(root, "**", "metrics.jsonl"), recursive=True)
    return sorted(os.path.dirname(h) for h in hits)


def group_runs(runs: Iterable[dict], key: str = "neuron") -> dict[str, list[dict]]:
    """Group runs by their ``"label"`` if they carry one, else by ``config["model"][key]``
    (default: the neuron type)."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        label = run.get("label") or str(
            run["config"].get("model", {}).get(key, os.path.basename(run["workdir"]))
        )
        groups.setdefault(label, []).append(run)
    return groups


def mean_std(runs: list[dict], metric: str = "test_acc", x: str = "epoch") -> dict[str, np.ndarray]:
    """Mean and (population) std of ``metric`` over runs at each ``x`` all runs reached.

    Returns ``{"x", "mean", "std", "n"}``; records without the metric are skipped.
    """
    series = []
    for run in runs:
        s = {r[x]: r[metric] for r in run["history"] if metric in r and r.get(metric) is not None}
        series.append(s)
    common = sorted(set.intersection(*(set(s) for s in series))) if series else []
    vals = np.array([[s[k] for k in common] for s in series], np.float64)
    if not common:
        return {"x": np.zeros(0), "mean": np.zeros(0), "std": np.zeros(0), "n": len(series)}
    return {
        "x": np.asarray(common, np.float64),
        "mean": vals.mean(0),
        "std": vals.std(0),
        "n": len(series),
    }


def plot_curves(
    groups: dict[str, list[dict]],
    path: str,
    *,
    metrics: tuple[str, ...] = ("test_acc", "train_loss"),
    x: str = "epoch",
) -> dict:
    """One panel per metric: mean line and +- std band per group. Returns the numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False)
    numbers: dict[str, dict] = {}
    for ax, metric in zip(axes[0], metrics):
        for label, runs in sorted(groups.items()):
            ms = mean_std(runs, metric, x)
            scale = 100.0 if metric.endswith("acc") else 1.0
            if len(ms["x"]):
                (line,) = ax.plot(ms["x"], scale * ms["mean"], "-", label=f"{label} (n={ms['n']})")
                ax.fill_between(
                    ms["x"],
                    scale * (ms["mean"] - ms["std"]),
                    scale * (ms["mean"] + ms["std"]),
                    color=line.get_color(),
                    alpha=0.25,
                )
            numbers.setdefault(label, {})[metric] = {
                k: np.asarray(v).tolist() for k, v in ms.items()
            }
        ax.set_xlabel(x)
        ax.set_ylabel(metric + (" (%)" if metric.endswith("acc") else ""))
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return numbers
