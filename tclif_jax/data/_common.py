"""Types and helpers shared by the dataset loaders."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

__all__ = [
    "SequenceDataset",
    "DataNotFoundError",
    "DataCorruptError",
    "DownloadError",
    "default_data_dir",
    "take",
    "check_finite",
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
