"""Learning curves (paper Figure 4): TC-LIF against LIF, PLIF, ALIF and GLIF over seeds.

  python -m experiments.analyses.learning_curves --config=experiments/configs/analyses/learning_curves.py:size=cpu

Add --config.docs=True to regenerate docs/figures/learning_curves. Arguments: size (smoke,
cpu, paper), task (smnist), variant (ff). One training run per (neuron, seed) under
--config.rundir, shared with the other analyses.
"""

from experiments.configs.analyses import base


def get_config(arg: str = "size=cpu"):
    """``arg``: e.g. ``size=cpu`` or ``size=smoke,task=digits``."""
    a = base.parse(arg, task="smnist", variant="ff")
    config = base.training_config("learning_curves", a)
    # Comma-separated name[:setting=value;...] items, e.g. "alif:detach_reset=True".
    # alif_official runs with the official script's surrogate ("gau", exactly).
    config.neurons = (
        "tclif,lif,plif,alif,alif:detach_reset=True,alif_official:surrogate=official_gau,glif"
    )
    config.seeds = (0, 1)
    config.plot_only = False  # plot the runs that exist; train nothing
    config.runs_root = ""  # plot every run under this folder instead of the (neuron, seed) grid
    return config
