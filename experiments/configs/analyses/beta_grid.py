"""The beta-grid study (paper Figure 2): two-compartment networks started at (b1, b2) in
each quadrant.

  python -m experiments.analyses.beta_grid --config=experiments/configs/analyses/beta_grid.py:size=cpu
  python -m experiments.analyses.beta_grid --config=experiments/configs/analyses/beta_grid.py:size=paper --config.list_runs=True
  CUDA_VISIBLE_DEVICES=3 python -m experiments.analyses.beta_grid --config=experiments/configs/analyses/beta_grid.py:size=paper --config.index=3
  python -m experiments.analyses.beta_grid --config=experiments/configs/analyses/beta_grid.py:size=paper --config.plot_only=True

Add --config.docs=True to regenerate docs/figures/beta_grid. Arguments: size (smoke, cpu,
paper), tasks (smnist+psmnist: '+'-separated), variant (ff). At size cpu each run is one
epoch of 16 steps of 32 images. ``task_configs`` holds one task config per task
(--config.task_configs.smnist.train.num_epochs=...).
"""

from ml_collections import config_dict

from experiments.configs.analyses import base


def get_config(arg: str = "size=cpu"):
    """``arg``: e.g. ``size=cpu`` or ``size=smoke,tasks=digits``."""
    a = base.parse(arg, tasks="smnist+psmnist", variant="ff")
    config = base.analysis_config("beta_grid", a.size)
    config.rundir = "runs/analyses"
    config.data_dir = ""
    # 72 runs at cpu size: one short epoch each.
    budget = dict(train_limit=512, test_limit=256, num_epochs=1) if a.size == "cpu" else {}
    config.task_configs = config_dict.ConfigDict(
        {t: base.task_config(t, a.variant, a.size, **budget) for t in a.tasks.split("+")}
    )
    config.magnitudes = (0.2, 0.5, 0.8)  # |b| values; every pair gives a point per quadrant
    config.quadrants = ("I", "II", "III", "IV")
    config.points = ""  # explicit points instead of the grid: "b1:b2,b1:b2,..."
    config.index = -1  # run only this run index (-1: all; see list_runs)
    config.shard = ""  # "I/N": run indices I, I+N, I+2N, ...
    config.list_runs = False  # print the runs and their index, and stop
    config.plot_only = False  # collect finished runs and plot; train nothing
    config.chance_margin = 0.05  # "chance": best accuracy below 1/classes + this
    return config
