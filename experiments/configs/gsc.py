"""Google Speech Commands v2, 12 classes (40 log-mels x 101 frames), with TC-LIF.

Reproduces paper Table 1 (best test accuracy), on a GPU:

  python -m experiments.gsc --config=experiments/configs/gsc.py:ff  --workdir=runs/gsc-ff   # 91.35%
  python -m experiments.gsc --config=experiments/configs/gsc.py:rec --workdir=runs/gsc-rec  # 94.84%

Schedule (paper text, default): 100 epochs, Adam 1e-3, /10 at epochs 60, 90, 120, batch 128.
--config.schedule=official: 200 epochs, x0.1 at 30, 60, 90, 120, batch 128.
The official ff command initialises (b1, b2) = (-0.8, 0.8): --config.model.init_b="(-0.8,0.8)".
Features are computed once and cached under the data dir. Model selection uses the
validation split; the paper reports the best test accuracy (both are logged).
"""

from experiments.configs.base import base_config, schedule

PRESETS = {"ff": "gsc-ff", "rec": "gsc-rec"}
PAPER_ACCURACY = {"ff": 91.35, "rec": 94.84}


def get_config(variant: str = "ff"):
    if variant not in PRESETS:
        raise ValueError(f"Unknown variant {variant!r}; valid: {', '.join(PRESETS)}.")
    config = base_config("gsc", PRESETS[variant], {
        "paper": schedule(128, 100, 1e-3, "multistep", (60, 90, 120), decay_factor=0.1),
        "official": schedule(128, 200, 1e-3, "multistep", (30, 60, 90, 120), decay_factor=0.1),
    })
    config.paper_accuracy = PAPER_ACCURACY[variant]
    return config
