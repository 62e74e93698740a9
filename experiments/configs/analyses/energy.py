"""Energy per sample (paper Table 2): LIF, TC-LIF and an LSTM of the same size.

  python -m experiments.analyses.energy --config=experiments/configs/analyses/energy.py:size=cpu
  python -m experiments.analyses.energy --config=experiments/configs/analyses/energy.py:size=cpu,variant=rec

Add --config.docs=True to regenerate docs/figures/energy. Arguments: size (smoke, cpu,
paper), task (smnist), variant (ff; rec is the network the paper's figures describe).
"""

from experiments.configs.analyses import base


def get_config(arg: str = "size=cpu"):
    """``arg``: e.g. ``size=cpu,variant=rec`` or ``size=smoke,task=digits``."""
    a = base.parse(arg, task="smnist", variant="ff")
    config = base.training_config("energy", a)
    config.neurons = "lif,tclif"
    config.runs = ""  # "tclif=DIR,lif=DIR": take measured rates from these runs
    config.input_rate = 1.0  # Fr_in of the first layer (1 for real-valued input currents)
    config.count_readout = False  # count the readout's accumulates
    config.paper_only = False  # only the tables with the paper's own rates
    return config
