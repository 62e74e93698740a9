"""Time the first layer's input product on spike input: dense XLA against event kernels.

  python -m benchmarks.event_projection --config=benchmarks/configs/event_projection.py:preset=shd-rec,batch=256
  python -m benchmarks.event_projection --config=benchmarks/configs/event_projection.py:preset=shd-rec,batch=64,rounds=15,json=True

``densities`` is one input spike density (fraction of active channels per step) or a
comma list, which only the override form can carry: ``--config.densities="0.01,0.05"``.
Any field can be overridden with ``--config.<field>=value``.
"""  # noqa: E501

from benchmarks import common
from experiments.configs.base import parse_arg


def get_config(arg: str | None = None):
    """``arg``: big_vision arguments, e.g. ``preset=shd-rec,batch=64``."""
    config = parse_arg(
        arg,
        preset="shd-rec",  # the input width F and first-layer width n come from it
        batch=256,
        steps=250,  # time steps T: rows = batch * steps
        densities="0.01,0.05,0.2",
        rounds=15,  # timed rounds; each runs every function once, in a shuffled order
        warmup=2,
        seed=0,
        malloc_tuning=True,  # glibc malloc settings of benchmarks.common.MALLOC_TUNABLES
        json=False,  # print one JSON object (and nothing else) on stdout
    )
    check(config)
    return config


def densities(config) -> list[float]:
    """``config.densities`` as floats in (0, 1]."""
    values = [float(v) for v in str(config.densities).split(",") if v.strip()]
    if not values or any(not 0.0 < v <= 1.0 for v in values):
        raise ValueError(f"densities={config.densities!r}: a comma list of fractions in (0, 1].")
    return values


def check(config) -> None:
    """A ValueError naming the valid values for any setting that has none."""
    common.preset_config(config.preset)
    densities(config)
    common.check_positive(config, ("batch", "steps", "rounds"))
