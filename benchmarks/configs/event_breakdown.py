"""Where the train step's time goes with event input, at the peers' setting a.

  python -m benchmarks.event_breakdown --config=benchmarks/configs/event_breakdown.py
  python -m benchmarks.event_breakdown --config=benchmarks/configs/event_breakdown.py:batch=64,json=True

``neurons`` takes one value or a comma list, which only the override form can carry:
``--config.neurons="lif"``. Any field can be overridden with ``--config.<field>=value``.
"""

from benchmarks import common
from experiments.configs.base import parse_arg

NEURONS = ("lif", "tclif")


def get_config(arg: str | None = None):
    """``arg``: big_vision arguments, e.g. ``batch=64``."""
    config = parse_arg(
        arg,
        batch=256,
        steps=250,  # time steps T
        neurons="lif,tclif",
        rounds=15,  # timed rounds; each runs every configuration once, in a shuffled order
        warmup=1,
        seed=0,
        malloc_tuning=True,  # glibc malloc settings of benchmarks.common.MALLOC_TUNABLES
        json=False,  # print one JSON object (and nothing else) on stdout
    )
    check(config)
    return config


def check(config) -> None:
    """A ValueError naming the valid values for any setting that has none."""
    common.choose_list("neurons", config.neurons, NEURONS, NEURONS)
    common.check_positive(config, ("batch", "steps", "rounds"))
