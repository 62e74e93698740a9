"""Does the bf16 matmul policy cost accuracy? A short real S-MNIST run, f32 against bf16.

  python -m benchmarks.precision_accuracy --config=benchmarks/configs/precision_accuracy.py:steps=300,seed=0,json=True

Any field can be overridden with ``--config.<field>=value``; ``--config.data=/path/to/mnist``
points at the four MNIST IDX files (gz or raw). ``test_limit=0`` evaluates the full test set.
"""

import os

from benchmarks import common
from experiments.configs.base import parse_arg
from tclif_jax.execution import STRATEGIES


def default_data() -> str:
    """``$TCLIF_SHARED_DATA/mnist``, else ``shared/data/mnist`` next to the repository."""
    shared = os.environ.get("TCLIF_SHARED_DATA") or os.path.join(
        os.path.dirname(common.ROOT), "shared", "data"
    )
    return os.path.join(shared, "mnist")


def get_config(arg: str | None = None):
    """``arg``: big_vision arguments, e.g. ``steps=300,seed=1,json=True``."""
    config = parse_arg(
        arg,
        preset="smnist-ff-64",
        strategy="auto",  # auto, layerwise or fused
        steps=150,  # Adam steps of each run
        batch=256,
        lr=1e-3,
        seed=0,
        eval_batch=1000,
        test_limit=0,  # test examples evaluated; 0: all 10,000
        data=default_data(),  # folder of the MNIST IDX files
        malloc_tuning=True,  # glibc malloc settings of benchmarks.common.MALLOC_TUNABLES
        json=False,  # print one JSON object (and nothing else) on stdout
    )
    check(config)
    return config


def check(config) -> None:
    """A ValueError naming the valid values for any setting that has none."""
    common.preset_config(config.preset)
    common.check_choice("strategy", config.strategy, STRATEGIES)
    if config.steps <= 0 or config.batch <= 0:
        raise ValueError(f"steps={config.steps} and batch={config.batch} must be positive.")
