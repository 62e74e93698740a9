"""Spiking Heidelberg Digits (700 channels, 250 bins over 1.4 s, 20 classes) with TC-LIF.

Reproduces paper Table 1 (best test accuracy), on a GPU:

  python -m experiments.shd --config=experiments/configs/shd.py:ff  --workdir=runs/shd-ff   # 83.08%
  python -m experiments.shd --config=experiments/configs/shd.py:rec --workdir=runs/shd-rec  # 88.91%

Schedule (paper text, default): 100 epochs; Adam 5e-4 (ff) or 5e-3 (rec); x0.8 every 10
epochs; batch 64. --config.schedule=official: lr 5e-4, x0.5 at epochs 40 and 80.
Files: shd_train.h5 and shd_test.h5 in --config.data.dir (tonic's layout).
"""

from experiments.configs.base import base_config, schedule

PRESETS = {"ff": "shd-ff", "rec": "shd-rec"}
PAPER_ACCURACY = {"ff": 83.08, "rec": 88.91}


def get_config(variant: str = "ff"):
    if variant not in PRESETS:
        raise ValueError(f"Unknown variant {variant!r}; valid: {', '.join(PRESETS)}.")
    config = base_config("shd", PRESETS[variant], {
        "paper": schedule(64, 100, 5e-4 if variant == "ff" else 5e-3, "step", decay_every=10,
                          decay_factor=0.8),
        "official": schedule(64, 100, 5e-4, "multistep", (40, 80), decay_factor=0.5),
    })
    config.paper_accuracy = PAPER_ACCURACY[variant]
    return config
