"""Spiking Heidelberg Digits (700 channels, 250 bins over 1.4 s, 20 classes) with TC-LIF.

Paper Table 1 gives the best test accuracy; these commands run the paper's settings (on a
GPU; reproduction at full size is not yet measured here):

  python -m experiments.shd --config=experiments/configs/shd.py:ff  --workdir=runs/shd-ff   # paper 83.08%
  python -m experiments.shd --config=experiments/configs/shd.py:rec --workdir=runs/shd-rec  # paper 88.91%

Schedule (paper text, default): 100 epochs; Adam 5e-4 (ff) or 5e-3 (rec); x0.8 every 10
epochs; batch 64. ``:variant=rec,schedule=official``: lr 5e-4, x0.5 at epochs 40 and 80.
Files: shd_train.h5 and shd_test.h5 in --config.data.dir (tonic's layout).
"""

from experiments.configs.base import base_config, choose, parse_arg, schedule

PRESETS = {"ff": "shd-ff", "rec": "shd-rec"}
PAPER_ACCURACY = {"ff": 83.08, "rec": 88.91}


def schedules(variant: str) -> dict:
    return {
        "paper": schedule(
            64, 100, 5e-4 if variant == "ff" else 5e-3, "step", decay_every=10, decay_factor=0.8
        ),
        "official": schedule(64, 100, 5e-4, "multistep", (40, 80), decay_factor=0.5),
    }


def get_config(arg: str = "ff"):
    """``arg``: a variant (ff, rec) or ``variant=rec,schedule=official``."""
    a = parse_arg(arg, variant="ff", schedule="paper")
    choose("variant", a.variant, PRESETS)
    options = schedules(a.variant)
    config = base_config(
        "shd",
        PRESETS[a.variant],
        f"shd-{a.variant}",
        options[choose("schedule", a.schedule, options)],
    )
    config.paper_accuracy = PAPER_ACCURACY[a.variant]
    return config
