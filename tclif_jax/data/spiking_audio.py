"""Spiking Heidelberg Digits (SHD, 20 classes) and Spiking Speech Commands (SSC, 35 classes).

Inputs ``(N, 250, 700)`` spike counts per (time bin, channel), uint8 (uint16 if a count
exceeds 255; never clipped). Read directly from the HDF5 files in tonic's format
(``spikes/times`` ragged float seconds, ``spikes/units`` ragged channel ids, ``labels``),
not through ``tonic.datasets.SHD``/``SSC``: those also require the downloaded .zip next to
the .h5 and would go to the network without it.

Binning, as the official code: ``bin = np.digitize(t, np.linspace(0, max_time, T))``
with T = 250, max_time = 1.4 s. The edges are e_j = j * 1.4 / 249, and digitize returns
k for e_{k-1} <= t < e_k, so a time in [0, 1.4) lands in step 1..249, each 1.4 / 249 s
(5.62 ms) wide, and step 0 is always empty (the official code would put t < 0 there).
Several spikes of one channel in one bin add up (the official code sums duplicate
sparse indices). Times that are NaN, +-inf, negative or >= max_time (which the official
code cannot index), and units outside 0..699, are dropped, counted in ``info`` and
logged once per load.
"""

from __future__ import annotations

import os

import numpy as np
from absl import logging

from tclif_jax.data._common import DataNotFoundError, default_data_dir, take

__all__ = ["SPEC", "bin_spikes", "find_file", "load_hsd", "write_hsd", "write_fake_hsd"]

# name -> (tonic's folder, file prefix, our split -> file split, classes)
SPEC = {
    "shd": ("SHD", "shd", {"train": "train", "test": "test"}, 20),
    "ssc": ("SSC", "ssc", {"train": "train", "valid": "valid", "test": "test"}, 35),
}
DROP_KINDS = ("nan", "inf", "outside_window", "bad_unit")
# Cells per bincount call: bounds the int64 scratch to ~128 MB.
_CHUNK_CELLS = 16_000_000


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


def bin_spikes(times, units, *, time_steps: int = 250, max_time: float = 1.4,
               num_channels: int = 700) -> tuple[np.ndarray, dict[str, int]]:
    """Spike counts ``(N, time_steps, num_channels)`` from ragged per-sample times and units.

    ``times[i]`` (seconds) and ``units[i]`` are 1-D arrays of equal length. Returns the
    counts (uint8, or uint16/uint32 when needed) and how many spikes were dropped, by kind.
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
        nan = np.isnan(t)
        inf = np.isinf(t)
        finite = ~(nan | inf)
        outside = finite & ((t < 0) | (t >= max_time))
        bad_unit = finite & ~outside & ((u < 0) | (u >= num_channels))
        keep = finite & ~outside & ~bad_unit
        for kind, mask in zip(DROP_KINDS, (nan, inf, outside, bad_unit)):
            dropped[kind] += int(mask.sum())
        step = digitize_uniform(t[keep], edges)  # 1..time_steps-1 for 0 <= t < max_time
        flat = (sample[keep] * time_steps + step) * num_channels + u[keep]
        counts = np.bincount(flat, minlength=(stop - start) * cells)
        peak = int(counts.max(initial=0))
        if peak > np.iinfo(out.dtype).max:
            out = out.astype(np.uint16 if peak <= np.iinfo(np.uint16).max else np.uint32)
        out[start:stop] = counts.reshape(stop - start, time_steps, num_channels)
    return out, dropped


def candidates(name: str, dir: str) -> list[str]:
    """Folders searched for the .h5 files: the folder itself, then tonic's ``<dir>/SHD``."""
    root = dir or default_data_dir()
    folder = SPEC[name][0]
    return [root, os.path.join(root, folder), os.path.join(root, folder.lower())]


def find_file(name: str, split: str, dir: str) -> str:
    _, prefix, files, _ = SPEC[name]
    filename = f"{prefix}_{files[split]}.h5"
    for folder in candidates(name, dir):
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            return path
    needed = ", ".join(f"{prefix}_{s}.h5" for s in files.values())
    folders = candidates(name, dir)
    cls = f"tonic.datasets.{SPEC[name][0]}"
    args = ["train=True", "train=False"] if name == "shd" else [f"split='{s}'" for s in files.values()]
    fetch = "; ".join(f"{cls}(save_to='{folders[0]}', {a})" for a in args)
    raise DataNotFoundError(
        f"{name}: {filename} not found; looked in: {', '.join(folders)}.\nTo provide it, put "
        f"{needed} (unzipped from https://zenkelab.org/datasets/{prefix}_*.h5.zip) in "
        f"{folders[0]} (config.dir), or, on a machine with internet, run python -c \"import "
        f"tonic; {fetch}\", which saves them in {folders[1]} (searched too).")


def load_hsd(name: str, config) -> tuple[dict, dict]:
    """``({split: (counts (N, T, 700), labels int32)}, info)`` for ``"shd"`` or ``"ssc"``."""
    import h5py

    _, _, files, _ = SPEC[name]
    paths = {split: find_file(name, split, config.dir) for split in files}  # fail before work
    splits, info = {}, {"files": paths, "dropped": {}}
    for split, path in paths.items():
        limit = config.train_limit if split == "train" else config.test_limit
        with h5py.File(path, "r") as f:
            n = take(limit, len(f["labels"]))
            times = f["spikes/times"][:n]
            units = f["spikes/units"][:n]
            labels = f["labels"][:n].astype(np.int32)
        x, dropped = bin_spikes(times, units, time_steps=int(config.time_steps),
                                max_time=float(config.max_time),
                                num_channels=int(config.num_channels))
        splits[split] = (x, labels)
        info["dropped"][split] = dropped
    total = {k: sum(d[k] for d in info["dropped"].values()) for k in DROP_KINDS}
    info["dropped_total"] = total
    logging.info("%s: dropped spikes %s (NaN, inf, t outside [0, %g) s, unit outside 0..%d)",
                 name, "; ".join(f"{s}: " + ", ".join(f"{k}={v}" for k, v in d.items())
                                 for s, d in info["dropped"].items()),
                 float(config.max_time), int(config.num_channels) - 1)
    return splits, info


# ----------------------------------------------------------------------------- writers


def write_hsd(path: str, times, units, labels, *, keys=None, speakers=None,
              time_dtype=np.float32) -> str:
    """Write spikes in the SHD/SSC HDF5 layout that tonic and ``load_hsd`` read.

    ``times``/``units``: sequences of 1-D arrays (seconds / channel ids), one per sample;
    ``labels`` ``(N,)``; ``keys``: class names (``extra/keys``); ``speakers`` ``(N,)``.
    """
    import h5py

    n = len(labels)
    if len(times) != n or len(units) != n:
        raise ValueError(f"need one times and one units array per label; got {len(times)}, "
                         f"{len(units)} and {n}.")
    labels = np.asarray(labels)
    if keys is None:
        keys = [f"class_{k}" for k in range(int(labels.max(initial=-1)) + 1)]
    speakers = np.zeros(n, np.uint16) if speakers is None else np.asarray(speakers, np.uint16)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with h5py.File(path, "w") as f:
        t_ds = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.dtype(time_dtype)))
        u_ds = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.dtype(np.uint16)))
        for i in range(n):
            t_ds[i] = np.asarray(times[i], time_dtype)
            u_ds[i] = np.asarray(units[i], np.uint16)
        f.create_dataset("labels", data=labels.astype(np.uint16))
        f.create_dataset("extra/keys", data=np.array([str(k).encode() for k in keys]))
        f.create_dataset("extra/speaker", data=speakers)
    return path


def write_fake_hsd(path: str, num_samples: int, num_classes: int = 20, seed: int = 0, *,
                   num_channels: int = 700, duration: float = 1.0, spikes: tuple[int, int] = (200, 600),
                   nan_times: int = 0, inf_times: int = 0, late_times: int = 0,
                   time_dtype=np.float32) -> str:
    """Write a learnable fake SHD/SSC file (tonic's layout) for tests and demos.

    Class ``k`` is a noisy sweep: spike times uniform in [0, duration) s, and the unit
    moves linearly over time through a band centred on ``(k + 0.5) / num_classes`` of the
    channels, with a class-specific direction. ``nan_times``/``inf_times``/``late_times``
    append that many NaN, +inf and 1.5 * max-window (2.1 s) times, one per sample in
    turn from sample 0, so loaders can be checked to drop and count them.
    """
    rng = np.random.default_rng(seed)
    labels = (np.arange(num_samples) % num_classes).astype(np.uint16)
    rng.shuffle(labels)
    times, units = [], []
    for k in labels:
        m = int(rng.integers(spikes[0], spikes[1] + 1))
        t = np.sort(rng.random(m) * duration)
        centre = (k + 0.5) / num_classes * num_channels
        sweep = (1 if k % 2 == 0 else -1) * 0.5 * num_channels / num_classes
        u = centre + sweep * (t / duration - 0.5) + rng.normal(0, 0.1 * num_channels / num_classes, m)
        times.append(t)
        units.append(np.clip(np.rint(u), 0, num_channels - 1).astype(np.uint16))
    bad = [np.nan] * nan_times + [np.inf] * inf_times + [2.1] * late_times
    for j, value in enumerate(bad):
        i = j % max(num_samples, 1)
        times[i] = np.append(times[i], value)
        units[i] = np.append(units[i], rng.integers(0, num_channels)).astype(np.uint16)
    speakers = rng.integers(0, 10, num_samples)
    return write_hsd(path, times, units, labels, keys=[f"class_{k}" for k in range(num_classes)],
                     speakers=speakers, time_dtype=time_dtype)
