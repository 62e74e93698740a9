"""scikit-learn's bundled 8x8 digits as pixel sequences (T = 64, one pixel per step).

A small real-data task that runs offline in seconds on a CPU:

  python -m experiments.digits --config=experiments/configs/digits.py --workdir=runs/digits
  python -m experiments.digits --config=experiments/configs/digits.py:rec --workdir=runs/digits-rec

Variants: ff (default) and rec. Not a paper task; no paper number.
"""

from experiments.configs.base import base_config, choose, parse_arg, schedule


def get_config(arg: str = "ff"):
    """``arg``: ff (default) or rec (first layer recurrent)."""
    a = parse_arg(arg, variant="ff")
    choose("variant", a.variant, ("ff", "rec"))
    config = base_config(
        "digits", "custom", f"digits-{a.variant}", schedule(64, 40, 5e-3, "constant")
    )
    config.model.hidden = (64, 64)  # TC-LIF's own defaults: gamma 0.5, (b1, b2) (-0.5, 0.5), v_th 1
    config.model.recurrent = (True, False) if a.variant == "rec" else ()
    return config
