"""Our train step against the SNN libraries people use (spyx, snnTorch, norse), in one run.

  python -m benchmarks.peers --config=benchmarks/configs/peers.py:setting=a,batch=64
  python -m benchmarks.peers --config=benchmarks/configs/peers.py:setting=a,batch=256,json=True
  python -m benchmarks.peers --config=benchmarks/configs/peers.py:setting=b,n=1024,json=True

Setting ``a``: the SHD-shaped network 700-128-128-20 with LIF (decay 0.5), readout summed
over T = 250, cross-entropy and one Adam update (a full train step). Setting ``b``: the Open
Neuromorphic library benchmark, one Linear(n, n) + LIF layer, T = 500, batch 16, forward +
backward of the spike count. ``batch=0`` and ``steps=0`` take the setting's values.

Setting ``a`` scales the spiking layers' weights by ``weight_scale`` (default 4, every
library) so that the hidden layers fire; ``inputs=events`` also times ours on the spikes
as events. Any field can be overridden with ``--config.<field>=value``. ``libraries``,
``neurons``, ``strategy`` and ``inputs`` take one value, ``all`` or a comma list, which only the override form can
carry: ``--config.libraries="ours,spyx"``. Peers that are not installed are skipped (and
listed as such) unless ``missing=error``; install them with ``pip install -e ".[bench]"``
and ``pip install --no-deps "norse>=1.1.0"`` (see the ``bench`` extra in pyproject.toml).
"""

from benchmarks import common
from experiments.configs.base import parse_arg
from tclif_jax.execution import STRATEGIES

SETTINGS = ("a", "b")
LIBRARIES = ("ours", "spyx", "snntorch", "norse", "norse-lif")
NEURONS = ("lif", "tclif")  # our neurons
INPUTS = ("dense", "events")  # how ours gets setting a's spikes


def get_config(arg: str | None = None):
    """``arg``: big_vision arguments, e.g. ``setting=b,n=1024,json=True``."""
    config = parse_arg(
        arg,
        setting="a",  # a: SHD-shaped train step; b: Open Neuromorphic Linear(n, n) + LIF
        batch=0,  # 0: the setting's (a: 64, b: 16)
        steps=0,  # time steps T; 0: the setting's (a: 250, b: 500)
        n=512,  # setting b: neurons (the Linear is n x n)
        libraries="all",  # ours, spyx, snntorch, norse, norse-lif, all, or a comma list
        neurons="all",  # our neurons: lif, tclif, all, or a comma list
        strategy="auto,layerwise",  # our strategies: auto, layerwise, fused, all or a list
        inputs="dense",  # ours' input in setting a: dense, events, all, or a comma list
        weight_scale=0.0,  # times the spiking layers' weights; 0: the setting's (a: 4, b: 1)
        matmul_precision="highest",  # our f32 products (spyx and torch use their defaults)
        decay=0.5,  # LIF decay of every library
        learning_rate=1e-3,  # Adam, setting a
        repeats=15,  # timed rounds; each runs every configuration once, in a shuffled order
        warmup=1,
        settle=1,  # untimed steps of each configuration right before its timed one
        threads=0,  # torch threads; 0: every core
        torch_device="auto",  # auto (cuda when JAX runs on a GPU), cpu or cuda
        torch_compile=False,  # wrap the torch peers' forward in torch.compile
        missing="skip",  # skip or error: what to do when a peer is not installed
        seed=0,
        malloc_tuning=True,  # glibc malloc settings of benchmarks.common.MALLOC_TUNABLES
        json=False,  # print one JSON object (and nothing else) on stdout
    )
    check(config)
    return config


def check(config) -> None:
    """A ValueError naming the valid values for any setting that has none."""
    common.check_choice("setting", config.setting, SETTINGS)
    common.choose_list("libraries", config.libraries, LIBRARIES, LIBRARIES)
    common.choose_list("neurons", config.neurons, NEURONS, NEURONS)
    common.choose_list("strategy", config.strategy, STRATEGIES, STRATEGIES[1:])
    inputs = common.choose_list("inputs", config.inputs, INPUTS, INPUTS)
    if "events" in inputs and config.setting != "a":
        raise ValueError("inputs=events needs setting=a (setting b's input is not spikes).")
    if config.weight_scale < 0:
        raise ValueError(f"weight_scale={config.weight_scale} must be >= 0 (0: the setting's).")
    common.check_choice("matmul_precision", config.matmul_precision, ("highest", "high", "default"))
    common.check_choice("torch_device", config.torch_device, ("auto", "cpu", "cuda"))
    common.check_choice("missing", config.missing, ("skip", "error"))
    for name in ("batch", "steps", "n", "threads"):
        if config[name] < 0:
            raise ValueError(f"{name}={config[name]} must be >= 0.")
    if config.n <= 0:
        raise ValueError(f"n={config.n} must be > 0.")
    if not 0.0 < config.decay < 1.0:
        raise ValueError(f"decay={config.decay} must be in (0, 1).")
    if config.repeats < 1:
        raise ValueError(f"repeats={config.repeats} must be >= 1.")
