"""Peak memory of one train step against sequence length, with and without remat.

  python -m benchmarks.memory --config=benchmarks/configs/memory.py:preset=smnist-ff-64,batch=256,remat_chunk=112
  python -m benchmarks.memory --config=benchmarks/configs/memory.py:preset=smnist-ff-64,batch=256,remat_chunk=112,against=torch,max_gb=14,json=True --config.steps=784,1568,3136,6272

Any field can be overridden with ``--config.<field>=value``. ``steps`` is a comma list of
sequence lengths T, which only the override form can carry when it has more than one:
``--config.steps=784,1568``. ``remat_chunk`` must divide every T (0: no remat rows).
"""

from benchmarks import common
from experiments.configs.base import parse_arg
from tclif_jax.execution import MATMUL_DTYPES, STRATEGIES


def get_config(arg: str | None = None):
    """``arg``: big_vision arguments, e.g. ``preset=smnist-ff-64,against=torch``."""
    config = parse_arg(
        arg,
        preset="smnist-ff-64",
        batch=256,
        steps="784,1568,3136,6272",  # the sequence lengths T, a comma list
        remat_chunk=112,  # chunk of the remat rows; 0: none
        strategy="auto",  # auto, layerwise or fused
        matmul_dtype="float32",  # float32 or bfloat16
        against="none",  # none or torch
        max_gb=16.0,  # skip a configuration whose linear estimate exceeds this
        malloc_tuning=True,  # glibc malloc settings of benchmarks.common.MALLOC_TUNABLES
        json=False,  # print one JSON object (and nothing else) on stdout
    )
    check(config)
    return config


def sequence_lengths(config) -> list[int]:
    """``config.steps`` as a list of positive ints (a ValueError otherwise)."""
    try:
        steps = [int(s) for s in str(config.steps).split(",") if s.strip()]
    except ValueError:
        steps = []
    if not steps or min(steps) <= 0:
        raise ValueError(
            f"steps={config.steps!r} must be a comma list of positive sequence lengths, "
            'e.g. --config.steps="784,1568".'
        )
    return steps


def check(config) -> None:
    """A ValueError naming the valid values for any setting that has none."""
    common.preset_config(config.preset)
    sequence_lengths(config)
    common.check_choice("strategy", config.strategy, STRATEGIES)
    common.check_choice("matmul_dtype", config.matmul_dtype, tuple(MATMUL_DTYPES))
    common.check_choice("against", config.against, ("none", "torch"))
