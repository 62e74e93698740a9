"""Synthetic sequence tasks that need no files: the delayed-cue memory task and sklearn digits.

Delayed cue, inputs ``(N, T, C)`` uint8 spikes (0/1), ``T = cue_steps + delay + go_steps``:

* steps ``[0, cue_steps)``: the cue. Class ``k`` drives its own group of sensory channels
  (the ``C - 1`` sensory channels split into ``num_classes`` contiguous groups) at 1;
* every sensory channel also carries Bernoulli(``noise``) distractor spikes at every step,
  with the same statistics for every class, so after the cue the input says nothing
  about the label;
* steps ``[T - go_steps, T)``: the go signal on the last channel (``C - 1``), identical for
  all classes.

The label is the cue's class. With a ``"last"`` readout a network must carry the cue
across ``delay`` steps of noise; a feed-forward LIF with decay 0.8 forgets in ~5 steps.
"""

from __future__ import annotations

import numpy as np

from tclif_jax.data._common import DatasetSpec, integer, number, take

__all__ = ["delayed_cue", "cue_groups", "digits", "SPECS"]


def cue_groups(num_channels: int, num_classes: int) -> list[np.ndarray]:
    """Sensory channel indices that each class's cue drives (the last channel is 'go')."""
    if num_channels - 1 < num_classes:
        raise ValueError(
            f"delayed_cue needs num_channels - 1 >= num_classes (one sensory "
            f"channel per class at least, plus the go channel); got "
            f"num_channels={num_channels}, num_classes={num_classes}."
        )
    return np.array_split(np.arange(num_channels - 1), num_classes)


def delayed_cue(
    num_examples: int,
    *,
    delay: int,
    num_classes: int = 4,
    cue_steps: int = 5,
    go_steps: int = 1,
    num_channels: int = 16,
    noise: float = 0.05,
    seed: int = 0,
    stream: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``num_examples`` delayed-cue sequences: ``(x (N, T, C) uint8, y (N,) int32)``.

    Deterministic in ``(seed, stream)``; use a different ``stream`` per split so that
    train and test are independent draws. Labels are exactly balanced (up to
    ``N mod num_classes``) and shuffled.
    """
    if delay < 0 or cue_steps < 1 or go_steps < 0 or num_classes < 2:
        raise ValueError(
            f"delayed_cue needs delay >= 0, cue_steps >= 1, go_steps >= 0 and "
            f"num_classes >= 2; got delay={delay}, cue_steps={cue_steps}, "
            f"go_steps={go_steps}, num_classes={num_classes}."
        )
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise is a spike probability per step and channel; got {noise}.")
    groups = cue_groups(num_channels, num_classes)
    rng = np.random.default_rng([int(seed), int(stream)])
    steps = cue_steps + delay + go_steps
    y = rng.permutation(np.arange(num_examples) % num_classes).astype(np.int32)
    x = np.zeros((num_examples, steps, num_channels), np.uint8)
    if noise > 0:
        x[:, :, :-1] = rng.random((num_examples, steps, num_channels - 1), np.float32) < noise
    # Class-to-channel mask, broadcast over the cue window.
    onehot = np.zeros((num_classes, num_channels), np.uint8)
    for k, g in enumerate(groups):
        onehot[k, g] = 1
    x[:, :cue_steps] |= onehot[y][:, None, :]
    if go_steps:
        x[:, steps - go_steps :, -1] = 1
    return x, y


def digits(seed: int = 0, test_fraction: float = 0.2):
    """scikit-learn's bundled 8x8 digits as pixel sequences (offline, 1,797 images).

    Returns ``((x_train, y_train), (x_test, y_test))`` with x ``(N, 64, 1)`` uint8 in
    0..16 (scale by 1/16 for [0, 1]) row-major, y int32; a seeded stratified split.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = data.images.reshape(-1, 64, 1).astype(np.uint8)
    y = data.target.astype(np.int32)
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=test_fraction, random_state=seed, stratify=y
    )
    return (x[idx_train], y[idx_train]), (x[idx_test], y[idx_test])


def _load_delayed_cue(config, workdir=None) -> tuple[dict, dict]:
    kw = {k: int(config[k]) for k in ("delay", "num_classes", "cue_steps", "go_steps")}
    kw.update(num_channels=int(config.num_channels), noise=float(config.noise))
    kw.update(seed=int(config.seed))
    # Generate only what the limits keep; separate streams keep train and test independent.
    n_train = take(config.train_limit, int(config.num_train))
    n_test = take(config.test_limit, int(config.num_test))
    splits = {
        "train": delayed_cue(n_train, stream=0, **kw),
        "test": delayed_cue(n_test, stream=1, **kw),
    }
    groups = cue_groups(kw["num_channels"], kw["num_classes"])
    info = {"cue_channels": [g.tolist() for g in groups], "go_channel": kw["num_channels"] - 1}
    return splits, info


def _check_delayed_cue(config) -> None:
    if config.num_channels - 1 < config.num_classes:
        raise ValueError(
            f"data.num_channels={config.num_channels!r} is not valid for 'delayed_cue' with "
            f"data.num_classes={config.num_classes!r}: expected num_channels >= num_classes + 1 "
            f"(a sensory channel per class at least, plus the go channel)."
        )


def _load_digits(config, workdir=None) -> tuple[dict, dict]:
    (xtr, ytr), (xte, yte) = digits(int(config.seed), float(config.test_fraction))
    return {"train": (xtr, ytr), "test": (xte, yte)}, {}


SPECS = (
    # The quickstart: a 5-step cue of one of 4 classes, 200 steps of delay, a 1-step go
    # signal, Bernoulli(0.05) distractor spikes on the sensory channels of 16. A
    # feed-forward TC-LIF (64, 64) with readout "last" solves it in ~10 epochs on CPU;
    # LIF (decay 0.8) stays at chance.
    DatasetSpec(
        "delayed_cue",
        "num_classes",
        "num_channels",
        {
            "delay": integer(200),
            "num_classes": integer(4, low=2),
            "cue_steps": integer(5, low=1),
            "go_steps": integer(1),
            "num_channels": integer(16, low=3),
            "noise": number(0.05, low=0.0, high=1.0),  # spike probability per step and channel
            "num_train": integer(2048, low=1),
            "num_test": integer(512, low=1),
            "seed": integer(0),
        },
        _load_delayed_cue,
        check=_check_delayed_cue,
    ),
    DatasetSpec(
        "digits",
        10,
        1,
        # sklearn's random_state takes 0..2**32 - 1.
        {"seed": integer(0, high=2**32 - 1), "test_fraction": number(0.2, above=0.0, below=1.0)},
        _load_digits,
        input_scale=1 / 16,
    ),
)
