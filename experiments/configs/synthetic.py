"""The quickstart: a delayed-cue memory task, embedded (generated), offline, CPU-sized.

A cue (one of 4 channel groups, 5 steps) is followed by 200 steps of distractor
spikes and a go pulse; the readout sees only the last step, so the network must
carry the cue across the delay.

  python -m experiments.synthetic --config=experiments/configs/synthetic.py --workdir=runs/quickstart
  python -m experiments.synthetic --config=experiments/configs/synthetic.py --workdir=runs/quickstart-lif --config.model.neuron=lif

Expected (2 CPU cores, about a minute each): TC-LIF ~99% test accuracy, LIF ~25% (chance).
Longer delays: --config.data.delay=500 --config.data.noise=0.02 --config.train.num_epochs=20.
"""

from experiments.configs.base import base_config, schedule


def get_config(variant: str = "ff"):
    if variant not in ("ff", "rec"):
        raise ValueError(f"Unknown variant {variant!r}; valid: ff, rec.")
    config = base_config("delayed_cue", "custom", {"paper": schedule(64, 10, 3e-3, "constant")})
    config.model.hidden = (64, 64)
    config.model.recurrent = (True, False) if variant == "rec" else ()
    config.model.readout = "last"  # with "sum" the cue's own spikes decide: no memory needed
    config.model.gamma, config.model.init_b, config.model.v_th = 0.5, (-0.5, 0.5), 1.0
    return config
