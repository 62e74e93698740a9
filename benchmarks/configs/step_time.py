"""Time one train step of a preset, optionally against our PyTorch reference.

  python -m benchmarks.step_time --config=benchmarks/configs/step_time.py:preset=smnist-ff-64,batch=256
  python -m benchmarks.step_time --config=benchmarks/configs/step_time.py:preset=smnist-rec-64,batch=256,strategy=all,matmul_dtype=all,against=torch,repeats=5,json=True

Any field can be overridden with ``--config.<field>=value`` (``--config.against=torch
--config.json=True``). ``strategy`` and ``matmul_dtype`` take one value, ``all``, or a comma
list, which only the override form can carry: ``--config.strategy="layerwise,fused"``.
``steps=0`` runs the preset's sequence length; ``threads=0`` gives torch every core.
"""

from benchmarks import common
from experiments.configs.base import parse_arg
from tclif_jax.execution import MATMUL_DTYPES, STRATEGIES


def get_config(arg: str | None = None):
    """``arg``: big_vision arguments, e.g. ``preset=shd-rec,batch=64,against=torch``."""
    config = parse_arg(
        arg,
        preset="smnist-ff-64",
        batch=256,
        steps=0,  # time steps T; 0: the preset's
        strategy="auto",  # auto, layerwise, fused, all, or a comma list
        matmul_dtype="float32",  # float32, bfloat16, all, or a comma list
        remat_chunk=0,
        repeats=5,  # timed rounds; each runs every configuration once
        warmup=1,
        settle=1,  # untimed steps of each configuration right before its timed one
        against="none",  # none or torch
        threads=0,  # torch threads; 0: every core
        torch_device="auto",  # auto (cuda when JAX runs on a GPU), cpu or cuda
        torch_process="auto",  # auto (separate on CPU), separate or same
        seed=0,
        memory=True,  # peak RSS of each configuration, alone in a fresh subprocess
        memory_jobs=1,  # memory subprocesses run at once
        peak=True,  # measure the f32 and bf16 matmul peak each round
        peak_size=2048,  # n of the n^3 peak matmul
        malloc_tuning=True,  # glibc malloc settings of benchmarks.common.MALLOC_TUNABLES
        json=False,  # print one JSON object (and nothing else) on stdout
    )
    check(config)
    return config


def check(config) -> None:
    """A ValueError naming the valid values for any setting that has none."""
    common.preset_config(config.preset)
    common.choose_list("strategy", config.strategy, STRATEGIES, STRATEGIES[1:])
    common.choose_list(
        "matmul_dtype", config.matmul_dtype, tuple(MATMUL_DTYPES), tuple(MATMUL_DTYPES)
    )
    common.check_choice("against", config.against, ("none", "torch"))
    common.check_choice("torch_device", config.torch_device, ("auto", "cpu", "cuda"))
    common.check_choice("torch_process", config.torch_process, ("auto", "separate", "same"))
