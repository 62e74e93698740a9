"""Gradient norms (paper Eq. 14-15, Table 7): Eq. 15 against the exact Jacobian, and measured.

  python -m experiments.analyses.gradient_norms --config=experiments/configs/analyses/gradient_norms.py:size=cpu

Add --config.docs=True to regenerate docs/figures/gradient_norms. Arguments: size (smoke,
cpu, paper), task (smnist), variant (ff). The measured network is the task config's
(TC-LIF; --config.task_config.model.neuron=lif for LIF), trained at the size's budget
under --config.rundir, or a finished run: --config.run=DIR.
"""

from experiments.configs.analyses import base


def get_config(arg: str = "size=cpu"):
    """``arg``: e.g. ``size=cpu`` or ``size=smoke,task=digits``."""
    a = base.parse(arg, task="smnist", variant="ff")
    config = base.training_config("gradient_norms", a)
    config.run = ""  # a finished training run's workdir to measure instead of training one
    config.measure = True  # False: only the closed-form parts (Table 7, the plane)
    config.examples = base.by_size(a.size, 4, 32, 256)  # test examples for the measurement
    config.extent = 2.5  # half-width of the plotted (b1, b2) plane
    return config
