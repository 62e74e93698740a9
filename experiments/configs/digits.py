"""scikit-learn's bundled 8x8 digits as pixel sequences (T = 64, one pixel per step).

A small real-data task that runs offline in seconds on a CPU:

  python -m experiments.digits --config=experiments/configs/digits.py --workdir=runs/digits

Variants: ff (default) and rec. Not a paper task; no paper number.
"""

from experiments.configs.base import base_config, schedule


def get_config(variant: str = "ff"):
    if variant not in ("ff", "rec"):
        raise ValueError(f"Unknown variant {variant!r}; valid: ff, rec.")
    config = base_config("digits", "custom", {"paper": schedule(64, 40, 5e-3, "constant")})
    config.model.hidden = (64, 64)
    config.model.recurrent = (True, False) if variant == "rec" else ()
    config.model.gamma, config.model.init_b, config.model.v_th = 0.5, (-0.5, 0.5), 1.0
    return config
