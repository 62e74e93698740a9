"""Gradient flow over time (paper Figure 3): dL/dU of every neuron at every step.

  python -m experiments.analyses.gradient_flow --config=experiments/configs/analyses/gradient_flow.py:size=cpu
  python -m experiments.analyses.gradient_flow --config=experiments/configs/analyses/gradient_flow.py:size=cpu,readout=last

Add --config.docs=True to regenerate docs/figures/gradient_flow (gradient_flow_last with
readout=last). Arguments: size (smoke, cpu, paper), task (smnist), variant (ff), readout
('' keeps the preset's, 'sum'; 'last' makes every gradient that reaches an early step
travel back through time, and names the outputs gradient_flow_last).
"""

from experiments.configs.analyses import base


def get_config(arg: str = "size=cpu"):
    """``arg``: e.g. ``size=cpu,readout=last`` or ``size=smoke,task=digits``."""
    a = base.parse(arg, task="smnist", variant="ff", readout="")
    name = "gradient_flow" if a.readout in ("", "sum") else f"gradient_flow_{a.readout}"
    config = base.training_config("gradient_flow", a, name)
    if a.readout:
        config.task_config.model.readout = a.readout
    # Comma-separated name[:setting=value;...] items, e.g. "alif:detach_reset=True".
    config.neurons = "lif,alif,alif:detach_reset=True,tclif"
    config.examples = base.by_size(a.size, 4, 16, 256)  # the one batch of test examples
    config.trained = False  # train each network first (the size's budget, shared runs)
    config.runs = ""  # "tclif=DIR,lif=DIR": take trained networks from these runs
    return config
