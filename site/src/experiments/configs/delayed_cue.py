"""The quickstart: a delayed-cue memory task, embedded (generated), offline, CPU-sized.

A cue (one of 4 channel groups, 5 steps) is followed by 200 steps of distractor
spikes and a go pulse; the readout sees only the last step, so the network must
carry the cue across the delay.

  python -m experiments.delayed_cue --config=experiments/configs/delayed_cue.py --workdir=runs/quickstart
  python -m experiments.delayed_cue --config=experiments/configs/delayed_cue.py --workdir=runs/quickstart-lif --config.model.neuron=lif

Expected (2 CPU cores, about a minute each): TC-LIF ~99% test accuracy, LIF ~25% (chance).
Longer delays (a new --workdir): --config.data.delay=500 --config.data.noise=0.02 --config.train.num_epochs=20.
"""

from experiments.configs.base import base_config, choose, parse_arg, schedule


def get_config(arg: str = "ff"):
    """``arg``: ff (default) or rec (first layer recurrent)."""
    a = parse_arg(arg, variant="ff")
    choose("variant", a.variant, ("ff", "rec"))
    config = base_config(
        "delayed_cue", "custom", f"delayed_cue-{a.variant}", schedule(64, 10, 3e-3, "constant")
    )
    config.model.hidden = (64, 64)  # TC-LIF's own defaults: gamma 0.5, (b1, b2) (-0.5, 0.5), v_th 1
    config.model.recurrent = (True, False) if a.variant == "rec" else ()
    config.model.readout = "last"  # with "sum" the cue's own spikes decide: no memory needed
    return config
