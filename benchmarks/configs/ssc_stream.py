"""Peak host memory and data time of training SSC from streamed spike events.

  python -m benchmarks.ssc_stream --config=benchmarks/configs/ssc_stream.py:spikes=8000
  python -m benchmarks.ssc_stream --config=benchmarks/configs/ssc_stream.py:clips=2000,valid_clips=200,test_clips=200,rounds=1,data_dir=/tmp/ssc_small,stream=events

Fabricates SSC-size HDF5 files once in ``data_dir`` (75,466 / 9,981 / 20,382 clips by
default; ``spikes`` per clip on average, uniform within +-50%), then loads them through
``tclif_jax.data`` and trains ``preset`` at ``batch`` in a fresh process. Any field can be
overridden with ``--config.<field>=value``.
"""  # noqa: E501

from benchmarks import common
from experiments.configs.base import parse_arg

STREAMS = ("auto", "events", "dense")


def get_config(arg: str | None = None):
    """``arg``: big_vision arguments, e.g. ``spikes=8000``."""
    config = parse_arg(
        arg,
        preset="ssc-ff",
        batch=256,
        clips=75466,  # training clips (SSC's train split)
        valid_clips=9981,
        test_clips=20382,
        spikes=8000,  # mean spikes per clip (uniform in [0.5, 1.5] x this)
        data_dir="/tmp/tclif_ssc_stream",  # fabricated files, kept for reruns
        stream="auto",  # data.stream: auto, events or dense
        rounds=3,  # rounds of (data alone, train step alone, loop with prefetch)
        train_steps=3,  # timed train steps per round and part (after one compile step)
        data_batches=4,  # batches binned alone per round to time the data
        prefetch=2,  # batches prefetched in the timed training loop
        seed=0,
        malloc_tuning=True,  # glibc malloc settings of benchmarks.common.MALLOC_TUNABLES
        json=False,  # print one JSON object (and nothing else) on stdout
    )
    check(config)
    return config


def check(config) -> None:
    """A ValueError naming the valid values for any setting that has none."""
    common.preset_config(config.preset)
    common.check_choice("stream", config.stream, STREAMS)
    fields = ("batch", "clips", "valid_clips", "test_clips", "spikes", "train_steps", "rounds")
    common.check_positive(config, (*fields, "data_batches"))
    if config.clips < config.batch:
        raise ValueError(f"clips={config.clips} must be at least batch={config.batch}.")
