"""Spiking Speech Commands (700 channels, 250 bins over 1.4 s, 35 classes) with TC-LIF.

Reproduces paper Table 1 (best test accuracy), on a GPU:

  python -m experiments.ssc --config=experiments/configs/ssc.py:ff  --workdir=runs/ssc-ff   # 63.46%
  python -m experiments.ssc --config=experiments/configs/ssc.py:rec --workdir=runs/ssc-rec  # 61.09%

Schedule (paper text, default): 100 epochs, Adam 1e-4, x0.8 every 10 epochs, batch 64.
--config.schedule=official: lr 5e-4, x0.5 at epochs 40 and 80 (the official script also
builds 400-wide layers: --config.model.hidden="(400,400)" for ff).
Model selection uses the validation split (ssc_valid.h5); the test accuracy is logged too.
"""

from experiments.configs.base import base_config, schedule

PRESETS = {"ff": "ssc-ff", "rec": "ssc-rec"}
PAPER_ACCURACY = {"ff": 63.46, "rec": 61.09}


def get_config(variant: str = "ff"):
    if variant not in PRESETS:
        raise ValueError(f"Unknown variant {variant!r}; valid: {', '.join(PRESETS)}.")
    config = base_config("ssc", PRESETS[variant], {
        "paper": schedule(64, 100, 1e-4, "step", decay_every=10, decay_factor=0.8),
        "official": schedule(64, 100, 5e-4, "multistep", (40, 80), decay_factor=0.5),
    })
    config.paper_accuracy = PAPER_ACCURACY[variant]
    return config
