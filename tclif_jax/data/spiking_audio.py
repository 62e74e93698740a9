"""Spiking Heidelberg Digits (SHD, 20 classes) and Spiking Speech Commands (SSC, 35 classes).

Inputs ``(N, 250, 700)`` spike counts per (time bin, channel), uint8 (uint16 if a count
exceeds 255; never clipped). Read directly from the HDF5 files in tonic's layout
(``spikes/times`` ragged float seconds, ``spikes/units`` ragged channel ids, ``labels``);
``config.download`` fetches them through ``tonic.datasets.SHD``/``SSC``
(``download.fetch_hsd``). Reading goes through h5py, not tonic's ``__getitem__``: tonic
reopens the file for every sample and rounds times down to whole microseconds, which
moves spikes lying within 1 us above a bin edge into the previous bin.

Binning, as the official code: ``bin = np.digitize(t, np.linspace(0, max_time, T))``
with T = 250, max_time = 1.4 s. The edges are e_j = j * 1.4 / 249, and digitize returns
k for e_{k-1} <= t < e_k, so a time in [0, 1.4) lands in step 1..249, each 1.4 / 249 s
(5.62 ms) wide, and step 0 is always empty (the official code would put t < 0 there).
Several spikes of one channel in one bin add up (the official code sums duplicate
sparse indices). Times that are NaN, +-inf, negative or >= max_time (which the official
code cannot index), and units outside 0..699, are dropped, counted in ``info`` and
logged once per load.

Memory: the dense counts of SSC's 75,466 training clips take 13 GB, so a split is kept
as events (``tclif_jax.data.spike_store.SpikeEvents``: ~2 bytes per spike) and each
batch is binned when it is indexed, ``x[idx]``, bit-identical to ``bin_spikes``.
``config.stream``: "auto" (the default) keeps events when the dataset's dense counts would exceed ``dense_max_gb``
(SSC), else bins everything once at load (SHD, 1.8 GB, which the training loop then
holds on the device); "events" or "dense" force either.
"""

from __future__ import annotations

import os

import numpy as np
from absl import logging

from tclif_jax.data._common import (
    DataCorruptError,
    DataNotFoundError,
    DatasetSpec,
    check_labels,
    choice,
    default_data_dir,
    flag,
    integer,
    number,
    take,
)
from tclif_jax.data.spike_store import (
    DROP_KINDS,
    EventRows,
    SpikeEvents,
    _count_dtype,
    _keep_and_step,
    bin_spikes,
)

__all__ = [
    "SPEC",
    "STREAM_MODES",
    "SpikeEvents",
    "EventRows",
    "bin_spikes",
    "read_events",
    "find_file",
    "load_hsd",
    "SPECS",
]

# name -> (tonic's folder, file prefix, our split -> file split, classes)
SPEC = {
    "shd": ("SHD", "shd", {"train": "train", "test": "test"}, 20),
    "ssc": ("SSC", "ssc", {"train": "train", "valid": "valid", "test": "test"}, 35),
}
STREAM_MODES = ("auto", "events", "dense")
# Samples read from the HDF5 file at a time by read_events (~10 MB of spikes for SSC).
_READ_CHUNK = 512


def _remedy(name: str = "") -> str:
    if not name:
        return "delete it and fetch it again"
    return (
        f"delete it and fetch it again (--config.data.download=True, or "
        f"python -m tclif_jax.data.download {name} --dir <data dir>)"
    )


def _corrupt(path: str, what: str, name: str = "") -> DataCorruptError:
    return DataCorruptError(
        f"{path}: {what}; the file is damaged or not in the SHD/SSC layout: {_remedy(name)}."
    )


def _events_of_chunk(t_list, u_list, edges, max_time, num_channels, dropped):
    """One chunk of samples as ``(keys sorted, shift)``: ``key = (sample * T + step) <<
    shift | channel`` for every kept spike, ``sample`` counted within the chunk."""
    steps = len(edges)
    lengths = np.array([len(t) for t in t_list], np.int64)
    t = np.concatenate(t_list, dtype=np.float64) if len(t_list) else np.zeros(0)
    u = np.concatenate(u_list) if len(u_list) else np.zeros(0, np.uint16)
    # Comparisons in float64 (a float32 time just below max_time must stay in).
    keep = (t >= 0.0) & (t < np.float64(max_time)) & (u < num_channels)
    if u.dtype.kind == "i":
        keep &= u >= 0
    if not keep.all():
        # Count what is dropped by kind; same definitions as bin_spikes.
        _keep_and_step(t[~keep], u[~keep].astype(np.int64), edges, max_time, num_channels, dropped)
    shift = max(1, int(num_channels - 1).bit_length())
    big = (len(t_list) * steps) << shift >= 2**31
    itype = np.int64 if big else np.int32
    sample = np.repeat(np.arange(len(t_list), dtype=itype), lengths)[keep]
    # np.digitize(t, edges) for increasing edges is exactly searchsorted(side="right").
    step = np.searchsorted(edges, t[keep], side="right").astype(itype)
    key = ((sample * steps + step) << shift) | u[keep].astype(itype)
    key.sort()
    return key, shift


def read_events(
    path: str,
    limit: int = 0,
    *,
    time_steps: int = 250,
    max_time: float = 1.4,
    num_channels: int = 700,
    name: str = "",
    num_classes: int | None = None,
    split: str = "",
    chunk: int = _READ_CHUNK,
) -> tuple[SpikeEvents, np.ndarray, dict[str, int]]:
    """Read an SHD/SSC HDF5 file as ``(SpikeEvents, labels (N,) int32, dropped spikes)``.

    ``limit > 0`` keeps the first ``limit`` samples. Reads ``chunk`` samples at a time,
    so the peak beyond the result is a few chunks of spikes. A file that h5py cannot read
    raises ``DataCorruptError`` naming it; so does, with ``num_classes``, a kept label
    outside ``0..num_classes - 1`` (naming ``split``, default the file's name, and the
    first bad label), before any spike is read.
    """
    import h5py

    edges = np.linspace(0.0, max_time, time_steps)
    dropped = dict.fromkeys(DROP_KINDS, 0)
    chan_dtype = np.uint16 if num_channels <= 2**16 else np.uint32
    blocks, starts, bin_counts = [], [], []
    peak = 0
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise _corrupt(path, f"h5py cannot open it ({e})", name) from e
    with f:
        try:
            times_ds, units_ds = f["spikes/times"], f["spikes/units"]
            labels = f["labels"][()]
            if not (len(times_ds) == len(units_ds) == len(labels)):
                raise _corrupt(
                    path,
                    f"{len(times_ds)} spike times, {len(units_ds)} unit lists and "
                    f"{len(labels)} labels",
                    name,
                )
            n = take(limit, len(labels))
            labels = labels[:n]
            if num_classes is not None:
                split = split or os.path.basename(path)
                check_labels(labels, num_classes, split, path, _remedy(name))
            for a in range(0, n, chunk):
                b = min(n, a + chunk)
                t_list, u_list = times_ds[a:b], units_ds[a:b]
                if any(len(t) != len(u) for t, u in zip(t_list, u_list)):
                    raise _corrupt(
                        path, f"samples {a}..{b - 1}: times and units differ in length", name
                    )
                key, shift = _events_of_chunk(
                    t_list, u_list, edges, max_time, num_channels, dropped
                )
                counts = np.bincount(key >> shift, minlength=(b - a) * time_steps)
                if counts.max(initial=0) > np.iinfo(np.uint8).max:
                    # A cell can exceed 255 only inside such a busy step: count exactly there.
                    busy = key[(counts > np.iinfo(np.uint8).max)[key >> shift]]
                    change = np.flatnonzero(busy[1:] != busy[:-1])
                    runs = np.diff(np.concatenate([[-1], change, [len(busy) - 1]]))
                    peak = max(peak, int(runs.max(initial=0)))
                elif len(key):
                    peak = max(peak, 1)
                blocks.append((key & ((1 << shift) - 1)).astype(chan_dtype))
                bin_counts.append(counts.reshape(b - a, time_steps).astype(np.uint32))
                totals = bin_counts[-1].sum(axis=1, dtype=np.int64)
                starts.append(np.concatenate([[0], np.cumsum(totals)[:-1]]))
        except (OSError, KeyError, TypeError) as e:
            raise _corrupt(path, f"cannot read it ({type(e).__name__}: {e})", name) from e
    labels = np.asarray(labels).astype(np.int32)
    counts = np.concatenate(bin_counts) if bin_counts else np.zeros((0, time_steps), np.uint32)
    if counts.size and counts.max() <= np.iinfo(np.uint16).max:
        counts = counts.astype(np.uint16)
    block_of = [np.full(len(s), i, np.int32) for i, s in enumerate(starts)]
    events = SpikeEvents(
        blocks,
        np.concatenate(block_of) if block_of else np.zeros(0, np.int32),
        np.concatenate(starts) if starts else np.zeros(0, np.int64),
        counts,
        num_channels,
        _count_dtype(peak),
    )
    return events, labels, dropped


# ----------------------------------------------------------------------------- loading


def candidates(name: str, dir: str) -> list[str]:
    """Folders searched for the .h5 files: the folder itself, then tonic's ``<dir>/SHD``."""
    root = os.path.expanduser(dir) if dir else default_data_dir()
    folder = SPEC[name][0]
    return [root, os.path.join(root, folder), os.path.join(root, folder.lower())]


def find_file(name: str, split: str, dir: str) -> str:
    """The path of ``<name>_<split>.h5``, or ``DataNotFoundError`` saying how to get it."""
    from tclif_jax.data import download

    _, prefix, files, _ = SPEC[name]
    filename = f"{prefix}_{files[split]}.h5"
    for folder in candidates(name, dir):
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            return path
    needed = ", ".join(f"{prefix}_{s}.h5" for s in files.values())
    folders = candidates(name, dir)
    raise DataNotFoundError(
        f"{name}: {filename} not found; looked in: {', '.join(folders)}.\nTo provide it, set "
        f"--config.data.download=True (fetches them through tonic into {folders[1]}), or put "
        f"{needed} (unzipped from {download.HSD_URL}{prefix}_*.h5.zip) in {folders[0]} or "
        f"{folders[1]}; on another machine with internet:\n{download.command(name, dir)}"
    )


def stream_splits(config, events: dict[str, SpikeEvents]) -> bool:
    """Whether ``config.stream`` keeps these splits as events (True) or bins them now."""
    mode = config.stream
    if mode not in STREAM_MODES:
        raise ValueError(f"data.stream={mode!r}; valid: {', '.join(STREAM_MODES)}.")
    if mode != "auto":
        return mode == "events"
    return sum(e.nbytes for e in events.values()) > float(config.dense_max_gb) * 2**30


def load_hsd(name: str, config) -> tuple[dict, dict]:
    """``({split: (counts (N, T, 700), labels int32)}, info)`` for ``"shd"`` or ``"ssc"``.

    ``counts`` is a numpy array, or ``SpikeEvents`` when ``stream_splits`` says so.
    Missing files are fetched first when ``config.download`` is set.
    """
    _, _, files, num_classes = SPEC[name]
    try:
        paths = {split: find_file(name, split, config.dir) for split in files}  # fail early
    except DataNotFoundError:
        if not config.download:
            raise
        from tclif_jax.data import download

        download.fetch_hsd(name, config.dir)
        paths = {split: find_file(name, split, config.dir) for split in files}
    events, labels, info = {}, {}, {"files": paths, "dropped": {}}
    for split, path in paths.items():
        limit = config.train_limit if split == "train" else config.test_limit
        events[split], labels[split], info["dropped"][split] = read_events(
            path,
            limit,
            time_steps=int(config.time_steps),
            max_time=float(config.max_time),
            num_channels=int(config.num_channels),
            name=name,
            num_classes=num_classes,
            split=split,
        )
    as_events = config.input == "events"
    stream = as_events or stream_splits(config, events)
    info["stream"] = "events" if stream else "dense"
    info["spikes"] = {s: e.num_spikes for s, e in events.items()}
    info["events_bytes"] = sum(e.events_nbytes for e in events.values())
    info["dense_bytes"] = sum(e.nbytes for e in events.values())
    splits = {}
    for split in list(events):
        x = events.pop(split)  # free each split's events once binned
        x = EventRows(x) if as_events else x if stream else np.asarray(x)
        splits[split] = (x, labels[split])
    total = {k: sum(d[k] for d in info["dropped"].values()) for k in DROP_KINDS}
    info["dropped_total"] = total
    logging.info(
        "%s: dropped spikes %s (NaN, inf, t outside [0, %g) s, unit outside 0..%d)",
        name,
        "; ".join(
            f"{s}: " + ", ".join(f"{k}={v}" for k, v in d.items())
            for s, d in info["dropped"].items()
        ),
        float(config.max_time),
        int(config.num_channels) - 1,
    )
    logging.info(
        "%s: %s (events %.2f GB, dense counts %.2f GB)",
        name,
        "streaming events, binned per batch" if stream else "dense counts",
        info["events_bytes"] / 1e9,
        info["dense_bytes"] / 1e9,
    )
    return splits, info


def _loader(name: str):
    def load(config, workdir=None) -> tuple[dict, dict]:
        return load_hsd(name, config)

    return load


# The official recipe: 250 steps over 1.4 s, tonic's 700 channels.
_FIELDS = {
    "time_steps": integer(250, low=2),
    "max_time": number(1.4, above=0.0),  # seconds
    "num_channels": integer(700, low=1),
    "download": flag(False),  # fetch the .h5 files through tonic when missing (needs internet)
    # "auto": keep spike events and bin each batch when the dense counts of all splits
    # would exceed dense_max_gb GiB (SSC: 17.2 GiB), else bin them once at load (SHD:
    # 1.7 GiB, which the training loop then keeps on the device); "events" or "dense"
    # force either.
    "stream": choice("auto", STREAM_MODES),
    "dense_max_gb": number(2.0, low=0.0),
    # "events": batches reach the model as tclif_jax.events.EventBatch (never binned
    # densely; implies stream="events"); "dense": as (B, T, 700) counts.
    "input": choice("dense", ("dense", "events")),
}
SPECS = tuple(
    DatasetSpec(name, classes, "num_channels", _FIELDS, _loader(name), splits=tuple(files))
    for name, (_, _, files, classes) in SPEC.items()
)
