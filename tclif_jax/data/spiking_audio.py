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
as events (``SpikeEvents``: ~2 bytes per spike) and each batch is binned when it is
indexed, ``x[idx]``, bit-identical to ``bin_spikes``. ``config.stream``: "auto" (the
default) keeps events when the dataset's dense counts would exceed ``dense_max_gb``
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
from tclif_jax.events import EventBatch, bucket_k

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
DROP_KINDS = ("nan", "inf", "outside_window", "bad_unit")
STREAM_MODES = ("auto", "events", "dense")
# Cells per bincount call: bounds the int64 scratch to ~128 MB.
_CHUNK_CELLS = 16_000_000
# Samples read from the HDF5 file at a time by read_events (~10 MB of spikes for SSC).
_READ_CHUNK = 512
# Samples binned at a time by SpikeEvents.__array__.
_DENSE_CHUNK = 512


def digitize_uniform(t: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.digitize(t, edges)`` for evenly spaced ``edges`` (``np.linspace``), ~10x faster.

    The arithmetic guess can be one off where rounding puts t next to an edge; one
    comparison each way against the actual edges makes it exact.
    """
    k = np.floor((t - edges[0]) * ((len(edges) - 1) / (edges[-1] - edges[0]))).astype(np.int64) + 1
    k = np.clip(k, 0, len(edges))
    padded = np.concatenate([[-np.inf], edges, [np.inf]])  # padded[k] = edges[k - 1]
    k -= t < padded[k]
    k += t >= padded[k + 1]
    return k


def _keep_and_step(t, u, edges, max_time, num_channels, dropped):
    """Which spikes count and their time step; adds the dropped ones to ``dropped``.

    ``t``: float64 seconds, ``u``: int64 channels (1-D, equal length). Returns
    ``(keep (n,) bool, step (kept,) int64 in 1..T-1)``.
    """
    nan = np.isnan(t)
    inf = np.isinf(t)
    finite = ~(nan | inf)
    outside = finite & ((t < 0) | (t >= max_time))
    bad_unit = finite & ~outside & ((u < 0) | (u >= num_channels))
    keep = finite & ~outside & ~bad_unit
    for kind, mask in zip(DROP_KINDS, (nan, inf, outside, bad_unit)):
        dropped[kind] += int(mask.sum())
    return keep, digitize_uniform(t[keep], edges)


def _count_dtype(peak: int):
    for dtype in (np.uint8, np.uint16, np.uint32):
        if peak <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def bin_spikes(
    times, units, *, time_steps: int = 250, max_time: float = 1.4, num_channels: int = 700
) -> tuple[np.ndarray, dict[str, int]]:
    """Spike counts ``(N, time_steps, num_channels)`` from ragged per-sample times and units.

    ``times[i]`` (seconds) and ``units[i]`` are 1-D arrays of equal length. Returns the
    counts (uint8, or uint16/uint32 when needed) and how many spikes were dropped, by kind.
    The reference recipe; ``SpikeEvents`` gives the same counts batch by batch.
    """
    n = len(times)
    if len(units) != n:
        raise ValueError(f"times and units disagree on the number of samples: {n} vs {len(units)}.")
    edges = np.linspace(0.0, max_time, time_steps)
    cells = time_steps * num_channels
    per_chunk = max(1, _CHUNK_CELLS // cells)
    out = np.zeros((n, time_steps, num_channels), np.uint8)
    dropped = dict.fromkeys(DROP_KINDS, 0)
    for start in range(0, n, per_chunk):
        stop = min(n, start + per_chunk)
        t_list = [np.asarray(t, np.float64).reshape(-1) for t in times[start:stop]]
        u_list = [np.asarray(u).reshape(-1) for u in units[start:stop]]
        lengths = np.array([len(t) for t in t_list])
        if any(len(u) != l for u, l in zip(u_list, lengths)):
            raise ValueError(f"samples {start}..{stop - 1}: times and units differ in length.")
        if lengths.sum() == 0:
            continue
        t = np.concatenate(t_list)
        u = np.concatenate(u_list).astype(np.int64)
        sample = np.repeat(np.arange(stop - start), lengths)
        keep, step = _keep_and_step(t, u, edges, max_time, num_channels, dropped)
        flat = (sample[keep] * time_steps + step) * num_channels + u[keep]
        counts = np.bincount(flat, minlength=(stop - start) * cells)
        peak = int(counts.max(initial=0))
        if peak > np.iinfo(out.dtype).max:
            out = out.astype(_count_dtype(peak))
        out[start:stop] = counts.reshape(stop - start, time_steps, num_channels)
    return out, dropped


# ----------------------------------------------------------------------------- events


class SpikeEvents:
    """One split's spikes, kept as events and binned into dense counts when indexed.

    Array-like of shape ``(N, time_steps, num_channels)``: ``x[idx]`` (an int, a slice
    or a 1-D index array) returns the counts of those samples, ``(len(idx), T, C)`` in
    ``dtype``, equal to ``bin_spikes`` of the same spikes; ``np.asarray(x)`` bins all.
    ``nbytes`` is the size of that dense array; ``events_nbytes`` what is held.

    Storage, per sample ``i``: its kept spikes sorted by (time step, channel) as
    ``uint16`` channels (``blocks[block_of[i]][start[i] : start[i] + length[i]]``), and
    ``bin_counts[i]`` ``(T,)`` spikes per time step: 2 bytes per spike plus 2T + 20 bytes
    per sample (SSC at ~8,000 spikes per clip: 1.6 GiB instead of 17 GiB of counts).
    Indexing is read-only and safe from a prefetch thread.
    """

    ndim = 3

    def __init__(
        self,
        blocks: list[np.ndarray],
        block_of: np.ndarray,
        start: np.ndarray,
        bin_counts: np.ndarray,
        num_channels: int,
        dtype,
    ):
        self.blocks = blocks
        self.block_of = np.asarray(block_of, np.int32)
        self.start = np.asarray(start, np.int64)
        self.bin_counts = bin_counts
        self.length = bin_counts.sum(axis=1, dtype=np.int64)
        self.num_channels = int(num_channels)
        self.dtype = np.dtype(dtype)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.start), self.bin_counts.shape[1], self.num_channels)

    @property
    def nbytes(self) -> int:
        """Bytes of the dense counts this stands for (``np.asarray(self).nbytes``)."""
        n, t, c = self.shape
        return n * t * c * self.dtype.itemsize

    @property
    def events_nbytes(self) -> int:
        """Bytes actually held: spike channels, per-step counts and per-sample offsets."""
        held = (self.block_of, self.start, self.bin_counts, self.length)
        return sum(b.nbytes for b in self.blocks) + sum(a.nbytes for a in held)

    @property
    def num_spikes(self) -> int:
        return int(self.length.sum())

    def __len__(self) -> int:
        return len(self.start)

    def __repr__(self) -> str:
        return (
            f"SpikeEvents(shape={self.shape}, dtype={self.dtype}, spikes={self.num_spikes}, "
            f"held={self.events_nbytes / 2**20:.1f} MiB, dense={self.nbytes / 2**20:.1f} MiB)"
        )

    def _indices(self, key) -> np.ndarray:
        n = len(self)
        if isinstance(key, slice):
            return np.arange(n)[key]
        idx = np.asarray(key)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise IndexError(f"boolean index of shape {idx.shape} for {n} samples.")
            return np.flatnonzero(idx)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise IndexError(
                f"SpikeEvents takes an int, a slice or a 1-D integer array; got {key!r:.80}."
            )
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"index out of range for {n} samples: {idx.min()}..{idx.max()}.")
        return np.where(idx < 0, idx + n, idx)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):
            head, rest = (key[0], key[1:]) if key else (slice(None), ())
            out = self[head]
            return out[rest] if np.ndim(head) == 0 else out[(slice(None), *rest)]
        if isinstance(key, (int, np.integer)):
            return self.bin(self._indices([key]))[0]
        return self.bin(self._indices(key))

    def bin(self, idx: np.ndarray) -> np.ndarray:
        """Dense counts ``(len(idx), T, C)`` of samples ``idx`` (non-negative ints)."""
        n, steps, channels = len(idx), self.shape[1], self.num_channels
        out = np.zeros((n, steps, channels), self.dtype)
        if n == 0:
            return out
        parts = [
            self.blocks[b][s : s + l]
            for b, s, l in zip(self.block_of[idx], self.start[idx], self.length[idx])
        ]
        chans = np.concatenate(parts) if parts else np.zeros(0, np.uint16)
        if not len(chans):
            return out
        # Row r's spikes sorted by (step, channel), rows in order: flat is sorted, so the
        # spikes of one cell are adjacent. Set every hit cell to 1, then add the repeats
        # (a cell with k spikes repeats k - 1 times), each cell once.
        itype = np.int32 if out.size < 2**31 else np.int64
        rowstep = np.repeat(np.arange(n * steps, dtype=itype), self.bin_counts[idx].ravel())
        flat = rowstep * itype(channels) + chans
        cells = out.reshape(-1)
        cells[flat] = 1
        repeat = flat[1:][flat[1:] == flat[:-1]]
        if len(repeat):
            first = np.flatnonzero(np.concatenate([[True], repeat[1:] != repeat[:-1]]))
            cells[repeat[first]] += np.diff(np.append(first, len(repeat))).astype(self.dtype)
        return out

    def _cells(self, idx: np.ndarray):
        """The non-empty cells of samples ``idx``: ``(row, channel, count)``, rows
        ``i * T + step`` over the selection, sorted by (row, channel)."""
        steps, channels = self.shape[1], self.num_channels
        parts = [
            self.blocks[b][s : s + l]
            for b, s, l in zip(self.block_of[idx], self.start[idx], self.length[idx])
        ]
        chans = np.concatenate(parts) if parts else np.zeros(0, np.uint16)
        rowstep = np.repeat(
            np.arange(len(idx) * steps, dtype=np.int64), self.bin_counts[idx].ravel()
        )
        # Each row's spikes are sorted by channel, rows in order: one cell's spikes are adjacent.
        flat = rowstep * channels + chans
        first = (
            np.flatnonzero(np.concatenate([[True], flat[1:] != flat[:-1]])) if len(flat) else flat
        )
        counts = np.diff(np.append(first, len(flat)))
        cells = flat[first]
        return cells // channels, cells % channels, counts

    def max_active(self) -> int:
        """The most channels active in one (sample, step) over the split."""
        busiest = 0
        for a in range(0, len(self), _DENSE_CHUNK):
            rows = self._cells(np.arange(a, min(len(self), a + _DENSE_CHUNK)))[0]
            busiest = max(busiest, int(np.bincount(rows).max(initial=0)) if len(rows) else 0)
        return busiest

    def events(self, idx: np.ndarray, k: int) -> EventBatch:
        """Samples ``idx`` as an ``EventBatch`` (NumPy leaves, leading axes ``(len(idx), T)``,
        ``k`` entries per row), equal to ``events.from_dense(self.bin(idx), k)``, without
        the dense counts."""
        n, steps = len(idx), self.shape[1]
        rows, chans, counts = self._cells(idx)
        per_row = np.bincount(rows, minlength=n * steps)
        if per_row.max(initial=0) > k:
            raise ValueError(
                f"k={k} is too small for these samples: a step has {int(per_row.max())} active "
                "channels; use max_active() of the split."
            )
        pos = np.arange(len(rows)) - (np.cumsum(per_row) - per_row)[rows]
        channels = np.zeros((n * steps, k), np.int32)
        values = np.zeros((n * steps, k), np.float32)
        valid = np.zeros((n * steps, k), bool)
        channels[rows, pos], values[rows, pos], valid[rows, pos] = chans, counts, True
        shape = (n, steps, k)
        return EventBatch(
            channels.reshape(shape), values.reshape(shape), valid.reshape(shape), self.num_channels
        )

    def __array__(self, dtype=None, copy=None):
        out = np.empty(self.shape, self.dtype)
        for a in range(0, len(self), _DENSE_CHUNK):
            b = min(len(self), a + _DENSE_CHUNK)
            out[a:b] = self.bin(np.arange(a, b))
        return out if dtype is None else out.astype(dtype, copy=False)

    def subset(self, idx) -> SpikeEvents:
        """The samples ``idx`` (an index array or slice) as SpikeEvents sharing the storage."""
        idx = self._indices(idx)
        return SpikeEvents(
            self.blocks,
            self.block_of[idx],
            self.start[idx],
            self.bin_counts[idx],
            self.num_channels,
            self.dtype,
        )


class EventRows:
    """A split as model input in events: ``x[idx]`` is an ``EventBatch`` (NumPy leaves,
    leading axes ``(len(idx), T)``), padded to one ``k`` for the whole split (the split's
    busiest step, ``bucket_k``), so every batch has one shape, on every process, and the
    steps compile once. ``shape`` and ``nbytes`` are those of the dense counts."""

    ndim = 3

    def __init__(self, store: SpikeEvents, k: int | None = None):
        self.store = store
        self.k = bucket_k(store.max_active()) if k is None else int(k)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.store.shape

    @property
    def nbytes(self) -> int:
        return self.store.nbytes

    def __len__(self) -> int:
        return len(self.store)

    def __repr__(self) -> str:
        return f"EventRows(k={self.k}, {self.store!r})"

    def __getitem__(self, key) -> EventBatch:
        return self.store.events(self.store._indices(key), self.k)

    def subset(self, idx) -> EventRows:
        return EventRows(self.store.subset(idx), self.k)


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
