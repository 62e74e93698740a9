"""Step time of training on 2 processes x 2 CPU devices against 1 process x 4 devices.

  python -m benchmarks.multihost --config=benchmarks/configs/multihost.py
  python -m benchmarks.multihost --config=benchmarks/configs/multihost.py:epochs=4,json=True

Both run the quickstart task (delayed cue, the same global batch and seed) through
``python -m experiments.delayed_cue``; the two-process run joins through JAX's distributed
runtime on 127.0.0.1 with the gloo collectives. The step time is each epoch's
``epoch_time`` (training and evaluation) divided by its steps, the first epoch (compilation)
left out. On one machine the two processes share its cores, so the ratio shows the cost of
the collectives and of two runtimes, not a speed-up.
"""

from experiments.configs.base import parse_arg


def get_config(arg: str | None = None):
    """``arg``: big_vision arguments, e.g. ``epochs=4,json=True``."""
    return parse_arg(
        arg,
        epochs=4,  # the first is left out (compilation)
        num_train=2048,
        batch=64,
        hidden=64,  # width of both hidden layers
        delay=200,
        rounds=2,  # each round runs both configurations, in turn
        malloc_tuning=False,  # benchmarks.common re-executes with its malloc settings if True
        json=False,
    )
