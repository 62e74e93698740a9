"""Sequential MNIST (S-MNIST) and permuted S-MNIST (PS-MNIST).

Inputs ``(N, 784, 1)`` uint8 pixels 0..255, row-major, one pixel per step; the model
input is ``pixels / 255`` in [0, 1] (``input_scale``), no further normalisation.
PS-MNIST applies one fixed permutation: step ``t`` shows pixel ``perm[t]``.

Sources: a folder of the four standard IDX files (gz or raw; torchvision's
``MNIST/raw`` layout works too) or TFDS ``mnist``.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np
from absl import logging

from tclif_jax.data._common import (
    DataCorruptError,
    DataNotFoundError,
    DatasetSpec,
    check_finite,
    check_labels,
    choice,
    default_data_dir,
    flag,
    integer,
    take,
)

__all__ = ["IDX_FILES", "SPECS", "read_idx", "find_idx_dir", "load_mnist", "permutation"]

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
NUM_PIXELS = 784
NUM_CLASSES = 10
SOURCES = ("auto", "idx", "tfds")  # auto: the IDX folder if present, else TFDS
MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"  # TFDS's mirror


def _open(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _remedy(path: str) -> str:
    return (
        f"the file is damaged; delete it and fetch it again (IDX files: "
        f"{MNIST_URL}{os.path.basename(path).removesuffix('.gz')}.gz; or use "
        f"--config.data.source=tfds --config.data.download=True)"
    )


def _damaged(path: str, what: str) -> DataCorruptError:
    return DataCorruptError(f"{path}: {what}; {_remedy(path)}.")


def read_idx(path: str, limit: int = 0) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw); with ``limit > 0`` only the first ``limit`` records.

    Only the requested records are decompressed, so a small limit is cheap. A file that is
    not IDX, truncated, or not valid gzip raises ``DataCorruptError`` naming it.
    """
    try:
        with _open(path) as f:
            header = f.read(4)
            if len(header) != 4 or header[0] != 0 or header[1] != 0 or header[2] not in _IDX_DTYPES:
                raise _damaged(path, f"not an IDX file (magic bytes {header!r})")
            dtype, ndim = np.dtype(_IDX_DTYPES[header[2]]), header[3]
            dims = np.frombuffer(f.read(4 * ndim), ">u4").astype(np.int64)
            if len(dims) != ndim:
                raise _damaged(path, "truncated inside its header")
            n = take(limit, int(dims[0]))
            record = int(np.prod(dims[1:])) * dtype.itemsize
            data = f.read(n * record)
    except (EOFError, OSError, zlib.error) as e:  # truncated or garbage gzip
        raise _damaged(path, f"cannot be decompressed ({type(e).__name__}: {e})") from e
    if len(data) != n * record:
        raise _damaged(path, f"truncated: expected {n * record} bytes of data, got {len(data)}")
    return np.frombuffer(data, dtype).reshape(n, *dims[1:]).astype(dtype.newbyteorder("="))


def _idx_path(folder: str, base: str) -> str | None:
    for name in (base, base + ".gz"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def idx_candidates(dir: str) -> list[str]:
    """Folders searched for IDX files, in order."""
    root = dir or default_data_dir()
    return [root, os.path.join(root, "mnist"), os.path.join(root, "MNIST", "raw")]


def find_idx_dir(dir: str) -> str | None:
    """The first candidate folder that holds all four IDX files, or None."""
    for folder in idx_candidates(dir):
        if all(_idx_path(folder, b) for pair in IDX_FILES.values() for b in pair):
            return folder
    return None


def _load_idx(folder: str, limits: dict[str, int]):
    splits = {}
    for split, (images, labels) in IDX_FILES.items():
        x_path, y_path = _idx_path(folder, images), _idx_path(folder, labels)
        x = read_idx(x_path, limits[split])
        y = read_idx(y_path, limits[split])
        if x.shape[1:] != (28, 28) or len(x) != len(y):
            raise ValueError(
                f"{folder}: {split} IDX files have images {x.shape}, labels {y.shape}."
            )
        # IDX may hold floats; MNIST's are uint8, so these checks cost nothing there.
        check_finite(x, x_path, _remedy(x_path))
        check_labels(y, NUM_CLASSES, split, y_path, _remedy(y_path))
        splits[split] = (x.reshape(-1, NUM_PIXELS, 1), y.astype(np.int32))
    return splits


def _load_tfds(name: str, config, limits: dict[str, int]):
    import tensorflow_datasets as tfds  # slow import; only on this path

    if config.download:
        from tclif_jax.data import download

        download.fetch_mnist(config.dir)
    splits = {}
    for split in ("train", "test"):
        try:
            ds = tfds.load("mnist", split=split, data_dir=config.dir or None, download=False)
        except AssertionError as e:  # tfds's "could not find data in <dir>"
            raise _not_found(name, config, f"TFDS said: {e}") from e
        if limits[split]:
            ds = ds.take(limits[split])
        xs, ys = [], []
        where = os.path.join(config.dir or "~/tensorflow_datasets", "mnist")
        remedy = f"delete {where} and fetch it again (--config.data.download=True)"
        try:
            for batch in tfds.as_numpy(ds.batch(10_000)):
                xs.append(batch["image"].reshape(-1, NUM_PIXELS, 1).astype(np.uint8))
                ys.append(batch["label"])
        except Exception as e:  # noqa: BLE001 - TensorFlow's DataLossError and kin
            raise DataCorruptError(
                f"{name}: TFDS 'mnist' in {where} cannot be read ({type(e).__name__}: {e}); "
                f"{remedy}."
            ) from e
        y = np.concatenate(ys) if ys else np.zeros((0,), np.int32)
        check_labels(y, NUM_CLASSES, split, f"{name}: TFDS 'mnist' in {where}", remedy)
        splits[split] = (
            np.concatenate(xs) if xs else np.zeros((0, NUM_PIXELS, 1), np.uint8),
            y.astype(np.int32),
        )
    return splits


def _not_found(name: str, config, detail: str = "") -> DataNotFoundError:
    from tclif_jax.data import download

    folders = ", ".join(idx_candidates(config.dir))
    tfds_dir = config.dir or "the TFDS default (~/tensorflow_datasets or $TFDS_DATA_DIR)"
    searched = f"; and for TFDS 'mnist' in {tfds_dir}" if config.source != "idx" else ""
    files = ", ".join(f"{b}[.gz]" for pair in IDX_FILES.values() for b in pair)
    return DataNotFoundError(
        f"{name}: MNIST not found (source={config.source!r}). Looked for the IDX files in: "
        f"{folders}{searched}. {detail}\nTo provide it, set --config.data.download=True "
        f"(TFDS fetches {MNIST_URL}), put the four IDX files ({files}) in config.dir, or "
        f"on a machine with internet run\n{download.command(name, config.dir)}"
    )


def load_mnist(name: str, config) -> tuple[dict, dict]:
    """``({"train": (x, y), "test": (x, y)}, info)`` for smnist/psmnist (no permutation here)."""
    limits = {"train": int(config.train_limit), "test": int(config.test_limit)}
    for v in limits.values():
        take(v, 0)
    source = config.source
    if source not in SOURCES:
        raise ValueError(f"{name}: unknown source {source!r}; valid: {', '.join(SOURCES)}.")
    folder = find_idx_dir(config.dir) if source in ("auto", "idx") else None
    if folder is not None:
        logging.info("%s: reading MNIST IDX files from %s", name, folder)
        return _load_idx(folder, limits), {"source": "idx", "idx_dir": folder}
    if source == "idx":
        raise _not_found(name, config)
    logging.info("%s: reading TFDS mnist (data_dir=%s)", name, config.dir or "default")
    return _load_tfds(name, config, limits), {"source": "tfds", "tfds_data_dir": config.dir}


def permutation(seed: int, workdir: str | None = None) -> tuple[np.ndarray, dict]:
    """PS-MNIST's permutation of the 784 positions and what to log about it.

    With ``workdir``, ``workdir/permutation.npy`` wins over the seed when it exists
    (resumption and evaluation must see the same order); otherwise it is written there.
    """
    perm = np.random.default_rng(int(seed)).permutation(NUM_PIXELS)
    info = {"permutation_seed": int(seed)}
    if workdir is None:
        return perm, info
    path = os.path.join(workdir, "permutation.npy")
    info["permutation_file"] = path
    if os.path.exists(path):
        saved = np.load(path)
        if saved.shape != (NUM_PIXELS,) or not np.array_equal(
            np.sort(saved), np.arange(NUM_PIXELS)
        ):
            raise ValueError(
                f"{path} is not a permutation of 0..{NUM_PIXELS - 1}; delete it or "
                f"use another workdir."
            )
        if not np.array_equal(saved, perm):
            info["permutation_note"] = (
                f"saved permutation in {path} differs from seed {seed}; using the saved one"
            )
            logging.warning("psmnist: %s", info["permutation_note"])
        info["permutation_loaded"] = True
        return saved.astype(np.int64), info
    os.makedirs(workdir, exist_ok=True)
    tmp = path + ".tmp.npy"
    np.save(tmp, perm)
    os.replace(tmp, path)
    info["permutation_loaded"] = False
    return perm, info


def _load_smnist(config, workdir=None) -> tuple[dict, dict]:
    return load_mnist("smnist", config)


def _load_psmnist(config, workdir=None) -> tuple[dict, dict]:
    splits, info = load_mnist("psmnist", config)
    perm, pinfo = permutation(config.permutation_seed, workdir)
    return {k: (x[:, perm], y) for k, (x, y) in splits.items()}, {**info, **pinfo}


_FIELDS = {
    "source": choice("auto", SOURCES),
    "download": flag(False),  # let TFDS download (needs internet)
}
SPECS = (
    DatasetSpec("smnist", NUM_CLASSES, 1, _FIELDS, _load_smnist, input_scale=1 / 255),
    DatasetSpec(
        "psmnist",
        NUM_CLASSES,
        1,
        {**_FIELDS, "permutation_seed": integer(0)},
        _load_psmnist,
        input_scale=1 / 255,
    ),
)
