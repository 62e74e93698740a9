"""Types and helpers shared by the dataset loaders, and the record each dataset declares.

A dataset module declares each task it serves as one ``DatasetSpec``: its ``data.*``
fields (``Field``: default and valid values), class count, input features, input scale
and loader. ``tclif_jax.data`` collects them into its registry; nothing else keeps a
list of tasks or fields.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np

__all__ = [
    "SequenceDataset",
    "DataNotFoundError",
    "DataCorruptError",
    "DownloadError",
    "Field",
    "DatasetSpec",
    "COMMON_FIELDS",
    "integer",
    "number",
    "choice",
    "flag",
    "text",
    "default_data_dir",
    "take",
    "check_finite",
    "check_labels",
]


class DataNotFoundError(FileNotFoundError):
    """The files of a dataset are not where we looked; the message says how to provide them."""


class DownloadError(DataNotFoundError):
    """Fetching a dataset failed (no network, a bad archive); the message gives the URL and
    the shell command that fetches it on a machine with internet."""


class DataCorruptError(ValueError):
    """A data file exists but cannot be read (truncated, garbage, non-finite values); the
    message names the file and says what to do (delete it and fetch it again)."""


@dataclasses.dataclass
class SequenceDataset:
    """Whole splits, batch-major.

    ``splits[name] = (inputs (N, T, F), labels (N,) int32)``. The model input is
    ``inputs.astype(float32) * input_scale``, which lets pixels and spike counts stay
    uint8/uint16 in memory. ``inputs`` is a numpy array, or for large spike datasets a
    lazy array-like (``spiking_audio.SpikeEvents``) whose ``x[idx]`` bins that batch:
    it has ``shape``, ``dtype``, ``nbytes`` (of the dense array it stands for) and
    ``np.asarray(x)`` gives the dense array.
    """

    name: str
    splits: dict[str, tuple[Any, np.ndarray]]
    num_classes: int
    input_scale: float = 1.0
    info: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        shapes = set()
        for split, (x, y) in self.splits.items():
            if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
                raise ValueError(
                    f"{self.name}/{split}: expected inputs (N, T, F) and labels (N,), "
                    f"got {x.shape} and {y.shape}."
                )
            shapes.add(tuple(x.shape[1:]))
        if len(shapes) > 1:
            raise ValueError(f"{self.name}: splits disagree on (T, F): {sorted(shapes)}.")

    def _first(self):
        if not self.splits:
            raise ValueError(f"{self.name}: dataset has no splits.")
        return next(iter(self.splits.values()))[0]

    @property
    def time_steps(self) -> int:
        return int(self._first().shape[1])

    @property
    def num_features(self) -> int:
        return int(self._first().shape[2])

    @property
    def split_names(self) -> tuple[str, ...]:
        return tuple(self.splits)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v[1])}" for k, v in self.splits.items())
        dtype = self._first().dtype if self.splits else None
        return (
            f"SequenceDataset({self.name!r}, {sizes}, T={self.time_steps}, "
            f"F={self.num_features}, classes={self.num_classes}, dtype={dtype}, "
            f"input_scale={self.input_scale:g})"
        )


# ----------------------------------------------------------------------------- declarations


@dataclasses.dataclass(frozen=True)
class Field:
    """One ``data.<name>`` setting: its ``default``, the values it takes (``accepts``) and
    how an error says them (``valid``, e.g. "an integer >= 0")."""

    default: Any
    valid: str
    accepts: Callable[[Any], bool]


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v) -> bool:
    return (_is_int(v) or isinstance(v, (float, np.floating))) and math.isfinite(v)


def integer(default: int, low: int = 0, high: int | None = None) -> Field:
    """An integer in ``low..high`` (``high=None``: no upper bound)."""
    valid = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
    return Field(default, valid, lambda v: _is_int(v) and v >= low and (high is None or v <= high))


def number(
    default: float | None,
    low: float | None = None,
    high: float | None = None,
    *,
    above: float | None = None,
    below: float | None = None,
    none: str = "",
) -> Field:
    """A finite number with ``low <= v <= high`` and ``above < v < below`` (each optional);
    ``none`` (what None means) also lets the field be None."""
    bounds = [f">= {low}" if low is not None else "", f"> {above}" if above is not None else ""]
    bounds += [f"<= {high}" if high is not None else "", f"< {below}" if below is not None else ""]
    bounds = [b for b in bounds if b]
    valid = "a finite number" + (f" {' and '.join(bounds)}" if bounds else "")
    valid += f", or None ({none})" if none else ""

    def accepts(v) -> bool:
        if v is None:
            return bool(none)
        return (
            _is_number(v)
            and (low is None or v >= low)
            and (high is None or v <= high)
            and (above is None or v > above)
            and (below is None or v < below)
        )

    return Field(default, valid, accepts)


def choice(default, options: Sequence) -> Field:
    """One of ``options``."""
    options = tuple(options)
    names = ", ".join(str(o) for o in options)
    return Field(default, f"one of: {names}", lambda v: any(v is o or v == o for o in options))


def flag(default: bool) -> Field:
    """True or False."""
    return Field(default, "True or False", lambda v: isinstance(v, (bool, np.bool_)))


def text(default: str = "") -> Field:
    """A string (a folder: "" means the default location)."""
    return Field(default, "a string", lambda v: isinstance(v, str))


# Fields every dataset has: where its files are ("" = default_data_dir() or TFDS's own),
# and how many examples of train and of test/valid to keep (0 = all).
COMMON_FIELDS = {"dir": text(""), "train_limit": integer(0), "test_limit": integer(0)}


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One task of the registry (``tclif_jax.data.REGISTRY``).

    ``fields``: its own ``data.*`` fields beyond ``COMMON_FIELDS``. ``num_classes`` and
    ``in_features``: an int, or the name of the data field that sets it.
    ``load(config, workdir) -> (splits, info)``: ``splits[split] = (inputs (N, T, F),
    labels (N,) int32)`` for ``splits``, from a complete, checked config.
    ``input_scale``: model input = ``inputs * input_scale``. ``check(config)``: rules
    between fields, raising a one-line ValueError naming the field.
    """

    name: str
    num_classes: int | str
    in_features: int | str
    fields: Mapping[str, Field]
    load: Callable[[ml_collections.ConfigDict, str | None], tuple[dict, dict]]
    input_scale: float = 1.0
    splits: tuple[str, ...] = ("train", "test")
    check: Callable[[ml_collections.ConfigDict], None] | None = None

    @property
    def all_fields(self) -> dict[str, Field]:
        return {**COMMON_FIELDS, **self.fields}

    def default_config(self) -> ml_collections.ConfigDict:
        """Every data field of this task with its default."""
        return ml_collections.ConfigDict({k: f.default for k, f in self.all_fields.items()})

    def classes(self, config=None) -> int:
        """The class count (``config``: the data fields; defaults where None)."""
        return self._resolve(self.num_classes, config)

    def features(self, config=None) -> int:
        """Input features per time step, F."""
        return self._resolve(self.in_features, config)

    def _resolve(self, value, config) -> int:
        if isinstance(value, int):
            return value
        return int((config if config is not None else self.default_config())[value])


def default_data_dir() -> str:
    """Where datasets live when ``config.dir`` is empty: ``$TCLIF_DATA_DIR`` or ``~/tclif_data``."""
    return os.environ.get("TCLIF_DATA_DIR") or os.path.expanduser("~/tclif_data")


def take(limit: int, n: int) -> int:
    """How many of ``n`` examples a ``*_limit`` keeps (0 means all)."""
    limit = int(limit)
    if limit < 0:
        raise ValueError(f"Limits count examples and must be >= 0 (0 = all); got {limit}.")
    return n if limit == 0 else min(limit, n)


def check_finite(x: np.ndarray, source: str, remedy: str = "delete it and fetch it again") -> None:
    """Raise ``DataCorruptError`` naming ``source`` and the count if ``x`` holds NaN or inf.

    Integer arrays are always finite and pass without a scan.
    """
    if np.asarray(x).dtype.kind not in "fc":
        return
    bad = int(x.size - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise DataCorruptError(
            f"{source}: {bad} of {x.size} input values are NaN or inf; {remedy}."
        )


def check_labels(
    y, num_classes: int, split: str, source: str, remedy: str = "delete it and fetch it again"
) -> None:
    """Raise ``DataCorruptError`` unless every label of ``y`` (N,) is an integer in
    ``0..num_classes - 1``; the message names ``source`` (the file), ``split``, and the
    first bad label's index and value. Call it before casting (a cast could wrap)."""
    y = np.asarray(y)
    if y.size == 0:
        return
    if y.dtype.kind in "iu":
        bad = (y < 0) | (y >= num_classes)
    elif y.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(y) | (y != np.floor(y)) | (y < 0) | (y >= num_classes)
    else:
        raise DataCorruptError(f"{source}: {split} labels are {y.dtype}, not integers; {remedy}.")
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataCorruptError(
            f"{source}: {split} label {y[i].item()!r} at index {i} is outside "
            f"0..{num_classes - 1} ({num_classes} classes); {remedy}."
        )
