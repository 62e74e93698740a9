"""Split a train step's time into the in-loop matmuls and the rest.

  python -m benchmarks.breakdown --config=benchmarks/configs/breakdown.py:preset=smnist-ff-64,matmul_dtype=float32,json=True
  python -m benchmarks.breakdown --config=benchmarks/configs/breakdown.py:preset=smnist-rec-64,matmul_dtype=bfloat16
  python -m benchmarks.breakdown --config=benchmarks/configs/breakdown.py:preset=shd-ff,neuron=lif,json=True

Any field can be overridden with ``--config.<field>=value``. ``steps=0`` runs the preset's
sequence length.
"""

from benchmarks import common
from experiments.configs.base import parse_arg
from tclif_jax.execution import MATMUL_DTYPES, STRATEGIES
from tclif_jax.neurons import NEURONS


def get_config(arg: str | None = None):
    """``arg``: big_vision arguments, e.g. ``preset=smnist-rec-64,matmul_dtype=bfloat16``."""
    config = parse_arg(
        arg,
        preset="smnist-ff-64",
        batch=256,
        steps=0,  # time steps T; 0: the preset's
        neuron="tclif",  # every layer's neuron (a name of tclif_jax.NEURONS)
        strategy="auto",  # auto, layerwise or fused
        matmul_dtype="float32",  # float32 or bfloat16
        repeats=5,  # each time is the median of this many runs
        peak_size=2048,  # n of the n^3 peak matmul
        malloc_tuning=True,  # glibc malloc settings of benchmarks.common.MALLOC_TUNABLES
        json=False,  # print one JSON object (and nothing else) on stdout
    )
    check(config)
    return config


def check(config) -> None:
    """A ValueError naming the valid values for any setting that has none."""
    common.preset_config(config.preset)
    common.check_choice("neuron", config.neuron, tuple(NEURONS))
    common.check_choice("strategy", config.strategy, STRATEGIES)
    common.check_choice("matmul_dtype", config.matmul_dtype, tuple(MATMUL_DTYPES))
