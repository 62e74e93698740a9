"""What the official TC-LIF commands run, and what the paper's text says: a record, not a config.

``OFFICIAL[task][variant]`` holds the values the official code runs for each task
config's variant, read from its scripts (github.com/ZhangShimin1/TC-LIF, commit 1d24704;
file and line in the comments): the README command's arguments over the script's
argparse defaults, and what the model classes then build. ``PAPER[task][variant]`` holds
the paper's text where it is an option of the configs (``schedule=paper``,
``settings=paper``, ``network=table6``), from the reference facts (sections 3 and 4 of
tclif-reference.md: Table 6 and the hyper-parameter tables).

Why the values are written twice. The task configs (``smnist.py``, ...) hold the values
that run; this module holds the record they must agree with, and
``tests/test_official_configs.py`` compares the two for every task and variant. Nothing
here is imported by a config: were the configs derived from this table, the test would
compare the table with itself and could never fail. So each fact has one source to run
from (the config, or the preset it names) and one independent record of where it comes
from (here, with its file and line); a change to either that breaks the agreement fails
the test.

Every official run uses Adam (``torch.optim.AdamW`` with ``weight_decay=0``, which is
Adam), no gradient clipping, the triangle surrogate (``--sg triangle`` in every command;
``Triangle`` in each ``surrogate.py``: H(0) = 1, derivative max(0, 1 - |x|)), a
multistep schedule (``adjust_learning_rate`` in each ``utils.py``: the rate times
``factor`` at every milestone passed), and keeps each epoch's last partial batch.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Run:
    """One run's values. ``init_c`` is TC-LIF's (c1, c2): (b1, b2) = (-sigmoid(c1), sigmoid(c2))."""

    command: str  # the README's command; "" where it gives none
    in_features: int
    num_classes: int
    hidden: tuple[int, ...]
    recurrent: tuple[bool, ...]  # one flag per hidden layer
    dropout: float
    gamma: float
    v_th: float
    init_c: tuple[float, float]
    batch_size: int
    num_epochs: int
    learning_rate: float
    decay_epochs: tuple[int, ...]
    decay_factor: float
    schedule: str = "multistep"
    decay_every: int = 0
    surrogate: str = "triangle"
    drop_last: bool = False


@dataclasses.dataclass(frozen=True)
class PaperText:
    """The paper's values where a config offers them as an option; None: the paper's text
    gives none (the config keeps the official value)."""

    hidden: tuple[int, ...]
    recurrent: tuple[bool, ...]
    gamma: float
    v_th: float
    init_b: tuple[float, float]  # (b1, b2) as the paper prints them
    num_epochs: int
    learning_rate: float
    schedule: str
    decay_epochs: tuple[int, ...] = ()
    decay_every: int = 0
    decay_factor: float = 0.1
    batch_size: int | None = None


# ----------------------------------------------------------------------------- S/PS-MNIST
# MNIST/mn_train.py: --epochs 200 (l. 142), --lr 5e-4 (l. 143), --schedule 60 80 (l. 145),
# --batch-size 256 (l. 147), --wd 0 (l. 148), AdamW(lr, weight_decay=wd) (l. 259);
# MNIST/utils.py l. 64: x0.1 at each milestone. MNIST/load_dataset.py l. 12-14: a
# DataLoader without drop_last. --ind 1: one pixel per step (l. 186-187: T = 784).
# MNIST/models/fc.py: ffMnist (l. 56-67) 64-256-256-10; fbMnist (l. 28-39) wraps the first
# two neurons in RecurrentContainer and builds every neuron with v_threshold=1.0 (l. 33,
# 35, 37), whatever --threshold says. The code builds no 40-wide network: the ff40/rec40
# variants are the paper's Table 6 networks with the 64-wide command's other values.
_MNIST = dict(
    in_features=1,
    num_classes=10,
    batch_size=256,
    num_epochs=200,
    learning_rate=5e-4,
    decay_epochs=(60, 80),
    decay_factor=0.1,
    dropout=0.0,
)
_FF = dict(recurrent=(False, False, False))
_REC = dict(recurrent=(True, True, False))
# README l. 31 (S-MNIST rec), l. 33 (ff), l. 38 (PS-MNIST rec), l. 40 (ff).
_SMNIST_FF = dict(gamma=0.5, v_th=1.0, init_c=(0.0, 0.0))
_SMNIST_REC = dict(gamma=0.5, v_th=1.0, init_c=(1.5, -0.5))
_PSMNIST_FF = dict(gamma=0.7, v_th=1.5, init_c=(0.0, 0.0))
_PSMNIST_REC = dict(gamma=0.5, v_th=1.0, init_c=(-1.4, 1.4))  # --threshold 1.8, forced to 1.0

_README = {
    "smnist-rec": "python MNIST/mn_train.py --neuron tclif --beta1 1.5 --beta2 -0.5 --task SMNIST --threshold 1.0 --gamma 0.5 --sg triangle --network fb --ind 1",
    "smnist-ff": "python MNIST/mn_train.py --neuron tclif --beta1 0. --beta2 0. --task SMNIST --threshold 1.0 --gamma 0.5 --sg triangle --network ff --ind 1",
    "psmnist-rec": "python MNIST/mn_train.py --neuron tclif --beta1 -1.4 --beta2 1.4 --task PSMNIST --threshold 1.8 --gamma 0.5 --sg triangle --network fb --ind 1",
    "psmnist-ff": "python MNIST/mn_train.py --neuron tclif --beta1 0. --beta2 0. --task PSMNIST --threshold 1.5 --gamma 0.7 --sg triangle --network ff --ind 1",
    "gsc-rec": "python GSC-v2/gg12_train.py --neuron tclif --beta_init1 1.4 --beta_init2 1.4 --threshold 1.25 --gamma 0.7 --sg triangle --network fb --version v2 --drop 0.3",
    "gsc-ff": "python GSC-v2/gg12_train.py --neuron tclif --beta_init1 1.4 --beta_init2 1.4 --threshold 1.2 --gamma 0.6 --sg triangle --network ff --version v2 --drop 0.3",
    "shd-rec": "python SHD-SSC/main.py --neuron tclif --task SHD --beta1 0. --beta2 0. --threshold 1.5 --gamma 0.5 --sg triangle --network fb",
    "shd-ff": "python SHD-SSC/main.py --neuron tclif --task SHD --beta1 0. --beta2 0. --threshold 1.5 --gamma 0.5 --sg triangle --network ff",
    "ssc-rec": "python SHD-SSC/main.py --neuron tclif --task SSC --beta1 0. --beta2 0. --threshold 1.5 --gamma 0.5 --sg triangle --network fb",
    "ssc-ff": "python SHD-SSC/main.py --neuron tclif --task SSC --beta1 0. --beta2 0. --threshold 1.5 --gamma 0.5 --sg triangle --network ff",
}


def _mnist(task: str, ff: dict, rec: dict) -> dict[str, Run]:
    return {
        "ff": Run(_README[f"{task}-ff"], hidden=(64, 256, 256), **_FF, **ff, **_MNIST),
        "rec": Run(_README[f"{task}-rec"], hidden=(64, 256, 256), **_REC, **rec, **_MNIST),
        "ff40": Run("", hidden=(40, 256, 128), **_FF, **ff, **_MNIST),
        "rec40": Run("", hidden=(40, 200, 64), **_REC, **rec, **_MNIST),
    }


# ----------------------------------------------------------------------------- GSC
# GSC-v2/gg12_train.py: --epochs 200 (l. 122), --lr 1e-3 (l. 123), --schedule 30 60 90 120
# (l. 125), --batch-size 128 (l. 127), --wd 0 (l. 128), AdamW (l. 232), DataLoaders
# without drop_last (l. 174-177); GSC-v2/utils.py l. 57: x0.1 at each milestone.
# GSC-v2/models/fc.py: 40-300-300-12 with Dropout(--drop) after each Linear (l. 32, 34, 49,
# 51); fbGSC (l. 28) wraps the first neuron only. README l. 45 (rec), l. 47 (ff).
_GSC = dict(
    in_features=40,
    num_classes=12,
    hidden=(300, 300),
    dropout=0.3,
    init_c=(1.4, 1.4),
    batch_size=128,
    num_epochs=200,
    learning_rate=1e-3,
    decay_epochs=(30, 60, 90, 120),
    decay_factor=0.1,
)

# ----------------------------------------------------------------------------- SHD, SSC
# SHD-SSC/main.py: --epochs 100 (l. 137), --lr 5e-4 (l. 138), --schedule 40 80 (l. 140),
# --batch-size 64 (l. 142), AdamW (l. 306); adjust_learning_rate each epoch (l. 325),
# SHD-SSC/utils.py l. 64: x0.5 at each milestone. The StepLR(step_size=10, gamma=0.5)
# built at l. 309 is never stepped (l. 331: "#scheduler.step()"). SpikeIterator yields
# ceil(N / batch) batches (l. 188): the last partial one is kept. Networks: ff_SHD and
# fb_SHD_v1 (l. 286-295) with hidden=128 for SHD and hidden=400 for SSC, dropout 0 (the
# classes' default, SHD-SSC/models/fc.py l. 127, 252); fb_SHD_v1 wraps both neurons in
# ElementWiseRecurrentContainer (fc.py l. 251-262). README l. 53/55 (SHD), l. 60/62 (SSC).
_AUDIO = dict(
    in_features=700,
    dropout=0.0,
    gamma=0.5,
    v_th=1.5,
    init_c=(0.0, 0.0),
    batch_size=64,
    num_epochs=100,
    learning_rate=5e-4,
    decay_epochs=(40, 80),
    decay_factor=0.5,
)


def _audio(task: str, classes: int, width: int) -> dict[str, Run]:
    return {
        "ff": Run(
            _README[f"{task}-ff"],
            num_classes=classes,
            hidden=(width,) * 2,
            recurrent=(False, False),
            **_AUDIO,
        ),
        "rec": Run(
            _README[f"{task}-rec"],
            num_classes=classes,
            hidden=(width,) * 2,
            recurrent=(True, True),
            **_AUDIO,
        ),
    }


OFFICIAL: dict[str, dict[str, Run]] = {
    "smnist": _mnist("smnist", _SMNIST_FF, _SMNIST_REC),
    "psmnist": _mnist("psmnist", _PSMNIST_FF, _PSMNIST_REC),
    "gsc": {
        "ff": Run(_README["gsc-ff"], recurrent=(False, False), gamma=0.6, v_th=1.2, **_GSC),
        "rec": Run(_README["gsc-rec"], recurrent=(True, False), gamma=0.7, v_th=1.25, **_GSC),
    },
    "shd": _audio("shd", 20, 128),
    "ssc": _audio("ssc", 35, 400),
}

# Task configs that are not paper tasks: no official command, no paper value.
NOT_PAPER_TASKS = {
    "delayed_cue": "generated memory task (the quickstart)",
    "digits": "scikit-learn's 8x8 digits",
}


# ----------------------------------------------------------------------------- the paper
# Reference section 4 (hyper-parameters, paper text) and section 3 (Table 6). The paper
# gives no batch size for GSC, SHD and SSC.
_PAPER_MNIST = dict(
    num_epochs=200,
    learning_rate=5e-4,
    schedule="multistep",
    decay_epochs=(60, 80),
    batch_size=256,
)


def _paper_mnist(ff: dict, rec: dict) -> dict[str, PaperText]:
    return {
        "ff": PaperText((64, 256, 256), (False, False, False), **ff, **_PAPER_MNIST),
        "rec": PaperText((64, 256, 256), (True, True, False), **rec, **_PAPER_MNIST),
        "ff40": PaperText((40, 256, 128), (False, False, False), **ff, **_PAPER_MNIST),
        "rec40": PaperText((40, 200, 64), (True, True, False), **rec, **_PAPER_MNIST),
    }


_PAPER_GSC = dict(
    hidden=(300, 300),
    num_epochs=100,
    learning_rate=1e-3,
    schedule="multistep",
    decay_epochs=(60, 90, 120),
)
_PAPER_AUDIO = dict(
    gamma=0.5,
    v_th=1.5,
    init_b=(-0.5, 0.5),
    num_epochs=100,
    schedule="step",
    decay_every=10,
    decay_factor=0.8,
)

PAPER: dict[str, dict[str, PaperText]] = {
    "smnist": _paper_mnist(
        dict(gamma=0.5, v_th=1.0, init_b=(-0.5, 0.5)), dict(gamma=0.5, v_th=1.0, init_b=(-0.8, 0.4))
    ),
    "psmnist": _paper_mnist(
        dict(gamma=0.7, v_th=1.5, init_b=(-0.5, 0.5)), dict(gamma=0.5, v_th=1.8, init_b=(-0.2, 0.8))
    ),
    "gsc": {
        "ff": PaperText(
            recurrent=(False, False), gamma=0.6, v_th=1.2, init_b=(-0.5, 0.5), **_PAPER_GSC
        ),
        "rec": PaperText(
            recurrent=(True, False), gamma=0.7, v_th=1.25, init_b=(-0.8, 0.8), **_PAPER_GSC
        ),
    },
    "shd": {
        "ff": PaperText((128, 128), (False, False), learning_rate=5e-4, **_PAPER_AUDIO),
        "rec": PaperText((128, 128), (True, True), learning_rate=5e-3, **_PAPER_AUDIO),
    },
    "ssc": {
        "ff": PaperText((128, 128), (False, False), learning_rate=1e-4, **_PAPER_AUDIO),
        "rec": PaperText((128,), (True,), learning_rate=1e-4, **_PAPER_AUDIO),
    },
}
