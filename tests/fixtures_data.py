"""Fake data files for the data tests (those a notebook needs are in ``tclif_jax.testing``)."""

from __future__ import annotations

import gzip
import struct

import numpy as np


def write_idx(path: str, array) -> str:
    """Write ``array`` as a uint8 IDX file (gzipped if ``path`` ends in .gz)."""
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") if path.endswith(".gz") else open(path, "wb") as f:
        f.write(header + array.tobytes())
    return path
