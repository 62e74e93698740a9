"""Sequential MNIST (one pixel per step, T = 784) with TC-LIF.

Reproduces paper Table 1 (best test accuracy), on a GPU:

  python -m experiments.smnist --config=experiments/configs/smnist.py:ff    --workdir=runs/smnist-ff     # 97.35%
  python -m experiments.smnist --config=experiments/configs/smnist.py:rec   --workdir=runs/smnist-rec    # 99.20%
  python -m experiments.smnist --config=experiments/configs/smnist.py:ff40  --workdir=runs/smnist-ff40   # 96.46%
  python -m experiments.smnist --config=experiments/configs/smnist.py:rec40 --workdir=runs/smnist-rec40  # 98.79%

LIF baselines (paper: 72.06% ff, 89.28% rec): add --config.model.neuron=lif.
Paper and official code agree here: 200 epochs, Adam 5e-4, x0.1 at epochs 60 and 80, batch 256.
Offline: --config.data.dir=/path/to/mnist-idx (the four IDX files, gz or raw).
"""

from experiments.configs.base import base_config, schedule

PRESETS = {"ff": "smnist-ff-64", "rec": "smnist-rec-64", "ff40": "smnist-ff-40",
           "rec40": "smnist-rec-40"}
PAPER_ACCURACY = {"ff": 97.35, "rec": 99.20, "ff40": 96.46, "rec40": 98.79}


def get_config(variant: str = "ff"):
    if variant not in PRESETS:
        raise ValueError(f"Unknown variant {variant!r}; valid: {', '.join(PRESETS)}.")
    sched = schedule(256, 200, 5e-4, "multistep", (60, 80), decay_factor=0.1)
    config = base_config("smnist", PRESETS[variant], {"paper": sched, "official": sched})
    config.paper_accuracy = PAPER_ACCURACY[variant]
    return config
