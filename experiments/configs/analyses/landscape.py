"""Loss landscape (paper Figure 5): a 2-D slice around trained LIF and TC-LIF networks.

  python -m experiments.analyses.landscape --config=experiments/configs/analyses/landscape.py:size=cpu

Add --config.docs=True to regenerate docs/figures/landscape. Arguments: size (smoke, cpu,
paper), task (smnist), variant (ff). The networks are the seed-0 runs of learning_curves
(trained here if missing), or finished runs: --config.runs=lif=DIR,tclif=DIR.
"""

from experiments.configs.analyses import base


def get_config(arg: str = "size=cpu"):
    """``arg``: e.g. ``size=cpu`` or ``size=smoke,task=digits``."""
    a = base.parse(arg, task="smnist", variant="ff")
    config = base.training_config("landscape", a)
    config.neurons = "lif,tclif"
    config.runs = ""  # "tclif=DIR,lif=DIR": take trained networks from these runs
    config.direction_seed = 0
    config.examples = base.by_size(a.size, 4, 64, 1024)  # training examples for the loss
    config.points = base.by_size(a.size, 3, 9, 21)  # grid points per axis
    config.span = 1.0  # the grid covers [-span, span]^2
    config.radius = 0.5  # sharpness: loss rise on this circle (points - 1 angles, >= 4)
    return config
