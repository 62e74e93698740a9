"""Spike lists held in memory: binned into counts per batch, or handed on as events.

``SpikeEvents`` stores a split of SHD/SSC-like data as per-clip spike lists (time bin,
channel), about 2 bytes per spike, and bins any batch of clips into dense ``(B, T, F)``
counts when it is indexed, bit-identical to ``bin_spikes`` on the raw times; it also
builds a batch as a ``tclif_jax.events.EventBatch`` without a dense tensor
(``SpikeEvents.events``). ``EventRows`` is the split view whose indexing gives those
events (``data.input=events``). ``bin_spikes`` and ``digitize_uniform`` are the official
binning (``np.digitize`` on uniform edges), shared with the file reader in
``tclif_jax.data.spiking_audio``.
"""

from __future__ import annotations

import numpy as np

from tclif_jax.events import EventBatch, bucket_k

__all__ = ["DROP_KINDS", "SpikeEvents", "EventRows", "bin_spikes", "digitize_uniform"]

DROP_KINDS = ("nan", "inf", "outside_window", "bad_unit")
# Cells per bincount call: bounds the int64 scratch to ~128 MB.
_CHUNK_CELLS = 16_000_000
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
