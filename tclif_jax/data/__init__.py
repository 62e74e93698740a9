"""Datasets as whole splits, batch-major: loaded once, then batched by the training loop.

Interface (used by ``tclif_jax.train``):

* ``default_config(name) -> ml_collections.ConfigDict``: every field a dataset
  understands, with defaults (always ``dir``, ``train_limit``, ``test_limit``).
* ``load_dataset(name, config, workdir=None) -> SequenceDataset``: splits
  ``{"train", "test"}`` plus ``"valid"`` for SSC and GSC, each ``(inputs (N, T, F),
  labels (N,) int32)``; the model input is ``inputs.astype(float32) * input_scale``.
  ``inputs`` is a numpy array, or for SSC (``spiking_audio.SpikeEvents``) a lazy
  array-like whose ``x[idx]`` bins batch ``idx`` from spike events (``nbytes`` is the
  dense size; ``np.asarray(x)`` bins everything).
* ``DataNotFoundError`` (with the folder searched and how to provide the files),
  ``DownloadError`` (with the URL and shell command), ``DataCorruptError`` (with the
  file and what to do). Nothing is downloaded unless ``config.download`` is set
  (default False); ``download.py`` says what is fetched from where.

| name | T x F | classes | stored as | source |
|---|---|---|---|---|
| smnist, psmnist | 784 x 1 | 10 | uint8, scale 1/255 | IDX folder or TFDS ``mnist`` |
| gsc | 101 x 40 | 12 | float32 log-mel, z-scored | raw v0.02 archive (official split) or TFDS, cached |
| shd, ssc | 250 x 700 | 20, 35 | uint8 counts; SSC as events binned per batch | tonic's .h5 files |
| delayed_cue | (cue + delay + go) x channels | num_classes | uint8 0/1 | generated |
| digits | 64 x 1 | 10 | uint8, scale 1/16 | scikit-learn (bundled) |

``limits`` (``train_limit``, ``test_limit``; 0 = all) keep the first N examples of
train and of test/valid, applied before any feature computation. Every loader checks
its float inputs once for NaN/inf and names the file.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from tclif_jax.data._common import (
    DataCorruptError,
    DataNotFoundError,
    DownloadError,
    SequenceDataset,
    check_finite,
    default_data_dir,
    take,
)

__all__ = [
    "SequenceDataset",
    "DataNotFoundError",
    "DataCorruptError",
    "DownloadError",
    "DATASETS",
    "default_config",
    "load_dataset",
    "default_data_dir",
]

DATASETS = ("smnist", "psmnist", "gsc", "shd", "ssc", "delayed_cue", "digits")
NUM_CLASSES = {"smnist": 10, "psmnist": 10, "gsc": 12, "shd": 20, "ssc": 35, "digits": 10}


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; valid names are: {', '.join(DATASETS)}.")


# Data fields that say where data lives or how it is held, not what it is: a run may resume
# with them changed (tclif_jax.train compares every other field).
PLACEMENT_FIELDS = (
    "dir",
    "download",
    "cache_dir",
    "use_cache",
    "stream",
    "dense_max_gb",
    "on_device",
)


def default_config(name: str) -> ml_collections.ConfigDict:
    """All data fields dataset ``name`` understands, with their defaults.

    ``dir=""`` means the default location: for TFDS sources TFDS's own data dir, else
    ``$TCLIF_DATA_DIR`` or ``~/tclif_data`` (see ``default_data_dir``). ``download``
    (default False) fetches missing files into it (see ``tclif_jax.data.download``).
    """
    _check_name(name)
    c = ml_collections.ConfigDict()
    c.dir = ""
    c.train_limit = 0
    c.test_limit = 0
    if name in ("smnist", "psmnist"):
        c.source = "auto"  # "auto" (IDX folder if present, else TFDS), "idx" or "tfds"
        c.download = False  # let TFDS download (needs internet)
        if name == "psmnist":
            c.permutation_seed = 0
    elif name == "gsc":
        c.split = "official"  # "official" (TC-LIF's split of the raw archive) or "tfds"
        c.download = False  # fetch the raw archive (or TFDS's) when missing (needs internet)
        c.cache_dir = ""  # "" -> <dir or default_data_dir()>/tclif_gsc_features
        c.use_cache = True
        # The official code's features: 40 log-mels (40-4000 Hz) x 101 frames of 16 kHz
        # audio, 30 ms windows every 10 ms, power_to_db with an 80 dB floor.
        c.update(sample_rate=16000, n_fft=480, hop_length=160, n_mels=40, num_frames=101)
        c.update(fmin=40.0, fmax=4000.0, top_db=80.0)
        c.pad_mode = "reflect"  # librosa < 0.10's default, which the official code ran on
    elif name in ("shd", "ssc"):
        c.time_steps = 250
        c.max_time = 1.4  # seconds
        c.num_channels = 700
        c.download = False  # fetch the .h5 files through tonic when missing (needs internet)
        # "auto": keep spike events and bin each batch when the dense counts of all splits
        # would exceed dense_max_gb GiB (SSC: 17.2 GiB), else bin them once at load (SHD:
        # 1.7 GiB, which the training loop then keeps on the device); "events" or "dense"
        # force either.
        c.stream = "auto"
        c.dense_max_gb = 2.0
    elif name == "delayed_cue":
        # The quickstart (tclif_jax.data.synthetic.delayed_cue): a 5-step cue of one of 4
        # classes, 200 steps of delay, a 1-step go signal, Bernoulli(0.05) distractor
        # spikes on the sensory channels of 16. A feed-forward TC-LIF (64, 64) with readout
        # "last" solves it in ~10 epochs on CPU; LIF (decay 0.8) stays at chance.
        c.update(delay=200, num_classes=4, cue_steps=5, go_steps=1, num_channels=16)
        c.update(noise=0.05, num_train=2048, num_test=512, seed=0)
    elif name == "digits":
        c.seed = 0
        c.test_fraction = 0.2
    return c


def _merge(name: str, config) -> ml_collections.ConfigDict:
    merged = default_config(name)
    if config is None:
        return merged
    items = config.items() if hasattr(config, "items") else vars(config).items()
    unknown = sorted(k for k, _ in items if k not in merged and k != "name")
    if unknown:
        raise ValueError(
            f"Unknown data field(s) {unknown} for {name!r}; valid fields: "
            f"{', '.join(sorted(merged.keys()))}."
        )
    for k, v in items:
        if k != "name":
            merged[k] = v
    return merged


def _limit(splits: dict, config) -> dict:
    # For loaders that cannot cut earlier (generated data); idempotent after early cuts.
    out = {}
    for split, (x, y) in splits.items():
        lim = config.train_limit if split == "train" else config.test_limit
        n = take(lim, len(y))
        if n == len(y):
            out[split] = (x, y)
        elif isinstance(x, np.ndarray):
            out[split] = (x[:n], y[:n])
        else:  # lazy inputs: cut without binning
            out[split] = (x.subset(slice(0, n)), y[:n])
    return out


def load_dataset(name: str, config=None, workdir: str | None = None) -> SequenceDataset:
    """Load dataset ``name`` with ``config`` (a ConfigDict/dict of fields; missing ones default).

    ``workdir`` is where run state lives; PS-MNIST keeps its permutation there.
    Raises ``DataNotFoundError`` when files are missing (never downloads unless
    ``config.download``), ``ValueError`` for an unknown name or field.
    """
    _check_name(name)
    config = _merge(name, config)
    scale, info = 1.0, {}
    if name in ("smnist", "psmnist"):
        from tclif_jax.data import mnist

        splits, info = mnist.load_mnist(name, config)
        if name == "psmnist":
            perm, pinfo = mnist.permutation(config.permutation_seed, workdir)
            splits = {k: (x[:, perm], y) for k, (x, y) in splits.items()}
            info.update(pinfo)
        scale = 1.0 / 255.0
    elif name == "gsc":
        from tclif_jax.data import gsc

        splits, info = gsc.load_gsc(config)
    elif name in ("shd", "ssc"):
        from tclif_jax.data import spiking_audio

        splits, info = spiking_audio.load_hsd(name, config)
    elif name == "delayed_cue":
        from tclif_jax.data import synthetic

        kw = dict(
            delay=int(config.delay),
            num_classes=int(config.num_classes),
            cue_steps=int(config.cue_steps),
            go_steps=int(config.go_steps),
            num_channels=int(config.num_channels),
            noise=float(config.noise),
            seed=int(config.seed),
        )
        # Generate only what the limits keep; separate streams keep train and test independent.
        n_train = take(config.train_limit, int(config.num_train))
        n_test = take(config.test_limit, int(config.num_test))
        splits = {
            "train": synthetic.delayed_cue(n_train, stream=0, **kw),
            "test": synthetic.delayed_cue(n_test, stream=1, **kw),
        }
        info = {
            "cue_channels": [
                g.tolist() for g in synthetic.cue_groups(kw["num_channels"], kw["num_classes"])
            ],
            "go_channel": kw["num_channels"] - 1,
        }
        num_classes = kw["num_classes"]
    elif name == "digits":
        from tclif_jax.data import synthetic

        (xtr, ytr), (xte, yte) = synthetic.digits(int(config.seed), float(config.test_fraction))
        splits = {"train": (xtr, ytr), "test": (xte, yte)}
        scale = 1.0 / 16.0
    splits = _limit(splits, config)
    for split, (x, _) in splits.items():
        # The loaders check their files; this catches a loader that let NaN/inf through.
        if isinstance(x, np.ndarray):
            check_finite(x, f"{name}/{split} inputs", "this is a bug in the loader")
    if name != "delayed_cue":
        num_classes = NUM_CLASSES[name]
    info.setdefault("config", config.to_dict())
    return SequenceDataset(
        name=name, splits=splits, num_classes=num_classes, input_scale=scale, info=info
    )
