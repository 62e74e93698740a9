"""Time products of spikes inside a time loop: dense XLA against the native spike kernel.

  python -m benchmarks.spike_products --config=benchmarks/configs/spike_products.py
  python -m benchmarks.spike_products --config=benchmarks/configs/spike_products.py:batch=64,json=True

``densities`` is one spike density (fraction of nonzero spikes per step) or a comma list,
which only the override form can carry: ``--config.densities="0.05,0.2"``. Any field can
be overridden with ``--config.<field>=value``.
"""

from benchmarks import common
from benchmarks.configs.event_projection import densities
from experiments.configs.base import parse_arg


def get_config(arg: str | None = None):
    """``arg``: big_vision arguments, e.g. ``batch=64``."""
    config = parse_arg(
        arg,
        batch=256,
        steps=250,  # time steps T, one product per step
        width=128,  # spikes per row (the layer below's width)
        out=128,  # the product's columns (this layer's width)
        densities="0.01,0.02,0.05,0.1,0.15,0.2,0.3",
        rounds=15,  # timed rounds; each runs every function once, in a shuffled order
        warmup=1,
        seed=0,
        malloc_tuning=True,  # glibc malloc settings of benchmarks.common.MALLOC_TUNABLES
        json=False,  # print one JSON object (and nothing else) on stdout
    )
    check(config)
    return config


def check(config) -> None:
    """A ValueError naming the valid values for any setting that has none."""
    densities(config)
    common.check_positive(config, ("batch", "steps", "width", "out", "rounds"))
