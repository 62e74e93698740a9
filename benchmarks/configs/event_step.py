"""Time the train step on SHD-like spike input fed dense and as events.

  python -m benchmarks.event_step --config=benchmarks/configs/event_step.py:preset=shd-rec,batch=256
  python -m benchmarks.event_step --config=benchmarks/configs/event_step.py:preset=shd-rec,batch=64,rounds=15,json=True

``densities`` and ``neurons`` take one value or a comma list, which only the override form
can carry: ``--config.densities="0.01,0.05"``. Any field can be overridden with
``--config.<field>=value``.
"""  # noqa: E501

from benchmarks import common
from benchmarks.configs.event_projection import densities
from experiments.configs.base import parse_arg

NEURONS = ("lif", "tclif")


def get_config(arg: str | None = None):
    """``arg``: big_vision arguments, e.g. ``preset=shd-rec,batch=64``."""
    config = parse_arg(
        arg,
        preset="shd-rec",
        batch=256,
        steps=250,  # time steps T
        densities="0.01,0.05,0.2",  # input spike densities (tclif_jax.testing.shd_like_counts)
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
    common.preset_config(config.preset)
    densities(config)
    common.choose_list("neurons", config.neurons, NEURONS, NEURONS)
    common.check_positive(config, ("batch", "steps", "rounds"))
