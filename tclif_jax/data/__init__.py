"""Datasets as whole splits, batch-major: loaded once, then batched by the training loop.

Interface (used by ``tclif_jax.train``):

* ``REGISTRY[name] -> DatasetSpec``: what each task declares in its module (its
  ``data.*`` fields with defaults and valid values, class count, input features, input
  scale, splits, loader); ``spec(name)`` looks one up. ``DATASETS``, ``NUM_CLASSES`` and
  ``default_config`` are read from it. A new task is a ``DatasetSpec`` in its module's
  ``SPECS``, added to ``REGISTRY`` below.
* ``default_config(name) -> ml_collections.ConfigDict``: every field a dataset
  understands, with defaults (always ``dir``, ``train_limit``, ``test_limit``).
* ``check_config(name, config) -> ml_collections.ConfigDict``: every ``data.*`` field
  checked (a one-line ValueError naming the field and its valid values) without reading
  any data, so a command line can refuse a bad setting before it creates anything.
* ``load_dataset(name, config, workdir=None) -> SequenceDataset``: splits
  ``{"train", "test"}`` plus ``"valid"`` for SSC and GSC, each ``(inputs (N, T, F),
  labels (N,) int32)``; the model input is ``inputs.astype(float32) * input_scale``.
  ``inputs`` is a numpy array, or for SSC (``spiking_audio.SpikeEvents``) a lazy
  array-like whose ``x[idx]`` bins batch ``idx`` from spike events (``nbytes`` is the
  dense size; ``np.asarray(x)`` bins everything). With ``input="events"`` (SHD, SSC)
  it is ``spiking_audio.EventRows``, whose ``x[idx]`` is a ``tclif_jax.events.EventBatch``.
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
its float inputs once for NaN/inf, and its labels against the class count, and names
the file (``DataCorruptError``).
"""

from __future__ import annotations

import ml_collections
import numpy as np

from tclif_jax.data import gsc, mnist, spike_store, spiking_audio, synthetic
from tclif_jax.data._common import (
    DataCorruptError,
    DataNotFoundError,
    DatasetSpec,
    DownloadError,
    Field,
    SequenceDataset,
    check_finite,
    check_labels,
    choice,
    default_data_dir,
    take,
)

__all__ = [
    "SequenceDataset",
    "DatasetSpec",
    "Field",
    "DataNotFoundError",
    "DataCorruptError",
    "DownloadError",
    "REGISTRY",
    "DATASETS",
    "NUM_CLASSES",
    "PLACEMENT_FIELDS",
    "spec",
    "default_config",
    "check_config",
    "load_dataset",
    "default_data_dir",
    "spike_store",
]

REGISTRY: dict[str, DatasetSpec] = {
    s.name: s for s in (*mnist.SPECS, *gsc.SPECS, *spiking_audio.SPECS, *synthetic.SPECS)
}
DATASETS = tuple(REGISTRY)
# Tasks whose class count is fixed (delayed_cue's is a data field).
NUM_CLASSES = {n: s.num_classes for n, s in REGISTRY.items() if isinstance(s.num_classes, int)}

# Data fields that say where data lives or how it is held, not what it is: a run may resume
# with them changed (tclif_jax.train compares every other field).
PLACEMENT_FIELDS = (
    "dir",
    "download",
    "cache_dir",
    "use_cache",
    "stream",
    "dense_max_gb",
    "input",
    "on_device",
)
# Fields a run's ``config.data`` holds for the training loop, not the loader:
# on_device places whole splits on the accelerator ("auto": when they fit).
RUN_FIELDS = {"on_device": choice("auto", ("auto", True, False))}


def spec(name: str) -> DatasetSpec:
    """The registry's record of task ``name``; a ValueError lists the valid names."""
    if name not in REGISTRY:
        raise ValueError(f"Unknown dataset {name!r}; valid names are: {', '.join(DATASETS)}.")
    return REGISTRY[name]


def default_config(name: str) -> ml_collections.ConfigDict:
    """All data fields dataset ``name`` understands, with their defaults.

    ``dir=""`` means the default location: for TFDS sources TFDS's own data dir, else
    ``$TCLIF_DATA_DIR`` or ``~/tclif_data`` (see ``default_data_dir``). ``download``
    (default False) fetches missing files into it (see ``tclif_jax.data.download``).
    """
    return spec(name).default_config()


def _items(config) -> list[tuple[str, object]]:
    if config is None:
        return []
    items = config.items() if hasattr(config, "items") else vars(config).items()
    return [(k, v) for k, v in items if k != "name"]


def _invalid(name: str, field: str, value, valid: str) -> ValueError:
    return ValueError(f"data.{field}={value!r} is not valid for {name!r}: expected {valid}.")


def _resolve(name: str, config, extra: dict[str, Field]) -> ml_collections.ConfigDict:
    """``config`` over the defaults of ``name``, every field checked (``extra``: fields
    accepted and checked beside the loader's, left out of the result)."""
    s = spec(name)
    fields = s.all_fields
    items = _items(config)
    unknown = sorted(k for k, _ in items if k not in fields and k not in extra)
    if unknown:
        raise ValueError(
            f"Unknown data field(s) {unknown} for {name!r}; valid fields: "
            f"{', '.join(sorted([*fields, *extra]))}."
        )
    merged = s.default_config()
    for k, v in items:
        field = fields.get(k) or extra[k]
        if not field.accepts(v):
            raise _invalid(name, k, v, field.valid)
        if k in fields:
            merged[k] = v
    if s.check is not None:
        s.check(merged)
    return merged


def check_config(name: str, config=None) -> ml_collections.ConfigDict:
    """Check task ``name`` and every ``data.*`` field of ``config`` without reading data.

    ``config``: a ConfigDict, dict or namespace of data fields (missing ones default; a
    run's ``config.data`` may also hold ``on_device``). Returns the loader's complete
    config (defaults filled in, ``on_device`` left out). Raises a one-line ``ValueError``
    for an unknown task or field, or a value outside its valid range, naming the field
    and the valid values: ``data.delay=-5 is not valid for 'delayed_cue': expected an
    integer >= 0.``
    """
    return _resolve(name, config, RUN_FIELDS)


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
    ``config.download``), ``DataCorruptError`` for a damaged file, ``ValueError`` for an
    unknown name or field or a bad value (as ``check_config``).
    """
    s = spec(name)
    config = _resolve(name, config, {})
    splits, info = s.load(config, workdir)
    splits = _limit(splits, config)
    num_classes = s.classes(config)
    for split, (x, y) in splits.items():
        # The loaders check their files; this catches a loader that let a bad value through.
        if isinstance(x, np.ndarray):
            check_finite(x, f"{name}/{split} inputs", "this is a bug in the loader")
        check_labels(y, num_classes, split, f"{name} loader", "this is a bug in the loader")
    info.setdefault("config", config.to_dict())
    return SequenceDataset(
        name=name, splits=splits, num_classes=num_classes, input_scale=s.input_scale, info=info
    )
